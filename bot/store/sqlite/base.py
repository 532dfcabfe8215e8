"""The state every SQLite store module shares: one connection, its lock, and the transaction helper."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import sqlite_utils

from bot.store.sqlite.db import Connection, connect


class SqliteBase:
    """One SQLite file (WAL) on one connection. Calls are short; the lock serialises the rare caller
    on another thread (a second event loop in a test, a CLI) with the loop's own calls."""

    path: Path | str
    conn: Connection
    db: sqlite_utils.Database
    lock: threading.RLock

    def __init__(self, path: Path | str):
        self.path = path
        self.conn = connect(path)
        self.db = sqlite_utils.Database(self.conn)
        self.lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
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

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of one read, under the store lock."""
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def row(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of one read (None if there is none), under the store lock."""
        with self.lock:
            return self.conn.execute(sql, params).fetchone()
