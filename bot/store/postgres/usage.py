"""PostgreSQL store methods for usage rows, their reports, and the admission check that enforces limits."""
from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.store.records import Admission, UsageRow, UsageTotals

if TYPE_CHECKING:
    import psycopg
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


async def _spend(conn: "psycopg.AsyncConnection", *, since: float, user_id: str | None = None,
                 team_id: str | None = None) -> Decimal:
    where, params = _filter(since=since, until=None, user_id=user_id, team_id=team_id)
    row = await (await conn.execute("SELECT coalesce(sum(cost_usd), 0) FROM usage" + where, params)).fetchone()
    return Decimal(row[0])


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
        async with self.pool.connection() as conn, conn.transaction():
            # Workspace before user, always: one lock order, no deadlock between replicas.
            if daily_usd is not None:
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('admit-team:' || %s))", (team_id,))
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('admit-user:' || %s))", (user_id,))
            if user_daily_usd is not None:
                spent = await _spend(conn, since=day_start, user_id=user_id)
                if spent >= user_daily_usd:
                    return Admission(False, "user_daily", spent_usd=spent)
            if daily_usd is not None:
                spent = await _spend(conn, since=day_start, team_id=team_id)
                if spent >= daily_usd:
                    return Admission(False, "daily", spent_usd=spent)
            if rpm is not None:
                cur = await conn.execute(
                    "SELECT created_at FROM requests WHERE user_id = %s AND created_at > %s"
                    " ORDER BY created_at DESC LIMIT %s", (user_id, now - window_s, rpm))
                recent = await cur.fetchall()
                if len(recent) >= rpm:
                    # The rpm-th newest request is the one whose expiry frees a slot.
                    return Admission(False, "rpm", retry_at=recent[-1][0] + window_s)
            await conn.execute("DELETE FROM requests WHERE user_id = %s AND created_at < %s",
                               (user_id, now - KEEP_REQUESTS_S))
            cur = await conn.execute(
                "INSERT INTO requests(created_at, team_id, user_id) VALUES (%s, %s, %s) RETURNING id",
                (now, team_id, user_id))
            return Admission(True, request_id=(await cur.fetchone())[0])
