"""bot/slack/dedupe.py in the real Bolt app: each event and each answered message gets through once, all acked."""
from __future__ import annotations

import asyncio
import logging

import pytest

from bot.slack.dedupe import claim_keys
from bot.slack.listeners.events import answered_as
from tests.fakes import slack as fs
from tests.slackapp import Bot, running_bot

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def bot(tmp_path):
    async with running_bot(tmp_path) as running:
        yield running


def answers_in(bot: Bot, channel: str, thread_ts: str) -> list[str]:
    return [m.text for m in bot.bot_messages(channel, thread_ts)]


async def test_a_retried_event_is_acked_and_answered_once(bot: Bot):
    event = fs.app_mention("hello once")
    payload = fs.event_callback(event)
    await bot.deliver(payload)
    await bot.final_text(fs.CHANNEL_ID, event["ts"], "echo: hello once")
    for retry in (1, 2):
        result = await bot.slack.deliver_http(bot.events_url, payload, retry_num=retry)
        assert result.status == 200 and result.elapsed < 3.0
    await asyncio.sleep(0.5)
    assert len(bot.model.requests) == 1
    assert answers_in(bot, fs.CHANNEL_ID, event["ts"]) == ["echo: hello once"]


async def test_one_message_as_two_event_types_is_answered_once(bot: Bot):
    # A mention in a DM arrives as app_mention and as message.im, under two event ids.
    dm = fs.dm_message(f"<@{fs.BOT_USER_ID}> just once please")
    mention = {**fs.app_mention("just once please", channel=fs.DM_CHANNEL_ID, ts=dm["ts"]), "channel_type": "im"}
    await bot.deliver(dm)
    await bot.deliver(mention)
    await bot.final_text(fs.DM_CHANNEL_ID, dm["ts"], "echo: just once please")
    await asyncio.sleep(0.5)
    assert len(bot.model.requests) == 1


async def test_an_ignored_event_does_not_keep_the_answering_one_out(bot: Bot):
    # A channel message the listeners ignore (another bot's), then the mention for the same ts.
    mention = fs.app_mention("still answered")
    ignored = {**fs.message_event(mention["text"], ts=mention["ts"]), "bot_id": "B0OTHER"}
    await bot.deliver(ignored)
    await bot.deliver(mention)
    await bot.final_text(fs.CHANNEL_ID, mention["ts"], "echo: still answered")


async def test_duplicates_are_logged_without_running_a_listener(bot: Bot, caplog):
    event = fs.dm_message("log me")
    payload = fs.event_callback(event)
    await bot.deliver(payload)
    await bot.final_text(fs.DM_CHANNEL_ID, event["ts"], "echo: log me")
    with caplog.at_level(logging.INFO, logger="bot.slack.dedupe"):
        await bot.deliver(payload)
    assert any("dropping duplicate message event" in r.getMessage() and payload["event_id"] in r.getMessage()
               for r in caplog.records)


async def test_keys_of_each_kind_of_request(bot: Bot):
    async def keys(event: dict) -> list[str]:
        body = fs.event_callback(event, event_id="Ev1")
        surface = await answered_as(bot.services, event, bot_user_id=fs.BOT_USER_ID)
        return claim_keys(body, answered=surface is not None)

    assert await keys(fs.app_mention("hi", ts="1.5")) == ["event:Ev1", f"msg:{fs.CHANNEL_ID}:1.5"]
    assert await keys(fs.dm_message("hi", ts="1.6")) == ["event:Ev1", f"msg:{fs.DM_CHANNEL_ID}:1.6"]
    # Acked, never answered: its ts stays free for the event that does answer the message.
    assert await keys(fs.dm_message("x", subtype="message_changed", ts="2.5")) == ["event:Ev1"]
    assert await keys(fs.message_event("in a channel, not for us", ts="2.6")) == ["event:Ev1"]
    assert claim_keys({"type": "event_callback", "event": fs.app_mention("hi", ts="1.5")}, answered=True) == \
        [f"msg:{fs.CHANNEL_ID}:1.5"]
