"""PostgreSQL store methods for the channel threads the bot is part of (the same behaviour as bot/store/sqlite/threads.py)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

from bot.store.records import SlackThread, ThreadMessage

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

_UPSERT = (
    "INSERT INTO slack_thread_messages(channel_id, ts, thread_ts, user_id, bot_id, text, file_names, tokens)"
    " SELECT %s, ts, %s, u, b, t, f::jsonb, n FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::int[]) AS m(ts, u, b, t, f, n) ON CONFLICT (channel_id, ts) DO UPDATE SET text = excluded.text,"
    " file_names = excluded.file_names, tokens = excluded.tokens,"
    # a placeholder (a question flagged as shown before its message was recorded) gets its author
    " user_id = excluded.user_id, bot_id = excluded.bot_id"
)


def _files(message: ThreadMessage) -> str:
    import json

    return json.dumps(list(message.file_names))


class ThreadsMixin:
    """Every call is one statement or one short transaction, so replicas recording the same thread
    converge: upserts by (channel, ts), marks that only move forward (GREATEST ignores NULL)."""

    pool: "AsyncConnectionPool"

    async def slack_thread(self, channel_id: str, thread_ts: str) -> SlackThread | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT synced_ts, seen_ts, answered FROM slack_threads WHERE channel_id = %s AND thread_ts = %s",
                (channel_id, thread_ts))).fetchone()
        return SlackThread(channel_id, thread_ts, row[0], row[1], bool(row[2])) if row else None

    async def mark_thread(self, channel_id: str, thread_ts: str, *, synced_ts: str | None = None,
                          seen_ts: str | None = None, answered: bool = False, shown_ts: Sequence[str] = ()) -> None:
        """Create the thread's row if needed; move `synced_ts`/`seen_ts` forward (never back); set `answered`;
        flag the messages `shown_ts` as given to the model (a placeholder row if not recorded yet)."""
        async with self.pool.connection() as conn, conn.transaction():
            if shown_ts:
                await conn.execute(
                    "INSERT INTO slack_thread_messages(channel_id, ts, thread_ts, user_id, text, shown)"
                    " SELECT %s, ts, %s, '', '', true FROM unnest(%s::text[]) AS ts"
                    " ON CONFLICT (channel_id, ts) DO UPDATE SET shown = true",
                    (channel_id, thread_ts, sorted(set(shown_ts))))
            await conn.execute(
                "INSERT INTO slack_threads AS s(channel_id, thread_ts, synced_ts, seen_ts, answered, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (channel_id, thread_ts) DO UPDATE SET"
                " synced_ts = GREATEST(s.synced_ts, excluded.synced_ts),"
                " seen_ts = GREATEST(s.seen_ts, excluded.seen_ts),"
                " answered = s.answered OR excluded.answered, updated_at = excluded.updated_at",
                (channel_id, thread_ts, synced_ts, seen_ts, answered, time.time()))

    async def record_thread_messages(self, channel_id: str, thread_ts: str, messages: Sequence[ThreadMessage], *,
                                     synced_ts: str | None = None, advance_synced: bool = False) -> bool:
        """Upsert messages of a thread the bot is part of (False, and nothing written, for any other thread).
        `synced_ts` (or, with `advance_synced`, the newest message) becomes the point up to which the copy
        is complete."""
        async with self.pool.connection() as conn, conn.transaction():
            known = await (await conn.execute(
                "SELECT 1 FROM slack_threads WHERE channel_id = %s AND thread_ts = %s",
                (channel_id, thread_ts))).fetchone()
            if not known:
                return False
            if messages:
                # One row per ts (the last wins, as consecutive upserts would leave it): one
                # INSERT may not touch a row twice.
                latest = {m.ts: m for m in messages}
                rows = sorted(latest.values(), key=lambda m: m.ts)
                await conn.execute(_UPSERT, (channel_id, thread_ts, [m.ts for m in rows], [m.user_id for m in rows],
                                             [m.bot_id for m in rows], [m.text for m in rows],
                                             [_files(m) for m in rows], [m.tokens for m in rows]))
            if advance_synced and messages:
                synced_ts = max(m.ts for m in messages)
            if synced_ts:
                await conn.execute(
                    "UPDATE slack_threads SET synced_ts = %s, updated_at = %s WHERE channel_id = %s"
                    " AND thread_ts = %s AND (synced_ts IS NULL OR synced_ts < %s)",
                    (synced_ts, time.time(), channel_id, thread_ts, synced_ts))
        return True

    async def update_thread_message(self, channel_id: str, message: ThreadMessage) -> bool:
        """An edit: the recorded text and files change, if the message was recorded."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE slack_thread_messages SET text = %s, file_names = %s::jsonb, tokens = %s"
                " WHERE channel_id = %s AND ts = %s", (message.text, _files(message), message.tokens, channel_id, message.ts))
            return cur.rowcount > 0

    async def delete_thread_message(self, channel_id: str, ts: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute("DELETE FROM slack_thread_messages WHERE channel_id = %s AND ts = %s",
                                     (channel_id, ts))
            return cur.rowcount > 0

    async def thread_messages(self, channel_id: str, thread_ts: str, *, after_ts: str | None = None,
                              limit: int = 2000) -> list[ThreadMessage]:
        """The newest `limit` recorded messages after `after_ts` not yet shown to the model, oldest first."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT ts, user_id, text, file_names, bot_id, tokens FROM slack_thread_messages"
                " WHERE channel_id = %s AND thread_ts = %s AND ts > %s AND NOT shown ORDER BY ts DESC LIMIT %s",
                (channel_id, thread_ts, after_ts or "", limit))).fetchall()
        return [ThreadMessage(ts=r[0], user_id=r[1], text=r[2], file_names=tuple(r[3]), bot_id=r[4], tokens=r[5])
                for r in reversed(rows)]
