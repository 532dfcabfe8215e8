"""Per-user and workspace usage limits, checked (and the request reserved) before any model call."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.errors import LimitExceeded

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.store import Store

RPM_WINDOW_S = 60.0


async def check_and_reserve(store: "Store", *, user_id: str, team_id: str, settings: "Settings", now: datetime) -> None:
    """Admit one model-backed request or raise LimitExceeded with a friendly sentence and `resets_at`.

    Limits: settings.user_rpm (requests in the last 60 s), settings.user_daily_usd and
    settings.daily_usd (spend in the current UTC day; a budget of 0 means no limit). Admission and the
    request row are written in one transaction, so concurrent requests cannot overshoot the rpm."""
    now = _utc(now)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    admission = await store.admit_request(
        user_id=user_id,
        team_id=team_id,
        now=now.timestamp(),
        rpm=settings.user_rpm,
        day_start=day_start.timestamp(),
        user_daily_usd=settings.user_daily_usd or None,
        daily_usd=settings.daily_usd or None,
        window_s=RPM_WINDOW_S,
    )
    if admission.admitted:
        return
    if admission.refused_by == "rpm":
        assert admission.retry_at is not None
        resets_at = datetime.fromtimestamp(admission.retry_at, timezone.utc)
        seconds = max(1, math.ceil(admission.retry_at - now.timestamp()))
        raise LimitExceeded(
            f"You've reached your limit of {_plural(settings.user_rpm, 'request')} per minute"
            f" — try again in {_plural(seconds, 'second')}.",
            resets_at=resets_at,
        )
    resets_at = day_start + timedelta(days=1)
    when = f"it resets at 00:00 UTC (in {format_duration(resets_at - now)})"
    if admission.refused_by == "user_daily":
        raise LimitExceeded(
            f"You've reached your daily budget of {format_usd(settings.user_daily_usd)} — {when}.",
            resets_at=resets_at,
        )
    raise LimitExceeded(
        f"The workspace has reached its daily budget of {format_usd(settings.daily_usd)} — {when}.",
        resets_at=resets_at,
    )


def format_duration(delta: timedelta) -> str:
    """'3 h 12 min', '12 min', '45 seconds' — rounded up, so it never says 0 while still waiting."""
    seconds = max(0, math.ceil(delta.total_seconds()))
    if seconds < 60:
        return _plural(max(1, seconds), "second")
    minutes = math.ceil(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    if hours:
        return f"{hours} h"
    return f"{minutes} min"


def format_usd(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _utc(moment: datetime) -> datetime:
    # A naive datetime is taken as UTC (the project's one clock is UTC).
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
