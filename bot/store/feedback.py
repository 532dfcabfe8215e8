"""Store methods for how people meet answers: 👍/👎 votes, and the Slack assistant threads they open.

The assistant-thread table lives here because it belongs to the same surface work (Slack-native
replies); it is small and could move to its own module without changing a method.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

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

Vote = Literal["up", "down"]


@dataclass(frozen=True)
class FeedbackVote:
    channel_id: str
    message_ts: str
    user_id: str
    vote: Vote
    model: str | None
    thread_ts: str | None


@dataclass(frozen=True)
class AssistantThread:
    """A thread in Slack's assistant panel, and the channel the user was looking at (if any)."""

    channel_id: str
    thread_ts: str
    user_id: str | None
    context_channel_id: str | None
    context_team_id: str | None


class FeedbackMixin:
    """Store methods for feedback votes and assistant threads."""

    # --- feedback ---------------------------------------------------------------------------

    def record_feedback(self, *, team_id: str, channel_id: str, message_ts: str, user_id: str, vote: Vote,
                        model: str | None = None, thread_ts: str | None = None, now: float | None = None) -> bool:
        """One vote per user per message: a second click replaces the first. True if it was new."""
        if vote not in ("up", "down"):
            raise ValueError(f"vote must be 'up' or 'down', got {vote!r}")
        now = time.time() if now is None else now
        with self.transaction() as conn:  # type: ignore[attr-defined]
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

    def feedback_votes(self, *, channel_id: str, message_ts: str) -> list[FeedbackVote]:
        with self.lock:  # type: ignore[attr-defined]
            rows = self.conn.execute(  # type: ignore[attr-defined]
                "SELECT channel_id, message_ts, user_id, vote, model, thread_ts FROM feedback"
                " WHERE channel_id = ? AND message_ts = ? ORDER BY user_id",
                (channel_id, message_ts),
            ).fetchall()
        return [FeedbackVote(*row) for row in rows]

    def feedback_counts(self, *, since: float, user_id: str | None = None) -> tuple[int, int]:
        """(👍, 👎) votes cast (or last changed) since `since`; `user_id` limits it to one voter."""
        sql = ("SELECT COALESCE(SUM(vote = 'up'), 0), COALESCE(SUM(vote = 'down'), 0) FROM feedback"
               " WHERE updated_at >= ?")
        args: list[object] = [since]
        if user_id is not None:
            sql += " AND user_id = ?"
            args.append(user_id)
        with self.lock:  # type: ignore[attr-defined]
            up, down = self.conn.execute(sql, args).fetchone()  # type: ignore[attr-defined]
        return int(up), int(down)

    # --- assistant threads ------------------------------------------------------------------

    def record_assistant_thread(self, *, channel_id: str, thread_ts: str, user_id: str | None = None,
                                context_channel_id: str | None = None, context_team_id: str | None = None) -> None:
        """Remember an assistant thread (started) or its new context (context changed)."""
        now = time.time()
        with self.transaction() as conn:  # type: ignore[attr-defined]
            conn.execute(
                "INSERT INTO assistant_threads(channel_id, thread_ts, user_id, context_channel_id,"
                " context_team_id, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (channel_id, thread_ts) DO UPDATE SET"
                " user_id = COALESCE(excluded.user_id, assistant_threads.user_id),"
                " context_channel_id = excluded.context_channel_id,"
                " context_team_id = excluded.context_team_id, updated_at = excluded.updated_at",
                (channel_id, thread_ts, user_id, context_channel_id, context_team_id, now, now),
            )

    def assistant_thread(self, channel_id: str, thread_ts: str) -> AssistantThread | None:
        with self.lock:  # type: ignore[attr-defined]
            row = self.conn.execute(  # type: ignore[attr-defined]
                "SELECT channel_id, thread_ts, user_id, context_channel_id, context_team_id"
                " FROM assistant_threads WHERE channel_id = ? AND thread_ts = ?",
                (channel_id, thread_ts),
            ).fetchone()
        return AssistantThread(*row) if row else None

    def claim_assistant_title(self, channel_id: str, thread_ts: str) -> bool:
        """True exactly once per assistant thread: whoever gets it sets the title from the first question."""
        now = time.time()
        with self.transaction() as conn:  # type: ignore[attr-defined]
            conn.execute(
                "INSERT OR IGNORE INTO assistant_threads(channel_id, thread_ts, started_at, updated_at)"
                " VALUES (?, ?, ?, ?)", (channel_id, thread_ts, now, now))
            cur = conn.execute(
                "UPDATE assistant_threads SET titled = 1 WHERE channel_id = ? AND thread_ts = ? AND titled = 0",
                (channel_id, thread_ts),
            )
            return cur.rowcount == 1
