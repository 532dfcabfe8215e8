"""End to end: the real `threadbot run` killed with SIGKILL at each stage of an answer, then restarted.

Every question ends answered once or closed with the interrupted notice; never stuck on the
placeholder, never answered twice, and the thread's history stays a valid request.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.conversation.history import is_valid
from bot.messages import Message
from bot.slack.reply import PLACEHOLDER
from tests.botproc import BotProcess
from tests.fakes import slack as fs
from tests.fakes.anthropic import FakeAnthropic, Reply, echo_text
from tests.fakes.open_meteo import FakeOpenMeteo
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.timeout(240)

INTERRUPTED = "was interrupted"
LONG = ("Porto is the second city of Portugal, on the Douro, known for its port wine cellars, "
        "its tiled churches, the Ribeira quarter and the Dom Luís I bridge. ") * 3


def make_bot(slack: FakeSlack, model: FakeAnthropic, tmp_path: Path, **env: str) -> BotProcess:
    return BotProcess(slack_api_url=slack.api_url, anthropic_url=model.base_url, db_path=tmp_path / "bot.db",
                      socket_mode=False, log_path=tmp_path / "bot.log", extra_env=env)


async def deliver(slack: FakeSlack, bot: BotProcess, payload: dict, *, retry_num: int | None = None) -> None:
    result = await slack.deliver_http(bot.events_url, payload, retry_num=retry_num)
    assert result.status == 200, result.body
    assert result.elapsed < 3.0


def replies(slack: FakeSlack, thread_ts: str, channel: str = fs.CHANNEL_ID) -> list[fs.FakeMessage]:
    return [m for m in slack.messages_in_thread(channel, thread_ts) if m.user == fs.BOT_USER_ID]


def only_reply(slack: FakeSlack, thread_ts: str, predicate) -> fs.FakeMessage | None:
    found = replies(slack, thread_ts)
    return found[0] if len(found) == 1 and predicate(found[0]) else None


def requests_for(model: FakeAnthropic, question: str) -> list[dict]:
    return [r for r in model.requests
            if any(b.get("type") == "text" and b.get("text") == question
                   for m in r["messages"][:1] for b in m["content"])]


def assert_valid_history(request: dict) -> None:
    assert is_valid([Message.from_json(m) for m in request["messages"]]), request["messages"]


async def follow_up_is_valid(slack: FakeSlack, model: FakeAnthropic, bot: BotProcess, thread_ts: str) -> None:
    """A follow-up in the thread is answered, from a history that is a valid request."""
    event = fs.app_mention("and now?", thread_ts=thread_ts)
    await deliver(slack, bot, fs.event_callback(event))
    await slack.wait_for(lambda: any(m.text == "echo: and now?" for m in replies(slack, thread_ts)), timeout=30,
                         what="the follow-up's answer")
    assert_valid_history(model.requests[-1])


async def test_killed_after_the_ack_before_the_placeholder_is_answered_after_restart(fakes, tmp_path):
    slack, model = fakes
    bot = make_bot(slack, model, tmp_path)
    bot.start()
    slack.set_latency(20, method="chat.postMessage")  # the placeholder never reaches Slack
    event = fs.app_mention("stage one: who are you?")
    await deliver(slack, bot, fs.event_callback(event))
    await asyncio.sleep(1.5)
    bot.kill()
    slack.set_latency(0, method="chat.postMessage")
    assert replies(slack, event["ts"]) == [] and model.requests == []
    bot.start()
    try:
        await slack.wait_for(
            lambda: only_reply(slack, event["ts"], lambda m: m.text == "echo: stage one: who are you?"),
            timeout=30, what="the answer after the restart")
        await asyncio.sleep(1.0)
        assert len(replies(slack, event["ts"])) == 1
        assert len(model.requests) == 1
        await follow_up_is_valid(slack, model, bot, event["ts"])
    finally:
        assert bot.stop() == 0, bot.log()


async def test_killed_after_the_placeholder_before_the_first_token_is_answered_in_that_placeholder(fakes, tmp_path):
    slack, model = fakes
    bot = make_bot(slack, model, tmp_path)
    bot.start()
    model.add(Reply.text("never streamed", chunk_chars=1000, token_delay_s=60))
    event = fs.app_mention("stage two: what is Porto?")
    await deliver(slack, bot, fs.event_callback(event))
    placeholder = await slack.wait_for(lambda: only_reply(slack, event["ts"], lambda m: m.text == PLACEHOLDER),
                                       timeout=15, what="the placeholder")
    await model.wait_for_requests(1, timeout=15)
    bot.kill()
    bot.start()
    try:
        answered = await slack.wait_for(
            lambda: only_reply(slack, event["ts"], lambda m: m.text == "echo: stage two: what is Porto?"),
            timeout=30, what="the answer in the placeholder")
        assert answered.ts == placeholder.ts
        await asyncio.sleep(1.0)
        assert len(model.requests) == 2 and len(replies(slack, event["ts"])) == 1
        # History was repaired, not doubled: the question is in the request once.
        assert [m["role"] for m in model.requests[-1]["messages"]] == ["user"]
        assert model.requests[-1]["messages"][0]["content"][0]["text"] == "stage two: what is Porto?"
        await follow_up_is_valid(slack, model, bot, event["ts"])
    finally:
        assert bot.stop() == 0, bot.log()


async def test_a_question_older_than_the_resume_window_is_closed_with_the_notice(fakes, tmp_path):
    slack, model = fakes
    bot = make_bot(slack, model, tmp_path, THREADBOT_RESUME_WINDOW_S="0")
    bot.start()
    model.add(Reply.text("never streamed", chunk_chars=1000, token_delay_s=60))
    event = fs.app_mention("too old to resume?")
    await deliver(slack, bot, fs.event_callback(event))
    await slack.wait_for(lambda: only_reply(slack, event["ts"], lambda m: m.text == PLACEHOLDER), timeout=15)
    await model.wait_for_requests(1, timeout=15)
    bot.kill()
    bot.start()
    try:
        closed = await slack.wait_for(lambda: only_reply(slack, event["ts"], lambda m: INTERRUPTED in m.text),
                                      timeout=30, what="the interrupted notice")
        assert PLACEHOLDER not in closed.text and "ref `" in closed.text
        assert len(model.requests) == 1
        await follow_up_is_valid(slack, model, bot, event["ts"])
    finally:
        assert bot.stop() == 0, bot.log()


async def test_killed_mid_stream_keeps_the_partial_text_and_ends_it_with_the_notice(fakes, tmp_path):
    slack, model = fakes
    bot = make_bot(slack, model, tmp_path)
    bot.start()
    model.add(Reply.text(LONG, chunk_chars=4, token_delay_s=0.05))
    event = fs.app_mention("stage three: tell me about Porto")
    await deliver(slack, bot, fs.event_callback(event))
    partial = await slack.wait_for(
        lambda: only_reply(slack, event["ts"], lambda m: m.text != PLACEHOLDER and len(m.text) > 20),
        timeout=15, what="a partial answer")
    bot.kill()
    shown = replies(slack, event["ts"])[0].text
    assert LONG.startswith(shown.rstrip())
    bot.start()
    try:
        closed = await slack.wait_for(lambda: only_reply(slack, event["ts"], lambda m: INTERRUPTED in m.text),
                                      timeout=30, what="the interrupted notice")
        assert closed.ts == partial.ts
        assert closed.text.startswith(shown.rstrip())  # the partial text is kept
        await asyncio.sleep(1.0)
        assert len(model.requests) == 1  # no second answer
        await follow_up_is_valid(slack, model, bot, event["ts"])
        assert model.requests[-1]["messages"][0]["content"][0]["text"] == "stage three: tell me about Porto"
    finally:
        assert bot.stop() == 0, bot.log()


async def test_killed_mid_tool_round_is_closed_with_the_notice_and_history_stays_valid(tmp_path):
    slack = FakeSlack()
    slack.start_in_thread()
    model = FakeAnthropic()
    model.start_in_thread()
    try:
        with FakeOpenMeteo.in_thread() as weather:
            weather.slow("geocoding", 60)
            bot = make_bot(slack, model, tmp_path, **weather.env())
            bot.start()
            model.add(Reply.tool("get_weather", {"place": "Lisbon"}, text="Let me look that up."))
            event = fs.app_mention("stage four: weather in Lisbon?")
            await deliver(slack, bot, fs.event_callback(event))
            await slack.wait_for(lambda: only_reply(slack, event["ts"], lambda m: "Let me look" in m.text),
                                 timeout=15, what="the text before the tool")
            await asyncio.sleep(0.5)  # the tool is running (its geocoding call is held)
            bot.kill()
            bot.start()
            try:
                closed = await slack.wait_for(
                    lambda: only_reply(slack, event["ts"], lambda m: INTERRUPTED in m.text),
                    timeout=30, what="the interrupted notice")
                assert closed.text.startswith("Let me look that up.")
                assert len(model.requests) == 1
                await follow_up_is_valid(slack, model, bot, event["ts"])
            finally:
                assert bot.stop() == 0, bot.log()
    finally:
        slack.stop_thread()
        model.stop_in_thread()


async def test_killed_during_the_final_edit_shows_the_complete_answer_without_a_model_call(fakes, tmp_path):
    slack, model = fakes
    bot = make_bot(slack, model, tmp_path)
    bot.start()
    model.add(Reply.text("Short and final.", chunk_chars=100))
    slack.set_latency(20, method="chat.update")  # the final edit never reaches Slack
    event = fs.app_mention("stage five: a short one")
    await deliver(slack, bot, fs.event_callback(event))
    await model.wait_for_requests(1, timeout=15)
    await slack.wait_for(lambda: only_reply(slack, event["ts"], lambda m: m.text == PLACEHOLDER), timeout=15)
    await asyncio.sleep(1.5)
    bot.kill()
    slack.set_latency(0, method="chat.update")
    bot.start()
    try:
        await slack.wait_for(lambda: only_reply(slack, event["ts"], lambda m: m.text == "Short and final."),
                             timeout=30, what="the complete answer")
        await asyncio.sleep(1.0)
        assert len(model.requests) == 1 and len(replies(slack, event["ts"])) == 1
        await follow_up_is_valid(slack, model, bot, event["ts"])
    finally:
        assert bot.stop() == 0, bot.log()


async def test_sigterm_closes_with_the_notice_and_the_restart_leaves_it_alone(fakes, tmp_path):
    slack, model = fakes
    bot = make_bot(slack, model, tmp_path)
    bot.start()
    model.add(Reply.text(LONG, chunk_chars=4, token_delay_s=0.2))
    event = fs.app_mention("graceful: tell me about Porto")
    await deliver(slack, bot, fs.event_callback(event))
    await slack.wait_for(lambda: only_reply(slack, event["ts"], lambda m: m.text != PLACEHOLDER), timeout=15)
    bot.proc.send_signal(__import__("signal").SIGTERM)  # type: ignore[union-attr]
    await asyncio.get_running_loop().run_in_executor(None, bot.proc.wait, 40)  # type: ignore[union-attr]
    bot.proc = None
    closed = only_reply(slack, event["ts"], lambda m: INTERRUPTED in m.text)
    assert closed is not None
    edits = len(closed.history)
    bot.start()
    try:
        await asyncio.sleep(2.0)
        assert len(closed.history) == edits  # the restart did not touch the closed turn
        assert len(model.requests) == 1
    finally:
        assert bot.stop() == 0, bot.log()


async def test_soak_retries_and_a_kill_half_way_every_question_answered_or_closed_once(fakes, tmp_path):
    slack, model = fakes
    # About 1.5 s per answer: a few are in flight at the kill, some of them already streaming.
    model.respond = lambda body: Reply.text(echo_text(body), chunk_chars=2, token_delay_s=0.1)
    bot = make_bot(slack, model, tmp_path, THREADBOT_USER_RPM="1000")
    bot.start()
    questions = [(f"soak question number {i}?", fs.event_callback(fs.app_mention(f"soak question number {i}?")))
                 for i in range(40)]

    async def send(index: int) -> None:
        await deliver(slack, bot, questions[index][1])
        if index % 3 == 0:
            await deliver(slack, bot, questions[index][1], retry_num=1)

    for index in range(20):
        await send(index)
        await asyncio.sleep(0.25)
    bot.kill()
    bot.start()
    try:
        for index in range(0, 20, 3):  # Slack retries that land after the restart
            await deliver(slack, bot, questions[index][1], retry_num=2)
        for index in range(20, 40):
            await send(index)
            await asyncio.sleep(0.1)

        def settled(payload: dict) -> bool:
            found = replies(slack, payload["event"]["ts"])
            return len(found) == 1 and (found[0].text.startswith("echo:") or INTERRUPTED in found[0].text)

        await slack.wait_for(lambda: all(settled(p) for _, p in questions), timeout=120,
                             what="every question answered or closed")
        await asyncio.sleep(2.0)
        closed = resumed = 0
        for question, payload in questions:
            found = replies(slack, payload["event"]["ts"])
            assert len(found) == 1, (question, [m.text for m in found])  # never twice
            text = found[0].text
            assert PLACEHOLDER not in text
            if INTERRUPTED in text:
                closed += 1
            else:
                assert text == f"echo: {question}"
            # A completed answer never makes a second model call.
            asked = len(requests_for(model, question))
            assert asked <= 2, question
            resumed += asked == 2
        assert closed + resumed >= 1  # the kill hit answers in flight, and each was finished or closed
        assert all(is_valid([Message.from_json(m) for m in r["messages"]]) for r in model.requests)
        print(f"soak: {40 - closed} answered ({resumed} after the restart), {closed} closed with the notice")
    finally:
        assert bot.stop() == 0, bot.log()
