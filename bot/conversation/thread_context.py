"""What other people wrote in a Slack thread since the bot last looked, as the part of the turn the model sees.

Pure: recorded messages in, text out. The caller says where the bot last looked (`since_ts`: the ts of the
last message it answered or showed), which message is the question, and how many tokens the context may
take. Everything here is ordered and de-duplicated by Slack `ts`, so a message recorded from an event and
read again with `conversations.replies` is shown once.

Rendering keeps attribution unambiguous: each message starts a line with `[name]:`, and continuation lines
are indented, so nothing a person writes can pose as another author's line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Iterable, Mapping, Protocol, Sequence

from bot.llm.tokens import count_message_tokens, count_text_tokens
from bot.messages import Message, TextBlock
from bot.store import ThreadMessage

MAX_MESSAGE_CHARS = 4_000  # one pasted log should not crowd out the discussion around it
CUT_MARKER = " … [message cut: {n:,} more characters]"
HEADER = "Messages other people posted in this Slack thread since you last looked, oldest first:"
OMITTED = "({n:,} older messages left out to fit the context window)"
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


@dataclass(frozen=True)
class ThreadContext:
    messages: tuple[ThreadMessage, ...]  # what is shown, oldest first
    text: str  # "" when there is nothing new
    tokens: int  # count_text_tokens(text)
    omitted: int  # new messages left out for the budget (always the oldest)
    cut: int  # messages shortened to MAX_MESSAGE_CHARS


EMPTY = ThreadContext((), "", 0, 0, 0)


@dataclass(frozen=True)
class ThreadSnapshot:
    """What a surface hands the core for one turn: recorded messages after the last look, and names."""

    messages: tuple[ThreadMessage, ...]
    since_ts: str | None
    names: Mapping[str, str]
    bot_user_id: str
    bot_id: str | None = None
    read_slack: bool = False  # whether getting it called Slack (conversations.replies)
    complete: bool = True  # False when a read failed and the store may be missing messages


class ThreadSource(Protocol):
    """The thread a turn is in, as its surface keeps it. `read` never fails a turn: on trouble it
    returns what it has. `looked` records that the model was given the question and `shown` (ts)."""

    async def read(self) -> ThreadSnapshot: ...

    async def looked(self, upto_ts: str, shown: Sequence[str]) -> None: ...


async def question_with_context(source: ThreadSource, *, question: str, question_ts: str, asker_id: str,
                                budget_tokens: int) -> tuple[str, ThreadContext]:
    """The user message for this turn: what others wrote since the last look, then the question."""
    snapshot = await source.read()
    context = thread_context(snapshot.messages, since_ts=snapshot.since_ts, question_ts=question_ts,
                             bot_user_id=snapshot.bot_user_id, bot_id=snapshot.bot_id, names=snapshot.names,
                             budget_tokens=budget_tokens)
    await source.looked(question_ts, [m.ts for m in context.messages])
    return with_question(context, question, asker=snapshot.names.get(asker_id) or asker_id), context


def new_messages(messages: Iterable[ThreadMessage], *, since_ts: str | None, question_ts: str | None,
                 bot_user_id: str, bot_id: str | None = None) -> list[ThreadMessage]:
    """Messages after `since_ts`, oldest first, each ts once, without the question and the bot's own."""
    floor = _ts(since_ts) if since_ts else None
    seen: dict[str, ThreadMessage] = {}
    for message in messages:
        if message.ts == question_ts or message.ts in seen:
            continue
        if floor is not None and _ts(message.ts) <= floor:
            continue
        if message.user_id == bot_user_id or (bot_id is not None and message.bot_id == bot_id):
            continue
        if not message.text.strip() and not message.file_names:
            continue
        seen[message.ts] = message
    return sorted(seen.values(), key=lambda m: _ts(m.ts))


def thread_context(messages: Iterable[ThreadMessage], *, since_ts: str | None, question_ts: str | None,
                   bot_user_id: str, bot_id: str | None = None, names: Mapping[str, str],
                   budget_tokens: int, max_message_chars: int = MAX_MESSAGE_CHARS,
                   count: Callable[[str], int] = count_text_tokens) -> ThreadContext:
    """The rendered context for one turn: newest messages kept first until `budget_tokens` is used up."""
    fresh = new_messages(messages, since_ts=since_ts, question_ts=question_ts, bot_user_id=bot_user_id,
                         bot_id=bot_id)
    if not fresh or budget_tokens <= 0:
        return ThreadContext((), "", 0, len(fresh), 0)
    # Reserve room for the header and a possible "left out" line, then walk back from the newest: the
    # cost follows what is kept, not the length of the thread. Each message's text was counted once when
    # it was recorded (`tokens`); only its author prefix and file names are counted here, and the final
    # text once (so `tokens` is exact, and any estimate that fell short is corrected by dropping the oldest).
    room = budget_tokens - count(HEADER) - count(OMITTED.format(n=len(fresh))) - 2
    prefixes: dict[str, int] = {}
    kept: list[tuple[ThreadMessage, str, bool]] = []
    for message in reversed(fresh):
        line, was_cut = render_message(message, names, max_message_chars=max_message_chars)
        cost = _estimate(message, line, was_cut, names, prefixes, count) + 1  # the newline
        if cost > room:
            break
        room -= cost
        kept.append((message, line, was_cut))
    kept.reverse()
    while kept:
        omitted = len(fresh) - len(kept)
        lines = [HEADER]
        if omitted:
            lines.append(OMITTED.format(n=omitted))
        lines.extend(line for _, line, _ in kept)
        text = "\n".join(lines)
        tokens = count(text)
        if tokens <= budget_tokens:
            return ThreadContext(tuple(m for m, _, _ in kept), text, tokens, omitted, sum(c for _, _, c in kept))
        kept = kept[max(1, len(kept) // 20):]  # rare: the estimate was short; drop the oldest and recount
    return ThreadContext((), "", 0, len(fresh), 0)


def _estimate(message: ThreadMessage, line: str, was_cut: bool, names: Mapping[str, str],
              prefixes: dict[str, int], count: Callable[[str], int]) -> int:
    """Tokens of one rendered line: the recorded count of its text plus its author prefix and file names."""
    if message.tokens is None or was_cut or message.file_names or "\n" in message.text.strip():
        return count(line)  # not counted when recorded, or rendered differently from the recorded text
    author = display_name(message, names)
    if author not in prefixes:
        prefixes[author] = count(f"[{author}]: ")
    return prefixes[author] + message.tokens


def render_message(message: ThreadMessage, names: Mapping[str, str], *,
                   max_message_chars: int = MAX_MESSAGE_CHARS) -> tuple[str, bool]:
    """`[name]: text (files: …)` with mentions resolved and continuation lines indented; and whether it was cut."""
    text = _MENTION.sub(lambda m: "@" + names.get(m.group(1), m.group(1)), message.text.strip())
    cut = len(text) > max_message_chars
    if cut:
        text = text[:max_message_chars] + CUT_MARKER.format(n=len(text) - max_message_chars)
    if message.file_names:
        shared = "shared files, not opened: " + ", ".join(message.file_names)
        text = f"{text} ({shared})" if text else f"({shared})"
    author = display_name(message, names)
    body = "\n  ".join(text.splitlines()) if "\n" in text else text
    return f"[{author}]: {body}", cut


def display_name(message: ThreadMessage, names: Mapping[str, str]) -> str:
    name = names.get(message.user_id) if message.user_id else None
    if name:
        return _one_line(name)
    if message.bot_id and not message.user_id:
        return f"app {message.bot_id}"
    return message.user_id or "someone"


def with_question(context: ThreadContext, question: str, *, asker: str) -> str:
    """The user message the model sees: the thread context (if any), then the question, never dropped."""
    if not context.text:
        return question
    return f"<thread_context>\n{context.text}\n</thread_context>\n\n{_one_line(asker)} asks: {question}"


def user_message_tokens(text: str, context: ThreadContext, *, model: str | None = None) -> int:
    """count_message_tokens of the user message `text` (built by with_question) without counting the
    context a second time: its tokens are known."""
    if not context.text:
        return count_message_tokens(Message("user", [TextBlock(text)]), model=model)
    rest = text.replace(context.text, "", 1)
    return count_message_tokens(Message("user", [TextBlock(rest)]), model=model) + context.tokens


def authors(messages: Sequence[ThreadMessage]) -> set[str]:
    """The user ids whose display names a rendering needs (authors and mentioned people)."""
    ids = {m.user_id for m in messages if m.user_id}
    for m in messages:
        ids.update(_MENTION.findall(m.text))
    return ids


def _one_line(name: str) -> str:
    return " ".join(name.split()).replace("[", "(").replace("]", ")") or "someone"


def _ts(ts: str) -> Decimal:
    return Decimal(ts)
