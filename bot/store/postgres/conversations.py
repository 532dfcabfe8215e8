"""PostgreSQL store methods for event claims, threads and their history, blobs, feedback and assistant threads."""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Sequence

from bot.messages import Message
from bot.store.records import AssistantThread, StoredMessage, Vote

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool


class ConversationsMixin:
    """Every write is one statement or one short transaction; uniqueness is the database's, so two
    replicas racing on the same key get one winner."""

    pool: "AsyncConnectionPool"

    # --- events --------------------------------------------------------------------------------

    async def claim_event(self, *keys: str) -> bool:
        """Record these event keys; False if any was seen before (a retry or redelivery), also by
        another replica: a concurrent insert of the same key waits for the first to commit."""
        from psycopg import Rollback

        unique = sorted(set(keys))  # one lock order for every replica
        claimed = False
        async with self.pool.connection() as conn, conn.transaction() as tx:
            cur = await conn.execute(
                "INSERT INTO events(event_key, received_at) SELECT k, %s FROM unnest(%s::text[]) AS k"
                " ON CONFLICT (event_key) DO NOTHING RETURNING event_key", (time.time(), unique))
            claimed = len(await cur.fetchall()) == len(unique)
            if not claimed:
                raise Rollback(tx)  # another claim holds one of the keys: keep none of them
        return claimed

    async def prune_events(self, older_than_s: float = 7 * 86400) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute("DELETE FROM events WHERE received_at < %s", (time.time() - older_than_s,))
            return cur.rowcount

    # --- conversations -------------------------------------------------------------------------

    async def conversation_id(self, *, team_id: str, channel_id: str, thread_ts: str, user_id: str) -> int:
        """The id of the conversation for this thread, created on first use."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO conversations(team_id, channel_id, thread_ts, user_id, created_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (channel_id, thread_ts) DO NOTHING RETURNING id",
                (team_id, channel_id, thread_ts, user_id, time.time()))
            row = await cur.fetchone()
            if row is None:
                cur = await conn.execute(
                    "SELECT id FROM conversations WHERE channel_id = %s AND thread_ts = %s", (channel_id, thread_ts))
                row = await cur.fetchone()
            return row[0]

    async def history(self, conversation_id: int) -> list[StoredMessage]:
        async with self.pool.connection() as conn:
            # ::text: the stored JSON exactly as written (json keeps its text), parsed here.
            cur = await conn.execute(
                "SELECT id, role, content::text, token_count FROM messages WHERE conversation_id = %s ORDER BY id",
                (conversation_id,))
            rows = await cur.fetchall()
        return [StoredMessage(id=r[0], message=Message.from_json({"role": r[1], "content": json.loads(r[2])}),
                              token_count=r[3]) for r in rows]

    async def last_role(self, conversation_id: int) -> str | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT role FROM messages WHERE conversation_id = %s ORDER BY id DESC LIMIT 1", (conversation_id,))
            row = await cur.fetchone()
        return row[0] if row else None

    async def append_messages(self, conversation_id: int, messages: list[Message], *,
                              token_counts: list[int | None] | None = None, user_id: str | None = None,
                              slack_ts: str | None = None) -> list[int]:
        """Append messages atomically (one statement: a tool_use and its tool_result land together)."""
        if not messages:
            return []
        counts = token_counts or [None] * len(messages)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO messages(conversation_id, role, content, token_count, user_id, slack_ts, created_at)"
                " SELECT %s, r, c::json, n, %s, %s, %s FROM unnest(%s::text[], %s::text[], %s::int[])"
                " WITH ORDINALITY AS u(r, c, n, i) ORDER BY i RETURNING id",
                (conversation_id, user_id, slack_ts, time.time(), [m.role for m in messages],
                 [json.dumps(m.to_json()["content"]) for m in messages], list(counts)))
            return sorted(r[0] for r in await cur.fetchall())

    # --- blobs --------------------------------------------------------------------------------

    async def put_blob(self, sha256: str, media_type: str, data: bytes) -> None:
        """Keep `data` under its sha256; the same bytes shared twice (on any replica) are stored once."""
        async with self.pool.connection() as conn:
            await conn.execute("INSERT INTO blobs(sha256, media_type, data, created_at) VALUES (%s, %s, %s, %s)"
                               " ON CONFLICT (sha256) DO NOTHING", (sha256, media_type, data, time.time()))

    async def get_blobs(self, sha256s: Sequence[str]) -> dict[str, bytes]:
        """The stored bytes for each known sha256 (unknown ones are left out)."""
        if not sha256s:
            return {}
        async with self.pool.connection() as conn:
            rows = await (await conn.execute("SELECT sha256, data FROM blobs WHERE sha256 = ANY(%s)",
                                             (list(sha256s),))).fetchall()
        return {sha: bytes(data) for sha, data in rows}

    # --- feedback ------------------------------------------------------------------------------

    async def record_feedback(self, *, team_id: str, channel_id: str, message_ts: str, user_id: str, vote: Vote,
                              model: str | None = None, thread_ts: str | None = None,
                              now: float | None = None) -> bool:
        """One vote per user per message: a second click replaces the first. True if it was new."""
        if vote not in ("up", "down"):
            raise ValueError(f"vote must be 'up' or 'down', got {vote!r}")
        now = time.time() if now is None else now
        async with self.pool.connection() as conn:
            # xmax = 0 only on a freshly inserted row: tells "new" from "replaced" in one statement.
            cur = await conn.execute(
                "INSERT INTO feedback AS f(team_id, channel_id, message_ts, thread_ts, user_id, model, vote,"
                " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (channel_id, message_ts, user_id) DO UPDATE SET vote = excluded.vote,"
                " model = COALESCE(excluded.model, f.model), thread_ts = COALESCE(excluded.thread_ts, f.thread_ts),"
                " updated_at = excluded.updated_at RETURNING (xmax = 0)",
                (team_id, channel_id, message_ts, thread_ts, user_id, model, vote, now, now))
            return bool((await cur.fetchone())[0])

    async def feedback_counts(self, *, since: float, user_id: str | None = None) -> tuple[int, int]:
        """(👍, 👎) votes cast (or last changed) since `since`; `user_id` limits it to one voter."""
        sql = ("SELECT count(*) FILTER (WHERE vote = 'up'), count(*) FILTER (WHERE vote = 'down') FROM feedback"
               " WHERE updated_at >= %s")
        args: list[object] = [since]
        if user_id is not None:
            sql += " AND user_id = %s"
            args.append(user_id)
        async with self.pool.connection() as conn:
            up, down = await (await conn.execute(sql, args)).fetchone()
        return int(up), int(down)

    # --- assistant threads ---------------------------------------------------------------------

    async def record_assistant_thread(self, *, channel_id: str, thread_ts: str, user_id: str | None = None,
                                      context_channel_id: str | None = None,
                                      context_team_id: str | None = None) -> None:
        now = time.time()
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO assistant_threads AS a(channel_id, thread_ts, user_id, context_channel_id,"
                " context_team_id, started_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (channel_id, thread_ts) DO UPDATE SET user_id = COALESCE(excluded.user_id, a.user_id),"
                " context_channel_id = excluded.context_channel_id, context_team_id = excluded.context_team_id,"
                " updated_at = excluded.updated_at",
                (channel_id, thread_ts, user_id, context_channel_id, context_team_id, now, now))

    async def assistant_thread(self, channel_id: str, thread_ts: str) -> AssistantThread | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT channel_id, thread_ts, user_id, context_channel_id, context_team_id FROM assistant_threads"
                " WHERE channel_id = %s AND thread_ts = %s", (channel_id, thread_ts))
            row = await cur.fetchone()
        return AssistantThread(*row) if row else None

    async def claim_assistant_title(self, channel_id: str, thread_ts: str) -> bool:
        """True exactly once per assistant thread, whichever replica asks first."""
        now = time.time()
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO assistant_threads(channel_id, thread_ts, started_at, updated_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", (channel_id, thread_ts, now, now))
            cur = await conn.execute(
                "UPDATE assistant_threads SET titled = true WHERE channel_id = %s AND thread_ts = %s"
                " AND NOT titled", (channel_id, thread_ts))
            return cur.rowcount == 1
