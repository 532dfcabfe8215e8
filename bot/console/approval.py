"""The console's approval question: before a tool that acts runs, a y/N prompt (no answer in time is No)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from typing import IO, TYPE_CHECKING, Callable

from bot.conversation.approvals import ApprovalRequest

if TYPE_CHECKING:
    from bot.console.screen import Screen


class ConsoleApproval:
    """Asks on the terminal, one question at a time; only `y` or `yes` approves.

    A read of stdin cannot be called off: when the question times out, its read goes on in its thread
    and takes the next line the user types. That line is meant for the prompt, so it is kept and the
    console's loop gets it from `next_line` (it never answers a later question: that one was not asked
    when the line was typed)."""

    def __init__(self, screen: "Screen", stdin: IO[str], *, timeout_s: float):
        self.screen = screen
        self.stdin = stdin
        self.timeout_s = timeout_s
        self._one_at_a_time = asyncio.Lock()
        self._reading: concurrent.futures.Future[str] | None = None  # a read left over from a timed-out question
        self._unread: deque[str] = deque()  # lines it took, for the prompt

    async def __call__(self, request: ApprovalRequest) -> bool:
        async with self._one_at_a_time:
            lines = [f"threadbot wants to run {request.tool}"]
            lines += [f"  {name}: {value}" for name, value in request.readable_arguments()]
            lines.append("Run it? [y/N]")
            self.screen.writer.close()
            self._keep_typed_ahead()
            self.screen.info("\n".join(lines))
            reading = self._reading or self._read()
            try:
                answer = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(reading)), self.timeout_s)
            except asyncio.TimeoutError:
                self._reading = reading
                self.screen.info(f"No answer within {self.timeout_s:g} seconds: {request.tool} was not run.")
                return False
            self._reading = None
            approved = answer.strip().lower() in ("y", "yes")
            self.screen.info(f"Approved: running {request.tool}." if approved else f"Declined: {request.tool} was not run.")
            return approved

    def next_line(self, read: Callable[[], str | None], *, prompt: Callable[[], None]) -> str | None:
        """The prompt's next line: one a timed-out question's read took (`prompt` shown while it waits),
        else `read()`. None at end of input."""
        self._keep_typed_ahead()
        if self._unread:
            return self._unread.popleft()
        if self._reading is not None:
            prompt()
            reading, self._reading = self._reading, None
            return _line(reading.result())
        return read()

    def _keep_typed_ahead(self) -> None:
        """A leftover read that has its line already: the line was typed before this moment, for the prompt."""
        if self._reading is not None and self._reading.done():
            line = _line(self._reading.result())
            self._reading = None
            if line is not None:
                self._unread.append(line)

    def _read(self) -> concurrent.futures.Future[str]:
        # Its own daemon thread: a read nobody answers must not keep the process (or a thread pool) waiting.
        future: concurrent.futures.Future[str] = concurrent.futures.Future()

        def read() -> None:
            try:
                future.set_result(self.stdin.readline())
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the line
                future.set_exception(exc)

        threading.Thread(target=read, name="approval-read", daemon=True).start()
        return future


def _line(text: str) -> str | None:
    return text.rstrip("\n") if text else None
