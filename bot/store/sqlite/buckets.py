"""Workspace-wide edit budgets in the database: one token bucket per Slack method (as in bot/store/postgres/buckets.py).

One threadbot process needs no shared bucket (bot/slack/edit_budget.py keeps it in memory); these make
the contract the same on both backends, and stay right for several processes on one file.
"""
from __future__ import annotations

import time

from bot.store.sqlite.base import SqliteBase

MIGRATIONS: list[tuple[str, str]] = [
    (
        "buckets_001_init",
        """
        CREATE TABLE edit_buckets (
            name TEXT PRIMARY KEY,
            tokens REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        """,
    ),
]


class BucketsMixin(SqliteBase):
    async def take_edit_tokens(self, bucket: str, *, per_s: float, burst: float, keep: float,
                               most: int = 1) -> tuple[int, float]:
        """Refill `bucket` (per_s a second, at most burst; a new bucket starts full), then take up to `most`
        tokens while leaving `keep`. Returns (taken, seconds until one more could be taken)."""
        now = time.time()
        with self.transaction() as conn:
            row = conn.execute("SELECT tokens, updated_at FROM edit_buckets WHERE name = ?", (bucket,)).fetchone()
            tokens, updated = row if row else (burst, now)
            tokens = min(burst, tokens + max(now - updated, 0.0) * per_s)  # 0 while paused (updated ahead)
            taken = max(0, min(most, int(tokens - keep)))
            conn.execute("INSERT INTO edit_buckets(name, tokens, updated_at) VALUES (?, ?, ?) ON CONFLICT (name)"
                         " DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at",
                         (bucket, tokens - taken, max(updated, now)))
        return taken, max(updated - now, 0.0) + max(0.0, 1 + keep - (tokens - taken)) / per_s

    async def give_edit_tokens(self, bucket: str, count: int, *, burst: float) -> None:
        """Put back tokens taken but not spent (never past burst, never into a paused bucket)."""
        with self.transaction() as conn:
            conn.execute("UPDATE edit_buckets SET tokens = min(?, tokens + ?) WHERE name = ? AND updated_at <= ?",
                         (burst, count, bucket, time.time()))

    async def pause_edit_tokens(self, bucket: str, seconds: float) -> None:
        """Slack answered 429: empty the bucket, and nothing refills for `seconds`."""
        until = time.time() + max(seconds, 0.0)
        with self.transaction() as conn:
            conn.execute("INSERT INTO edit_buckets(name, tokens, updated_at) VALUES (?, 0, ?) ON CONFLICT (name)"
                         " DO UPDATE SET tokens = 0, updated_at = max(updated_at, excluded.updated_at)",
                         (bucket, until))
