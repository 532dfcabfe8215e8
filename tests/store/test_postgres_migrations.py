"""PostgreSQL start-up: migrations applied once by replicas starting together, and one clear line per bad setting."""
from __future__ import annotations

import asyncio

import pytest

from bot.errors import ConfigError

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')")

from bot.store.postgres.connect import open_pool  # noqa: E402
from bot.store.postgres.migrate import migrate  # noqa: E402
from bot.store.postgres.schema import MIGRATIONS  # noqa: E402


async def test_ten_replicas_starting_together_migrate_once(pg_url):
    conns = [await psycopg.AsyncConnection.connect(pg_url, autocommit=True) for _ in range(10)]
    try:
        results = await asyncio.gather(*(migrate(conn, MIGRATIONS) for conn in conns))
    finally:
        for conn in conns:
            await conn.close()
    names = [name for name, _ in MIGRATIONS]
    assert sorted(results, key=len) == [[]] * 9 + [names]
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        rows = await (await conn.execute("SELECT name FROM schema_migrations ORDER BY name")).fetchall()
        assert [r[0] for r in rows] == sorted(names)
        ext = await (await conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'")).fetchone()
        assert ext == (1,)


async def test_a_restart_applies_only_new_migrations(pg_url):
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        assert await migrate(conn, MIGRATIONS[:2]) == [MIGRATIONS[0][0], MIGRATIONS[1][0]]
        assert await migrate(conn, MIGRATIONS) == [name for name, _ in MIGRATIONS[2:]]
        assert await migrate(conn, MIGRATIONS) == []


async def test_a_failing_migration_leaves_nothing_applied(pg_url):
    broken = [*MIGRATIONS[:1], ("999_broken", "CREATE TABLE x (id int); SELECT no_such_function();")]
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedFunction):
            await migrate(conn, broken)
        found = await (await conn.execute("SELECT to_regclass('schema_migrations'), to_regclass('x')")).fetchone()
        assert found == (None, None)
        assert await migrate(conn, MIGRATIONS[:1]) == [MIGRATIONS[0][0]]


async def test_open_pool_migrates_and_registers_the_vector_type(pg_url):
    import numpy as np

    pool = await open_pool(pg_url)
    try:
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT '[1,2,3]'::vector")).fetchone()
            assert np.array_equal(row[0].to_numpy(), np.array([1, 2, 3], dtype=np.float32))
            count = await (await conn.execute("SELECT count(*) FROM schema_migrations")).fetchone()
            assert count == (len(MIGRATIONS),)
    finally:
        await pool.close()


async def test_a_refused_connection_is_one_line_naming_the_setting(pg_server):
    url = f"postgresql://postgres:{pg_server.password}@127.0.0.1:1/postgres"
    with pytest.raises(ConfigError) as err:
        await open_pool(url, timeout_s=3)
    message = str(err.value)
    assert message.startswith("THREADBOT_DATABASE_URL: cannot connect") and "\n" not in message
    assert "refused" in message


async def test_a_wrong_password_is_one_line_and_does_not_echo_it(pg_server):
    url = f"postgresql://postgres:not-the-password@127.0.0.1:{pg_server.port}/postgres"
    with pytest.raises(ConfigError) as err:
        await open_pool(url, timeout_s=3)
    assert "THREADBOT_DATABASE_URL" in str(err.value) and "not-the-password" not in str(err.value)
    assert "password authentication failed" in str(err.value)


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgresql://u@h/db?sslmode=sometimes"])
async def test_a_malformed_url_names_the_setting(url):
    with pytest.raises(ConfigError) as err:
        await open_pool(url, timeout_s=1)
    assert "THREADBOT_DATABASE_URL" in str(err.value) and "\n" not in str(err.value)


async def test_a_server_without_pgvector_says_what_to_do(pg_server, tmp_path):
    # The session's server has pgvector, so the failure tested is the other way a managed server
    # refuses it: a user without the right to create the extension.
    admin = pg_server.url()
    url = pg_server.create_database(template="template0")
    name = url.rsplit("/", 1)[1]
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute("DROP ROLE IF EXISTS plain_user")
        await conn.execute("CREATE ROLE plain_user LOGIN PASSWORD 'pw'")
        await conn.execute(f'GRANT CONNECT ON DATABASE "{name}" TO plain_user')
    try:
        plain = f"postgresql://plain_user:pw@127.0.0.1:{pg_server.port}/{name}"
        with pytest.raises(ConfigError) as err:
            await open_pool(plain, timeout_s=3)
        assert str(err.value).startswith("THREADBOT_DATABASE_URL:") and "CREATE EXTENSION vector" in str(err.value)
    finally:
        pg_server.drop_database(url)
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            await conn.execute("DROP ROLE plain_user")
