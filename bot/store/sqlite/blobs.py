"""Content-addressed bytes (the images a turn was asked with): kept under their sha256, so history can name
them and a later turn can send them again without going back to Slack."""
from __future__ import annotations

import time
from typing import Sequence

from bot.store.sqlite.base import SqliteBase

MIGRATIONS: list[tuple[str, str]] = [
    (
        "blobs_001_init",
        """
        CREATE TABLE blobs (
            sha256 TEXT PRIMARY KEY,
            media_type TEXT NOT NULL,
            data BLOB NOT NULL,
            created_at REAL NOT NULL
        );
        """,
    ),
]


class BlobsMixin(SqliteBase):
    async def put_blob(self, sha256: str, media_type: str, data: bytes) -> None:
        """Keep `data` under its sha256; the same bytes shared twice are stored once."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO blobs(sha256, media_type, data, created_at) VALUES (?, ?, ?, ?)"
                         " ON CONFLICT (sha256) DO NOTHING", (sha256, media_type, data, time.time()))

    async def get_blobs(self, sha256s: Sequence[str]) -> dict[str, bytes]:
        """The stored bytes for each known sha256 (unknown ones are left out)."""
        if not sha256s:
            return {}
        marks = ",".join("?" * len(sha256s))
        with self.lock:
            rows = self.conn.execute(f"SELECT sha256, data FROM blobs WHERE sha256 IN ({marks})",
                                     list(sha256s)).fetchall()
        return {sha: bytes(data) for sha, data in rows}
