"""The console's approval question: before a tool that acts runs, a y/N prompt (no answer in time is No)."""
from __future__ import annotations

import asyncio
from typing import IO, TYPE_CHECKING

from bot.conversation.approvals import ApprovalRequest

if TYPE_CHECKING:
    from bot.console.screen import Screen


class ConsoleApproval:
    """Asks on the terminal, one question at a time; only `y` or `yes` approves."""

    def __init__(self, screen: "Screen", stdin: IO[str], *, timeout_s: float):
        self.screen = screen
        self.stdin = stdin
        self.timeout_s = timeout_s
        self._one_at_a_time = asyncio.Lock()

    async def __call__(self, request: ApprovalRequest) -> bool:
        async with self._one_at_a_time:
            lines = [f"threadbot wants to run {request.tool}"]
            lines += [f"  {name}: {value}" for name, value in request.readable_arguments()]
            lines.append("Run it? [y/N]")
            self.screen.writer.close()
            self.screen.info("\n".join(lines))
            try:
                answer = await asyncio.wait_for(asyncio.to_thread(self.stdin.readline), self.timeout_s)
            except asyncio.TimeoutError:
                self.screen.info(f"No answer within {self.timeout_s:g} seconds: {request.tool} was not run.")
                return False
            approved = answer.strip().lower() in ("y", "yes")
            self.screen.info(f"Approved: running {request.tool}." if approved else f"Declined: {request.tool} was not run.")
            return approved
