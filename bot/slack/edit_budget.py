"""One workspace-wide budget for chat.update: a token bucket shared by every reply in flight.

Slack rate-limits chat.update per workspace (Tier 3, about 50 a minute with bursts), not per message.
Intermediate edits only take a token when one is spare; final edits wait for one and go first. A 429
pauses the whole bucket for its Retry-After, so one reply's 429 slows every reply instead of each
reply hammering Slack on its own.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable


class EditBudget:
    def __init__(self, *, per_minute: float = 50.0, burst: int = 20, reserve_for_finals: int = 0,
                 clock: Callable[[], float] = time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        # Tokens intermediate edits leave alone, so answers that finish together land at once
        # instead of queueing behind progress edits that used up the burst.
        self.reserve_for_finals = reserve_for_finals
        self._tokens = float(burst)
        self._clock = clock
        self._updated = clock()
        self._paused_until = 0.0
        self._finals_waiting = 0
        self.rate_limited = 0  # 429s reported, for the bench and the logs

    def _refill(self) -> None:
        now = self._clock()
        if now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def try_acquire(self) -> bool:
        """Take a token for an intermediate edit if one is spare; never waits."""
        self._refill()
        if self._clock() < self._paused_until:
            return False
        # Keep a token back for every final edit that is waiting: finals go first.
        if self._tokens >= 1 + self._finals_waiting + self.reserve_for_finals:
            self._tokens -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a token for a final edit (priority over intermediate edits)."""
        self._finals_waiting += 1
        try:
            while True:
                self._refill()
                now = self._clock()
                if now >= self._paused_until and self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = max(self._paused_until - now, (1 - self._tokens) / self.rate, 0.01)
                await asyncio.sleep(min(wait, 1.0))
        finally:
            self._finals_waiting -= 1

    def pause(self, retry_after_s: float) -> None:
        """Slack said 429: stop every edit until Retry-After has passed, and start with an empty bucket."""
        self.rate_limited += 1
        self._paused_until = max(self._paused_until, self._clock() + max(retry_after_s, 0.0))
        self._tokens = 0.0
        self._updated = max(self._updated, self._paused_until)


@dataclass(frozen=True)
class EditBudgets:
    """The workspace budgets every reply in flight shares, one per rate-limited method."""

    # Tier 3 (about 50 a minute); 10 tokens stay for final edits, so answers finishing together land at once.
    chat_update: EditBudget = field(default_factory=lambda: EditBudget(per_minute=50, burst=20, reserve_for_finals=10))
    # chat.appendStream (THREADBOT_STREAMING=native) has its own workspace rate: Tier 4.
    append_stream: EditBudget = field(default_factory=lambda: EditBudget(per_minute=100, burst=20))
