"""👍/👎 votes on answers: one per user per message, the latest click wins."""
from __future__ import annotations

import time

from bot.store.records import Vote
from bot.store.sqlite.base import SqliteBase

MIGRATIONS: list[tuple[str, str]] = [
    (
        "feedback_001_votes",
        """
        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY,
            team_id TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            message_ts TEXT NOT NULL,
            thread_ts TEXT,
            user_id TEXT NOT NULL,
            model TEXT,
            vote TEXT NOT NULL CHECK (vote IN ('up', 'down')),
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (channel_id, message_ts, user_id)
        );
        CREATE INDEX feedback_by_time ON feedback(updated_at);
        CREATE INDEX feedback_by_user_time ON feedback(user_id, updated_at);
        """,
    ),
]


class FeedbackMixin(SqliteBase):
    async def record_feedback(self, *, team_id: str, channel_id: str, message_ts: str, user_id: str, vote: Vote,
                              model: str | None = None, thread_ts: str | None = None, now: float | None = None) -> bool:
        """One vote per user per message: a second click replaces the first. True if it was new."""
        if vote not in ("up", "down"):
            raise ValueError(f"vote must be 'up' or 'down', got {vote!r}")
        now = time.time() if now is None else now
        with self.transaction() as conn:
            existed = conn.execute(
                "SELECT 1 FROM feedback WHERE channel_id = ? AND message_ts = ? AND user_id = ?",
                (channel_id, message_ts, user_id),
            ).fetchone() is not None
            conn.execute(
                "INSERT INTO feedback(team_id, channel_id, message_ts, thread_ts, user_id, model, vote,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (channel_id, message_ts, user_id) DO UPDATE SET"
                " vote = excluded.vote, model = COALESCE(excluded.model, feedback.model),"
                " thread_ts = COALESCE(excluded.thread_ts, feedback.thread_ts), updated_at = excluded.updated_at",
                (team_id, channel_id, message_ts, thread_ts, user_id, model, vote, now, now),
            )
        return not existed

    async def feedback_counts(self, *, since: float, user_id: str | None = None) -> tuple[int, int]:
        """(👍, 👎) votes cast (or last changed) since `since`; `user_id` limits it to one voter."""
        sql = ("SELECT COALESCE(SUM(vote = 'up'), 0), COALESCE(SUM(vote = 'down'), 0) FROM feedback"
               " WHERE updated_at >= ?")
        args: list[object] = [since]
        if user_id is not None:
            sql += " AND user_id = ?"
            args.append(user_id)
        up, down = self.row(sql, args)
        return int(up), int(down)
