"""Two real `threadbot run` replicas on one PostgreSQL database behave as one bot."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.botproc import BotProcess
from tests.e2e.test_run import deliver, final_reply, replies
from tests.fakes import slack as fs

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def replicas(fakes, tmp_path: Path, pg_url):
    slack, model = fakes
    bots = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        bots.append(BotProcess(slack_api_url=slack.api_url, anthropic_url=model.base_url, db_path=folder / "unused.db",
                               socket_mode=False, log_path=folder / "bot.log",
                               extra_env={"THREADBOT_DATABASE_URL": pg_url}))
    for bot in bots:
        bot.start()
    yield bots
    for bot in bots:
        assert bot.stop() == 0, bot.log()
    for bot in bots:
        assert not (bot.log_path.parent / "unused.db").exists()  # PostgreSQL, not SQLite


async def test_the_same_event_delivered_to_both_replicas_is_answered_once(fakes, replicas):
    slack, model = fakes
    a, b = replicas
    event = fs.app_mention("hello replicas")
    payload = fs.event_callback(event)
    results = await asyncio.gather(slack.deliver_http(a.events_url, payload),
                                   slack.deliver_http(b.events_url, payload, retry_num=1))
    assert all(r.status == 200 and r.elapsed < 3.0 for r in results)
    await final_reply(slack, fs.CHANNEL_ID, event["ts"], "echo: hello replicas")
    # The same message under another event id, on the other replica, is recognised too.
    await deliver(slack, b, event)
    await asyncio.sleep(1.0)
    assert len(model.requests) == 1
    assert len(replies(slack, fs.CHANNEL_ID, event["ts"])) == 1


async def test_a_thread_whose_turns_alternate_between_replicas_keeps_one_history(fakes, replicas):
    slack, model = fakes
    a, b = replicas
    first = fs.app_mention("one")
    await deliver(slack, a, first)
    await final_reply(slack, fs.CHANNEL_ID, first["ts"], "echo: one")
    for text, bot in (("two", b), ("three", a)):
        follow = fs.app_mention(text, thread_ts=first["ts"])
        await deliver(slack, bot, follow)
        await final_reply(slack, fs.CHANNEL_ID, first["ts"], f"echo: {text}")
    last = model.requests[-1]
    users = [m for m in last["messages"] if m["role"] == "user"]
    assert len(model.requests) == 3 and len(users) == 3
    assert "one" in str(users[0]["content"]) and "three" in str(users[-1]["content"])
