"""The SQLite backend: one file in WAL mode, each call a short transaction on the event-loop thread."""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from bot.store.sqlite import (approvals, assistant_threads, blobs, buckets, channel_settings, conversations, feedback,
                              knowledge, requests, threads, turns, usage)
from bot.store.sqlite.approvals import ApprovalsMixin
from bot.store.sqlite.assistant_threads import AssistantThreadsMixin
from bot.store.sqlite.blobs import BlobsMixin
from bot.store.sqlite.buckets import BucketsMixin
from bot.store.sqlite.channel_settings import ChannelSettingsMixin
from bot.store.sqlite.conversations import ConversationsMixin
from bot.store.sqlite.db import migrate
from bot.store.sqlite.events import EventsMixin
from bot.store.sqlite.feedback import FeedbackMixin
from bot.store.sqlite.knowledge_reads import KnowledgeReads
from bot.store.sqlite.requests import RequestsMixin
from bot.store.sqlite.threads import ThreadsMixin
from bot.store.sqlite.turns import TurnsMixin
from bot.store.sqlite.usage import UsageMixin

# In the order they were first applied (a migration's name is its identity).
MIGRATIONS = [
    *conversations.MIGRATIONS,
    *usage.MIGRATIONS,
    *requests.MIGRATIONS,
    *knowledge.MIGRATIONS,
    *feedback.MIGRATIONS,
    *assistant_threads.MIGRATIONS,
    *threads.MIGRATIONS,
    *blobs.MIGRATIONS,
    *channel_settings.MIGRATIONS,
    *buckets.MIGRATIONS,
    *turns.MIGRATIONS,
    *approvals.MIGRATIONS,
]


class SqliteStore(EventsMixin, ConversationsMixin, UsageMixin, RequestsMixin, FeedbackMixin, AssistantThreadsMixin,
                  ThreadsMixin, BlobsMixin, ChannelSettingsMixin, BucketsMixin, TurnsMixin, ApprovalsMixin,
                  KnowledgeReads):
    """bot.store.Store on one SQLite file. The coroutines run their SQL synchronously: each is a short
    transaction, cheaper than a hop to a thread; long whole-scope reads go to a thread themselves."""

    shared_by_replicas = False  # one threadbot process owns the file

    def __init__(self, path: Path | str):
        super().__init__(path)
        with self.lock:
            migrate(self.db, MIGRATIONS)

    @asynccontextmanager
    async def thread_turn(self, channel_id: str, thread_ts: str, ts: str) -> AsyncIterator[None]:
        """One process owns the file: the conversation core's per-thread lock orders its turns."""
        yield

    async def close(self) -> None:
        with self.lock:
            self.conn.close()
