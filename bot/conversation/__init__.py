"""One user message → one answer: limits, history from SQLite, the agent turn, persistence, failures."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from bot.conversation.agent import Agent, ReplySink
from bot.conversation.context_window import cache_point, trim_history
from bot.config import Settings
from bot.errors import Failure, Interrupted, LimitExceeded, failure_for
from bot.conversation.history import repair
from bot.accounting.limits import check_and_reserve
from bot.llm.base import Provider
from bot.messages import Message, TextBlock
from bot.accounting.meter import Attribution, Meter
from bot.store import Store, StoredMessage
from bot.llm.tokens import count_message_tokens, count_text_tokens, count_tools_tokens
from tools.context import ToolContext
from tools.registry import Registry

log = logging.getLogger(__name__)

EMPTY_MESSAGE_HELP = (
    "Hi! Ask me anything in this thread — I remember the conversation. I can check the weather, "
    "search documents shared with me, and pull structured records out of text."
)
GENERIC_FAILURE = "Sorry, something went wrong on my side while answering."


@dataclass(frozen=True)
class Turn:
    """One user message the bot must answer, as the listeners hand it over."""

    team_id: str
    channel_id: str
    thread_ts: str
    user_id: str
    text: str
    ts: str
    surface: str  # "mention" | "dm" | "assistant" | "console"
    viewing_channel_id: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)


class Reply(ReplySink, Protocol):
    async def start(self) -> None: ...
    async def finish(self, *, notice: str | None = None) -> None: ...
    async def fail(self, failure: Failure) -> None: ...
    async def say(self, text: str) -> None: ...


class Conversations:
    """Answers turns. Different threads run concurrently; turns within one thread run in order."""

    def __init__(self, *, settings: Settings, store: Store, provider: Provider, model: str,
                 registry: Registry, http: aiohttp.ClientSession):
        self.settings = settings
        self.store = store
        self.provider = provider
        self.model = model
        self.registry = registry
        self.http = http
        self.agent = Agent(
            registry, max_rounds=settings.max_tool_rounds, tool_timeout_s=settings.tool_timeout_s,
            max_tokens=settings.max_tokens, system_prompt=settings.system_prompt, model=model,
        )
        self._locks: dict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._waiting: dict[tuple[str, str], int] = defaultdict(int)
        self._active: set[asyncio.Task[None]] = set()
        self._fixed_tokens = count_text_tokens(settings.system_prompt) + count_tools_tokens(registry.specs())

    async def handle(self, turn: Turn, reply: Reply) -> None:
        text = turn.text.strip()
        if not text:
            await reply.say(EMPTY_MESSAGE_HELP)
            return
        try:
            # On the loop thread like every other store call: one short transaction, and no contention
            # between worker threads and the loop for the store's lock.
            check_and_reserve(self.store, user_id=turn.user_id, team_id=turn.team_id,
                              settings=self.settings, now=datetime.now(timezone.utc))
        except LimitExceeded as exc:
            await reply.say(exc.user_message())
            return
        await reply.start()
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        key = (turn.channel_id, turn.thread_ts)
        self._waiting[key] += 1
        try:
            async with self._locks[key]:
                await self._answer(turn, text, reply)
        finally:
            self._active.discard(task)  # type: ignore[arg-type]
            self._waiting[key] -= 1
            if not self._waiting[key]:  # forget idle threads so the dicts don't grow forever
                del self._waiting[key]
                self._locks.pop(key, None)

    async def _answer(self, turn: Turn, text: str, reply: Reply) -> None:
        conversation_id = self.store.conversation_id(
            team_id=turn.team_id, channel_id=turn.channel_id, thread_ts=turn.thread_ts, user_id=turn.user_id)
        stored = self.store.history(conversation_id)
        user_message = Message("user", [TextBlock(text)])
        user_tokens = count_message_tokens(user_message)
        self.store.append_messages(conversation_id, [user_message], token_counts=[user_tokens],
                                   user_id=turn.user_id, slack_ts=turn.ts)
        originals = [m.message for m in stored] + [user_message]
        history = repair(originals)
        if history == originals:  # the usual case: nothing repaired, so the stored counts apply as they are
            history = originals
        counts = {id(m.message): m.token_count for m in stored}
        counts[id(user_message)] = user_tokens

        def persist(messages: list[Message]) -> None:
            tokens = [count_message_tokens(m) for m in messages]
            for message, count in zip(messages, tokens):
                counts[id(message)] = count
            self.store.append_messages(conversation_id, messages, token_counts=tokens)

        def prepare(messages: list[Message]) -> tuple[list[Message], int | None]:
            rows = [StoredMessage(id=i, message=m, token_count=counts.get(id(m))) for i, m in enumerate(messages)]
            trimmed = trim_history(rows, model=self.model, max_tokens=self.settings.max_tokens,
                                   system_tokens=self._fixed_tokens, tools_tokens=0)
            meter.expect_input_tokens(trimmed.messages, self._fixed_tokens + trimmed.estimated_tokens)
            return trimmed.messages, cache_point(trimmed.messages)

        meter = Meter(self.store, self.provider, Attribution(
            team_id=turn.team_id, user_id=turn.user_id, channel_id=turn.channel_id,
            thread_ts=turn.thread_ts, surface=turn.surface))
        ctx = ToolContext(
            user_id=turn.user_id, team_id=turn.team_id, channel_id=turn.channel_id, thread_ts=turn.thread_ts,
            store=self.store, http=self.http, settings=self.settings, call_model=meter.complete,
            viewing_channel_id=turn.viewing_channel_id,
        )
        try:
            outcome = await self.agent.run(history, ctx=ctx, reply=reply, stream=meter.stream,
                                           persist=persist, prepare=prepare)
        except asyncio.CancelledError:
            # Shutting down mid-answer: tell the user and close the turn rather than leave "Thinking…".
            await self._fail(conversation_id, reply, Interrupted())
            raise
        except Exception as exc:
            await self._fail(conversation_id, reply, exc)
            return
        await reply.finish(notice=outcome.notice)

    async def drain(self, timeout_s: float) -> None:
        """On shutdown: let answers in flight finish for up to `timeout_s`, then interrupt the rest."""
        if not self._active:
            return
        log.info("waiting up to %ss for %d answers in flight", timeout_s, len(self._active))
        _, pending = await asyncio.wait(set(self._active), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=10)

    async def _fail(self, conversation_id: int, reply: Reply, exc: Exception) -> None:
        failure = failure_for(exc, log=log, doing="turn", generic=GENERIC_FAILURE)
        # Close the turn so the stored history stays a valid request (invariant 3).
        if self.store.last_role(conversation_id) == "user":
            self.store.append_messages(conversation_id,
                                       [Message("assistant", [TextBlock(f"(No answer: {failure.message})")])])
        await reply.fail(failure)
