"""End to end: the real `threadbot run` process, configured only by environment, against the fakes."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.slack.mrkdwn import to_mrkdwn
from tests.botproc import BotProcess
from tests.fakes import slack as fs
from tests.fakes.anthropic import ErrorReply, Reply
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.timeout(120)

ANSWER = (
    "Lisbon is the capital of Portugal. It sits on the Tagus river, has seven hills, "
    "and its trams are famous. The city is known for pastel de nata and fado music."
)


def make_bot(fakes, tmp_path: Path, *, socket_mode: bool, **env: str) -> BotProcess:
    slack, model = fakes
    return BotProcess(slack_api_url=slack.api_url, anthropic_url=model.base_url, db_path=tmp_path / "bot.db",
                      socket_mode=socket_mode, log_path=tmp_path / "bot.log", extra_env=env)


@pytest.fixture
def http_bot(fakes, tmp_path):
    bot = make_bot(fakes, tmp_path, socket_mode=False)
    bot.start()
    yield bot
    assert bot.stop() == 0, bot.log()


async def deliver(slack: FakeSlack, bot: BotProcess, event: dict, *, event_id: str | None = None,
                  retry_num: int | None = None) -> dict:
    payload = fs.event_callback(event, event_id=event_id)
    result = await slack.deliver_http(bot.events_url, payload, retry_num=retry_num)
    assert result.status == 200, result.body
    assert result.elapsed < 3.0  # Slack's ack deadline
    return payload


def replies(slack: FakeSlack, channel: str, thread_ts: str) -> list[fs.FakeMessage]:
    return [m for m in slack.messages_in_thread(channel, thread_ts) if m.user == fs.BOT_USER_ID]


async def final_reply(slack: FakeSlack, channel: str, thread_ts: str, expected: str, *, timeout: float = 15) -> fs.FakeMessage:
    return await slack.wait_for(
        lambda: next((m for m in replies(slack, channel, thread_ts) if m.text == expected), None),
        timeout=timeout, what=f"final reply {expected[:40]!r}")


async def test_mention_streams_placeholder_edits_and_final_text_then_follow_up_has_history(fakes, http_bot):
    slack, model = fakes
    # ~2.5 s of streaming at a few characters per delta: several time-based edits, not one per token.
    model.add(Reply.text(ANSWER, chunk_chars=4, token_delay_s=0.06))
    event = fs.app_mention("what is Lisbon like?")
    await deliver(slack, http_bot, event)
    message = await final_reply(slack, fs.CHANNEL_ID, event["ts"], to_mrkdwn(ANSWER))
    assert message.thread_ts == event["ts"]
    assert message.history[0] == "_Thinking…_"  # placeholder first
    partials = message.history[1:-1]
    assert partials, "expected progressive edits before the final one"
    assert all(ANSWER.startswith(p.rstrip()) or p.startswith("_") for p in partials)
    updates = slack.calls("chat.update")
    # 42 deltas over ~2.5 s; about one edit per second, not one per delta.
    assert 2 <= len(updates) <= 6, [c.params.get("text") for c in updates]

    request = model.requests[-1]
    assert request["max_tokens"] == 4096  # THREADBOT_MAX_TOKENS default
    assert request["messages"][-1]["content"][0]["text"] == "what is Lisbon like?"

    model.add(Reply.text("About 550,000 people."))
    follow_up = fs.app_mention("and how many people live there?", thread_ts=event["ts"])
    await deliver(slack, http_bot, follow_up)
    await final_reply(slack, fs.CHANNEL_ID, event["ts"], "About 550,000 people.")
    history = model.requests[-1]["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert history[0]["content"][0]["text"] == "what is Lisbon like?"
    assert history[1]["content"][0]["text"] == ANSWER
    assert history[2]["content"][0]["text"] == "and how many people live there?"


async def test_retry_and_redelivery_after_restart_never_answer_twice(fakes, http_bot):
    slack, model = fakes
    event = fs.app_mention("hello there")
    payload = await deliver(slack, http_bot, event)
    await final_reply(slack, fs.CHANNEL_ID, event["ts"], "echo: hello there")
    await deliver(slack, http_bot, event, event_id=payload["event_id"], retry_num=1)
    http_bot.restart()
    await deliver(slack, http_bot, event, event_id=payload["event_id"], retry_num=2)
    # The same message under a new event id (e.g. redelivered another way) is also recognised.
    await deliver(slack, http_bot, event)
    await asyncio.sleep(1.0)
    assert len(model.requests) == 1
    assert len(replies(slack, fs.CHANNEL_ID, event["ts"])) == 1


async def test_dm_is_answered_in_a_thread_under_the_message(fakes, http_bot):
    slack, model = fakes
    event = fs.dm_message("hi from a DM, 日本語 and emoji 🎉")
    await deliver(slack, http_bot, event)
    reply = await final_reply(slack, fs.DM_CHANNEL_ID, event["ts"], "echo: hi from a DM, 日本語 and emoji 🎉")
    assert reply.thread_ts == event["ts"]

    # A message at Slack's 40,000-character maximum is answered; the long answer (the fake echoes it)
    # continues over several messages, each under the part limit, with nothing lost.
    words = "日本語 🎉 ünïcode words "
    long_text = (words * (40_000 // len(words) + 1))[:40_000].strip()
    model.add(Reply.text(f"echo: {long_text}", chunk_chars=400))
    event = fs.dm_message(long_text)
    await deliver(slack, http_bot, event)

    def complete_parts():
        parts = [m.text for m in replies(slack, fs.DM_CHANNEL_ID, event["ts"])]
        joined = "".join(parts).replace(" ", "")
        return parts if joined == f"echo:{long_text}".replace(" ", "") else None

    parts = await slack.wait_for(complete_parts, timeout=60, what="the long answer in several messages")
    assert len(parts) >= 12 and all(len(p) <= 3500 for p in parts)
    assert model.requests[-1]["messages"][-1]["content"][0]["text"] == long_text


async def test_ignores_bots_edits_and_deletions_but_acks_them(fakes, http_bot):
    slack, model = fakes
    ignored = [
        {**fs.dm_message("from another bot"), "bot_id": "B0OTHER"},
        {**fs.dm_message("edited"), "subtype": "message_changed"},
        {**fs.dm_message("gone"), "subtype": "message_deleted"},
    ]
    for event in ignored:
        await deliver(slack, http_bot, event)
    await asyncio.sleep(0.5)
    assert model.requests == []
    assert slack.calls("chat.postMessage") == []


async def test_empty_mention_gets_help_without_a_model_call(fakes, http_bot):
    slack, model = fakes
    event = fs.app_mention("")
    await deliver(slack, http_bot, event)
    message = await slack.wait_for(lambda: next(iter(replies(slack, fs.CHANNEL_ID, event["ts"])), None))
    assert "Ask me anything" in message.text
    assert model.requests == []


async def test_overloaded_model_gives_a_clear_message_and_the_next_question_works(fakes, http_bot):
    slack, model = fakes
    model.add(*[ErrorReply.overloaded() for _ in range(4)])
    event = fs.app_mention("are you there?")
    await deliver(slack, http_bot, event)
    failed = await slack.wait_for(
        lambda: next((m for m in replies(slack, fs.CHANNEL_ID, event["ts"]) if "overloaded" in m.text), None),
        timeout=30)
    assert "ref `" in failed.text and "Thinking" not in failed.text
    ref = failed.text.split("ref `")[1].split("`")[0]
    await slack.wait_for(lambda: ref in http_bot.log(), what="reference id in the log")
    assert "Traceback" not in failed.text

    follow_up = fs.app_mention("and now?", thread_ts=event["ts"])
    await deliver(slack, http_bot, follow_up)
    await final_reply(slack, fs.CHANNEL_ID, event["ts"], "echo: and now?")
    roles = [m["role"] for m in model.requests[-1]["messages"]]
    assert roles == ["user", "assistant", "user"]  # the failed turn was closed cleanly


async def test_socket_mode_end_to_end_with_retry_deduplicated(fakes, tmp_path):
    slack, model = fakes
    bot = make_bot(fakes, tmp_path, socket_mode=True)
    bot.start()
    try:
        payload = fs.event_callback(fs.app_mention("over the socket"))
        envelope = await slack.push_socket_event(payload, connect_timeout=30)
        await slack.wait_for_ack(envelope, timeout=3)
        ts = payload["event"]["ts"]
        await final_reply(slack, fs.CHANNEL_ID, ts, "echo: over the socket")
        retry = await slack.push_socket_event(payload, retry_attempt=1, retry_reason="timeout")
        await slack.wait_for_ack(retry, timeout=3)
        await asyncio.sleep(0.5)
        assert len(model.requests) == 1
        assert len(replies(slack, fs.CHANNEL_ID, ts)) == 1
    finally:
        assert bot.stop() == 0, bot.log()


def test_missing_setting_stops_startup_with_one_line(tmp_path):
    import subprocess

    from tests.botproc import THREADBOT

    result = subprocess.run([str(THREADBOT), "run"], env={"PATH": "", "HOME": str(tmp_path)}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SLACK_BOT_TOKEN" in lines[0], result.stderr


@pytest.mark.parametrize("socket_mode", [False, True], ids=["http", "socket"])
async def test_start_answer_and_stop_log_no_warnings(fakes, tmp_path, socket_mode):
    """Nothing of our own making warns at start-up (Bolt used to: "As you gave `client` as well, …")."""
    slack, model = fakes
    bot = make_bot(fakes, tmp_path, socket_mode=socket_mode)
    bot.start()
    try:
        event = fs.app_mention("are you quiet?")
        if socket_mode:
            await slack.wait_for_ack(await slack.push_socket_event(fs.event_callback(event), connect_timeout=30),
                                     timeout=3)
        else:
            await deliver(slack, bot, event)
        await final_reply(slack, fs.CHANNEL_ID, event["ts"], "echo: are you quiet?")
    finally:
        assert bot.stop() == 0, bot.log()
    log = bot.log()
    assert "threadbot stopped" in log  # the log is the process's whole life
    warnings = [line for line in log.splitlines() if " WARNING " in line or " ERROR " in line]
    assert not warnings, log


async def test_healthz_reports_the_edit_budget_while_an_answer_streams(fakes, http_bot):
    import json
    import urllib.request

    def budget() -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_bot.port}/healthz", timeout=5) as response:
            return json.loads(response.read())["edit_budget"]

    slack, model = fakes
    model.add(Reply.text(ANSWER, chunk_chars=4, token_delay_s=0.06))  # ~2.5 s of streaming
    event = fs.app_mention("what is Lisbon like?")
    await deliver(slack, http_bot, event)
    await slack.wait_for(lambda: replies(slack, fs.CHANNEL_ID, event["ts"]) or None, what="the placeholder")
    during = await asyncio.to_thread(budget)
    assert during["answers_in_flight"] == 1 and during["finals_waiting"] == 0
    assert during["burst"] == 20 and 0 <= during["tokens"] <= 20
    await final_reply(slack, fs.CHANNEL_ID, event["ts"], to_mrkdwn(ANSWER))
    after = await asyncio.to_thread(budget)
    assert after["answers_in_flight"] == 0 and after["rate_limited"] == 0
