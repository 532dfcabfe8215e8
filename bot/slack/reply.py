"""SlackReply: one streamed answer in a thread — placeholder, throttled edits, overflow, final edit."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol, Sequence

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import Failure
from bot.messages import ToolUseBlock
from bot.slack.edit_budget import EditBudget, InFlight
from bot.slack.mrkdwn import IncrementalRenderer, escape_mrkdwn, failure_text, to_mrkdwn
from bot.slack.split import split_message
from bot.slack.web_api import call
from tools.registry import Registry

log = logging.getLogger(__name__)

PLACEHOLDER = "_Thinking…_"
NO_ANSWER = "I don't have an answer to that."
# Slack truncates `text` at 40k characters and starts answering msg_too_long well before that with
# rich formatting; parts of this size render reliably and read comfortably.
PART_LIMIT = 3500
MIN_PART_LIMIT = 1000
SECTION_LIMIT = 3000  # a section block's text


class StatusSink(Protocol):
    """Where progress goes instead of the message text (the assistant panel's status line)."""

    async def thinking(self) -> bool: ...
    def show(self, status: str | None) -> None: ...
    async def clear(self) -> None: ...


# Told after every message the reply posts or edits: (that message's ts, the text it shows now, whether
# answer text is visible). The durable turn record keeps it, so a restart can find and close the reply.
Journal = Callable[[str, str, bool], Awaitable[None]]


@dataclass
class _Part:
    ts: str
    text: str
    has_blocks: bool = False


class SlackReply:
    """Streams one answer into Slack by editing messages in place, about once per `interval_s`.

    Text arrives as Markdown deltas and is rendered to mrkdwn incrementally (only the last block is
    re-parsed per edit), then split into parts; earlier parts are final once a later part exists.
    Intermediate edits are skipped (and coalesced into the next one) when the shared EditBudget has no
    token that the finals of the answers in flight will not need; the final edit always waits its turn, so the complete text is never lost.

    With `status` (an assistant thread) no placeholder is posted: the panel's status line says
    "is thinking…" and tool progress, and the first message appears with the first text.
    `final_blocks` (feedback buttons) go under the last part of a finished answer; since Slack then
    shows the blocks instead of `text`, that part's text is repeated as section blocks.
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
        status: StatusSink | None = None,
        final_blocks: list[dict[str, Any]] | None = None,
        registry: Registry | None = None,
        journal: Journal | None = None,
    ):
        self.client = client
        self.budget = budget
        self.channel = channel
        self.thread_ts = thread_ts
        self.interval_s = interval_s
        self.part_limit = part_limit
        self.registry = registry if registry is not None else Registry()  # the tools' declared statuses
        self.placeholder = placeholder
        self.status = status
        self.final_blocks = final_blocks
        self.journal = journal
        self.parts: list[_Part] = []
        self.edits = 0
        self._markdown = ""
        self._renderer = IncrementalRenderer()
        self._status: str | None = None
        self._dirty = False
        self._last_edit = 0.0
        self._closed = False
        self._flusher: asyncio.Task[None] | None = None
        # Counted by the budget from the moment the question is taken (so a burst of questions is
        # known before any of them streams) until the final edit asks for its token.
        self._in_flight: InFlight = budget.answer_started()
        self._send_lock = asyncio.Lock()

    # --- what the agent calls ---------------------------------------------------------------

    @property
    def first_ts(self) -> str | None:
        return self.parts[0].ts if self.parts else None

    @property
    def last_ts(self) -> str | None:
        return self.parts[-1].ts if self.parts else None

    @property
    def text(self) -> str:
        return self._markdown

    async def start(self) -> None:
        """Post the placeholder (or set the assistant status) at once, then start the flusher."""
        if self.parts:  # adopted a message a crashed process left (adopt): answer in it
            pass
        elif self.status is None or not await self.status.thinking():
            self.status = None  # no status line to show progress in: fall back to the placeholder
            response = await call(self.client, "chat.postMessage", channel=self.channel, thread_ts=self.thread_ts,
                                  text=self.placeholder)
            self.parts.append(_Part(ts=response["ts"], text=self.placeholder))
            await self._note()
        self._start_flusher()

    def adopt(self, ts: str, shown: str) -> None:
        """Answer in message `ts`, which shows `shown` (a placeholder a crashed process posted)."""
        self.parts = [_Part(ts=ts, text=shown)]

    def resume(self, ts: str, markdown: str) -> None:
        """Carry on an answer already partly shown in message `ts` (a native stream that failed)."""
        self.parts = [_Part(ts=ts, text="")]
        self._markdown = markdown
        self._dirty = bool(markdown)
        self._start_flusher()

    async def say(self, text: str) -> None:
        """A one-off message in the thread (help, limits), not streamed."""
        self._closed = True
        self._in_flight.finished(streamed=False)
        response = await call(self.client, "chat.postMessage", channel=self.channel, thread_ts=self.thread_ts,
                              text=to_mrkdwn(text))
        self.parts.append(_Part(ts=response["ts"], text=text))

    def append(self, text: str) -> None:
        if text:
            self._markdown += text
            # In the assistant panel "is thinking…" stays until the first message exists (Slack
            # clears it when the app posts); after that, new text ends a tool's status line.
            if self.status is None or self.parts:
                self._set_status(None)
            self._dirty = True

    def tools_started(self, tool_uses: Sequence[ToolUseBlock]) -> None:
        """Show what the tools do (the status each declares in the registry) until more text arrives:
        in the assistant panel's status line, or as a line after the text."""
        if not tool_uses:
            return
        if self.status is not None:
            self.status.show(self.registry.assistant_status(tool_uses[0].name))
        else:
            self._set_status("\n".join(self.registry.status_line(u.name, u.input) for u in tool_uses))

    def separate(self) -> None:
        """Start a new paragraph before the next round's text (after a tool round)."""
        if self._markdown and not self._markdown.endswith("\n\n"):
            self._markdown = self._markdown.rstrip("\n") + "\n\n"

    async def finish(self, *, notice: str | None = None, blocks_for_last: list[dict[str, Any]] | None = None) -> None:
        """The final edit: the complete answer plus an optional notice (cut-off, limits), and under
        the last part `blocks_for_last` (default: the reply's `final_blocks`)."""
        rendered = self._renderer.render(self._markdown).strip() or NO_ANSWER
        if notice:
            rendered = f"{rendered}\n\n_{escape_mrkdwn(notice)}_"
        extra = blocks_for_last if blocks_for_last is not None else self.final_blocks
        await self._close(rendered, extra_blocks=extra or None)

    async def fail(self, failure: Failure) -> None:
        """Replace the placeholder (or append to a partial answer) with a short failure message."""
        partial = self._renderer.render(self._markdown).strip()
        message = failure_text(failure)
        await self._close(f"{partial}\n\n{message}" if partial else message)

    # --- internals --------------------------------------------------------------------------

    def _set_status(self, line: str | None) -> None:
        if self.status is not None:
            self.status.show(line)  # the panel shows it; the message text stays the answer only
            return
        if line != self._status:
            self._status = line
            self._dirty = True

    def _start_flusher(self) -> None:
        self._last_edit = time.monotonic()
        self._flusher = asyncio.create_task(self._flush_loop())

    async def _close(self, rendered: str, *, extra_blocks: list[dict[str, Any]] | None = None) -> None:
        self._closed = True
        # The final now queues in acquire() with the other finals; how long this answer streamed is
        # what the forecast learns from (an answer shown whole, never streamed, teaches it nothing).
        self._in_flight.finished(streamed=self._flusher is not None)
        if self._flusher is not None:
            # Never cancel an edit in flight: Slack may have applied it (a posted part we would not
            # know about would show up twice). Holding the lock, the flusher is asleep or queued.
            async with self._send_lock:
                self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        try:
            try:
                await self._send(rendered, final=True, extra_blocks=extra_blocks)
            except SlackApiError as exc:
                if not extra_blocks or exc.response.get("error") not in ("invalid_blocks", "msg_blocks_too_long"):
                    raise
                # The answer matters more than its buttons.
                log.warning("final blocks refused (%s); sending the text alone", exc.response.get("error"))
                await self._send(rendered, final=True)
        finally:
            if self.status is not None:
                await self.status.clear()

    def _render_intermediate(self) -> str:
        text = self._renderer.render(self._markdown) if self._markdown else ""
        if self._status:
            status = "\n".join(f"_{escape_mrkdwn(line)}_" for line in self._status.splitlines() if line.strip())
            text = f"{text}\n\n{status}" if text else status
        if text or self.status is not None:
            return text  # in an assistant thread nothing is posted before the first text
        return self.placeholder

    async def _flush_loop(self) -> None:
        while not self._closed:
            wait = self._last_edit + self.interval_s - time.monotonic()
            await asyncio.sleep(max(wait, 0.05))
            if not self._dirty or self._closed:
                continue
            rendered = self._render_intermediate()
            if not rendered:
                continue
            self._dirty = False
            try:
                await self._send(rendered, final=False)
            except SlackApiError as exc:
                log.warning("intermediate edit failed: %s", exc.response.get("error"))
                self._dirty = True
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # the next edit carries the text
                log.warning("intermediate edit failed: %s", type(exc).__name__)
                self._dirty = True

    async def _send(self, rendered: str, *, final: bool, extra_blocks: list[dict[str, Any]] | None = None) -> None:
        async with self._send_lock:
            self._last_edit = time.monotonic()
            while True:
                chunks = split_message(rendered, limit=self.part_limit)
                if self.journal is not None and self._markdown.strip() and len(chunks) <= len(self.parts):
                    # Written ahead of the edit: a restart after a kill at any point closes the answer with
                    # at least the text Slack shows (never answers afresh over it).
                    await self.journal(self.parts[len(chunks) - 1].ts, chunks[-1], True)
                try:
                    await self._apply(chunks, final=final, extra_blocks=extra_blocks)
                    await self._note()
                    return
                except SlackApiError as exc:
                    if exc.response.get("error") in ("msg_too_long", "msg_blocks_too_long") and self.part_limit > MIN_PART_LIMIT:
                        self.part_limit = max(MIN_PART_LIMIT, self.part_limit // 2)
                        log.info("Slack said %s: parts of at most %d characters from now on",
                                 exc.response.get("error"), self.part_limit)
                        continue
                    raise

    async def _note(self) -> None:
        if self.journal is not None and self.parts:
            await self.journal(self.parts[-1].ts, self.parts[-1].text, bool(self._markdown.strip()))

    async def _apply(self, chunks: list[str], *, final: bool, extra_blocks: list[dict[str, Any]] | None) -> None:
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            blocks = _blocks_with_text(chunk, extra_blocks) if (last and final and extra_blocks) else None
            if index < len(self.parts):
                part = self.parts[index]
                if part.text == chunk and blocks is None and not part.has_blocks:
                    continue
                # Intermediate edits only take a spare token; finals wait for one (and go first).
                if final:
                    await self.budget.acquire()
                elif not self.budget.try_acquire():
                    self._dirty = True
                    return
                await self._update(part, chunk, blocks, patient=final)
            else:
                response = await call(self.client, "chat.postMessage", patient=final, channel=self.channel,
                                      thread_ts=self.thread_ts, text=chunk, **({"blocks": blocks} if blocks else {}))
                self.parts.append(_Part(ts=response["ts"], text=chunk, has_blocks=bool(blocks)))
        # The answer can shrink only when a status line goes away: remove parts no longer needed.
        while len(self.parts) > len(chunks):
            part = self.parts.pop()
            await call(self.client, "chat.delete", patient=final, channel=self.channel, ts=part.ts)

    async def _update(self, part: _Part, text: str, blocks: list[dict[str, Any]] | None, *, patient: bool) -> None:
        # A part that had blocks keeps showing them unless they are replaced: send [] to drop them.
        block_args = {"blocks": blocks} if blocks else ({"blocks": []} if part.has_blocks else {})
        try:
            await call(self.client, "chat.update", patient=patient, budget=self.budget, channel=self.channel,
                       ts=part.ts, text=text, **block_args)
            self.edits += 1
        except SlackApiError as exc:
            if exc.response.get("error") not in ("message_not_found", "cant_update_message"):
                raise
            # Someone deleted our message: carry on in a new one rather than losing the answer.
            response = await call(self.client, "chat.postMessage", patient=patient, channel=self.channel,
                                  thread_ts=self.thread_ts, text=text, **({"blocks": blocks} if blocks else {}))
            part.ts = response["ts"]
        part.text = text
        part.has_blocks = bool(blocks)


def _blocks_with_text(text: str, extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The part's text as section blocks (each within Slack's 3,000-character limit), then `extra`.

    With blocks present Slack shows the blocks and uses `text` only for notifications, so the text
    must be in a block too. A part is at most PART_LIMIT characters, so this is one or two sections,
    cut at a paragraph or line with fences balanced (the same splitter as the parts).
    """
    sections = [{"type": "section", "text": {"type": "mrkdwn", "text": piece}}
                for piece in split_message(text, limit=SECTION_LIMIT)]
    return [*sections, *extra]
