"""Store methods for limits (filled in by the limits work)."""
from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = []


class LimitsMixin:
    pass
