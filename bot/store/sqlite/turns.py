"""Durable turns: every accepted question (and other long work), who owns it, how far it got, until done.

A turn is recorded in the same transaction as its event claim, so an event that was acked is never
forgotten. Its owner is one running process (`owner` id) holding a lease it renews; a start-up or a
live replica adopts the unfinished turns of an owner that is gone and finishes or closes them.
"""
from __future__ import annotations

import json
import time
from typing import Any

from bot.store.records import NewTurn, OpenTurn
from bot.store.sqlite.base import SqliteBase

MIGRATIONS = [
    (
        "turns_001_init",
        """
        CREATE TABLE turns (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            owner TEXT NOT NULL,
            done INTEGER NOT NULL DEFAULT 0,
            outcome TEXT,
            team_id TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            thread_ts TEXT NOT NULL,
            ts TEXT NOT NULL,
            user_id TEXT NOT NULL,
            surface TEXT NOT NULL,
            text TEXT NOT NULL,
            details_json TEXT NOT NULL DEFAULT '{}',
            reply_ts TEXT,
            shown_text TEXT,
            streaming INTEGER NOT NULL DEFAULT 0,
            conversation_id INTEGER,
            question_id INTEGER,
            accepted_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX turns_open ON turns(done, owner);
        CREATE TABLE turn_owners (
            owner TEXT PRIMARY KEY,
            lease_until REAL NOT NULL
        );
        """,
    ),
]

_COLUMNS = ("id, kind, owner, team_id, channel_id, thread_ts, ts, user_id, surface, text, details_json, accepted_at,"
            " reply_ts, shown_text, streaming, conversation_id, question_id")


def _open_turn(row: Any) -> OpenTurn:
    return OpenTurn(id=row[0], kind=row[1], owner=row[2], team_id=row[3], channel_id=row[4], thread_ts=row[5],
                    ts=row[6], user_id=row[7], surface=row[8], text=row[9], details=json.loads(row[10]),
                    accepted_at=row[11], reply_ts=row[12], shown_text=row[13], streaming=bool(row[14]),
                    conversation_id=row[15], question_id=row[16])


class TurnsMixin(SqliteBase):
    async def claim_turn(self, *keys: str, turn: NewTurn, owner: str) -> int | None:
        """Claim the event keys and record the turn in one transaction; None if a key was claimed before."""
        now = time.time()
        with self.transaction() as conn:
            for key in keys:
                if conn.execute("SELECT 1 FROM events WHERE event_key = ?", (key,)).fetchone():
                    return None
            conn.executemany("INSERT INTO events(event_key, received_at) VALUES (?, ?)", [(k, now) for k in keys])
            return conn.execute(
                "INSERT INTO turns(kind, owner, team_id, channel_id, thread_ts, ts, user_id, surface, text,"
                " details_json, reply_ts, accepted_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (turn.kind, owner, turn.team_id, turn.channel_id, turn.thread_ts, turn.ts, turn.user_id,
                 turn.surface, turn.text, json.dumps(turn.details), turn.reply_ts, now, now)).lastrowid

    async def turn_shown(self, turn_id: int, *, reply_ts: str, shown_text: str, streaming: bool) -> None:
        """The reply's (last) message and what it shows now; `streaming` once answer text is visible."""
        with self.transaction() as conn:
            conn.execute("UPDATE turns SET reply_ts = ?, shown_text = ?, streaming = MAX(streaming, ?), updated_at = ?"
                         " WHERE id = ? AND done = 0", (reply_ts, shown_text, int(streaming), time.time(), turn_id))

    async def turn_details(self, turn_id: int, *, surface: str, details: dict[str, Any]) -> None:
        """What the listener learnt after the claim (an assistant thread, the channel being viewed)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT details_json FROM turns WHERE id = ?", (turn_id,)).fetchone()
            if row is not None:
                conn.execute("UPDATE turns SET surface = ?, details_json = ?, updated_at = ? WHERE id = ?",
                             (surface, json.dumps({**json.loads(row[0]), **details}), time.time(), turn_id))

    async def turn_question_saved(self, turn_id: int, *, conversation_id: int, question_id: int) -> None:
        """The user message is in the conversation's history: a resumed answer must not add it again."""
        with self.transaction() as conn:
            conn.execute("UPDATE turns SET conversation_id = ?, question_id = ?, updated_at = ? WHERE id = ?",
                         (conversation_id, question_id, time.time(), turn_id))

    async def finish_turn(self, turn_id: int, *, outcome: str) -> bool:
        """Mark the turn done ("answered", "failed", "closed", …); False if it was done already."""
        with self.transaction() as conn:
            return conn.execute("UPDATE turns SET done = 1, outcome = ?, updated_at = ? WHERE id = ? AND done = 0",
                                (outcome, time.time(), turn_id)).rowcount > 0

    async def turn_outcome(self, turn_id: int) -> str | None:
        """How a turn ended (None while it is open)."""
        row = self.row("SELECT outcome FROM turns WHERE id = ?", (turn_id,))
        return row[0] if row else None

    async def renew_owner(self, owner: str, *, lease_s: float) -> None:
        """This process is alive for `lease_s` more seconds (a heartbeat)."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO turn_owners(owner, lease_until) VALUES (?, ?) ON CONFLICT (owner)"
                         " DO UPDATE SET lease_until = excluded.lease_until", (owner, time.time() + lease_s))

    async def release_owner(self, owner: str) -> None:
        """A clean stop: the owner's open turns (if any) are orphans at once."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM turn_owners WHERE owner = ?", (owner,))

    async def adopt_turns(self, owner: str, *, everyone_else_gone: bool = False, limit: int = 10_000
                          ) -> list[OpenTurn]:
        """Take over the open turns of owners that are gone (lease expired or released; with
        `everyone_else_gone`, every owner but `owner`), oldest first; each is adopted by one caller only."""
        now = time.time()
        gone = "owner != ?" if everyone_else_gone else (
            "owner != ? AND owner NOT IN (SELECT owner FROM turn_owners WHERE lease_until >= ?)")
        params: tuple[Any, ...] = (owner,) if everyone_else_gone else (owner, now)
        with self.transaction() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM turns WHERE done = 0 AND {gone} ORDER BY id LIMIT ?",
                                (*params, limit)).fetchall()
            conn.executemany("UPDATE turns SET owner = ?, updated_at = ? WHERE id = ?",
                             [(owner, now, r[0]) for r in rows])
            conn.execute("DELETE FROM turn_owners WHERE lease_until < ?", (now - 86400,))
        return [_open_turn(r) for r in rows]

    async def prune_turns(self, older_than_s: float = 86400) -> int:
        """Forget done turns (the event claims keep de-duplicating)."""
        with self.transaction() as conn:
            return conn.execute("DELETE FROM turns WHERE done = 1 AND updated_at < ?",
                                (time.time() - older_than_s,)).rowcount
