"""PostgreSQL store methods for usage rows, their reports, and the admission check that enforces limits."""
from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.store.records import Admission, UsageRow, UsageTotals

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

# Rows older than this are never needed for a per-minute window; pruned as we go.
KEEP_REQUESTS_S = 3600.0

_TOTALS = (
    "count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
    " coalesce(sum(cache_creation_input_tokens), 0), coalesce(sum(cache_read_input_tokens), 0),"
    " coalesce(sum(cost_usd), 0)"
)
# Unix time is UTC without leap seconds, so day boundaries are exact multiples of 86,400.
_GROUPS = {"user_id": "user_id", "model": "model", "surface": "surface", "day": "floor(created_at / 86400)::bigint"}


def _filter(*, since: float, until: float | None, user_id: str | None,
            team_id: str | None = None) -> tuple[str, list[object]]:
    where, params = ["created_at >= %s"], [since]
    for column, value, op in (("created_at", until, "<"), ("user_id", user_id, "="), ("team_id", team_id, "=")):
        if value is not None:
            where.append(f"{column} {op} %s")
            params.append(value)
    return " WHERE " + " AND ".join(where), params


def _totals(row) -> UsageTotals:
    return UsageTotals(*(int(v) for v in row[:5]), cost_usd=Decimal(row[5]))


# Every limit checked, and the request recorded only if all pass, in one statement. A limit that is
# NULL is off (comparisons with NULL are never true; LIMIT NULL is no limit).
_ADMIT = """
WITH user_spend AS (
    SELECT coalesce(sum(cost_usd), 0) AS spent FROM usage
    WHERE %(user_daily)s::numeric IS NOT NULL AND user_id = %(user)s AND created_at >= %(day)s),
team_spend AS (
    SELECT coalesce(sum(cost_usd), 0) AS spent FROM usage
    WHERE %(daily)s::numeric IS NOT NULL AND team_id = %(team)s AND created_at >= %(day)s),
recent AS (
    SELECT created_at FROM requests WHERE %(rpm)s::int IS NOT NULL AND user_id = %(user)s AND created_at > %(since)s
    ORDER BY created_at DESC LIMIT %(rpm)s::int),
verdict AS (
    SELECT CASE WHEN u.spent >= %(user_daily)s::numeric THEN 'user_daily'
                WHEN t.spent >= %(daily)s::numeric THEN 'daily'
                WHEN (SELECT count(*) FROM recent) >= %(rpm)s::int THEN 'rpm' END AS refused,
           u.spent AS user_spent, t.spent AS team_spent, (SELECT min(created_at) FROM recent) AS oldest
    FROM user_spend u, team_spend t),
pruned AS (
    DELETE FROM requests WHERE user_id = %(user)s AND created_at < %(prune)s
    AND (SELECT refused IS NULL FROM verdict)),
admitted AS (
    INSERT INTO requests(created_at, team_id, user_id) SELECT %(now)s, %(team)s, %(user)s FROM verdict
    WHERE refused IS NULL RETURNING id)
SELECT refused, user_spent, team_spent, oldest, (SELECT id FROM admitted) FROM verdict
"""


class UsageMixin:
    pool: "AsyncConnectionPool"

    async def record_usage(self, row: UsageRow) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO usage(created_at, team_id, user_id, channel_id, thread_ts, surface, model,"
                " input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens,"
                " cost_usd, latency_ms, stop_reason, error)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (row.created_at if row.created_at is not None else time.time(), row.team_id, row.user_id,
                 row.channel_id, row.thread_ts, row.surface, row.model, row.input_tokens, row.output_tokens,
                 row.cache_creation_input_tokens, row.cache_read_input_tokens, row.cost_usd, row.latency_ms,
                 row.stop_reason, row.error))
            return (await cur.fetchone())[0]

    async def usage_totals(self, *, since: float, until: float | None = None, user_id: str | None = None,
                           team_id: str | None = None) -> UsageTotals:
        where, params = _filter(since=since, until=until, user_id=user_id, team_id=team_id)
        async with self.pool.connection() as conn:
            return _totals(await (await conn.execute(f"SELECT {_TOTALS} FROM usage" + where, params)).fetchone())

    async def usage_grouped(self, by: str, *, since: float, until: float | None = None,
                            user_id: str | None = None, limit: int | None = None
                            ) -> list[tuple[object, UsageTotals]]:
        """Totals per user_id, model, surface or UTC day (days since 1970-01-01), most cost first
        (days in date order)."""
        if by not in _GROUPS:
            raise ValueError(f"cannot group usage by {by!r}")
        where, params = _filter(since=since, until=until, user_id=user_id)
        order = "1" if by == "day" else "7 DESC, 2 DESC, 1"
        sql = f"SELECT {_GROUPS[by]}, {_TOTALS} FROM usage{where} GROUP BY 1 ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(sql, params)).fetchall()
        return [(r[0], _totals(r[1:])) for r in rows]

    async def admit_request(self, *, user_id: str, team_id: str, now: float, rpm: int | None, day_start: float,
                            user_daily_usd: Decimal | None, daily_usd: Decimal | None,
                            window_s: float = 60.0) -> Admission:
        """Check every limit and, if all pass, record the request, in one transaction holding the
        user's (and, with a workspace budget, the workspace's) advisory lock: admissions of one user
        are serialised across every replica, exactly as SQLite's single writer serialises them.
        Daily spend is compared as spent >= limit: the call that crosses a budget completes."""
        args = {"user": user_id, "team": team_id, "now": now, "day": day_start, "since": now - window_s,
                "rpm": rpm, "user_daily": user_daily_usd, "daily": daily_usd, "prune": now - KEEP_REQUESTS_S}
        async with self.pool.connection() as conn, conn.transaction(), conn.pipeline():
            # Locks first, each its own statement: the check then reads a snapshot taken after both are
            # held (READ COMMITTED snapshots per statement). Workspace before user, always: one lock
            # order, no deadlock between replicas. The pipeline sends it all in one round trip.
            if daily_usd is not None:
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('admit-team:' || %s))", (team_id,))
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('admit-user:' || %s))", (user_id,))
            cur = await conn.execute(_ADMIT, args)
            refused, user_spent, team_spent, oldest, request_id = await cur.fetchone()
        if refused == "user_daily":
            return Admission(False, "user_daily", spent_usd=Decimal(user_spent))
        if refused == "daily":
            return Admission(False, "daily", spent_usd=Decimal(team_spent))
        if refused == "rpm":
            # The rpm-th newest request is the one whose expiry frees a slot.
            return Admission(False, "rpm", retry_at=oldest + window_s)
        return Admission(True, request_id=request_id)
