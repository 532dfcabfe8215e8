"""Versioned migrations run at start-up under an advisory lock, so replicas starting together migrate once."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterable

from bot.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# The advisory lock key every replica takes while migrating: any fixed 64-bit number unique to threadbot.
MIGRATION_LOCK = 0x7468726561646274  # "threadbt"


async def migrate(conn: "psycopg.AsyncConnection", migrations: Iterable[tuple[str, str]]) -> list[str]:
    """Create the `vector` extension and apply, in order, each migration not yet recorded; returns the
    names this call applied (empty when another replica already did).

    Everything happens in one transaction holding a transaction-level advisory lock: a second
    replica waits on the lock, then finds every migration recorded and applies none. A failure rolls
    the whole run back and releases the lock (also when the connection dies).
    """
    import psycopg

    applied: list[str] = []
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT name FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for name, script in migrations:
                if name in done:
                    continue
                await conn.execute(script)
                await conn.execute("INSERT INTO schema_migrations(name) VALUES (%s)", (name,))
                applied.append(name)
    except (psycopg.errors.FeatureNotSupported, psycopg.errors.UndefinedFile) as exc:
        raise ConfigError(
            "THREADBOT_DATABASE_URL: the database has no pgvector extension available "
            f"({_first_line(exc)}); install pgvector on the server (managed PostgreSQL: enable `vector`)."
        ) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ConfigError(
            "THREADBOT_DATABASE_URL: this user may not create the `vector` extension or the tables "
            f"({_first_line(exc)}); run `CREATE EXTENSION vector;` as an admin or grant the user CREATE."
        ) from None
    if applied:
        log.info("database migrated: %s", ", ".join(applied))
    return applied


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
