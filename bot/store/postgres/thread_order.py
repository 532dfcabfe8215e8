"""The turns of one Slack thread one at a time and in message order, across every replica.

A turn registers as a waiter (thread, its message ts) and runs once it is the oldest live waiter of
its thread and holds the thread's session advisory lock. The locks live on one connection per
replica, so a replica that dies (or loses the connection) releases its threads at once; a waiter
row is alive while its replica renews it, so a dead replica's waiters stop blocking others after
WAITER_TTL_S.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, AsyncIterator

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

POLL_S = 0.05
RENEW_S = 1.0
WAITER_TTL_S = 5.0


class ThreadOrder:
    def __init__(self, pool: "AsyncConnectionPool", url: str):
        self.pool = pool
        self.url = url
        self.replica = uuid.uuid4().hex[:12]
        self._conn: "psycopg.AsyncConnection | None" = None
        self._conn_lock = asyncio.Lock()

    async def _locks(self) -> "psycopg.AsyncConnection":
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        return self._conn

    async def _lock_call(self, sql: str, key: str) -> bool:
        async with self._conn_lock:  # one connection holds every lock of this replica
            conn = await self._locks()
            row = await (await conn.execute(sql, (key,))).fetchone()
            return bool(row[0])

    @asynccontextmanager
    async def turn(self, channel_id: str, thread_ts: str, ts: str) -> AsyncIterator[None]:
        key = f"thread:{channel_id}:{thread_ts}"
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO thread_waiters(channel_id, thread_ts, ts, replica, alive_until)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (channel_id, thread_ts, ts) DO UPDATE"
                " SET replica = excluded.replica, alive_until = excluded.alive_until",
                (channel_id, thread_ts, ts, self.replica, time.time() + WAITER_TTL_S))
        renewed = time.monotonic()
        try:
            while True:
                async with self.pool.connection() as conn:
                    if time.monotonic() - renewed > RENEW_S:
                        await conn.execute(
                            "UPDATE thread_waiters SET alive_until = %s WHERE channel_id = %s AND thread_ts = %s"
                            " AND ts = %s", (time.time() + WAITER_TTL_S, channel_id, thread_ts, ts))
                        renewed = time.monotonic()
                    cur = await conn.execute(
                        "SELECT min(ts) FROM thread_waiters WHERE channel_id = %s AND thread_ts = %s"
                        " AND alive_until > %s", (channel_id, thread_ts, time.time()))
                    oldest = (await cur.fetchone())[0]
                if (oldest is None or float(ts) <= float(oldest)) and await self._lock_call(
                        "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", key):
                    break
                await asyncio.sleep(POLL_S)
            try:
                yield
            finally:
                await self._lock_call("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", key)
        finally:
            async with self.pool.connection() as conn:
                await conn.execute("DELETE FROM thread_waiters WHERE channel_id = %s AND thread_ts = %s AND ts = %s",
                                   (channel_id, thread_ts, ts))

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
