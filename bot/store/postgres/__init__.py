"""The PostgreSQL + pgvector store: the same interface as SQLite's, for several replicas on one database.

Imported only when THREADBOT_DATABASE_URL is set, so the SQLite path needs no PostgreSQL packages.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, AsyncContextManager

from bot.store.postgres.approvals import ApprovalsMixin
from bot.store.postgres.channel_settings import ChannelSettingsMixin
from bot.store.postgres.buckets import BucketsMixin
from bot.store.postgres.connect import open_pool
from bot.store.postgres.conversations import ConversationsMixin
from bot.store.postgres.knowledge_reads import KnowledgeReads
from bot.store.postgres.thread_order import ThreadOrder
from bot.store.postgres.threads import ThreadsMixin
from bot.store.postgres.turns import TurnsMixin
from bot.store.postgres.usage import UsageMixin

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool


class PostgresStore(ConversationsMixin, UsageMixin, ThreadsMixin, ChannelSettingsMixin, BucketsMixin, TurnsMixin,
                    ApprovalsMixin, KnowledgeReads):
    """bot.store.Store on a PostgreSQL connection pool; every call awaits the driver."""

    shared_by_replicas = True

    def __init__(self, pool: "AsyncConnectionPool", url: str):
        self.pool = pool
        self.url = url
        self._order = ThreadOrder(pool, url)

    def thread_turn(self, channel_id: str, thread_ts: str, ts: str) -> AsyncContextManager[None]:
        return self._order.turn(channel_id, thread_ts, ts)

    @classmethod
    async def open(cls, url: str, *, max_size: int = 20) -> "PostgresStore":
        """Connect, migrate (once across replicas) and return the store; ConfigError names the setting."""
        return cls(await open_pool(url, max_size=max_size), url)

    async def close(self) -> None:
        await self._order.close()
        await self.pool.close()
