"""PostgreSQL store methods for approval decisions (see bot/store/sqlite/approvals.py), shared by replicas.

The click may reach any replica: it records the decision with a conditional UPDATE, the replica waiting
on the question reads it. `decision IS NULL` in every write makes the first decision (a click, or the
waiter's timeout) the one that stands, whichever replicas race.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from bot.store.records import ApprovalResult

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

_NOW = "extract(epoch FROM clock_timestamp())::float8"
# Decided questions are kept this long (a late click still gets "no longer waiting"), then pruned.
KEEP_S = 86400


class ApprovalsMixin:
    pool: "AsyncConnectionPool"

    async def open_approval(self, approval_id: str, *, user_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(f"INSERT INTO approvals(approval_id, user_id, created_at) VALUES (%s, %s, {_NOW})",
                               (approval_id, user_id))

    async def decide_approval(self, approval_id: str, *, user_id: str, decision: str) -> ApprovalResult:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"UPDATE approvals SET decision = %s, decided_by = %s, decided_at = {_NOW}"
                " WHERE approval_id = %s AND user_id = %s AND decision IS NULL RETURNING user_id",
                (decision, user_id, approval_id, user_id))
            if await cur.fetchone() is not None:
                return ApprovalResult("decided", user_id)
            row = await (await conn.execute("SELECT user_id, decision FROM approvals WHERE approval_id = %s",
                                            (approval_id,))).fetchone()
        if row is None:
            return ApprovalResult("gone", None)
        owner, decided = row
        return ApprovalResult("gone" if decided is not None else "not_yours", owner)

    async def approval_decision(self, approval_id: str) -> str | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT decision FROM approvals WHERE approval_id = %s",
                                            (approval_id,))).fetchone()
        return row[0] if row else None

    async def close_approval(self, approval_id: str, *, decision: str) -> str:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(f"UPDATE approvals SET decision = %s, decided_at = {_NOW}"
                               " WHERE approval_id = %s AND decision IS NULL", (decision, approval_id))
            row = await (await conn.execute("SELECT decision FROM approvals WHERE approval_id = %s",
                                            (approval_id,))).fetchone()
            await conn.execute(f"DELETE FROM approvals WHERE decided_at < {_NOW} - %s", (KEEP_S,))
        return row[0] if row else decision
