"""NativeReply: one answer streamed with Slack's streaming API (THREADBOT_STREAMING=native).

The model's Markdown goes out with chat.startStream / appendStream / stopStream (standard Markdown in
`markdown_text`, not mrkdwn). Anything the streaming API refuses hands the answer to a SlackReply
(chat.update mode) without losing text: before the first append it posts the usual placeholder;
mid-stream it stops the stream and edits that same message.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Sequence

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import Failure
from bot.messages import ToolUseBlock
from bot.slack.edit_budget import EditBudget
from bot.slack.mrkdwn import failure_text
from bot.slack.reply import NO_ANSWER, SlackReply, StatusSink
from bot.slack.web_api import FAILURES, call, reason
from tools.registry import Registry

log = logging.getLogger(__name__)

MARKDOWN_TEXT_LIMIT = 12_000  # per startStream/appendStream call


class NativeReply:
    """Streams one answer with Slack's streaming API, about one append per `interval_s`.

    Appends share `stream_budget` (chat.appendStream's workspace rate); `budget` is the chat.update
    budget the fallback SlackReply uses. Same interface as SlackReply.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        budget: EditBudget,
        *,
        stream_budget: EditBudget,
        channel: str,
        thread_ts: str,
        recipient_user_id: str | None,
        recipient_team_id: str | None,
        interval_s: float = 1.0,
        status: StatusSink | None = None,
        final_blocks: list[dict[str, Any]] | None = None,
        registry: Registry | None = None,
    ):
        self.client = client
        self.registry = registry if registry is not None else Registry()
        self.budget = budget
        self.stream_budget = stream_budget
        self.channel = channel
        self.thread_ts = thread_ts
        self.recipient_user_id = recipient_user_id
        self.recipient_team_id = recipient_team_id
        self.interval_s = interval_s
        self.status = status
        self.final_blocks = final_blocks
        self.ts: str | None = None
        self.appends = 0
        self.fallback: SlackReply | None = None
        self._markdown = ""
        self._sent = 0  # how much of the answer's Markdown the stream already has
        self._closed = False
        self._last_push = 0.0
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def text(self) -> str:
        return self._markdown

    @property
    def first_ts(self) -> str | None:
        return self.fallback.first_ts if self.fallback else self.ts

    @property
    def last_ts(self) -> str | None:
        return self.fallback.last_ts if self.fallback else self.ts

    # --- what the agent calls ---------------------------------------------------------------

    async def start(self) -> None:
        if self.status is not None and await self.status.thinking():
            pass  # the panel says "is thinking…"; the stream opens with the first text
        else:
            self.status = None
            if not await self._open(""):
                return
        self._last_push = time.monotonic()
        self._flusher = asyncio.create_task(self._flush_loop())

    async def say(self, text: str) -> None:
        self._closed = True
        await SlackReply(self.client, self.budget, channel=self.channel, thread_ts=self.thread_ts).say(text)

    def append(self, text: str) -> None:
        if self.fallback is not None:
            self.fallback.append(text)
        elif text:
            self._markdown += text
            if self.status is not None and self.ts is not None:
                self.status.show(None)

    def tools_started(self, tool_uses: Sequence[ToolUseBlock]) -> None:
        if self.fallback is not None:
            self.fallback.tools_started(tool_uses)
        elif self.status is not None and tool_uses:
            self.status.show(self.registry.assistant_status(tool_uses[0].name))
        # Outside the assistant panel a stream cannot show a passing line (it only grows): skip it.

    def separate(self) -> None:
        if self.fallback is not None:
            self.fallback.separate()
        elif self._markdown and not self._markdown.endswith("\n\n"):
            # Only add: what is already streamed cannot be taken back.
            self._markdown += "\n" if self._markdown.endswith("\n") else "\n\n"

    async def finish(self, *, notice: str | None = None, blocks_for_last: list[dict[str, Any]] | None = None) -> None:
        extra = blocks_for_last if blocks_for_last is not None else self.final_blocks
        body = self._markdown if self._markdown.strip() else self._markdown + NO_ANSWER
        final = f"{body}\n\n_{notice}_" if notice else body
        await self._end(final, extra or None,
                        lambda reply: reply.finish(notice=notice, blocks_for_last=blocks_for_last))

    async def fail(self, failure: Failure) -> None:
        message = failure_text(failure)
        final = f"{self._markdown}\n\n{message}" if self._markdown.strip() else self._markdown + message
        await self._end(final, None, lambda reply: reply.fail(failure))

    # --- internals --------------------------------------------------------------------------

    async def _end(self, final: str, blocks: list[dict[str, Any]] | None, finish_fallback: Any) -> None:
        self._closed = True
        if self._flusher is not None:
            async with self._lock:  # let an append in flight complete (see SlackReply._close)
                self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self.fallback is None:
            async with self._lock:
                await self._push(final, final=True)
                if self.fallback is None and await self._stop(blocks):
                    if self.status is not None:
                        await self.status.clear()
                    return
        assert self.fallback is not None
        await finish_fallback(self.fallback)

    async def _flush_loop(self) -> None:
        while not self._closed and self.fallback is None:
            wait = self._last_push + self.interval_s - time.monotonic()
            await asyncio.sleep(max(wait, 0.05))
            pending = self._markdown[self._sent:]
            if self._closed or not pending.strip() or not self.stream_budget.try_acquire():
                continue
            async with self._lock:
                self._last_push = time.monotonic()
                await self._push(self._markdown, final=False, prepaid=True)

    async def _push(self, text: str, *, final: bool, prepaid: bool = False) -> None:
        """Send text[self._sent:] in calls of at most MARKDOWN_TEXT_LIMIT; falls back on refusal."""
        for piece in _pieces(text[self._sent:], MARKDOWN_TEXT_LIMIT):
            if not prepaid:
                if final:
                    await self.stream_budget.acquire()
                elif not self.stream_budget.try_acquire():
                    return
            prepaid = False
            if self.ts is None:
                if not await self._open(piece):
                    return
            elif not await self._append(piece, patient=final):
                return
            self._sent += len(piece)

    async def _open(self, markdown_text: str) -> bool:
        try:
            # Tier 2 and new: a refusal (also a 429) answers this one the proven way instead.
            response = await call(
                self.client, "chat.startStream", patient=False, channel=self.channel, thread_ts=self.thread_ts,
                recipient_user_id=self.recipient_user_id, recipient_team_id=self.recipient_team_id,
                **({"markdown_text": markdown_text} if markdown_text else {}))
        except FAILURES as exc:
            log.warning("chat.startStream failed (%s): answering with chat.update", reason(exc))
            await self._fall_back()
            return False
        self.ts = response["ts"]
        if self.status is not None and markdown_text:
            self.status.show(None)
        return True

    async def _append(self, piece: str, *, patient: bool) -> bool:
        try:
            await call(self.client, "chat.appendStream", patient=patient, budget=self.stream_budget,
                       channel=self.channel, ts=self.ts, markdown_text=piece)
        except FAILURES as exc:
            if isinstance(exc, SlackApiError) and exc.response.status_code == 429:
                return False  # an intermediate append: the text goes out with a later one
            log.warning("chat.appendStream failed (%s): finishing with chat.update", reason(exc))
            await self._fall_back()
            return False
        self.appends += 1
        return True

    async def _stop(self, blocks: list[dict[str, Any]] | None) -> bool:
        while True:
            try:
                await call(self.client, "chat.stopStream", channel=self.channel, ts=self.ts,
                           **({"blocks": blocks} if blocks else {}))
                return True
            except FAILURES as exc:
                error = reason(exc)
                if blocks and error in ("invalid_blocks", "msg_blocks_too_long"):
                    log.warning("stopStream refused the blocks (%s); stopping without them", error)
                    blocks = None
                    continue
                log.warning("chat.stopStream failed (%s): finishing with chat.update", error)
                await self._fall_back()
                return False

    async def _fall_back(self) -> None:
        reply = SlackReply(self.client, self.budget, channel=self.channel, thread_ts=self.thread_ts,
                           interval_s=self.interval_s, status=self.status, final_blocks=self.final_blocks,
                           registry=self.registry)
        if self.ts is None:
            await reply.start()
            reply.append(self._markdown)
        else:
            try:  # leave no message in streaming state; it may already be dead
                await call(self.client, "chat.stopStream", patient=False, channel=self.channel, ts=self.ts)
            except FAILURES as exc:
                log.info("chat.stopStream before falling back: %s", reason(exc))
            reply.resume(self.ts, self._markdown)
        self.fallback = reply


def _pieces(text: str, limit: int) -> list[str]:
    """Cut text into pieces of at most `limit` UTF-16 code units (how Slack counts characters)."""
    pieces, start, units = [], 0, 0
    for index, char in enumerate(text):
        width = 2 if ord(char) > 0xFFFF else 1
        if units + width > limit:
            pieces.append(text[start:index])
            start, units = index, 0
        units += width
    if start < len(text):
        pieces.append(text[start:])
    return pieces
