"""/usage through the real Bolt app and `threadbot usage` as a subprocess: exact numbers, who may see what."""
from __future__ import annotations

import json
import logging
import subprocess
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from bot.slack.listeners import commands as slash
from bot.slack.listeners import usage as usage_listener
from bot.store import UsageRow
from bot.store.sqlite import SqliteStore
from bot.store import Store
from bot.accounting.report import NOT_ADMIN
from tests.botproc import THREADBOT
from tests.fakes import slack as fs
from tests.slackapp import running_bot

ADMIN = "U0ADMIN"
BOB = "U0BOB"


def row(user: str, at: datetime, inp: int, out: int, cw: int, cr: int, cost: str, *,
        model: str = "claude-sonnet-4-6", surface: str = "mention") -> UsageRow:
    return UsageRow(fs.TEAM_ID, user, fs.CHANNEL_ID, None, surface, model, inp, out, cw, cr, Decimal(cost), 700,
                    "end_turn", created_at=at.timestamp())


async def fill(store: Store, now: datetime) -> None:
    """Alice: two calls today, one 3 days ago, one 20 days ago. Bob: one today."""
    today = now
    for r in [
        row(fs.USER_ID, today, 1_234_000, 8_000, 2_000, 30_000, "3.831"),
        row(fs.USER_ID, today, 567, 901, 0, 0, "0.015216"),
        row(fs.USER_ID, now - timedelta(days=3), 10_000, 1_000, 0, 0, "0.045"),
        row(fs.USER_ID, now - timedelta(days=20), 4, 5, 0, 0, "0.000087"),
        row(BOB, today, 50_000, 2_000, 0, 0, "0.18", model="claude-opus-4-6", surface="dm"),
    ]:
        await store.record_usage(r)


async def test_own_usage_is_an_ephemeral_ack_with_exact_numbers(tmp_path):
    async with running_bot(tmp_path) as bot:
        await fill(bot.services.store, datetime.now(timezone.utc))
        result, response_url = await bot.command("/usage")
        body = result.json()
        assert body["response_type"] == "ephemeral"
        text = body["text"]
        lines = text.splitlines()
        assert lines[0] == "*Your usage*"
        assert lines[1] == ("• *Today*: 2 calls, $3.85 — 1,234,567 input · 8,901 output · 2,000 cache write · "
                            "30,000 cache read")
        assert lines[2] == ("• *Last 7 days*: 3 calls, $3.89 — 1,244,567 input · 9,901 output · "
                            "2,000 cache write · 30,000 cache read")
        assert lines[3].startswith("• *Last 30 days*: 4 calls, $3.89 — 1,244,571 input · 9,906 output")
        assert lines[4].startswith("Daily cost, last 30 days (")
        spark = lines[4].split("`")[1]
        assert len(spark) == 30 and spark[-1] == "█" and spark[0] == "▁"
        assert "U0BOB" not in text and "Top users" not in text and "50,000" not in text
        # Answered in the ack itself: nothing posted to the channel, nothing sent to response_url.
        assert bot.slack.calls("chat.postMessage") == [] and bot.slack.calls("chat.postEphemeral") == []
        assert bot.slack.responses[response_url] == []
        assert bot.model.requests == []


async def test_others_usage_is_refused_for_non_admins_and_shown_to_admins(tmp_path):
    async with running_bot(tmp_path, THREADBOT_ADMINS=f"{ADMIN}, UOTHERADMIN") as bot:
        await fill(bot.services.store, datetime.now(timezone.utc))
        for text in ("team", f"<@{BOB}|bob>", BOB):
            result, _ = await bot.command("/usage", text)
            assert result.json()["text"] == NOT_ADMIN

        result, _ = await bot.command("/usage", "team", user_id=ADMIN)
        team = result.json()["text"]
        assert team.startswith("*Workspace usage*\n• *Today*: 3 calls, $4.03 — 1,284,567 input · 10,901 output")
        assert f"• <@{fs.USER_ID}>: 4 calls, $3.89, 1,286,477 tokens" in team
        assert f"• <@{BOB}>: 1 call, $0.18, 52,000 tokens" in team

        result, _ = await bot.command("/usage", f"<@{BOB}|bob> 7", user_id=ADMIN)
        bob = result.json()["text"].splitlines()
        assert bob[0] == f"*Usage of <@{BOB}>*"
        assert bob[1] == "• *Today*: 1 call, $0.18 — 50,000 input · 2,000 output · 0 cache write · 0 cache read"
        assert bob[2].startswith("• *Last 7 days*: 1 call, $0.18")
        assert not any("Last 30 days" in line for line in bob)

        result, _ = await bot.command("/usage", "@bob", user_id=ADMIN)
        assert "autocomplete" in result.json()["text"]


async def test_slow_report_is_acked_at_once_and_follows_via_response_url(tmp_path, monkeypatch):
    monkeypatch.setattr(slash, "ACK_WITHIN_S", 0)  # as if the database were slow
    async with running_bot(tmp_path) as bot:
        await fill(bot.services.store, datetime.now(timezone.utc))
        result, response_url = await bot.command("/usage")
        assert result.json() == {"text": usage_listener.HOLDING_LINE, "response_type": "ephemeral"}
        posted = await bot.slack.wait_for(lambda: bot.slack.responses[response_url], what="the report")
        assert len(posted) == 1 and posted[0]["response_type"] == "ephemeral"
        assert posted[0]["text"].startswith("*Your usage*\n• *Today*: 2 calls, $3.85 — 1,234,567 input")


async def test_a_broken_store_gives_a_short_message_with_a_reference_not_a_trace(tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="bot.slack.listeners.commands")
    async with running_bot(tmp_path) as bot:
        await bot.services.store.close()  # every query now fails inside the report
        result, _ = await bot.command("/usage")
        text = result.json()["text"]
        assert text.startswith(f":warning: {usage_listener.FAILURE} (ref `")
        assert "Traceback" not in text and "sqlite" not in text.lower()
        ref = text.split("ref `")[1].split("`")[0]
        assert any(ref in r.getMessage() and r.exc_info for r in caplog.records)


def run_cli(*args: str, db: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(THREADBOT), "usage", *args], env={"PATH": "", "HOME": str(cwd), "THREADBOT_DB": str(db)},
                          cwd=cwd, capture_output=True, text=True, timeout=60)


async def test_cli_usage_reports_exact_numbers_per_user_and_for_the_workspace(tmp_path):
    db = tmp_path / "bot.db"
    store = SqliteStore(db)
    await fill(store, datetime.now(timezone.utc))
    await store.close()

    result = run_cli("--user", fs.USER_ID, "--user", BOB, "--days", "7", "--json", db=db, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    alice, bob = json.loads(result.stdout)
    assert alice["user_id"] == fs.USER_ID and alice["days"] == 7
    assert [(p["label"], p["calls"], p["input_tokens"], p["output_tokens"], p["cache_creation_input_tokens"],
             p["cache_read_input_tokens"], p["cost_usd"]) for p in alice["periods"]] == [
        ("Today", 2, 1_234_567, 8_901, 2_000, 30_000, "3.846216"),
        ("Last 7 days", 3, 1_244_567, 9_901, 2_000, 30_000, "3.891216"),
    ]
    assert len(alice["daily"]) == 14 and alice["daily"][-1]["calls"] == 2
    assert bob["periods"][0]["cost_usd"] == "0.18" and bob["by_model"][0]["model"] == "claude-opus-4-6"

    text = run_cli(db=db, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert out.startswith("Usage for the whole workspace")
    assert "Last 30 days" in out and "1,294,571" in out and "$4.07" in out
    assert "Top users (last 30 days)" in out and BOB in out

    missing = run_cli(db=tmp_path / "nope.db", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip().startswith("threadbot: THREADBOT_DB:")
    assert not (tmp_path / "nope.db").exists()
    bad_days = run_cli("--days", "0", db=db, cwd=tmp_path)
    assert bad_days.returncode == 2 and "--days" in bad_days.stderr
