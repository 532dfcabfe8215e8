"""Opening THREADBOT_DATABASE_URL: the driver, the URL, the connection and the schema, each failure one clear line."""
from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import ConfigError
from bot.store.postgres.knowledge_search import configure_search
from bot.store.postgres.migrate import migrate
from bot.store.postgres.schema import MIGRATIONS

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

INSTALL = "pip install 'threadbot[postgres]'"


def _drivers():
    """psycopg, its pool and pgvector, imported only when PostgreSQL is configured."""
    try:
        import pgvector.psycopg  # noqa: F401
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise ConfigError(
            f"THREADBOT_DATABASE_URL is set but the PostgreSQL driver is missing ({exc.name}): run `{INSTALL}`,"
            " or unset THREADBOT_DATABASE_URL to use SQLite."
        ) from None
    return psycopg, psycopg_pool


def check_url(url: str) -> None:
    """A postgresql:// URL that libpq can parse, else ConfigError naming the setting."""
    psycopg, _ = _drivers()
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("THREADBOT_DATABASE_URL must be a postgresql://user:password@host:5432/dbname URL.")
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"THREADBOT_DATABASE_URL is not a valid PostgreSQL URL ({_line(exc)}).") from None


async def open_pool(url: str, *, min_size: int = 2, max_size: int = 20,
                    timeout_s: float = 10.0) -> "AsyncConnectionPool":
    """A connection pool on a migrated database with the vector type registered on every connection."""
    psycopg, psycopg_pool = _drivers()
    from pgvector.psycopg import register_vector_async

    check_url(url)
    # Connect once by hand first: the pool retries failures silently, the operator needs the reason.
    try:
        first = await psycopg.AsyncConnection.connect(url, connect_timeout=int(timeout_s), autocommit=True)
    except psycopg.OperationalError as exc:
        raise ConfigError(
            f"THREADBOT_DATABASE_URL: cannot connect to PostgreSQL ({_line(exc)}); check host, port, user,"
            " password and that the server is running."
        ) from None
    try:
        await migrate(first, MIGRATIONS)
    finally:
        await first.close()

    async def configure(conn) -> None:
        await register_vector_async(conn)
        await configure_search(conn)

    pool = psycopg_pool.AsyncConnectionPool(
        url, min_size=min_size, max_size=max_size, timeout=timeout_s, open=False,
        kwargs={"autocommit": True}, configure=configure,
    )
    await pool.open(wait=True, timeout=timeout_s)
    return pool


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].strip() if text else type(exc).__name__
