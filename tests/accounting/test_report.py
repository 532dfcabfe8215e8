"""/usage reports: exact numbers from SQL aggregates, rendering, and who may see what."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from bot.config import Settings
from bot.store import UsageRow
from bot.store.sqlite import SqliteStore
from bot.store import UsageTotals
from bot.accounting.report import (
    NOT_ADMIN,
    build_report,
    format_cost,
    handle_usage_command,
    render_slack,
    render_text,
    sparkline,
    to_json,
)

NOW = datetime(2026, 11, 26, 20, 48, tzinfo=timezone.utc)
TODAY = NOW.replace(hour=0, minute=0)


def row(user, model, surface, at, inp, out, cw, cr, cost):
    return UsageRow("T1", user, "C1", None, surface, model, inp, out, cw, cr, Decimal(cost), 900, "end_turn",
                    created_at=at.timestamp())


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(tmp_path / "t.db")
    for r in [
        row("U1", "claude-sonnet-4-6", "mention", TODAY.replace(hour=10), 12_345, 678, 1_000, 5_000, "0.0123"),
        row("U1", "gpt-4o-mini", "dm", TODAY.replace(hour=11), 100, 50, 0, 0, "0.000045"),
        row("U1", "claude-sonnet-4-6", "mention", TODAY - timedelta(days=3), 1_000, 1_000, 0, 0, "0.018"),
        row("U1", "claude-sonnet-4-6", "assistant", TODAY - timedelta(days=10), 2_000, 2_000, 0, 0, "1.5"),
        row("U1", "claude-sonnet-4-6", "mention", TODAY - timedelta(days=40), 9, 9, 0, 0, "9"),
        row("U2", "claude-opus-4-6", "mention", TODAY.replace(hour=1), 500, 500, 0, 0, "2.25"),
        row("U3", "claude-sonnet-4-6", "dm", TODAY - timedelta(days=5), 10, 20, 0, 0, "0.5"),
    ]:
        await s.record_usage(r)
    yield s
    await s.close()


ADMINS = Settings(_env_file=None, THREADBOT_ADMINS="UADMIN")


async def test_own_report_exact_numbers(store):
    report = await build_report(store, user_id="U1", days=30, now=NOW)
    assert [(p.label, p.totals) for p in report.periods] == [
        ("Today", UsageTotals(2, 12_445, 728, 1_000, 5_000, Decimal("0.012345"))),
        ("Last 7 days", UsageTotals(3, 13_445, 1_728, 1_000, 5_000, Decimal("0.030345"))),
        ("Last 30 days", UsageTotals(4, 15_445, 3_728, 1_000, 5_000, Decimal("1.530345"))),
    ]
    assert report.periods[2].since == datetime(2026, 10, 28, tzinfo=timezone.utc)
    assert len(report.daily) == 30 and report.daily[0].day.isoformat() == "2026-10-28"
    assert report.daily[-1].totals.cost_usd == Decimal("0.012345")
    assert [(b.key, b.totals.calls, b.totals.cost_usd) for b in report.by_model] == [
        ("claude-sonnet-4-6", 3, Decimal("1.530300")), ("gpt-4o-mini", 1, Decimal("0.000045"))]
    assert [(b.key, b.totals.calls) for b in report.by_surface] == [("assistant", 1), ("mention", 2), ("dm", 1)]
    assert report.top_users == [] and (report.feedback.up, report.feedback.down) == (0, 0)


async def test_slack_rendering(store):
    text = render_slack(await build_report(store, user_id="U1", days=30, now=NOW), caller_id="U1")
    lines = text.splitlines()
    assert lines[0] == "*Your usage*"
    assert lines[1] == ("• *Today*: 2 calls, $0.0123 — 12,445 input · 728 output · 1,000 cache write · "
                        "5,000 cache read")
    assert lines[2].startswith("• *Last 7 days*: 3 calls, $0.0303 — 13,445 input")
    assert lines[3].startswith("• *Last 30 days*: 4 calls, $1.53 — 15,445 input · 3,728 output")
    assert lines[4] == "Daily cost, last 30 days (Oct 28 – Nov 26): `" + "▁" * 19 + "█" + "▁" * 6 + "▂▁▁▂`"
    assert "• `gpt-4o-mini`: 1 call, <$0.0001" in lines
    assert "3.2k" not in text and "k " not in text


async def test_team_report_for_admin(store):
    text = await handle_usage_command(store, ADMINS, caller_id="UADMIN", text="team", now=NOW)
    lines = text.splitlines()
    assert lines[0] == "*Workspace usage*"
    assert lines[1].startswith("• *Today*: 3 calls, $2.26 — 12,945 input")  # 0.012345 + 2.25
    top = lines.index("*Top users* (last 30 days)")
    assert lines[top + 1: top + 4] == [
        "• <@U2>: 1 call, $2.25, 1,000 tokens",
        "• <@U1>: 4 calls, $1.53, 25,173 tokens",
        "• <@U3>: 1 call, $0.50, 30 tokens",
    ]


@pytest.mark.parametrize("arg", ["<@U2|bob>", "<@U2>", "U2"])
async def test_admin_can_see_another_user(store, arg):
    text = await handle_usage_command(store, ADMINS, caller_id="UADMIN", text=arg, now=NOW)
    assert text.splitlines()[0] == "*Usage of <@U2>*"
    assert "• *Today*: 1 call, $2.25 — 500 input · 500 output" in text


@pytest.mark.parametrize("arg", ["team", "<@U2|bob>", "<@U2>", "U2 7"])
async def test_non_admin_is_refused_for_others(store, arg):
    assert await handle_usage_command(store, ADMINS, caller_id="U1", text=arg, now=NOW) == NOT_ADMIN


async def test_self_via_mention_and_days(store):
    text = await handle_usage_command(store, ADMINS, caller_id="U1", text="<@U1|me> 7", now=NOW)
    assert text.splitlines()[0] == "*Your usage*"
    assert "Last 30 days" not in text and "*Last 7 days*: 3 calls" in text
    assert "Daily cost, last 14 days (Nov 13 – Nov 26)" in text


async def test_bad_arguments(store):
    assert "didn't understand `banana`" in await handle_usage_command(store, ADMINS, caller_id="U1", text="banana", now=NOW)
    assert "couldn't tell who `@bob`" in await handle_usage_command(store, ADMINS, caller_id="U1", text="@bob", now=NOW)
    assert await handle_usage_command(store, ADMINS, caller_id="U1", text="999", now=NOW) == "Pick between 1 and 365 days."
    assert "`/usage team`" in await handle_usage_command(store, ADMINS, caller_id="U1", text="help", now=NOW)


async def test_cli_text_and_json(store):
    report = await build_report(store, user_id="U1", days=30, now=NOW)
    text = render_text(report)
    assert "Usage for user U1 — 2026-11-26 20:48 UTC" in text
    today_line = next(line for line in text.splitlines() if line.startswith("Today"))
    assert today_line.split() == ["Today", "2", "12,445", "728", "1,000", "5,000", "$0.0123"]
    data = to_json(report)
    assert data["periods"][0] == {
        "label": "Today", "days": 1, "since": "2026-11-26T00:00:00+00:00", "calls": 2, "input_tokens": 12_445,
        "output_tokens": 728, "cache_creation_input_tokens": 1_000, "cache_read_input_tokens": 5_000,
        "cost_usd": "0.012345",
    }
    assert len(data["daily"]) == 30 and data["feedback"] == {"up": 0, "down": 0}


async def test_feedback_counts_in_the_report(tmp_path):
    s = SqliteStore(tmp_path / "t.db")
    recent = datetime(2026, 11, 20, tzinfo=timezone.utc).timestamp()
    for i in range(12):
        await s.record_feedback(team_id="T1", channel_id="C1", message_ts=f"1.{i}", user_id="U1", vote="up", now=recent)
    for i in range(3):
        await s.record_feedback(team_id="T1", channel_id="C1", message_ts=f"2.{i}", user_id="U2", vote="down", now=recent)
    old = datetime(2026, 9, 1, tzinfo=timezone.utc).timestamp()  # outside the 30-day window
    await s.record_feedback(team_id="T1", channel_id="C1", message_ts="3.0", user_id="U2", vote="down", now=old)
    report = await build_report(s, user_id=None, days=30, now=NOW)
    assert (report.feedback.up, report.feedback.down) == (12, 3)
    assert "*Feedback* (last 30 days): 👍 12 · 👎 3" in render_slack(report)
    await s.close()


async def test_sql_sums_are_exact(tmp_path):
    s = SqliteStore(tmp_path / "t.db")
    for i in range(1_000):
        await s.record_usage(row("U1", "m", "dm", NOW - timedelta(seconds=i), 1, 1, 0, 0, "0.000003"))
    assert (await s.usage_totals(since=0)).cost_usd == Decimal("0.003")
    assert await s.usage_totals(since=0, user_id="U9") == UsageTotals()
    await s.close()


def test_formatting_helpers():
    assert [format_cost(Decimal(v)) for v in ("0", "0.00004", "0.01234", "0.09994", "0.09996", "0.5", "1234.5")] == [
        "$0.00", "<$0.0001", "$0.0123", "$0.0999", "$0.10", "$0.50", "$1,234.50"]
    assert sparkline([0, 1, 2, 4, 8]) == "▁▂▃▅█"
    assert sparkline([0, 0]) == "▁▁"
