"""The summarize_thread message shortcut on the real Bolt app: read once, placeholder, streamed, the clicker pays."""
from __future__ import annotations

import asyncio

import pytest

from bot.slack.listeners.shortcuts import SUMMARY_REQUEST
from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply, echo_text
from tests.slackapp import Bot, running_bot

pytestmark = pytest.mark.timeout(60)

BOB, CAROL = "U0BOB", "U0CAROL"
CH = fs.CHANNEL_ID
SUMMARY = "Bob found the migration; Carol rolls back at 14:10. Open: staging."


@pytest.fixture
async def bot(tmp_path):
    async with running_bot(tmp_path) as b:
        b.slack.add_user(BOB, name="bob")
        b.slack.add_user(CAROL, name="carol")
        b.slack.channels[CH].members += [BOB, CAROL]
        yield b


def shortcut_on(bot: Bot, channel: str, ts: str, *, user: str) -> dict:
    message = bot.slack.message(channel, ts)
    assert message is not None
    return fs.message_action("summarize_thread", message.to_api(fs.TEAM_ID), channel_id=channel, user_id=user,
                             response_url=bot.slack.new_response_url())


async def test_summary_of_the_clicked_messages_thread_streams_into_it_and_is_billed_to_the_clicker(bot: Bot) -> None:
    parent = bot.slack.add_thread(CH, "deploy to prod failed", [
        (BOB, "it's the db migration"), (CAROL, "I'll roll back at 14:10"), (BOB, "staging still red"),
    ])
    reply_ts = bot.slack.messages_in_thread(CH, parent)[2].ts
    bot.model.add(Reply.text(SUMMARY, chunk_chars=4, token_delay_s=0.15))
    await bot.deliver(shortcut_on(bot, CH, reply_ts, user=CAROL))  # on a reply: its thread is summarised
    final = await bot.final_text(CH, parent, SUMMARY)
    assert final.history[0] == "_Thinking…_" and len(final.history) >= 3  # placeholder at once, then edits

    [request] = bot.model.requests
    text = echo_text(request).removeprefix("echo: ")
    assert text.index("[alice]: deploy to prod failed") < text.index("[bob]: it's the db migration") \
        < text.index("[carol]: I'll roll back at 14:10") < text.index("[bob]: staging still red")
    assert text.endswith(f"carol asks: {SUMMARY_REQUEST}")
    assert len(bot.slack.calls("conversations.replies")) == 1
    assert (await bot.services.store.usage_totals(since=0, user_id=CAROL)).calls == 1
    assert (await bot.services.store.usage_totals(since=0, user_id=fs.USER_ID)).calls == 0

    # Summarising does not make the bot answer every later reply in that thread.
    await bot.deliver(bot.slack.user_message(CH, "thanks", user=BOB, thread_ts=parent))
    await asyncio.sleep(0.4)
    assert len(bot.model.requests) == 1
    # A second summary reads nothing again: the thread came as events since.
    await bot.deliver(shortcut_on(bot, CH, parent, user=BOB))
    await bot.slack.wait_for(lambda: len(bot.model.requests) == 2)
    second = echo_text(bot.model.requests[-1])
    assert "[bob]: thanks" in second and "deploy to prod failed" not in second
    assert len(bot.slack.calls("conversations.replies")) == 1


async def test_a_channel_the_bot_is_not_in_gets_an_ephemeral_sentence_and_no_model_call(bot: Bot) -> None:
    bot.slack.add_channel("C0ELSE", name="else", members=[fs.USER_ID], bot_is_member=False)
    ts = bot.slack.add_message("C0ELSE", "hello")
    action = shortcut_on(bot, "C0ELSE", ts, user=fs.USER_ID)
    await bot.deliver(action)
    await bot.slack.wait_for(lambda: bot.slack.responses[action["response_url"]])
    [answer] = bot.slack.responses[action["response_url"]]
    assert answer["response_type"] == "ephemeral" and "Invite me" in answer["text"]
    assert bot.model.requests == [] and bot.slack.calls("conversations.replies") == []


async def test_a_top_level_message_without_replies_is_summarised_from_itself(bot: Bot) -> None:
    ts = bot.slack.add_message(CH, "we move the offsite to May", user=BOB)
    bot.model.add(Reply.text("The offsite moves to May."))
    await bot.deliver(shortcut_on(bot, CH, ts, user=fs.USER_ID))
    await bot.final_text(CH, ts, "The offsite moves to May.")
    assert "[bob]: we move the offsite to May" in echo_text(bot.model.requests[-1])


async def test_a_summary_is_recorded_as_work_until_its_final_edit_and_a_second_delivery_does_nothing(bot: Bot) -> None:
    parent = bot.slack.add_thread(CH, "deploy to prod failed", [(BOB, "it's the db migration")])
    bot.model.add(Reply.text(SUMMARY, chunk_chars=4, token_delay_s=0.1))
    click = shortcut_on(bot, CH, parent, user=CAROL)
    await bot.deliver(click)
    await bot.slack.wait_for(lambda: len(bot.slack.messages_in_thread(CH, parent)) == 3)  # the placeholder
    # While it streams, the summary is open work of this process (a crash now leaves it to recovery) ...
    [open_turn] = await bot.services.store.adopt_turns("recovery-probe", everyone_else_gone=True)
    assert (open_turn.kind, open_turn.user_id, open_turn.text) == ("summary", CAROL, SUMMARY_REQUEST)
    await bot.final_text(CH, parent, SUMMARY)
    # ... and done once its final edit is made; the same click delivered again summarises nothing twice.
    await bot.slack.wait_for(lambda: _outcome(bot, open_turn.id, "answered"))
    await bot.deliver(click)
    await asyncio.sleep(0.3)
    assert len(bot.model.requests) == 1 and len(bot.slack.messages_in_thread(CH, parent)) == 3


async def _outcome(bot: Bot, turn_id: int, expected: str) -> bool:
    return await bot.services.store.turn_outcome(turn_id) == expected
