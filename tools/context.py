"""ToolContext: what a tool may use, handed in explicitly (no globals)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

if TYPE_CHECKING:
    import aiohttp

    from bot.config import Settings
    from bot.messages import MessageDone, ModelRequest
    from bot.store import Store


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
    # The model this turn talks to (a channel may have its own); nested calls use it too.
    model: str | None = None
