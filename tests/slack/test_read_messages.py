"""The read_messages tool on the real Bolt app: this thread, this channel, the viewed channel, and the refusals."""
from __future__ import annotations

import time
from typing import Any

import pytest

from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply
from tests.slackapp import Bot, running_bot

pytestmark = pytest.mark.timeout(60)

BOB = "U0BOB"
CH = fs.CHANNEL_ID
PANEL = "D0ASSIST"
SECRET, RANDOM, OUTSIDE = "G0SECRET", "C0RANDOM", "C0OUTSIDE"


def recent(seconds_ago: float) -> str:
    return f"{time.time() - seconds_ago:.6f}"


@pytest.fixture
async def bot(tmp_path):
    async with running_bot(tmp_path) as b:
        b.slack.add_user(BOB, name="bob")
        b.slack.channels[CH].members.append(BOB)
        b.slack.add_channel(SECRET, name="secret-plans", is_private=True, members=[BOB])  # alice is not in it
        b.slack.add_channel(RANDOM, name="random", members=[fs.USER_ID, BOB])
        b.slack.add_channel(OUTSIDE, name="outside", members=[fs.USER_ID], bot_is_member=False)
        b.slack.add_channel(PANEL, name=PANEL, is_im=True, members=[fs.USER_ID])
        for channel in (CH, SECRET, RANDOM, OUTSIDE):
            b.slack.add_message(channel, f"decision in {channel}: ship on friday", user=BOB, ts=recent(3600))
        b.slack.add_message(CH, "a week-old remark", user=BOB, ts=recent(8 * 86400))
        yield b


def tool_result(bot: Bot) -> dict[str, Any]:
    """The tool_result the model received in the request after its read_messages call."""
    for request in reversed(bot.model.requests):
        for block in request["messages"][-1]["content"]:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                return block
    raise AssertionError("no tool_result was sent to the model")


def result_text(block: dict[str, Any]) -> str:
    content = block["content"]
    return content if isinstance(content, str) else " ".join(part.get("text", "") for part in content)


async def ask_in_thread(bot: Bot, tool_input: dict[str, Any]) -> dict[str, Any]:
    bot.model.add(Reply.tool("read_messages", tool_input), Reply.text("Here is what I found."))
    parent = bot.slack.add_message(CH, "planning")
    await bot.deliver(bot.slack.user_message(CH, "what did we decide in this channel today?", thread_ts=parent,
                                             mention=True))
    await bot.final_text(CH, parent, "Here is what I found.")
    return tool_result(bot)


async def ask_in_panel(bot: Bot, viewing: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    thread_ts = fs.next_ts()
    await bot.deliver({"type": "assistant_thread_started", "event_ts": fs.next_ts(), "assistant_thread": {
        "user_id": fs.USER_ID, "channel_id": PANEL, "thread_ts": thread_ts,
        "context": {"channel_id": viewing, "team_id": fs.TEAM_ID}}})
    await bot.slack.wait_for_call("assistant.threads.setSuggestedPrompts")
    bot.model.add(Reply.tool("read_messages", tool_input), Reply.text("Here is what I found."))
    await bot.deliver(fs.dm_message("what happened in this channel today?", channel=PANEL, thread_ts=thread_ts))
    await bot.final_text(PANEL, thread_ts, "Here is what I found.")
    return tool_result(bot)


def history_reads(bot: Bot, channel: str) -> int:
    return len([c for c in bot.slack.calls("conversations.history") if c.params.get("channel") == channel])


async def test_the_channel_a_thread_is_in_is_read_bounded_by_time_with_names(bot: Bot) -> None:
    result = await ask_in_thread(bot, {"where": "channel", "hours": 24})
    text = result_text(result)
    assert not result.get("is_error")
    assert "from #general in the last 24 hours" in text
    assert "[bob, " in text and "> decision in C0GENERAL: ship on friday" in text
    assert "week-old" not in text  # older than `hours`
    assert history_reads(bot, CH) == 1


async def test_this_thread_is_read_parent_first(bot: Bot) -> None:
    parent = bot.slack.add_message(CH, "release plan", ts=recent(600))
    bot.slack.add_message(CH, "staging is green", user=BOB, thread_ts=parent, ts=recent(300))
    bot.model.add(Reply.tool("read_messages", {"where": "thread"}), Reply.text("Done."))
    await bot.deliver(bot.slack.user_message(CH, "summarise", thread_ts=parent, mention=True))
    await bot.final_text(CH, parent, "Done.")
    text = result_text(tool_result(bot))
    assert text.index("> release plan") < text.index("> staging is green")
    assert "from this thread" in text


async def test_the_panel_reads_the_channel_the_user_is_viewing(bot: Bot) -> None:
    result = await ask_in_panel(bot, RANDOM, {"where": "channel"})
    assert not result.get("is_error")
    assert "> decision in C0RANDOM: ship on friday" in result_text(result) and "#random" in result_text(result)
    assert history_reads(bot, RANDOM) == 1


async def test_refused_a_private_channel_the_asking_user_is_not_in(bot: Bot) -> None:
    result = await ask_in_panel(bot, SECRET, {"where": "channel"})
    text = result_text(result)
    assert result["is_error"] is True
    assert "private and you are not a member" in text and "ship on friday" not in text
    assert history_reads(bot, SECRET) == 0  # refused before anything was read
    assert [c.params["channel"] for c in bot.slack.calls("conversations.members")] == [SECRET]


async def test_a_private_channel_the_user_is_in_is_read_and_membership_is_cached(bot: Bot) -> None:
    bot.slack.channels[SECRET].members.append(fs.USER_ID)
    for _ in range(2):
        result = await ask_in_panel(bot, SECRET, {"where": "channel"})
        assert not result.get("is_error") and "ship on friday" in result_text(result)
    assert history_reads(bot, SECRET) == 2
    assert len(bot.slack.calls("conversations.members")) == 1  # cached briefly


async def test_refused_a_private_channel_into_a_public_thread(bot: Bot) -> None:
    bot.slack.channels[SECRET].members.append(fs.USER_ID)  # even a member may not carry it into #general
    result = await ask_in_thread(bot, {"where": "channel", "channel": f"<#{SECRET}|secret-plans>"})
    text = result_text(result)
    assert result["is_error"] is True
    assert "is private: its messages cannot be shown here" in text and "ship on friday" not in text
    assert history_reads(bot, SECRET) == 0


async def test_refused_another_public_channel_and_answered_when_the_bot_is_not_in_one(bot: Bot) -> None:
    result = await ask_in_thread(bot, {"where": "channel", "channel": RANDOM})
    assert result["is_error"] is True and "only read the conversation we are in" in result_text(result)
    assert history_reads(bot, RANDOM) == 0
    result = await ask_in_panel(bot, OUTSIDE, {"where": "channel"})
    assert result["is_error"] is True and "invite me" in result_text(result)
    assert "ship on friday" not in result_text(result)


async def test_a_rate_limited_read_is_a_sentence_not_a_failed_turn(bot: Bot) -> None:
    bot.slack.fail_next("conversations.history", "ratelimited", status=429)
    result = await ask_in_thread(bot, {"where": "channel"})
    assert result["is_error"] is True and "try again in a minute" in result_text(result)
