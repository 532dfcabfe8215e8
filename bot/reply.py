"""SlackReply: one streamed answer in a thread — placeholder, throttled edits, overflow, final edit."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.edit_budget import EditBudget
from bot.mrkdwn import to_mrkdwn
from bot.split import split_message

log = logging.getLogger(__name__)

PLACEHOLDER = "_Thinking…_"
# Slack truncates `text` at 40k characters and starts answering msg_too_long well before that with
# rich formatting; parts of this size render reliably and read comfortably.
PART_LIMIT = 3500
MIN_PART_LIMIT = 1000
MAX_SLACK_RETRIES = 8
MAX_RETRY_WAIT_S = 30.0


@dataclass
class _Part:
    ts: str
    text: str


class SlackReply:
    """Streams one answer into Slack by editing messages in place, about once per `interval_s`.

    Text arrives as Markdown deltas; every edit renders the whole answer to mrkdwn and splits it into
    parts, so earlier parts are final once a later part exists. Intermediate edits are skipped (and
    coalesced into the next one) when the shared EditBudget has no spare token; the final edit always
    waits its turn, so the complete text is never lost.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        budget: EditBudget,
        *,
        channel: str,
        thread_ts: str,
        interval_s: float = 1.0,
        part_limit: int = PART_LIMIT,
        placeholder: str = PLACEHOLDER,
    ):
        self.client = client
        self.budget = budget
        self.channel = channel
        self.thread_ts = thread_ts
        self.interval_s = interval_s
        self.part_limit = part_limit
        self.placeholder = placeholder
        self.parts: list[_Part] = []
        self.edits = 0
        self._markdown = ""
        self._status: str | None = None
        self._dirty = False
        self._last_edit = 0.0
        self._closed = False
        self._flusher: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()

    # --- what the agent calls ---------------------------------------------------------------

    @property
    def first_ts(self) -> str | None:
        return self.parts[0].ts if self.parts else None

    @property
    def text(self) -> str:
        return self._markdown

    async def start(self) -> None:
        """Post the placeholder at once, then start the time-based flusher."""
        response = await self._call("chat_postMessage", patient=True, channel=self.channel,
                                    thread_ts=self.thread_ts, text=self.placeholder)
        self.parts.append(_Part(ts=response["ts"], text=self.placeholder))
        self._last_edit = time.monotonic()
        self._flusher = asyncio.create_task(self._flush_loop())

    async def say(self, text: str) -> None:
        """A one-off message in the thread (help, limits), not streamed."""
        self._closed = True
        response = await self._call("chat_postMessage", patient=True, channel=self.channel,
                                    thread_ts=self.thread_ts, text=to_mrkdwn(text))
        self.parts.append(_Part(ts=response["ts"], text=text))

    def append(self, text: str) -> None:
        if text:
            self._markdown += text
            self._status = None
            self._dirty = True

    def set_status(self, line: str | None) -> None:
        """A short progress line (e.g. a tool call) shown after the text until more text arrives."""
        self._status = line
        self._dirty = True

    def separate(self) -> None:
        """Start a new paragraph before the next round's text (after a tool round)."""
        if self._markdown and not self._markdown.endswith("\n\n"):
            self._markdown = self._markdown.rstrip("\n") + "\n\n"

    async def finish(self, *, notice: str | None = None, blocks_for_last: list[dict[str, Any]] | None = None) -> None:
        """The final edit: the complete answer plus an optional notice (cut-off, limits)."""
        text = self._markdown.strip() or "I don't have an answer to that."
        if notice:
            text = f"{text}\n\n_{notice}_"
        await self._close(to_mrkdwn(text), blocks_for_last=blocks_for_last)

    async def fail(self, message: str) -> None:
        """Replace the placeholder (or append to a partial answer) with a short failure message."""
        partial = self._markdown.strip()
        rendered = f"{to_mrkdwn(partial)}\n\n{message}" if partial else message
        await self._close(rendered)

    # --- internals --------------------------------------------------------------------------

    async def _close(self, rendered: str, *, blocks_for_last: list[dict[str, Any]] | None = None) -> None:
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
        await self._send(rendered, final=True, blocks_for_last=blocks_for_last)

    def _render_intermediate(self) -> str:
        text = to_mrkdwn(self._markdown) if self._markdown else ""
        if self._status:
            status = "\n".join(f"_{line}_" for line in self._status.splitlines() if line.strip())
            text = f"{text}\n\n{status}" if text else status
        return text or self.placeholder

    async def _flush_loop(self) -> None:
        while not self._closed:
            wait = self._last_edit + self.interval_s - time.monotonic()
            await asyncio.sleep(max(wait, 0.05))
            if not self._dirty or self._closed:
                continue
            if not self.budget.try_acquire():
                continue  # coalesce: the text keeps growing and goes out with a later edit
            self._dirty = False
            try:
                await self._send(self._render_intermediate(), final=False, prepaid=True)
            except SlackApiError as exc:
                log.warning("intermediate edit failed: %s", exc.response.get("error"))
                self._dirty = True

    async def _send(self, rendered: str, *, final: bool, prepaid: bool = False,
                    blocks_for_last: list[dict[str, Any]] | None = None) -> None:
        async with self._send_lock:
            self._last_edit = time.monotonic()
            while True:
                chunks = split_message(rendered, limit=self.part_limit)
                try:
                    await self._apply(chunks, final=final, prepaid=prepaid, blocks_for_last=blocks_for_last)
                    return
                except SlackApiError as exc:
                    if exc.response.get("error") in ("msg_too_long", "msg_blocks_too_long") and self.part_limit > MIN_PART_LIMIT:
                        self.part_limit = max(MIN_PART_LIMIT, self.part_limit // 2)
                        prepaid = False
                        continue
                    raise

    async def _apply(self, chunks: list[str], *, final: bool, prepaid: bool,
                     blocks_for_last: list[dict[str, Any]] | None) -> None:
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            blocks = blocks_for_last if (last and final and blocks_for_last) else None
            if index < len(self.parts):
                part = self.parts[index]
                if part.text == chunk and blocks is None:
                    continue
                if not prepaid:
                    if final:
                        await self.budget.acquire()
                    elif not self.budget.try_acquire():
                        self._dirty = True
                        return
                prepaid = False
                await self._update(part, chunk, blocks, patient=final)
            else:
                response = await self._call("chat_postMessage", patient=final, channel=self.channel,
                                            thread_ts=self.thread_ts, text=chunk,
                                            **({"blocks": blocks} if blocks else {}))
                self.parts.append(_Part(ts=response["ts"], text=chunk))
        # The answer can shrink only when a status line goes away: remove parts no longer needed.
        while len(self.parts) > len(chunks):
            part = self.parts.pop()
            await self._call("chat_delete", patient=final, channel=self.channel, ts=part.ts)

    async def _update(self, part: _Part, text: str, blocks: list[dict[str, Any]] | None, *, patient: bool) -> None:
        try:
            await self._call("chat_update", patient=patient, channel=self.channel, ts=part.ts, text=text,
                             **({"blocks": blocks} if blocks else {}))
            self.edits += 1
        except SlackApiError as exc:
            if exc.response.get("error") not in ("message_not_found", "cant_update_message"):
                raise
            # Someone deleted our message: carry on in a new one rather than losing the answer.
            response = await self._call("chat_postMessage", patient=patient, channel=self.channel,
                                        thread_ts=self.thread_ts, text=text, **({"blocks": blocks} if blocks else {}))
            part.ts = response["ts"]
        part.text = text

    async def _call(self, method: str, *, patient: bool, **kwargs: Any) -> Any:
        """Call the Web API. A 429 pauses the shared budget; a patient call (the final text) waits it
        out and tries again (bounded), an impatient one (an intermediate edit) gives up at once."""
        for attempt in range(MAX_SLACK_RETRIES):
            try:
                return await getattr(self.client, method)(**kwargs)
            except SlackApiError as exc:
                if exc.response.status_code != 429:
                    raise
                retry_after = _retry_after(exc)
                if method == "chat_update":
                    self.budget.pause(retry_after)
                if not patient or attempt == MAX_SLACK_RETRIES - 1:
                    raise
                await asyncio.sleep(min(retry_after, MAX_RETRY_WAIT_S))
        raise AssertionError("unreachable")


def _retry_after(exc: SlackApiError) -> float:
    try:
        return float(exc.response.headers.get("Retry-After", exc.response.headers.get("retry-after", 1)))
    except (TypeError, ValueError):
        return 1.0
