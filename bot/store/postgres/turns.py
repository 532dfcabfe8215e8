"""PostgreSQL store methods for durable turns and their owners' leases (see bot/store/sqlite/turns.py).

Replicas share the table: a claim is the events insert and the turn insert in one transaction, and
adopting takes rows with FOR UPDATE SKIP LOCKED, so two live replicas never adopt the same turn.
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from bot.store.records import NewTurn, OpenTurn

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

_COLUMNS = ("id, kind, owner, team_id, channel_id, thread_ts, ts, user_id, surface, text, details, accepted_at,"
            " reply_ts, shown_text, streaming, conversation_id, question_id")


def _open_turn(row: Any) -> OpenTurn:
    details = row[10] if isinstance(row[10], dict) else json.loads(row[10])
    return OpenTurn(id=row[0], kind=row[1], owner=row[2], team_id=row[3], channel_id=row[4], thread_ts=row[5],
                    ts=row[6], user_id=row[7], surface=row[8], text=row[9], details=details, accepted_at=row[11],
                    reply_ts=row[12], shown_text=row[13], streaming=row[14], conversation_id=row[15],
                    question_id=row[16])


class TurnsMixin:
    pool: "AsyncConnectionPool"

    async def claim_turn(self, *keys: str, turn: NewTurn, owner: str) -> int | None:
        from psycopg import Rollback

        now = time.time()
        unique = sorted(set(keys))
        turn_id: int | None = None
        async with self.pool.connection() as conn, conn.transaction() as tx:
            if unique:
                cur = await conn.execute(
                    "INSERT INTO events(event_key, received_at) SELECT k, %s FROM unnest(%s::text[]) AS k"
                    " ON CONFLICT (event_key) DO NOTHING RETURNING event_key", (now, unique))
                if len(await cur.fetchall()) != len(unique):
                    raise Rollback(tx)  # claimed before (maybe by another replica): keep none of the keys
            cur = await conn.execute(
                "INSERT INTO turns(kind, owner, team_id, channel_id, thread_ts, ts, user_id, surface, text, details,"
                " reply_ts, accepted_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " RETURNING id",
                (turn.kind, owner, turn.team_id, turn.channel_id, turn.thread_ts, turn.ts, turn.user_id, turn.surface,
                 turn.text, json.dumps(turn.details), turn.reply_ts, now, now))
            turn_id = (await cur.fetchone())[0]
        return turn_id

    async def turn_shown(self, turn_id: int, *, reply_ts: str, shown_text: str, streaming: bool) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE turns SET reply_ts = %s, shown_text = %s, streaming = streaming OR %s,"
                               " updated_at = %s WHERE id = %s AND NOT done",
                               (reply_ts, shown_text, streaming, time.time(), turn_id))

    async def turn_details(self, turn_id: int, *, surface: str, details: dict[str, Any]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE turns SET surface = %s, details = details || %s::jsonb, updated_at = %s"
                               " WHERE id = %s", (surface, json.dumps(details), time.time(), turn_id))

    async def turn_question_saved(self, turn_id: int, *, conversation_id: int, question_id: int) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE turns SET conversation_id = %s, question_id = %s, updated_at = %s WHERE id = %s",
                               (conversation_id, question_id, time.time(), turn_id))

    async def finish_turn(self, turn_id: int, *, outcome: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute("UPDATE turns SET done = true, outcome = %s, updated_at = %s"
                                     " WHERE id = %s AND NOT done", (outcome, time.time(), turn_id))
            return cur.rowcount > 0

    async def turn_outcome(self, turn_id: int) -> str | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT outcome FROM turns WHERE id = %s", (turn_id,))
            row = await cur.fetchone()
            return row[0] if row else None

    async def renew_owner(self, owner: str, *, lease_s: float) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("INSERT INTO turn_owners(owner, lease_until) VALUES (%s, %s) ON CONFLICT (owner)"
                               " DO UPDATE SET lease_until = excluded.lease_until", (owner, time.time() + lease_s))

    async def release_owner(self, owner: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM turn_owners WHERE owner = %s", (owner,))

    async def adopt_turns(self, owner: str, *, everyone_else_gone: bool = False, limit: int = 10_000
                          ) -> list[OpenTurn]:
        now = time.time()
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                f"UPDATE turns SET owner = %s, updated_at = %s WHERE id IN ("
                f" SELECT id FROM turns WHERE NOT done AND owner <> %s AND (%s OR owner NOT IN"
                f"  (SELECT owner FROM turn_owners WHERE lease_until >= %s))"
                f" ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING {_COLUMNS}",
                (owner, now, owner, everyone_else_gone, now, limit))
            rows = await cur.fetchall()
            await conn.execute("DELETE FROM turn_owners WHERE lease_until < %s", (now - 86400,))
        return sorted((_open_turn(r) for r in rows), key=lambda t: t.id)

    async def prune_turns(self, older_than_s: float = 86400) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute("DELETE FROM turns WHERE done AND updated_at < %s", (time.time() - older_than_s,))
            return cur.rowcount
