"""AssistantStatus: the assistant panel's status line for one thread ("is thinking…", a tool's status, cleared)."""
from __future__ import annotations

import asyncio
import logging

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.web_api import FAILURES, call, reason

log = logging.getLogger(__name__)

THINKING = "is thinking…"


class AssistantStatus:
    """assistant.threads.setStatus for one assistant thread (a reply's StatusSink).

    The reply reports progress synchronously; the calls go out from a background task in order, and
    only when the status actually changes. A failed call is logged, never fatal to the answer.
    """

    def __init__(self, client: AsyncWebClient, *, channel_id: str, thread_ts: str):
        self.client = client
        self.channel_id = channel_id
        self.thread_ts = thread_ts
        self._wanted = ""
        self._shown: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def thinking(self) -> bool:
        self._wanted = THINKING
        return await self._send(THINKING)

    def show(self, status: str | None) -> None:
        self._wanted = status or ""
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
            # Impatient: a status line that comes late is worse than none; the next change tries again.
            await call(self.client, "assistant.threads.setStatus", patient=False, channel_id=self.channel_id,
                       thread_ts=self.thread_ts, status=status)
        except FAILURES as exc:
            log.warning("assistant.threads.setStatus failed: %s", reason(exc))
            self._shown = self._wanted  # don't retry in a loop; the next change tries again
            return False
        self._shown = status
        return True
