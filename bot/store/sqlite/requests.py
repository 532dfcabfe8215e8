"""Per-user request log for rate limits, and the atomic check-and-reserve that admits a model call."""
from __future__ import annotations

from decimal import Decimal

from bot.store.records import Admission
from bot.store.sqlite.base import SqliteBase
from bot.store.sqlite.usage import spend_sql

MIGRATIONS: list[tuple[str, str]] = [
    (
        "limits_001_requests",
        """
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            created_at REAL NOT NULL,
            team_id TEXT NOT NULL,
            user_id TEXT NOT NULL
        );
        CREATE INDEX requests_by_user_time ON requests(user_id, created_at);
        """,
    ),
]

# Rows older than this are never needed for a per-minute window; pruned as we go.
KEEP_REQUESTS_S = 3600.0


class RequestsMixin(SqliteBase):
    """Store methods for usage limits."""

    async def admit_request(
        self,
        *,
        user_id: str,
        team_id: str,
        now: float,
        rpm: int | None,
        day_start: float,
        user_daily_usd: Decimal | None,
        daily_usd: Decimal | None,
        window_s: float = 60.0,
    ) -> Admission:
        """Check every limit and, if all pass, record the request, in one BEGIN IMMEDIATE transaction,
        so concurrent requests (threads, tasks, other processes on the same file) cannot all slip in.
        A limit of None is not checked. Daily spend is compared as spent >= limit: the call that
        crosses a budget completes, the ones after it are refused."""
        with self.transaction() as conn:
            if user_daily_usd is not None:
                spent = spend_sql(conn, since=day_start, user_id=user_id)
                if spent >= user_daily_usd:
                    return Admission(False, "user_daily", spent_usd=spent)
            if daily_usd is not None:
                spent = spend_sql(conn, since=day_start, team_id=team_id)
                if spent >= daily_usd:
                    return Admission(False, "daily", spent_usd=spent)
            if rpm is not None:
                recent = conn.execute(
                    "SELECT created_at FROM requests WHERE user_id = ? AND created_at > ?"
                    " ORDER BY created_at DESC LIMIT ?",
                    (user_id, now - window_s, rpm),
                ).fetchall()
                if len(recent) >= rpm:
                    # The rpm-th newest request is the one whose expiry frees a slot.
                    return Admission(False, "rpm", retry_at=recent[-1][0] + window_s)
            conn.execute(
                "DELETE FROM requests WHERE user_id = ? AND created_at < ?", (user_id, now - KEEP_REQUESTS_S)
            )
            cur = conn.execute(
                "INSERT INTO requests(created_at, team_id, user_id) VALUES (?, ?, ?)", (now, team_id, user_id)
            )
            return Admission(True, request_id=cur.lastrowid)
