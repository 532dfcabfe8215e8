"""Usage rows: one per model call, attributed to the Slack user who caused it."""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from bot.store.records import UsageRow, UsageTotals
from bot.store.sqlite.base import SqliteBase

MIGRATIONS = [
    (
        "usage_001_init",
        """
        CREATE TABLE usage (
            id INTEGER PRIMARY KEY,
            created_at REAL NOT NULL,
            team_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            thread_ts TEXT,
            surface TEXT NOT NULL,
            model TEXT NOT NULL,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd TEXT NOT NULL DEFAULT '0',
            latency_ms INTEGER NOT NULL DEFAULT 0,
            stop_reason TEXT,
            error TEXT
        );
        CREATE INDEX usage_by_user_time ON usage(user_id, created_at);
        CREATE INDEX usage_by_time ON usage(created_at);
        """,
    ),
]


class UsageMixin(SqliteBase):
    """Store methods for usage accounting."""

    async def record_usage(self, row: UsageRow) -> int:
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO usage(created_at, team_id, user_id, channel_id, thread_ts, surface, model,"
                " input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens,"
                " cost_usd, latency_ms, stop_reason, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.created_at if row.created_at is not None else time.time(),
                    row.team_id, row.user_id, row.channel_id, row.thread_ts, row.surface, row.model,
                    row.input_tokens, row.output_tokens, row.cache_creation_input_tokens,
                    row.cache_read_input_tokens, str(row.cost_usd), row.latency_ms, row.stop_reason,
                    row.error,
                ),
            )
            return cur.lastrowid

    # Report queries: totals and GROUP BY breakdowns over a time range.

    async def usage_totals(self, *, since: float, until: float | None = None, user_id: str | None = None,
                     team_id: str | None = None) -> UsageTotals:
        where, params = usage_filter(since=since, until=until, user_id=user_id, team_id=team_id)
        return _totals(self.row(f"SELECT {_TOTALS} FROM usage" + where, params))

    async def usage_grouped(self, by: str, *, since: float, until: float | None = None,
                      user_id: str | None = None, limit: int | None = None) -> list[tuple[object, UsageTotals]]:
        """Totals per user_id, model, surface or UTC day (day = days since 1970-01-01), most cost first
        (days in date order)."""
        if by not in _GROUPS:
            raise ValueError(f"cannot group usage by {by!r}")
        key = _GROUPS[by]
        where, params = usage_filter(since=since, until=until, user_id=user_id)
        order = "1" if by == "day" else "7 DESC, 2 DESC, 1"
        sql = f"SELECT {key}, {_TOTALS} FROM usage{where} GROUP BY 1 ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [(r[0], _totals(r[1:])) for r in self.rows(sql, params)]


# --- aggregation (GROUP BY in SQL; exact money) ------------------------------------------------

# cost_usd is stored as Decimal text. SQLite has no decimal type, so sums go through integer
# picodollars (1e-12 USD): every per-call cost with up to 12 decimals (all published per-token rates
# are far coarser) converts exactly, and integer SUM is exact.
PICODOLLARS = Decimal(10) ** 12
_COST_PICO = "CAST(ROUND(CAST(cost_usd AS REAL) * 1e12) AS INTEGER)"
_TOTALS = (
    "COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),"
    " COALESCE(SUM(cache_creation_input_tokens), 0), COALESCE(SUM(cache_read_input_tokens), 0),"
    f" COALESCE(SUM({_COST_PICO}), 0)"
)
# Unix time is UTC without leap seconds, so day boundaries are exact multiples of 86,400.
_GROUPS = {
    "user_id": "user_id",
    "model": "model",
    "surface": "surface",
    "day": "CAST(created_at / 86400 AS INTEGER)",
}


def _totals(row: tuple) -> UsageTotals:
    return UsageTotals(*row[:5], cost_usd=Decimal(row[5]) / PICODOLLARS)


def usage_filter(*, since: float, until: float | None, user_id: str | None,
                 team_id: str | None = None) -> tuple[str, list[object]]:
    """WHERE clause shared by the aggregate queries (and the limits check)."""
    where = ["created_at >= ?"]
    params: list[object] = [since]
    if until is not None:
        where.append("created_at < ?")
        params.append(until)
    if user_id is not None:
        where.append("user_id = ?")
        params.append(user_id)
    if team_id is not None:
        where.append("team_id = ?")
        params.append(team_id)
    return " WHERE " + " AND ".join(where), params


def spend_sql(conn: Any, *, since: float, user_id: str | None = None, team_id: str | None = None) -> Decimal:
    """Exact spend since a time, on a given connection (so callers can run it inside a transaction)."""
    where, params = usage_filter(since=since, until=None, user_id=user_id, team_id=team_id)
    row = conn.execute(f"SELECT COALESCE(SUM({_COST_PICO}), 0) FROM usage" + where, params).fetchone()
    return Decimal(row[0]) / PICODOLLARS
