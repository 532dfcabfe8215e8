"""Slack-native answer surfaces: the assistant panel's status line, and chat.startStream streaming.

THREADBOT_STREAMING=native streams the model's Markdown with chat.startStream / appendStream /
stopStream (standard Markdown in `markdown_text`, not mrkdwn). Anything the streaming API refuses
hands the answer to a SlackReply (chat.update mode) without losing text: before the first append
it posts the usual placeholder; mid-stream it stops the stream and edits that same message.
"""
from __future__ import annotations

import asyncio
import logging
import re
import string
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.edit_budget import EditBudget
from bot.slack.reply import NO_ANSWER, SlackReply, StatusSink, retry_after_s
from tools.registry import Registry

log = logging.getLogger(__name__)

THINKING = "is thinking…"
WORKING = "is working on it…"
# What the assistant panel says while a tool runs ("threadbot is searching your documents…").
TOOL_STATUSES = {
    "search_docs": "is searching your documents…",
    "get_weather": "is checking the forecast…",
    "extract_record": "is extracting the details…",
}
MARKDOWN_TEXT_LIMIT = 12_000  # per startStream/appendStream call
FINAL_DEADLINE_S = 600.0


# --- the assistant panel's status line ------------------------------------------------------


class ToolLines:
    """Which tool a progress line (as the agent passes it to set_status) is about.

    The agent hands the reply `registry.progress_line(name, input)`, not the tool name; each tool's
    progress template (and the registry's fallback line) is turned back into a pattern here.
    """

    def __init__(self, registry: Registry | None):
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for name in (registry.names if registry else []):
            found = registry.get(name) if registry else None
            lines = [f"Using {name.replace('_', ' ')}…"]
            if found is not None and found.progress:
                lines.append(found.progress)
            for template in lines:
                regex = "".join(re.escape(literal) + (".+?" if field is not None else "")
                                for literal, field, _, _ in string.Formatter().parse(template))
                self._patterns.append((name, re.compile(regex, re.DOTALL)))

    def tool_for(self, line: str) -> str | None:
        for name, pattern in self._patterns:
            if pattern.fullmatch(line.strip()):
                return name
        return None

    def status_for(self, lines: str) -> str:
        for line in lines.splitlines():
            name = self.tool_for(line) if line.strip() else None
            if name:
                return TOOL_STATUSES.get(name, f"is using {name.replace('_', ' ')}…")
        return WORKING


class AssistantStatus(StatusSink):
    """assistant.threads.setStatus for one assistant thread: "is thinking…", tool progress, cleared.

    The agent reports progress synchronously; the calls go out from a background task in order, and
    only when the status actually changes. A failed call is logged, never fatal to the answer.
    """

    def __init__(self, client: AsyncWebClient, *, channel_id: str, thread_ts: str, tools: ToolLines):
        self.client = client
        self.channel_id = channel_id
        self.thread_ts = thread_ts
        self.tools = tools
        self._wanted = ""
        self._shown: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def thinking(self) -> bool:
        self._wanted = THINKING
        return await self._send(THINKING)

    def show(self, line: str | None) -> None:
        self._wanted = self.tools.status_for(line) if line else ""
        if self._wanted != self._shown and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._catch_up())

    async def clear(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._wanted = ""
        if self._shown != "":
            await self._send("")

    async def _catch_up(self) -> None:
        while self._wanted != self._shown:
            if not await self._send(self._wanted):
                return

    async def _send(self, status: str) -> bool:
        try:
            await self.client.assistant_threads_setStatus(channel_id=self.channel_id, thread_ts=self.thread_ts,
                                                          status=status)
        except SlackApiError as exc:
            log.warning("assistant.threads.setStatus failed: %s", exc.response.get("error"))
            self._shown = self._wanted  # don't retry in a loop; the next change tries again
            return False
        self._shown = status
        return True


# --- native streaming -------------------------------------------------------------------------


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
    ):
        self.client = client
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

    def set_status(self, line: str | None) -> None:
        if self.fallback is not None:
            self.fallback.set_status(line)
        elif self.status is not None and line:
            self.status.show(line)
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

    async def fail(self, message: str) -> None:
        final = f"{self._markdown}\n\n{message}" if self._markdown.strip() else self._markdown + message
        await self._end(final, None, lambda reply: reply.fail(message))

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
            response = await self.client.chat_startStream(
                channel=self.channel, thread_ts=self.thread_ts, recipient_user_id=self.recipient_user_id,
                recipient_team_id=self.recipient_team_id, **({"markdown_text": markdown_text} if markdown_text else {}))
        except SlackApiError as exc:
            # Tier 2 and new: a refusal (also a 429) answers this one the proven way instead.
            log.warning("chat.startStream failed (%s): answering with chat.update", exc.response.get("error"))
            await self._fall_back()
            return False
        self.ts = response["ts"]
        if self.status is not None and markdown_text:
            self.status.show(None)
        return True

    async def _append(self, piece: str, *, patient: bool) -> bool:
        deadline = time.monotonic() + FINAL_DEADLINE_S
        while True:
            try:
                await self.client.chat_appendStream(channel=self.channel, ts=self.ts, markdown_text=piece)
                self.appends += 1
                return True
            except SlackApiError as exc:
                if exc.response.status_code == 429:
                    retry_after = retry_after_s(exc)
                    self.stream_budget.pause(retry_after)
                    if patient and time.monotonic() + retry_after < deadline:
                        await self.stream_budget.acquire()
                        continue
                    return False  # an intermediate append: the text goes out with a later one
                log.warning("chat.appendStream failed (%s): finishing with chat.update", exc.response.get("error"))
                await self._fall_back()
                return False

    async def _stop(self, blocks: list[dict[str, Any]] | None) -> bool:
        deadline = time.monotonic() + FINAL_DEADLINE_S
        while True:
            try:
                await self.client.chat_stopStream(channel=self.channel, ts=self.ts,
                                                  **({"blocks": blocks} if blocks else {}))
                return True
            except SlackApiError as exc:
                error = exc.response.get("error")
                if exc.response.status_code == 429 and time.monotonic() + retry_after_s(exc) < deadline:
                    await asyncio.sleep(retry_after_s(exc))
                    continue
                if blocks and error in ("invalid_blocks", "msg_blocks_too_long"):
                    log.warning("stopStream refused the blocks (%s); stopping without them", error)
                    blocks = None
                    continue
                log.warning("chat.stopStream failed (%s): finishing with chat.update", error)
                await self._fall_back()
                return False

    async def _fall_back(self) -> None:
        reply = SlackReply(self.client, self.budget, channel=self.channel, thread_ts=self.thread_ts,
                           interval_s=self.interval_s, status=self.status, final_blocks=self.final_blocks)
        if self.ts is None:
            await reply.start()
            reply.append(self._markdown)
        else:
            try:  # leave no message in streaming state; it may already be dead
                await self.client.chat_stopStream(channel=self.channel, ts=self.ts)
            except SlackApiError as exc:
                log.info("chat.stopStream before falling back: %s", exc.response.get("error"))
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
