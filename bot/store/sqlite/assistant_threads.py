"""Threads in Slack's assistant panel: who opened them, the channel being viewed, the title claim."""
from __future__ import annotations

import time

from bot.store.records import AssistantThread
from bot.store.sqlite.base import SqliteBase

# Named feedback_002 for history: it shipped with the feedback module; applied names never change.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "feedback_002_assistant_threads",
        """
        CREATE TABLE assistant_threads (
            channel_id TEXT NOT NULL,
            thread_ts TEXT NOT NULL,
            user_id TEXT,
            context_channel_id TEXT,
            context_team_id TEXT,
            titled INTEGER NOT NULL DEFAULT 0,
            started_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (channel_id, thread_ts)
        );
        """,
    ),
]


class AssistantThreadsMixin(SqliteBase):
    async def record_assistant_thread(self, *, channel_id: str, thread_ts: str, user_id: str | None = None,
                                      context_channel_id: str | None = None, context_team_id: str | None = None) -> None:
        """Remember an assistant thread (started) or its new context (context changed)."""
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO assistant_threads(channel_id, thread_ts, user_id, context_channel_id,"
                " context_team_id, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (channel_id, thread_ts) DO UPDATE SET"
                " user_id = COALESCE(excluded.user_id, assistant_threads.user_id),"
                " context_channel_id = excluded.context_channel_id,"
                " context_team_id = excluded.context_team_id, updated_at = excluded.updated_at",
                (channel_id, thread_ts, user_id, context_channel_id, context_team_id, now, now),
            )

    async def assistant_thread(self, channel_id: str, thread_ts: str) -> AssistantThread | None:
        row = self.row(
            "SELECT channel_id, thread_ts, user_id, context_channel_id, context_team_id"
            " FROM assistant_threads WHERE channel_id = ? AND thread_ts = ?",
            (channel_id, thread_ts),
        )
        return AssistantThread(*row) if row else None

    async def claim_assistant_title(self, channel_id: str, thread_ts: str) -> bool:
        """True exactly once per assistant thread: whoever gets it sets the title from the first question."""
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO assistant_threads(channel_id, thread_ts, started_at, updated_at)"
                " VALUES (?, ?, ?, ?)", (channel_id, thread_ts, now, now))
            cur = conn.execute(
                "UPDATE assistant_threads SET titled = 1 WHERE channel_id = ? AND thread_ts = ? AND titled = 0",
                (channel_id, thread_ts),
            )
            return cur.rowcount == 1
