"""End to end on the real `threadbot run` process: thread catch-up, follow-ups, the summary shortcut, privacy."""
from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.test_run import make_bot
from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply, echo_text
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.timeout(120)

BOB, CAROL = "U0BOB", "U0CAROL"
CH, SECRET, PANEL = fs.CHANNEL_ID, "G0SECRET", "D0ASSIST"


@pytest.fixture
def bot(fakes, tmp_path):
    slack, _ = fakes
    slack.add_user(BOB, name="bob")
    slack.add_user(CAROL, name="carol")
    slack.channels[CH].members += [BOB, CAROL]
    slack.add_channel(SECRET, name="secret-plans", is_private=True, members=[BOB])
    slack.add_channel(PANEL, name=PANEL, is_im=True, members=[fs.USER_ID])
    process = make_bot(fakes, tmp_path, socket_mode=False)
    process.start()
    yield process
    assert process.stop() == 0, process.log()


async def deliver(slack: FakeSlack, bot: Any, payload: dict) -> None:
    if payload.get("type") not in ("message_action", "event_callback"):
        payload = fs.event_callback(payload)
    result = await slack.deliver_http(bot.events_url, payload)
    assert result.status == 200 and result.elapsed < 3.0, result.body


async def answer_text(slack: FakeSlack, channel: str, thread_ts: str, text: str) -> None:
    await slack.wait_for(lambda: any(m.text == text for m in slack.messages_in_thread(channel, thread_ts)
                                     if m.user == fs.BOT_USER_ID), timeout=30, what=repr(text))


def last_user_text(model: Any) -> str:
    return echo_text(model.requests[-1]).removeprefix("echo: ")


async def test_catch_up_then_follow_ups_answered_and_one_addressed_to_someone_else_ignored(fakes, bot) -> None:
    slack, model = fakes
    parent = slack.add_thread(CH, "deploy to prod failed", [(BOB, "it's the db migration"), (BOB, "see the log")])
    model.add(Reply.text("Looks like the migration."))
    await deliver(slack, bot, slack.user_message(CH, "what do you make of this?", user=CAROL, thread_ts=parent,
                                                 mention=True))
    await answer_text(slack, CH, parent, "Looks like the migration.")
    first = last_user_text(model)
    assert first.index("[alice]: deploy to prod failed") < first.index("[bob]: it's the db migration") \
        < first.index("[bob]: see the log") and first.endswith("carol asks: what do you make of this?")
    assert len(slack.calls("conversations.replies")) == 1

    await deliver(slack, bot, slack.user_message(CH, "<@U0BOB> can you roll back?", user=CAROL, thread_ts=parent))
    model.add(Reply.text("Staging is fine."))
    await deliver(slack, bot, slack.user_message(CH, "and what about staging?", user=BOB, thread_ts=parent))
    await answer_text(slack, CH, parent, "Staging is fine.")
    assert len(model.requests) == 2  # the reply to Bob was not answered ...
    second = last_user_text(model)
    assert "[carol]: @bob can you roll back?" in second  # ... but it is context for the next turn
    assert "deploy to prod failed" not in second and second.endswith("bob asks: and what about staging?")
    assert len(slack.calls("conversations.replies")) == 1  # the rest came as events


async def test_summary_shortcut_reads_the_thread_and_posts_in_it(fakes, bot) -> None:
    slack, model = fakes
    parent = slack.add_thread(CH, "offsite planning", [(BOB, "May works for me"), (CAROL, "I book the venue")])
    message = slack.message(CH, parent)
    model.add(Reply.text("May; Carol books the venue."))
    await deliver(slack, bot, fs.message_action("summarize_thread", message.to_api(fs.TEAM_ID), user_id=CAROL,
                                                response_url=slack.new_response_url()))
    await answer_text(slack, CH, parent, "May; Carol books the venue.")
    text = last_user_text(model)
    assert "[bob]: May works for me" in text and "[carol]: I book the venue" in text
    assert text.startswith("<thread_context>") and "carol asks: Summarise this thread" in text
    assert [m.history[0] for m in slack.messages_in_thread(CH, parent) if m.user == fs.BOT_USER_ID] == ["_Thinking…_"]


async def test_privacy_refusals_a_private_channel_into_a_public_thread_and_for_a_non_member(fakes, bot) -> None:
    slack, model = fakes
    slack.add_message(SECRET, "the acquisition closes friday", user=BOB, ts=f"{time.time() - 60:.6f}")
    # In #general, even a member may not have a private channel read into the thread.
    slack.channels[SECRET].members.append(CAROL)
    parent = slack.add_message(CH, "question")
    model.add(Reply.tool("read_messages", {"where": "channel", "channel": SECRET}), Reply.text("I can't share that."))
    await deliver(slack, bot, slack.user_message(CH, "what's new in secret-plans?", user=CAROL, thread_ts=parent,
                                                 mention=True))
    await answer_text(slack, CH, parent, "I can't share that.")
    result = model.requests[-1]["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert "is private" in str(result["content"]) and "acquisition" not in str(result["content"])

    # In the assistant panel beside the private channel, Alice (not a member) is refused too.
    thread_ts = fs.next_ts()
    await deliver(slack, bot, {"type": "assistant_thread_started", "event_ts": fs.next_ts(), "assistant_thread": {
        "user_id": fs.USER_ID, "channel_id": PANEL, "thread_ts": thread_ts,
        "context": {"channel_id": SECRET, "team_id": fs.TEAM_ID}}})
    await slack.wait_for_call("assistant.threads.setSuggestedPrompts", timeout=15)
    model.add(Reply.tool("read_messages", {"where": "channel"}), Reply.text("You're not in that channel."))
    await deliver(slack, bot, fs.dm_message("what happened here today?", channel=PANEL, thread_ts=thread_ts))
    await answer_text(slack, PANEL, thread_ts, "You're not in that channel.")
    result = model.requests[-1]["messages"][-1]["content"][0]
    assert result["is_error"] is True and "not a member" in str(result["content"])
    assert "acquisition" not in str(result["content"])
    assert [c for c in slack.calls("conversations.history") if c.params.get("channel") == SECRET] == []
