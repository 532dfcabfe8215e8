"""Two real `threadbot run` replicas on one PostgreSQL database behave as one bot."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot.slack.reply import PLACEHOLDER
from tests.botproc import BotProcess
from tests.e2e.test_crash_recovery import INTERRUPTED, LONG, assert_valid_history, only_reply
from tests.e2e.test_run import deliver, final_reply, replies
from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply

pytestmark = pytest.mark.timeout(180)

LEASE_S = 3  # THREADBOT_REPLICA_LEASE_S for the kill tests: a dead replica's turns are adoptable within seconds


@contextmanager
def running_replicas(fakes, tmp_path: Path, pg_url: str, **env: str) -> Iterator[list[BotProcess]]:
    slack, model = fakes
    bots = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        bots.append(BotProcess(slack_api_url=slack.api_url, anthropic_url=model.base_url, db_path=folder / "unused.db",
                               socket_mode=False, log_path=folder / "bot.log",
                               extra_env={"THREADBOT_DATABASE_URL": pg_url, **env}))
    try:
        for bot in bots:
            bot.start()
        yield bots
    finally:
        codes = [bot.stop() for bot in bots]
    for bot, code in zip(bots, codes):
        assert code == 0, bot.log()
    for bot in bots:
        assert not (bot.log_path.parent / "unused.db").exists()  # PostgreSQL, not SQLite


@pytest.fixture
def replicas(fakes, tmp_path: Path, pg_url):
    with running_replicas(fakes, tmp_path, pg_url) as bots:
        yield bots


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


async def follow_up_on(slack, model, bot: BotProcess, thread_ts: str) -> None:
    """A follow-up in the thread, on the surviving replica, gets a normal answer from a valid history."""
    follow = fs.app_mention("and now?", thread_ts=thread_ts)
    await deliver(slack, bot, follow)
    await final_reply(slack, fs.CHANNEL_ID, thread_ts, "echo: and now?", timeout=30)
    assert_valid_history(model.requests[-1])


async def test_a_replica_killed_mid_stream_is_closed_by_the_other_with_the_notice(fakes, tmp_path, pg_url):
    slack, model = fakes
    with running_replicas(fakes, tmp_path, pg_url, THREADBOT_REPLICA_LEASE_S=str(LEASE_S)) as (a, b):
        model.add(Reply.text(LONG, chunk_chars=4, token_delay_s=0.05))
        event = fs.app_mention("tell me about Porto")
        await deliver(slack, a, event)
        partial = await slack.wait_for(
            lambda: only_reply(slack, event["ts"], lambda m: m.text != PLACEHOLDER and len(m.text) > 20),
            timeout=15, what="a partial answer from replica a")
        a.kill()
        shown = replies(slack, fs.CHANNEL_ID, event["ts"])[0].text
        assert LONG.startswith(shown.rstrip()) and shown.rstrip() != LONG.rstrip()  # killed mid-answer
        # Replica b notices that a's lease ran out and ends a's answer, in a's message, without a model call.
        closed = await slack.wait_for(lambda: only_reply(slack, event["ts"], lambda m: INTERRUPTED in m.text),
                                      timeout=LEASE_S * 5 + 10, what="the interrupted notice from replica b")
        assert closed.ts == partial.ts and closed.text.startswith(shown.rstrip())  # the partial text is kept
        assert PLACEHOLDER not in closed.text
        await asyncio.sleep(LEASE_S)  # a few more lease rounds: nothing else happens to it
        assert len(model.requests) == 1 and len(replies(slack, fs.CHANNEL_ID, event["ts"])) == 1
        assert "left open by" in b.log()
        await follow_up_on(slack, model, b, event["ts"])
        assert len(model.requests) == 2 and len(replies(slack, fs.CHANNEL_ID, event["ts"])) == 2
        assert model.requests[-1]["messages"][0]["content"][0]["text"] == "tell me about Porto"


async def test_a_replica_killed_before_the_first_token_is_answered_by_the_other_in_its_placeholder(
        fakes, tmp_path, pg_url):
    slack, model = fakes
    with running_replicas(fakes, tmp_path, pg_url, THREADBOT_REPLICA_LEASE_S=str(LEASE_S)) as (a, b):
        model.add(Reply.text("never streamed", chunk_chars=1000, token_delay_s=60))
        event = fs.app_mention("what is Porto?")
        await deliver(slack, a, event)
        placeholder = await slack.wait_for(lambda: only_reply(slack, event["ts"], lambda m: m.text == PLACEHOLDER),
                                           timeout=15, what="replica a's placeholder")
        await model.wait_for_requests(1, timeout=15)
        a.kill()
        answered = await slack.wait_for(
            lambda: only_reply(slack, event["ts"], lambda m: m.text == "echo: what is Porto?"),
            timeout=LEASE_S * 5 + 10, what="replica b's answer in a's placeholder")
        assert answered.ts == placeholder.ts
        await asyncio.sleep(LEASE_S)
        assert len(model.requests) == 2 and len(replies(slack, fs.CHANNEL_ID, event["ts"])) == 1
        assert [m["role"] for m in model.requests[-1]["messages"]] == ["user"]  # the question once, not twice
        await follow_up_on(slack, model, b, event["ts"])
