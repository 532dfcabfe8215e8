"""Approval decisions in the store (as in bot/store/postgres/approvals.py): whichever process gets the click
records it, the one waiting reads it, and the first decision recorded (a click, or the timeout) stands."""
from __future__ import annotations

import time

from bot.store.records import ApprovalResult
from bot.store.sqlite.base import SqliteBase

MIGRATIONS: list[tuple[str, str]] = [
    (
        "approvals_001_init",
        """
        CREATE TABLE approvals (
            approval_id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            decision TEXT,
            decided_by TEXT,
            created_at REAL NOT NULL,
            decided_at REAL
        );
        CREATE INDEX approvals_decided ON approvals(decided_at);
        """,
    ),
]

# Decided questions are kept this long (a late click still gets "no longer waiting"), then pruned.
KEEP_S = 86400


class ApprovalsMixin(SqliteBase):
    async def open_approval(self, approval_id: str, *, user_id: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO approvals(approval_id, user_id, created_at) VALUES (?, ?, ?)",
                         (approval_id, user_id, time.time()))

    async def decide_approval(self, approval_id: str, *, user_id: str, decision: str) -> ApprovalResult:
        with self.transaction() as conn:
            row = conn.execute("SELECT user_id, decision FROM approvals WHERE approval_id = ?",
                               (approval_id,)).fetchone()
            if row is None:
                return ApprovalResult("gone", None)
            owner, decided = row
            if decided is not None:
                return ApprovalResult("gone", owner)
            if owner != user_id:
                return ApprovalResult("not_yours", owner)
            conn.execute("UPDATE approvals SET decision = ?, decided_by = ?, decided_at = ? WHERE approval_id = ?",
                         (decision, user_id, time.time(), approval_id))
        return ApprovalResult("decided", owner)

    async def approval_decision(self, approval_id: str) -> str | None:
        row = self.row("SELECT decision FROM approvals WHERE approval_id = ?", (approval_id,))
        return row[0] if row else None

    async def close_approval(self, approval_id: str, *, decision: str) -> str:
        now = time.time()
        with self.transaction() as conn:
            conn.execute("UPDATE approvals SET decision = ?, decided_at = ? WHERE approval_id = ? AND decision IS NULL",
                         (decision, now, approval_id))
            row = conn.execute("SELECT decision FROM approvals WHERE approval_id = ?", (approval_id,)).fetchone()
            conn.execute("DELETE FROM approvals WHERE decided_at < ?", (now - KEEP_S,))
        return row[0] if row else decision
