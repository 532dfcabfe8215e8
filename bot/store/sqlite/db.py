"""Opening the SQLite database: a driver that can load extensions, WAL mode, and migrations."""
from __future__ import annotations

import sqlite3 as _stdlib_sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

import sqlite_utils
import sqlite_vec

from bot.errors import ConfigError

Migration = tuple[str, str]  # (unique name, SQL script)


def _driver() -> ModuleType:
    """The stdlib sqlite3 when it can load extensions, else pysqlite3 (needed for sqlite-vec)."""
    probe = _stdlib_sqlite3.connect(":memory:")
    try:
        if hasattr(probe, "enable_load_extension"):
            return _stdlib_sqlite3
    finally:
        probe.close()
    try:
        import pysqlite3.dbapi2 as pysqlite3  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(
            "This Python's sqlite3 cannot load extensions and pysqlite3 is not installed: "
            "run `pip install pysqlite3-binary` (Linux) or use a Python built with extension loading."
        ) from None
    return pysqlite3


sqlite3 = _driver()
IntegrityError = sqlite3.IntegrityError
Connection = Any  # the driver chosen above: stdlib sqlite3 or pysqlite3, same API


def connect(path: Path | str) -> Connection:
    """One connection with sqlite-vec loaded, WAL journal and a busy timeout."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def migrate(db: sqlite_utils.Database, migrations: Iterable[Migration]) -> list[str]:
    """Apply, in order, each migration not yet recorded in _migrations; return the names applied."""
    if not db["_migrations"].exists():
        db["_migrations"].create({"name": str, "applied_at": str}, pk="name")
    done = {row["name"] for row in db["_migrations"].rows}
    applied = []
    for name, script in migrations:
        if name in done:
            continue
        # executescript commits on its own; wrap the script so a failure leaves nothing half-applied.
        try:
            db.conn.executescript(
                f"BEGIN;\n{script}\nINSERT INTO _migrations(name, applied_at)"
                f" VALUES ('{name}', strftime('%Y-%m-%dT%H:%M:%fZ','now'));\nCOMMIT;"
            )
        except Exception:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
