"""Finals first, by forecast: may a progress edit spend a chat.update token without delaying any final?

The answers in flight each need one token for their final edit when they finish. Each has a forecast
of the earliest moment it may finish (by default "now": a stream can end with its next delta). A
progress edit may spend a token only when the bucket, refilling at its rate and capped at its burst,
would still give every one of those finals its token as early as it would without the spend. With few
answers in flight that is nearly always true; with many it thins progress edits out before any final
has to wait.
"""
from __future__ import annotations

from typing import Iterable


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
