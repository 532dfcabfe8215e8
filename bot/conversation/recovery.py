"""After a crash: what to do with each turn a dead process left open (answer it, show it, or close it).

The decision is the core's; a surface carries it out (bot/slack/recovery.py). A question asked within
THREADBOT_RESUME_WINDOW_S of which nothing was shown yet is answered now; an answer the history holds
complete (the process died during the final edit) is shown without a model call; anything else, also
an answer that was already streaming, is closed with the interrupted notice and its history closed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.errors import Interrupted
from bot.messages import Message, TextBlock
from bot.store import OpenTurn, Store

Action = Literal["resume", "show", "close"]


@dataclass(frozen=True)
class Plan:
    action: Action
    answer: str | None = None  # "show": the complete answer's Markdown, as the reply streamed it


async def plan(store: Store, turn: OpenTurn, *, now: float, resume_window_s: float) -> Plan:
    """What to do with one open answer turn."""
    if turn.question_id is not None and turn.conversation_id is not None:
        answer = stored_answer(await store.history(turn.conversation_id), turn.question_id)
        if answer is not None:
            return Plan("show", answer)
    if not turn.streaming and now - turn.accepted_at <= resume_window_s:
        return Plan("resume")
    return Plan("close")


def stored_answer(history: list, question_id: int) -> str | None:
    """The answer to the question `question_id` if the history holds it complete, else None.

    Complete means the newest message is the assistant's, with no tool call left open: the agent
    persists each round before the reply's final edit, so a death during that edit leaves this."""
    after = [m for m in history if m.id > question_id]
    if not after or after[-1].message.role != "assistant" or after[-1].message.tool_uses:
        return None
    texts = [b.text.strip() for m in after if m.message.role == "assistant"
             for b in m.message.content if isinstance(b, TextBlock) and b.text.strip()]
    return "\n\n".join(texts)


async def close_history(store: Store, conversation_id: int | None) -> None:
    """End an interrupted turn's history on an assistant message, so it stays a valid request."""
    if conversation_id is not None and await store.last_role(conversation_id) == "user":
        await store.append_messages(conversation_id,
                                    [Message("assistant", [TextBlock(f"(No answer: {Interrupted.__doc__})")])])
