"""Finals first, by forecast: may a progress edit spend a chat.update token without delaying any final?

The answers in flight each need one token for their final edit when they finish. Each has a forecast
of the earliest moment it may finish. A progress edit may spend a token only when the bucket,
refilling at its rate and capped at its burst, would still give every one of those finals its token
as early as it would without the spend. With few answers in flight that is nearly always true; with
many it thins progress edits out before any final has to wait.

The forecast comes from the answers this process has seen finish (StreamDurations): an answer is
expected to run at least as long as the shortest tenth of the recent ones did. How long an answer
will stream is not known while it streams (the model stops when it is done, mostly far below
max_tokens), but a workspace's answers are alike enough that a low quantile of their durations is a
safe lower bound; until there is a history, every final may come at any moment (no forecast).
A wrong forecast costs little: an answer that ends earlier than forecast waits at most for the
tokens progress edits spent in the meantime, and from the moment it passes its forecast it counts
as "any moment" again.
"""
from __future__ import annotations

from collections import deque
from typing import Iterable

HISTORY = 50  # answers remembered: a few minutes of a busy workspace, long enough to ride out one odd answer
QUANTILE = 0.1  # the forecast is the shortest tenth of those: nine answers in ten run at least this long


class StreamDurations:
    """How long recent answers took from the question taken to the final asked for."""

    def __init__(self, *, keep: int = HISTORY):
        self._seconds: deque[float] = deque(maxlen=keep)
        self._shortest: float | None = None

    def record(self, seconds: float) -> None:
        self._seconds.append(max(seconds, 0.0))
        # Computed here, once per finished answer: every progress edit asks for it, once per answer in flight.
        ordered = sorted(self._seconds)
        self._shortest = ordered[int(QUANTILE * len(ordered))]

    def shortest(self) -> float | None:
        """The low quantile of the durations seen (the minimum while there are fewer than ten); None
        before any answer has finished."""
        return self._shortest


def final_times(tokens: float, *, rate: float, burst: float, starts_at: float, ends: Iterable[float]) -> list[float]:
    """When each final (first come, first served) gets its token, as offsets from now.

    `tokens` are in the bucket now; refill starts at `starts_at` (a 429 pause) at `rate` per second up
    to `burst`; `ends` are the offsets at which the finals ask (0 for a final already waiting).
    """
    t, x = max(starts_at, 0.0), tokens
    served = []
    for end in sorted(ends):
        if end > t:
            x, t = min(burst, x + (end - t) * rate), end
        if x < 1:
            t += (1 - x) / rate
            x = 1.0
        x -= 1
        served.append(t)
    return served


def progress_may_spend(tokens: float, *, rate: float, burst: float, paused_for: float,
                       ends: Iterable[float]) -> bool:
    """True when taking one token now delays no forecast final (and one is there to take)."""
    if tokens < 1 or paused_for > 0:
        return False
    ends = list(ends)
    if not ends:
        return True
    without = final_times(tokens, rate=rate, burst=burst, starts_at=0.0, ends=ends)
    spent = final_times(tokens - 1, rate=rate, burst=burst, starts_at=0.0, ends=ends)
    return all(b <= a + 1e-9 for a, b in zip(without, spent))
