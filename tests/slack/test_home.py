"""The App Home tab through the real Bolt app: a user's usage and documents, an admin's channels and spend,
fresh on every opening, valid Block Kit (slack_sdk.models), and a views.publish failure only logged."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from slack_sdk.models.views import View

from bot.store import NewDocument, UsageRow
from tests.fakes import slack as fs
from tests.slackapp import Bot, running_bot

ADMIN = "U0ADMIN"
HELP = "C0HELP"


@pytest.fixture
async def bot(tmp_path):
    async with running_bot(tmp_path, THREADBOT_ADMINS=ADMIN, THREADBOT_DAILY_USD="20") as b:
        b.slack.add_user(ADMIN, name="admin")
        yield b


def home_opened(user: str, tab: str = "home") -> dict:
    return {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": tab, "event_ts": fs.next_ts()}


def usage(user: str, at: datetime, inp: int, out: int, cost: str) -> UsageRow:
    return UsageRow(fs.TEAM_ID, user, fs.CHANNEL_ID, None, "mention", "claude-sonnet-4-6", inp, out, 100, 2_000,
                    Decimal(cost), 500, "end_turn", created_at=at.timestamp())


async def add_document(bot: Bot, title: str, *, scope: str, by: str) -> int:
    store = bot.services.store
    document_id = await store.knowledge_begin_document(NewDocument(
        scope=scope, title=title, mimetype="text/plain", kind="text", size_bytes=10, uploaded_by=by,
        slack_file_id=None, permalink=None, embedding_model="test", embedding_dim=4))
    await store.knowledge_publish_document(document_id, sha256=title, chunk_count=0)
    return document_id


async def open_home(bot: Bot, user: str) -> dict:
    published = len(bot.slack.calls("views.publish"))
    await bot.deliver(home_opened(user))
    await bot.slack.wait_for(lambda: len(bot.slack.calls("views.publish")) > published, what="views.publish")
    view = bot.slack.home_views[user]
    View(**view).validate_json()  # raises SlackObjectFormationError on anything Block Kit refuses
    return view


def texts(view: dict) -> list[str]:
    found = []
    for block in view["blocks"]:
        if block["type"] in ("section", "header"):
            found.append(block["text"]["text"])
        elif block["type"] == "context":
            found += [e["text"] for e in block["elements"]]
    return found


async def test_a_users_home_shows_their_usage_and_documents_and_nothing_of_the_admins(bot: Bot):
    now = datetime.now(timezone.utc)
    store = bot.services.store
    await store.record_usage(usage(fs.USER_ID, now, 1_234_567, 8_901, "3.50"))
    await store.record_usage(usage(fs.USER_ID, now - timedelta(days=3), 10_000, 1_000, "0.25"))
    await store.record_usage(usage(fs.USER_ID, now - timedelta(days=20), 5, 5, "0.0001"))
    await store.record_usage(usage(ADMIN, now, 99_999, 9, "1.00"))  # someone else's
    mine = await add_document(bot, "VPN setup guide", scope=f"user:{fs.USER_ID}", by=fs.USER_ID)
    await add_document(bot, "Admin's secret plan", scope=f"user:{ADMIN}", by=ADMIN)

    view = await open_home(bot, fs.USER_ID)
    usage_text, documents_text = texts(view)[1], texts(view)[2]
    lines = usage_text.splitlines()
    assert lines[0] == "*Your usage*"
    assert lines[1] == ("• *Today*: 1 call, $3.50 — 1,234,567 input · 8,901 output · 100 cache write · "
                        "2,000 cache read")
    assert lines[2] == ("• *Last 7 days*: 2 calls, $3.75 — 1,244,567 input · 9,901 output · 200 cache write · "
                        "4,000 cache read")
    assert lines[3].startswith("• *Last 30 days*: 3 calls, $3.75 — 1,244,572 input · 9,906 output")
    spark = lines[4].split("`")[1]
    assert len(spark) == 30 and spark[-1] == "█" and spark[-4] != "▁" and spark[0] == "▁"
    assert documents_text.splitlines() == ["*Your documents* (1)",
                                           f"• `{mine}` VPN setup guide — private to <@{fs.USER_ID}>, 0 chunks"]
    everything = "\n".join(texts(view))
    assert "secret plan" not in everything and "Workspace spend" not in everything and "Channel settings" not in everything


async def test_an_admins_home_adds_the_channels_settings_and_todays_spend(bot: Bot):
    now = datetime.now(timezone.utc)
    await bot.services.store.record_usage(usage(fs.USER_ID, now, 1_000, 1_000, "4.00"))
    await bot.services.store.record_usage(usage(ADMIN, now, 1_000, 1_000, "1.00"))
    await bot.services.store.record_usage(usage(ADMIN, now - timedelta(days=2), 1_000, 1_000, "7.00"))  # not today
    await bot.command("/threadbot", "model claude-haiku-4-5", user_id=ADMIN, channel_id=HELP)
    await bot.command("/threadbot", "autoanswer on", user_id=ADMIN, channel_id=HELP)

    found = texts(await open_home(bot, ADMIN))
    assert "*Workspace spend today*: $5.00 of $20.00 (25% of the daily limit)" in found
    (channels,) = [t for t in found if t.startswith("*Channel settings*")]
    assert channels.splitlines() == [
        "*Channel settings* (1 channel)",
        f"• <#{HELP}>: Prompt: none (my default instructions); Model: `claude-haiku-4-5`; Tools: all (the default);"
        " Auto-answer: on"]
    assert found[1].splitlines()[1].startswith("• *Today*: 1 call, $1.00")  # the admin's own usage


async def test_the_home_tab_is_rebuilt_each_time_it_is_opened(bot: Bot):
    first = texts(await open_home(bot, fs.USER_ID))
    assert first[1].splitlines()[1].startswith("• *Today*: 0 calls, $0.00")
    assert first[2].startswith("*Your documents*\nNone yet.")
    await bot.services.store.record_usage(usage(fs.USER_ID, datetime.now(timezone.utc), 10, 20, "0.02"))
    second = texts(await open_home(bot, fs.USER_ID))
    assert second[1].splitlines()[1] == "• *Today*: 1 call, $0.0200 — 10 input · 20 output · 100 cache write · 2,000 cache read"


async def test_the_messages_tab_publishes_nothing(bot: Bot):
    await bot.deliver(home_opened(fs.USER_ID, tab="messages"))
    await asyncio.sleep(0.3)
    assert bot.slack.calls("views.publish") == []


async def test_a_views_publish_failure_is_logged_and_never_shown(bot: Bot, caplog):
    bot.slack.fail_next("views.publish", "invalid_arguments")
    with caplog.at_level(logging.WARNING, logger="bot.slack.listeners.home"):
        await bot.deliver(home_opened(fs.USER_ID))
        await bot.slack.wait_for(lambda: bot.slack.calls("views.publish"), what="views.publish")
        await bot.slack.wait_for(lambda: "views.publish" in caplog.text, what="the log line")
    assert f"views.publish for {fs.USER_ID} failed: invalid_arguments" in caplog.text
    assert fs.USER_ID not in bot.slack.home_views
    assert bot.slack.calls("chat.postMessage") == [] and bot.slack.ephemerals == []
    assert (await open_home(bot, fs.USER_ID))["type"] == "home"  # the next opening works
