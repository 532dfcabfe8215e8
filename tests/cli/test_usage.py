"""`threadbot usage`: the report as text and JSON from the bot's database, and its argument errors."""
from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import pytest

from bot.cli import main
from bot.store import UsageRow
from bot.store.sqlite import SqliteStore


def _row(user: str, tokens_in: int, cost: str) -> UsageRow:
    return UsageRow(team_id="T1", user_id=user, channel_id="C1", thread_ts="1.0", surface="mention",
                    model="claude-sonnet-4-6", input_tokens=tokens_in, output_tokens=10,
                    cache_creation_input_tokens=0, cache_read_input_tokens=0, cost_usd=Decimal(cost),
                    latency_ms=5, stop_reason="end_turn", created_at=time.time())


def test_usage_text_and_json(tmp_path, monkeypatch, capsys):
    db = tmp_path / "bot.db"

    async def seed() -> None:  # the CLI runs its own event loop, so this test stays synchronous
        store = SqliteStore(db)
        await store.record_usage(_row("U1", 1_234_567, "0.5"))
        await store.record_usage(_row("U2", 100, "0.25"))
        await store.close()

    asyncio.run(seed())
    monkeypatch.setenv("THREADBOT_DB", str(db))

    assert main(["usage", "--user", "U1", "--days", "7", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["user_id"] == "U1" and report["days"] == 7
    today = report["periods"][0]
    assert (today["calls"], today["input_tokens"], today["cost_usd"]) == (1, 1_234_567, "0.5")

    assert main(["usage", "--user", "U1", "--user", "U2", "--json"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert [r["user_id"] for r in both] == ["U1", "U2"]

    assert main(["usage"]) == 0
    assert "1,234,667" in capsys.readouterr().out  # everyone, exact counts with separators


def test_usage_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("THREADBOT_DB", str(tmp_path / "missing.db"))
    assert main(["usage"]) == 2
    assert "THREADBOT_DB: no database at" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(SystemExit) as exit_:
        main(["usage", "--days", "0"])
    assert exit_.value.code == 2 and "pick between 1 and 365 days" in capsys.readouterr().err


def test_usage_reads_postgresql_when_the_database_url_is_set(tmp_path, monkeypatch, capsys, pg_url):
    from bot.store.postgres import PostgresStore

    async def seed() -> None:
        store = await PostgresStore.open(pg_url)
        await store.record_usage(_row("U1", 4_321, "0.5"))
        await store.close()

    asyncio.run(seed())
    monkeypatch.setenv("THREADBOT_DATABASE_URL", pg_url)
    monkeypatch.setenv("THREADBOT_DB", str(tmp_path / "missing.db"))  # replicas have no SQLite file
    assert main(["usage", "--user", "U1", "--json"]) == 0
    today = json.loads(capsys.readouterr().out)["periods"][0]
    assert (today["calls"], today["input_tokens"]) == (1, 4_321)
    assert not (tmp_path / "missing.db").exists()
