"""👍/👎 under answers: one vote per user per message, recorded from block_actions, shown in the usage report."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from bot.config import load_settings
from bot.slack.feedback import FEEDBACK_ACTION_ID
from bot.store.sqlite import SqliteStore
from bot.accounting.report import build_report, handle_usage_command
from tests.fakes import slack as fs
from tests.slackapp import running_bot
from tests.store_rows import feedback_votes

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def store():
    s = SqliteStore(":memory:")
    yield s
    await s.close()



async def counts_are(store, expected: tuple[int, int]) -> bool:
    return await store.feedback_counts(since=0) == expected

async def test_one_vote_per_user_per_message_and_a_new_click_replaces_it(store):
    now = time.time()
    assert await store.record_feedback(team_id="T", channel_id="C1", message_ts="1.1", user_id="U1", vote="up",
                                 model="claude-a", thread_ts="1.0", now=now) is True
    assert await store.record_feedback(team_id="T", channel_id="C1", message_ts="1.1", user_id="U1", vote="down",
                                 now=now + 5) is False
    await store.record_feedback(team_id="T", channel_id="C1", message_ts="1.1", user_id="U2", vote="up", now=now)
    await store.record_feedback(team_id="T", channel_id="C1", message_ts="2.2", user_id="U1", vote="up", now=now)
    votes = feedback_votes(store, channel_id="C1", message_ts="1.1")
    assert [(v.user_id, v.vote, v.model, v.thread_ts) for v in votes] == [
        ("U1", "down", "claude-a", "1.0"), ("U2", "up", None, None)]
    assert await store.feedback_counts(since=0) == (2, 1)
    assert await store.feedback_counts(since=0, user_id="U1") == (1, 1)
    assert await store.feedback_counts(since=now + 1) == (0, 1)  # counted when cast or last changed
    with pytest.raises(ValueError):
        await store.record_feedback(team_id="T", channel_id="C1", message_ts="3.3", user_id="U1", vote="meh")  # type: ignore[arg-type]


async def test_usage_report_shows_feedback(store):
    await store.record_feedback(team_id="T", channel_id="C1", message_ts="1.1", user_id="U1", vote="up")
    await store.record_feedback(team_id="T", channel_id="C1", message_ts="1.2", user_id="U2", vote="down")
    report = await build_report(store, user_id=None, now=datetime.now(timezone.utc))
    assert (report.feedback.up, report.feedback.down) == (1, 1)
    settings = load_settings(THREADBOT_ADMINS="UADMIN")
    text = await handle_usage_command(store, settings, caller_id="UADMIN", text="team", now=datetime.now(timezone.utc))
    assert "*Feedback* (last 30 days): 👍 1 · 👎 1" in text


async def test_clicks_are_recorded_acknowledged_and_reported(tmp_path):
    async with running_bot(tmp_path, THREADBOT_ADMINS=fs.USER_ID) as bot:
        event = fs.app_mention("what is 2+2?")
        await bot.deliver(event)
        answer = await bot.final_text(fs.CHANNEL_ID, event["ts"], "echo: what is 2+2?")
        buttons = answer.blocks[-1]["elements"][0]
        assert buttons["action_id"] == FEEDBACK_ACTION_ID
        assert answer.blocks[0] == {"type": "section", "text": {"type": "mrkdwn", "text": "echo: what is 2+2?"}}

        def click(button: str, user: str = fs.USER_ID) -> dict:
            return fs.block_actions(FEEDBACK_ACTION_ID, buttons[button]["value"], user_id=user,
                                    channel_id=fs.CHANNEL_ID, message_ts=answer.ts, thread_ts=event["ts"])

        await bot.deliver(click("negative_button"))
        await bot.slack.wait_for(lambda: len(bot.slack.ephemerals) == 1)
        await bot.deliver(click("positive_button"))  # changed their mind
        await bot.slack.wait_for(lambda: len(bot.slack.ephemerals) == 2)
        [vote] = feedback_votes(bot.services.store, channel_id=fs.CHANNEL_ID, message_ts=answer.ts)
        assert (vote.user_id, vote.vote, vote.model, vote.thread_ts) == (fs.USER_ID, "up", bot.services.model, event["ts"])
        thanks = bot.slack.ephemerals[-1]
        assert thanks["user"] == fs.USER_ID and thanks["thread_ts"] == event["ts"] and "Thanks" in thanks["text"]

        await bot.deliver(click("negative_button", user="U0BOB"))
        await bot.slack.wait_for(lambda: counts_are(bot.services.store, (1, 1)))
        response_url = bot.slack.new_response_url()
        result = await bot.slack.deliver_http(bot.events_url, fs.command_form("/usage", "team", response_url=response_url))
        assert result.status == 200
        body = result.body if result.headers.get("Content-Type", "").startswith("text/") else result.json()["text"]
        assert "👍 1 · 👎 1" in body
