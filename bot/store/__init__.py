"""The only place that writes SQL: the Store interface, its records, and open_store() choosing a backend."""
from __future__ import annotations

from typing import TYPE_CHECKING

from bot.store.interface import Store
from bot.store.records import (
    Admission,
    AssistantThread,
    ChannelSettings,
    KnowledgeDocument,
    NewChunk,
    NewDocument,
    NewTurn,
    OpenTurn,
    SettingChange,
    SlackThread,
    StoredChunk,
    StoredMessage,
    ThreadMessage,
    UsageRow,
    UsageTotals,
)

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = ["Admission", "AssistantThread", "ChannelSettings", "KnowledgeDocument", "NewChunk", "NewDocument",
           "NewTurn", "OpenTurn", "SettingChange", "SlackThread", "Store", "StoredChunk", "StoredMessage",
           "ThreadMessage", "UsageRow", "UsageTotals", "open_store"]


async def open_store(settings: "Settings") -> Store:
    """The configured backend, migrated and ready: PostgreSQL when THREADBOT_DATABASE_URL is set (its
    packages imported only then), else SQLite at THREADBOT_DB."""
    if settings.database_url is not None:
        from bot.store.postgres import PostgresStore

        return await PostgresStore.open(settings.database_url.get_secret_value())
    from bot.store.sqlite import SqliteStore

    return SqliteStore(settings.db_path)
