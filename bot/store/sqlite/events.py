"""Durable event claims: each Slack event (event_id, or channel+ts of a message) is answered once.

The `events` table itself is created by conversations_001_init (an applied migration never changes).
"""
from __future__ import annotations

import time

from bot.store.sqlite.base import SqliteBase


class EventsMixin(SqliteBase):
    async def claim_event(self, *keys: str) -> bool:
        """Record these event keys; False if any was seen before (a retry or redelivery)."""
        now = time.time()
        with self.transaction() as conn:
            for key in keys:
                if conn.execute("SELECT 1 FROM events WHERE event_key = ?", (key,)).fetchone():
                    return False
            conn.executemany(
                "INSERT INTO events(event_key, received_at) VALUES (?, ?)", [(k, now) for k in keys]
            )
        return True

    async def prune_events(self, older_than_s: float = 7 * 86400) -> int:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM events WHERE received_at < ?", (time.time() - older_than_s,)).rowcount
