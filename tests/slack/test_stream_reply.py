"""THREADBOT_STREAMING=native: chat.startStream/appendStream/stopStream, and falling back to chat.update."""
from __future__ import annotations

import asyncio

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.edit_budget import EditBudget
from bot.slack.feedback import feedback_blocks
from bot.slack.mrkdwn import to_mrkdwn
from bot.slack.stream_reply import MARKDOWN_TEXT_LIMIT, NativeReply, _pieces
from bot.slack.split import split_message
from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply
from tests.fakes.slack import FakeSlack
from tests.slackapp import running_bot
from tests.slack.test_reply import long_answer, stream

pytestmark = pytest.mark.timeout(60)

ANSWER = "## Plan\n\nFirst **bold** step, then `code`:\n\n```sh\nmake build && make test\n```\n\n- one\n- two\n"


def native(client: AsyncWebClient, channel: str, thread_ts: str, **options) -> NativeReply:
    return NativeReply(client, EditBudget(), stream_budget=EditBudget(per_minute=600, burst=20), channel=channel,
                       thread_ts=thread_ts, recipient_user_id=fs.USER_ID, recipient_team_id=fs.TEAM_ID,
                       interval_s=0.05, **options)


async def test_channel_stream_sends_markdown_with_recipients_and_stops_with_buttons(slack, client):
    thread_ts = slack.add_message(fs.CHANNEL_ID, "plan?")
    reply = native(client, fs.CHANNEL_ID, thread_ts, final_blocks=feedback_blocks("claude-x"))
    await reply.start()
    await stream(reply, ANSWER, size=5, delay=0.01)
    await reply.finish()

    [start] = slack.calls("chat.startStream")
    assert start.ok and start.params["recipient_user_id"] == fs.USER_ID and start.params["recipient_team_id"] == fs.TEAM_ID
    assert start.params["thread_ts"] == thread_ts
    appends = slack.calls("chat.appendStream")
    assert 2 <= len(appends) < len(ANSWER) // 5  # throttled by time, not one per delta
    [stop] = slack.calls("chat.stopStream")
    assert stop.params["blocks"][0]["type"] == "context_actions"
    message = slack.message(fs.CHANNEL_ID, reply.ts)
    assert message.text == ANSWER  # standard Markdown, complete, nothing doubled
    assert not message.streaming and message.blocks[0]["type"] == "context_actions"
    assert slack.calls("chat.update") == [] and len(slack.calls("chat.postMessage")) == 0


async def test_appends_are_cut_to_the_markdown_text_limit(slack, client):
    thread_ts = slack.add_message(fs.DM_CHANNEL_ID, "long")
    reply = native(client, fs.DM_CHANNEL_ID, thread_ts)
    await reply.start()
    answer = ("A paragraph with an emoji 🎉 in it. " * 800).strip()  # ~29k characters, astral characters
    reply.append(answer)
    await reply.finish(notice="This answer was cut off because it reached the length limit.")
    sent = [c.params["markdown_text"] for c in slack.calls("chat.appendStream")]
    assert len(sent) >= 3
    assert all(len(t.encode("utf-16-le")) // 2 <= MARKDOWN_TEXT_LIMIT for t in sent)
    message = slack.message(fs.DM_CHANNEL_ID, reply.ts)
    assert message.text == answer + "\n\n_This answer was cut off because it reached the length limit._"
    assert "".join(_pieces("x🎉" * 10, 5)) == "x🎉" * 10


async def test_start_stream_refused_falls_back_to_chat_update(slack, client):
    thread_ts = slack.add_message(fs.CHANNEL_ID, "q")
    slack.fail_next("chat.startStream", "not_allowed_token_type")
    reply = native(client, fs.CHANNEL_ID, thread_ts, final_blocks=feedback_blocks("m"))
    await reply.start()
    await stream(reply, ANSWER, size=5, delay=0.01)
    await reply.finish()
    assert reply.fallback is not None
    messages = [m for m in slack.messages_in_thread(fs.CHANNEL_ID, thread_ts) if m.user == fs.BOT_USER_ID]
    [message] = messages
    assert message.history[0] == "_Thinking…_" and message.text == to_mrkdwn(ANSWER)
    assert message.blocks[-1]["type"] == "context_actions"
    assert slack.calls("chat.appendStream") == []


async def test_missing_recipients_in_a_channel_fall_back(slack, client):
    thread_ts = slack.add_message(fs.CHANNEL_ID, "q")
    reply = NativeReply(client, EditBudget(), stream_budget=EditBudget(), channel=fs.CHANNEL_ID, thread_ts=thread_ts,
                        recipient_user_id=None, recipient_team_id=None, interval_s=0.05)
    await reply.start()
    reply.append("Fine.")
    await reply.finish()
    assert slack.calls("chat.startStream")[0].error == "invalid_arguments"
    [message] = [m for m in slack.messages_in_thread(fs.CHANNEL_ID, thread_ts) if m.user == fs.BOT_USER_ID]
    assert message.text == "Fine."


async def test_append_error_mid_stream_finishes_in_update_mode_without_losing_text(slack, client):
    answer = long_answer(4)
    thread_ts = slack.add_message(fs.CHANNEL_ID, "q")
    reply = native(client, fs.CHANNEL_ID, thread_ts)
    await reply.start()
    await stream(reply, answer[:600], size=20, delay=0.01)
    await slack.wait_for(lambda: slack.calls("chat.appendStream"))
    slack.fail_next("chat.appendStream", "message_not_in_streaming_state")
    await stream(reply, answer[600:], size=20, delay=0.01)
    await reply.finish()

    assert reply.fallback is not None
    assert any(c.error == "message_not_in_streaming_state" for c in slack.calls("chat.appendStream"))
    messages = [m for m in slack.messages_in_thread(fs.CHANNEL_ID, thread_ts) if m.user == fs.BOT_USER_ID]
    # The streamed message became the first part; the whole answer is there, rendered as mrkdwn.
    assert messages[0].ts == slack.calls("chat.startStream")[0].response["ts"]
    assert [m.text for m in messages] == split_message(to_mrkdwn(answer))
    assert not any(m.streaming for m in messages)


async def test_429_on_append_waits_and_keeps_streaming(slack, client):
    thread_ts = slack.add_message(fs.DM_CHANNEL_ID, "q")
    reply = native(client, fs.DM_CHANNEL_ID, thread_ts)
    await reply.start()
    slack.fail_next("chat.appendStream", retry_after=1, times=2)
    await stream(reply, ANSWER, size=5, delay=0.01)
    await reply.finish()
    assert reply.fallback is None and slack.count_429("chat.appendStream") == 2
    assert slack.message(fs.DM_CHANNEL_ID, reply.ts).text == ANSWER


async def test_mention_in_native_mode_through_the_app(tmp_path):
    async with running_bot(tmp_path, THREADBOT_STREAMING="native") as bot:
        text = "Lisbon has **seven hills** and famous trams."
        bot.model.add(Reply.text(text, chunk_chars=4, token_delay_s=0.02))
        event = fs.app_mention("tell me about Lisbon")
        await bot.deliver(event)
        stop = await bot.slack.wait_for_call("chat.stopStream", timeout=15)
        [start] = bot.slack.calls("chat.startStream")
        assert start.params["recipient_user_id"] == fs.USER_ID and start.params["recipient_team_id"] == fs.TEAM_ID
        message = bot.slack.message(fs.CHANNEL_ID, stop.params["ts"])
        assert message.text == text and message.thread_ts == event["ts"]
        assert stop.params["blocks"][0]["elements"][0]["positive_button"]["value"] == f"up {bot.services.model}"
        await asyncio.sleep(0.1)
        assert bot.slack.calls("chat.update") == []


async def test_e2e_assistant_panel_native_stream_and_feedback(tmp_path):
    """The real `threadbot run` process, THREADBOT_STREAMING=native from the environment."""
    from tests.botproc import BotProcess
    from tests.fakes.anthropic import FakeAnthropic
    from tests.slack.test_assistant import ASSISTANT_DM, assistant_thread_started

    slack, model = FakeSlack(), FakeAnthropic()
    slack.start_in_thread()
    model.start_in_thread()
    bot = BotProcess(slack_api_url=slack.api_url, anthropic_url=model.base_url, db_path=tmp_path / "bot.db",
                     socket_mode=False, log_path=tmp_path / "bot.log", extra_env={"THREADBOT_STREAMING": "native"})
    try:
        bot.start()
        thread_ts = fs.next_ts()
        for event in (assistant_thread_started(thread_ts),):
            assert (await slack.deliver_http(bot.events_url, fs.event_callback(event))).status == 200
        await slack.wait_for_call("assistant.threads.setSuggestedPrompts", timeout=30)
        text = "Here is a **streamed** answer, in several pieces, from the panel. " * 4  # ~2.6 s of deltas
        model.add(Reply.text(text, chunk_chars=5, token_delay_s=0.05))
        message = fs.dm_message("stream me something", channel=ASSISTANT_DM, thread_ts=thread_ts)
        assert (await slack.deliver_http(bot.events_url, fs.event_callback(message))).status == 200
        stop = await slack.wait_for_call("chat.stopStream", timeout=30)
        answer = slack.message(ASSISTANT_DM, stop.params["ts"])
        assert answer.text == text and answer.thread_ts == thread_ts
        # In the panel the stream opens with the first text (the status line shows until then).
        assert slack.calls("chat.startStream")[0].params["markdown_text"]
        assert len(slack.calls("chat.appendStream")) >= 1
        await slack.wait_for(lambda: [c.params["status"] for c in slack.calls("assistant.threads.setStatus")][-1:] == [""])
        assert slack.calls("assistant.threads.setStatus")[0].params["status"] == "is thinking…"
        assert slack.assistant_titles[(ASSISTANT_DM, thread_ts)] == "stream me something"

        value = stop.params["blocks"][0]["elements"][0]["negative_button"]["value"]
        click = fs.block_actions("answer_feedback", value, channel_id=ASSISTANT_DM, message_ts=answer.ts,
                                 thread_ts=thread_ts)
        assert (await slack.deliver_http(bot.events_url, click)).status == 200
        await slack.wait_for(lambda: slack.ephemerals, timeout=15)
    finally:
        code = bot.stop()
        slack.stop_thread()
        model.stop_in_thread()
    assert code == 0, bot.log()
    from bot.store.sqlite import SqliteStore
    store = SqliteStore(tmp_path / "bot.db")
    try:
        assert await store.feedback_counts(since=0) == (0, 1)
    finally:
        await store.close()
