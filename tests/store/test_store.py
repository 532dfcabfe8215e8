"""The SQLite store: migrations on an empty database, WAL, sqlite-vec, durable de-duplication."""
from __future__ import annotations

import pytest
import sqlite_utils

from bot.store.sqlite import MIGRATIONS

from bot.store.sqlite import SqliteStore
from bot.store.sqlite.db import connect, migrate


async def test_migrations_build_every_table_on_an_empty_database_once(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    tables = set(store.db.table_names())
    assert {"conversations", "messages", "events", "usage", "requests", "feedback", "_migrations"} <= tables
    assert [r["name"] for r in store.db["_migrations"].rows] == [name for name, _ in MIGRATIONS]
    assert migrate(store.db, MIGRATIONS) == []  # a second start applies nothing
    await store.close()


def test_a_failing_migration_leaves_nothing_half_applied(tmp_path):
    db = sqlite_utils.Database(connect(tmp_path / "m.db"))
    broken = [("t_001", "CREATE TABLE a (x INTEGER); CREATE TABLE a (y INTEGER);")]
    with pytest.raises(Exception):
        migrate(db, broken)
    assert not db["a"].exists()
    assert [r["name"] for r in db["_migrations"].rows] == []


async def test_wal_mode_and_sqlite_vec_are_available(tmp_path):
    store = SqliteStore(tmp_path / "w.db")
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("SELECT vec_version()").fetchone()[0].startswith("v0.1")
    await store.close()


async def test_event_claims_survive_a_reopen(tmp_path):
    store = SqliteStore(tmp_path / "e.db")
    assert await store.claim_event("event:Ev1", "msg:C1:1.0") is True
    assert await store.claim_event("event:Ev1") is False
    await store.close()
    reopened = SqliteStore(tmp_path / "e.db")
    assert await reopened.claim_event("msg:C1:1.0") is False  # the same message under a new event id
    assert await reopened.claim_event("event:Ev2", "msg:C1:2.0") is True
    await reopened.close()


async def test_old_event_claims_are_pruned_and_recent_ones_kept(tmp_path):
    store = SqliteStore(tmp_path / "p.db")
    await store.claim_event("event:old")
    await store.claim_event("event:new")
    store.conn.execute("UPDATE events SET received_at = received_at - 8 * 86400 WHERE event_key = 'event:old'")
    assert await store.prune_events() == 1
    assert await store.claim_event("event:old") is True  # forgotten after a week
    assert await store.claim_event("event:new") is False  # still remembered
    await store.close()
