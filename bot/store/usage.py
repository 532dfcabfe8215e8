"""Usage rows: one per model call, attributed to the Slack user who caused it."""
from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

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


@dataclass(frozen=True)
class UsageRow:
    team_id: str
    user_id: str
    channel_id: str
    thread_ts: str | None
    surface: str  # "mention" | "dm" | "assistant" | "console" | "command" | "ingest"
    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: Decimal
    latency_ms: int
    stop_reason: str | None
    error: str | None = None
    created_at: float | None = None


class UsageMixin:
    """Store methods for usage accounting."""

    def record_usage(self, row: UsageRow) -> int:
        with self.transaction() as conn:  # type: ignore[attr-defined]
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

    def usage_rows(self, *, user_id: str | None = None, since: float = 0.0) -> list[UsageRow]:
        sql = (
            "SELECT team_id, user_id, channel_id, thread_ts, surface, model, input_tokens, output_tokens,"
            " cache_creation_input_tokens, cache_read_input_tokens, cost_usd, latency_ms, stop_reason,"
            " error, created_at FROM usage WHERE created_at >= ?"
        )
        params: list[object] = [since]
        if user_id is not None:
            sql += " AND user_id = ?"
            params.append(user_id)
        with self.lock:  # type: ignore[attr-defined]
            rows = self.conn.execute(sql + " ORDER BY id", params).fetchall()  # type: ignore[attr-defined]
        return [
            UsageRow(*r[:10], cost_usd=Decimal(r[10]), latency_ms=r[11], stop_reason=r[12], error=r[13],
                     created_at=r[14])
            for r in rows
        ]

    def spend_since(self, since: float, *, user_id: str | None = None) -> Decimal:
        """Total cost since a time, for one user or the whole workspace (exact Decimal sum)."""
        return sum((r.cost_usd for r in self.usage_rows(user_id=user_id, since=since)), Decimal(0))
