"""ToolContext: what a tool may use, handed in explicitly (no globals)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable, Literal, Protocol

if TYPE_CHECKING:
    import aiohttp

    from bot.config import Settings
    from bot.messages import MessageDone, ModelRequest
    from bot.store import Store


@dataclass(frozen=True)
class ReadMessage:
    """One message as a tool sees it: who said it (display name), when (Slack ts), what."""

    ts: str
    author: str
    text: str
    reply_count: int = 0  # for a channel's top-level message: how many replies its thread has


@dataclass(frozen=True)
class ReadConversation:
    """Recent messages of one conversation, oldest first; `more` when the bound cut older ones off."""

    name: str  # how to refer to it: "this thread", "#general"
    messages: tuple[ReadMessage, ...]
    more: bool


class ConversationReader(Protocol):
    """Reads the conversation a turn is in, as its surface allows (Slack provides one per turn).

    Refusals (a channel the turn may not read, or whose content the answer's readers could not see)
    raise tools.registry.ToolError with the sentence the model should pass on."""

    async def recent(self, where: Literal["thread", "channel"], *, channel: str | None, hours: float,
                     limit: int) -> ReadConversation: ...


@dataclass
class ToolContext:
    user_id: str
    team_id: str
    channel_id: str
    thread_ts: str
    store: "Store"
    http: "aiohttp.ClientSession"
    settings: "Settings"
    # Makes one model call attributed to this turn's user (usage row written); used by nested calls
    # such as structured extraction.
    call_model: Callable[["ModelRequest"], Awaitable["MessageDone"]]
    # The Slack channel the user is looking at in the assistant panel, when known.
    viewing_channel_id: str | None = None
    # Reads the current conversation's recent messages; None on surfaces without one (the console).
    reader: ConversationReader | None = None
    # The model this turn talks to (a channel may have its own); nested calls use it too.
    model: str | None = None
