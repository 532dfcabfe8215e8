"""Store methods for knowledge (filled in by the knowledge work)."""
from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = []


class KnowledgeMixin:
    pass
