"""PostgreSQL store methods for workspace-wide edit budgets: one token bucket per Slack method, shared by replicas.

Each call is one upsert on the bucket's row: the row lock orders replicas, and the refill is computed
from the database's clock, so replicas' clocks never disagree about it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

_NOW = "extract(epoch FROM clock_timestamp())::float8"
# The bucket after refilling up to now (b: the stored row; excluded.checked_at: now). While paused,
# updated_at lies ahead: nothing refills, and tokens stay 0.
_AVAIL = "least(%(burst)s, b.tokens + greatest(excluded.checked_at - b.updated_at, 0) * %(per_s)s)"
_TAKE = f"greatest(0, least(%(most)s, floor({_AVAIL} - %(keep)s)))::int"

_TAKE_SQL = (
    "INSERT INTO edit_buckets AS b(name, tokens, updated_at, last_take, checked_at)"
    " SELECT %(name)s, %(burst)s - t0, now, t0, now FROM"
    f" (SELECT {_NOW} AS now, greatest(0, least(%(most)s, floor(%(burst)s - %(keep)s)))::int AS t0) n"
    " ON CONFLICT (name) DO UPDATE SET"
    f" last_take = {_TAKE}, tokens = {_AVAIL} - {_TAKE},"
    " updated_at = greatest(b.updated_at, excluded.checked_at), checked_at = excluded.checked_at"
    " RETURNING last_take, tokens, updated_at - checked_at"
)


class BucketsMixin:
    pool: "AsyncConnectionPool"

    async def take_edit_tokens(self, bucket: str, *, per_s: float, burst: float, keep: float,
                               most: int = 1) -> tuple[int, float]:
        """Refill `bucket` (per_s a second, at most burst; a new bucket starts full), then take up to `most`
        tokens while leaving `keep`. Returns (taken, seconds until one more could be taken)."""
        args = {"name": bucket, "per_s": per_s, "burst": burst, "keep": keep, "most": most}
        async with self.pool.connection() as conn:
            taken, tokens, paused_s = await (await conn.execute(_TAKE_SQL, args)).fetchone()
        return taken, paused_s + max(0.0, 1 + keep - tokens) / per_s

    async def give_edit_tokens(self, bucket: str, count: int, *, burst: float) -> None:
        """Put back tokens taken but not spent (never past burst, never into a paused bucket)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                f"UPDATE edit_buckets SET tokens = least(%s, tokens + %s) WHERE name = %s AND updated_at <= {_NOW}",
                (burst, count, bucket))

    async def pause_edit_tokens(self, bucket: str, seconds: float) -> None:
        """Slack answered 429: empty the bucket, and nothing refills for `seconds`."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO edit_buckets AS b(name, tokens, updated_at, checked_at)"
                f" SELECT %s, 0, now + %s, now FROM (SELECT {_NOW} AS now) n"
                " ON CONFLICT (name) DO UPDATE SET tokens = 0,"
                " updated_at = greatest(b.updated_at, excluded.updated_at), checked_at = excluded.checked_at",
                (bucket, max(seconds, 0.0)))
