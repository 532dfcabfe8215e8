"""The ConversationReader a Slack turn hands its tools: this thread, or this (or the viewed) channel, bounded."""
from __future__ import annotations

import logging
import time
from typing import Any, Literal

from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation.thread_context import authors, display_name
from bot.slack import web_api
from bot.slack.conversation_access import ConversationAccess, Refused, read_failure
from bot.slack.thread_messages import thread_message
from bot.slack.thread_sync import ThreadSync
from tools.context import ReadConversation, ReadMessage
from tools.registry import ToolError

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4_000  # per message: one pasted log must not fill the tool result


class SlackConversationReader:
    """One per turn: where the answer goes (`channel_id`, `thread_ts`), who asks, what the panel shows."""

    def __init__(self, client: AsyncWebClient, access: ConversationAccess, sync: ThreadSync, *, channel_id: str,
                 thread_ts: str, user_id: str, viewing_channel_id: str | None = None) -> None:
        self.client, self.access, self.sync = client, access, sync
        self.channel_id, self.thread_ts, self.user_id = channel_id, thread_ts, user_id
        self.viewing_channel_id = viewing_channel_id

    @property
    def allowed(self) -> set[str]:
        """What this turn may read: its own conversation, and in the user's DM the channel viewed beside it."""
        allowed = {self.channel_id}
        if self.viewing_channel_id and self.channel_id.startswith("D"):
            allowed.add(self.viewing_channel_id)
        return allowed

    async def recent(self, where: Literal["thread", "channel"], *, channel: str | None, hours: float,
                     limit: int) -> ReadConversation:
        oldest = f"{time.time() - hours * 3600:.6f}"
        if where == "thread":
            if channel and channel != self.channel_id:
                raise ToolError("I can only read the thread we are in; for another channel use where=\"channel\".")
            source_id = self.channel_id
        else:
            source_id = channel or (self.viewing_channel_id if self.channel_id.startswith("D") else None) \
                or self.channel_id
        try:
            source = await self.access.check(self.client, source_id, destination_id=self.channel_id,
                                             allowed=self.allowed, user_id=self.user_id)
            if where == "thread":
                items, more = await self._replies(oldest, limit)
                name = "this thread"
            else:
                items, more = await self._history(source_id, oldest, limit)
                name = source.label
        except Refused as exc:
            raise ToolError(str(exc)) from None
        messages = [m for m in (thread_message(item) for item in items) if m is not None]
        names = await self.sync.names(self.client, authors(messages))
        replies = {str(item.get("ts")): int(item.get("reply_count") or 0) for item in items}
        return ReadConversation(name, tuple(
            ReadMessage(m.ts, display_name(m, names), _cut(m.text, m.file_names),
                        replies.get(m.ts, 0) if where == "channel" else 0) for m in messages), more)

    async def _replies(self, oldest: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
        # One page, newest `limit` replies kept (the parent always comes first: it says what the thread is).
        response = await self._read("conversations.replies", self.channel_id, ts=self.thread_ts, oldest=oldest,
                                    limit=1000)
        items = [m for m in response.get("messages") or [] if isinstance(m, dict)]
        parent = [m for m in items if m.get("ts") == self.thread_ts]
        rest = [m for m in items if m.get("ts") != self.thread_ts]
        more = bool(response.get("has_more")) or len(rest) > limit
        return parent + rest[-limit:], more

    async def _history(self, channel_id: str, oldest: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
        response = await self._read("conversations.history", channel_id, oldest=oldest, limit=limit)
        items = [m for m in response.get("messages") or [] if isinstance(m, dict)]
        items.reverse()  # Slack answers newest first
        return items, bool(response.get("has_more"))

    async def _read(self, method: str, channel_id: str, **params: Any) -> Any:
        try:
            return await web_api.call(self.client, method, patient=False, channel=channel_id, **params)
        except web_api.FAILURES as exc:
            log.warning("%s %s failed: %s", method, channel_id, web_api.reason(exc))
            raise Refused(read_failure(channel_id, exc)) from None


def _cut(text: str, file_names: tuple[str, ...]) -> str:
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + f" … [cut: {len(text) - MAX_TEXT_CHARS:,} more characters]"
    if file_names:
        text = (text + " " if text else "") + "(shared files: " + ", ".join(file_names) + ")"
    return text


class Reading:
    """What one process shares for reading Slack: the thread records (ThreadSync) and the access caches."""

    def __init__(self, sync: ThreadSync, access: ConversationAccess | None = None) -> None:
        self.sync = sync
        self.access = access or ConversationAccess()

    def reader(self, client: AsyncWebClient, *, channel_id: str, thread_ts: str, user_id: str,
               viewing_channel_id: str | None = None) -> SlackConversationReader:
        return SlackConversationReader(client, self.access, self.sync, channel_id=channel_id, thread_ts=thread_ts,
                                       user_id=user_id, viewing_channel_id=viewing_channel_id)
