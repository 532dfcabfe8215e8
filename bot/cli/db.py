"""`threadbot db copy --to postgresql://…`: move a bot's SQLite database into PostgreSQL (for replicas), with progress."""
from __future__ import annotations

import asyncio
from pathlib import Path

from bot.config import Settings
from bot.errors import ConfigError


def run_copy(settings: Settings, *, to: str, source: Path | None) -> int:
    """Copy THREADBOT_DB (or `source`) into the database at `to`; safe to run again (it resumes)."""
    path = source or settings.db_path
    if not path.is_file():
        raise ConfigError(f"db copy: no SQLite database at {path} (set THREADBOT_DB or pass --from)")
    if not to.startswith(("postgresql://", "postgres://")):
        raise ConfigError("db copy: --to takes a PostgreSQL URL (postgresql://user:password@host/db)")
    asyncio.run(_copy(path, to))
    return 0


async def _copy(path: Path, url: str) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bot.store.copy import copy_sqlite_to_postgres, describe
    from bot.store.postgres import PostgresStore
    from bot.store.sqlite import SqliteStore

    source = SqliteStore(path)
    try:
        target = await PostgresStore.open(url)  # migrates; a bad URL is a ConfigError naming the problem
        try:
            with Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn()) as bar:
                tasks: dict[str, int] = {}

                def progress(table: str, done: int, total: int) -> None:
                    if table not in tasks:
                        tasks[table] = bar.add_task(table, total=total)
                    bar.update(tasks[table], completed=done, total=total)

                written = await copy_sqlite_to_postgres(source, target, progress=progress)
            print(f"copied {path} → PostgreSQL: {describe(written)}")
        finally:
            await target.close()
    finally:
        await source.close()
