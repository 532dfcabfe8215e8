"""The real Bolt app in a channel thread: catch-up once, follow-ups from events, never twice, faults degrade."""
from __future__ import annotations

import asyncio

import pytest

from tests.fakes import slack as fs
from tests.fakes.anthropic import echo_text
from tests.slackapp import Bot, running_bot

BOB, CAROL = "U0BOB", "U0CAROL"
CH = fs.CHANNEL_ID


@pytest.fixture
async def bot(tmp_path):
    async with running_bot(tmp_path) as b:
        b.slack.add_user(BOB, name="bob")
        b.slack.add_user(CAROL, name="carol")
        b.slack.channels[CH].members += [BOB, CAROL]
        yield b


def last_user_text(body: dict) -> str:
    return echo_text(body).removeprefix("echo: ")


async def answered(bot: Bot, parent: str, count: int) -> list[fs.FakeMessage]:
    await bot.slack.wait_for(lambda: len([m for m in bot.bot_messages(CH, parent) if m.text.startswith("echo")])
                             >= count, timeout=15, what=f"{count} answers")
    await asyncio.sleep(0.1)
    return bot.bot_messages(CH, parent)


async def test_mention_mid_thread_reads_once_then_follow_ups_come_from_events(bot: Bot) -> None:
    parent = bot.slack.add_thread(CH, "deploy to prod failed", [
        (BOB, "it's the db migration, see <@U0ALICE>'s log"),
        (fs.USER_ID, "", ),
        (BOB, ":fire: :fire:"),
    ])
    # the empty reply carries a file only
    empty = bot.slack.messages_in_thread(CH, parent)[2]
    empty.files, empty.subtype = [{"id": "F1", "name": "migrate.log"}], "file_share"
    await bot.deliver(bot.slack.user_message(CH, "what do you make of this?", user=CAROL, thread_ts=parent,
                                             mention=True))
    await answered(bot, parent, 1)
    first = last_user_text(bot.model.requests[-1])
    assert first.index("[alice]: deploy to prod failed") < first.index("[bob]: it's the db migration, see @alice's")
    assert "[alice]: (shared files, not opened: migrate.log)" in first and "[bob]: :fire: :fire:" in first
    assert first.endswith("carol asks: what do you make of this?")
    assert len(bot.slack.calls("conversations.replies")) == 1

    # A reply addressed to someone else is not answered, but it is context for the next one.
    await bot.deliver(bot.slack.user_message(CH, "<@U0BOB> did staging pass?", thread_ts=parent))
    await asyncio.sleep(0.3)
    assert len(bot.model.requests) == 1
    await bot.deliver(bot.slack.user_message(CH, "and what about staging?", user=CAROL, thread_ts=parent))
    await answered(bot, parent, 2)
    second = last_user_text(bot.model.requests[-1])
    assert "[alice]: @bob did staging pass?" in second
    assert "deploy to prod failed" not in second and "echo" not in second  # nothing twice, not our own
    assert second.endswith("carol asks: and what about staging?")
    # Bob's reply without @mention is a follow-up too, and nothing before it is repeated.
    await bot.deliver(bot.slack.user_message(CH, "rolled back at 14:10", user=BOB, thread_ts=parent))
    await answered(bot, parent, 3)
    assert last_user_text(bot.model.requests[-1]) == "rolled back at 14:10"
    assert len(bot.slack.calls("conversations.replies")) == 1  # context came as events


async def test_a_message_arriving_as_mention_and_as_message_is_answered_once(bot: Bot) -> None:
    parent = bot.slack.add_message(CH, "first question")
    await bot.deliver(bot.slack.user_message(CH, "hi", thread_ts=parent, mention=True))
    await answered(bot, parent, 1)
    mention = bot.slack.user_message(CH, "again?", user=BOB, thread_ts=parent, mention=True)
    as_message = fs.message_event(mention["text"], user=BOB, ts=mention["ts"], thread_ts=parent)
    await asyncio.gather(bot.deliver(mention), bot.deliver(as_message))
    await answered(bot, parent, 2)
    await asyncio.sleep(0.5)
    assert len([m for m in bot.bot_messages(CH, parent) if m.text.startswith("echo")]) == 2
    assert len(bot.model.requests) == 2


async def test_followups_off_edits_bots_and_joins_are_not_answered(tmp_path) -> None:
    async with running_bot(tmp_path, THREADBOT_THREAD_FOLLOWUPS="false") as bot:
        parent = bot.slack.add_message(CH, "q")
        await bot.deliver(bot.slack.user_message(CH, "hi", thread_ts=parent, mention=True))
        await answered(bot, parent, 1)
        await bot.deliver(bot.slack.user_message(CH, "and now?", thread_ts=parent))
        await asyncio.sleep(0.4)
        assert len(bot.model.requests) == 1
    async with running_bot(tmp_path / "on") as bot:
        parent = bot.slack.add_message(CH, "q")
        await bot.deliver(bot.slack.user_message(CH, "hi", thread_ts=parent, mention=True))
        await answered(bot, parent, 1)
        reply_ts = bot.slack.add_message(CH, "typo", thread_ts=parent)
        await bot.deliver(bot.slack.edit_message(CH, reply_ts, "fixed typo"))
        ci = {**fs.message_event("ci says no", thread_ts=parent), "bot_id": "B0CI", "subtype": "bot_message"}
        del ci["user"]
        await bot.deliver(ci)
        await bot.deliver(fs.message_event("<@U0ALICE> has joined", thread_ts=parent, subtype="channel_join"))
        await bot.deliver(bot.slack.delete_message(CH, reply_ts))
        await asyncio.sleep(0.4)
        assert len(bot.model.requests) == 1
        await bot.deliver(bot.slack.user_message(CH, "so?", thread_ts=parent))
        await answered(bot, parent, 2)
        text = last_user_text(bot.model.requests[-1])
        assert "[app B0CI]: ci says no" in text and "typo" not in text and "joined" not in text


@pytest.mark.parametrize(("error", "status"), [("ratelimited", 429), ("internal_error", 500),
                                               ("not_in_channel", 200), ("missing_scope", 200)])
async def test_a_failed_read_answers_from_what_is_stored(bot: Bot, error: str, status: int) -> None:
    parent = bot.slack.add_thread(CH, "long discussion", [(BOB, "point one")])
    bot.slack.fail_next("conversations.replies", error, status=status)
    await bot.deliver(bot.slack.user_message(CH, "summary please", user=CAROL, thread_ts=parent, mention=True))
    await answered(bot, parent, 1)
    assert last_user_text(bot.model.requests[-1]) == "summary please"
    # The next turn reads again (the gap is still there) and now sees the thread, once.
    await bot.deliver(bot.slack.user_message(CH, "again", user=CAROL, thread_ts=parent, mention=True))
    await answered(bot, parent, 2)
    text = last_user_text(bot.model.requests[-1])
    assert "[bob]: point one" in text and "summary please" not in text
    assert len(bot.slack.calls("conversations.replies")) == 2


async def test_a_restart_reads_the_gap_once(tmp_path) -> None:
    async with running_bot(tmp_path) as bot:
        bot.slack.add_user(BOB, name="bob")
        parent = bot.slack.add_message(CH, "q")
        await bot.deliver(bot.slack.user_message(CH, "hi", thread_ts=parent, mention=True))
        await answered(bot, parent, 1)
        reads_before = len(bot.slack.calls("conversations.replies"))
    async with running_bot(tmp_path) as bot:  # same database, new process, fresh fake Slack
        bot.slack.add_user(BOB, name="bob")
        bot.slack.add_message(CH, "q", ts=parent)
        bot.slack.add_message(CH, "said while the bot was down", user=BOB, thread_ts=parent)
        await bot.deliver(bot.slack.user_message(CH, "still there?", thread_ts=parent))
        await answered(bot, parent, 1)
        assert "[bob]: said while the bot was down" in last_user_text(bot.model.requests[-1])
        assert len(bot.slack.calls("conversations.replies")) == 1 and reads_before == 1


@pytest.mark.parametrize("first", ["app_mention", "message"])
async def test_mention_and_message_of_one_reply_answered_once_in_either_order(bot: Bot, first: str) -> None:
    parent = bot.slack.add_message(CH, "first question")
    await bot.deliver(bot.slack.user_message(CH, "hi", thread_ts=parent, mention=True))
    await answered(bot, parent, 1)
    mention = bot.slack.user_message(CH, "and now?", user=BOB, thread_ts=parent, mention=True)
    as_message = fs.message_event(mention["text"], user=BOB, ts=mention["ts"], thread_ts=parent)
    ordered = [mention, as_message] if first == "app_mention" else [as_message, mention]
    await bot.deliver(ordered[0])
    await answered(bot, parent, 2)  # the first arrival is answered ...
    await bot.deliver(ordered[1])
    await asyncio.sleep(0.5)
    assert len(bot.model.requests) == 2  # ... and the second, whichever it is, is not
    assert len([m for m in bot.bot_messages(CH, parent) if m.text.startswith("echo")]) == 2
