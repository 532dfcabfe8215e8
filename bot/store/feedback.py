"""Store methods for feedback (filled in by the feedback work)."""
from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = []


class FeedbackMixin:
    pass
