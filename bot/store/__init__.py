"""The only place that writes SQL: one SQLite database holding threads, usage and knowledge."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlite_utils

from bot.store import conversations, feedback, knowledge, requests, threads, usage
from bot.store.conversations import ConversationsMixin, StoredMessage
from bot.store.db import connect, migrate
from bot.store.feedback import FeedbackMixin
from bot.store.knowledge import KnowledgeMixin
from bot.store.requests import LimitsMixin
from bot.store.threads import ThreadsMixin
from bot.store.usage import UsageMixin, UsageRow

MIGRATIONS = [
    *conversations.MIGRATIONS,
    *usage.MIGRATIONS,
    *requests.MIGRATIONS,
    *knowledge.MIGRATIONS,
    *feedback.MIGRATIONS,
    *threads.MIGRATIONS,
]

__all__ = ["Store", "StoredMessage", "UsageRow"]


class Store(ConversationsMixin, UsageMixin, LimitsMixin, KnowledgeMixin, FeedbackMixin, ThreadsMixin):
    """One SQLite file (WAL). Calls are short and serialised by a lock; heavy reads run in threads."""

    def __init__(self, path: Path | str):
        self.path = path
        self.conn = connect(path)
        self.db = sqlite_utils.Database(self.conn)
        self.lock = threading.RLock()
        with self.lock:
            migrate(self.db, MIGRATIONS)

    @contextmanager
    def transaction(self) -> Iterator["object"]:
        """BEGIN IMMEDIATE … COMMIT under the store lock; ROLLBACK on any error."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self.conn.close()
