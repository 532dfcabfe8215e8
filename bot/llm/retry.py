"""The one retry policy for model API calls: what is retried, how long each wait is, when to give up."""
from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import Any

from bot.errors import ModelError, ModelOverloaded, ModelRateLimited, ModelUnavailable

# Statuses a retry can cure; anything else (400, 401, 404, 413 …) fails the same way every time.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504, 529})
TRANSIENT = (ModelOverloaded, ModelRateLimited, ModelUnavailable)
FIRST_BACKOFF_S = 0.5


def parse_retry_after(headers: Any) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    if headers is None:
        return None
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a date without a zone is read as such
        return None
    return max(0.0, when.timestamp() - time.time())


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 and number == number and number != float("inf") else None


def is_retryable(error: ModelError) -> bool:
    """Overloaded, rate limited or unreachable, with a status (if any) that a retry can cure."""
    return isinstance(error, TRANSIENT) and (error.status_code is None or error.status_code in RETRYABLE_STATUS)


@dataclass(frozen=True)
class RetryPolicy:
    """How one model call is retried. Every wait is capped (the SDKs honour any Retry-After, even an
    hour), and all waits of one call together stay within `budget_s`, whatever the server asks for."""

    max_retries: int = 3
    max_wait_s: float = 8.0
    budget_s: float = 30.0

    def wait_s(self, failures: int, retry_after: float | None) -> float:
        """The wait after the `failures`-th failed attempt: exponential backoff with jitter (so threads
        that failed together do not retry together), at least the server's Retry-After, at most the cap."""
        backoff = FIRST_BACKOFF_S * 2 ** (failures - 1) * random.uniform(0.75, 1.0)
        wait = max(backoff, retry_after) if retry_after is not None else backoff
        return min(wait, self.max_wait_s)

    def start(self) -> "Attempts":
        return Attempts(self)


@dataclass
class Attempts:
    """The retry state of one call."""

    policy: RetryPolicy
    started: float = field(default_factory=time.monotonic)
    failures: int = 0

    def wait_before_retry(self, error: ModelError, *, streamed: bool, retry_after: float | None) -> float | None:
        """Seconds to wait before trying again, or None to give up. Once output reached the caller a
        retry would repeat it, so only a failure before any output is retried."""
        self.failures += 1
        if streamed or not is_retryable(error) or self.failures > self.policy.max_retries:
            return None
        wait = self.policy.wait_s(self.failures, retry_after)
        if time.monotonic() - self.started + wait > self.policy.budget_s:
            return None
        return wait
