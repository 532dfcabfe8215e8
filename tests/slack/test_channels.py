"""Per-channel agents through the real Bolt app: /threadbot (admins only, checked values, logged changes),
each channel's prompt, model and tools in its requests, and auto-answer in one channel but not another."""
from __future__ import annotations

import asyncio

import pytest

from bot.config import DEFAULT_SYSTEM_PROMPT
from bot.conversation.channels import CHANNEL_RULES, MAX_PROMPT_CHARS
from bot.slack.channel_commands import NOT_ADMIN
from bot.slack.feedback import FEEDBACK_ACTION_ID
from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply
from tests.fakes.openai import FakeOpenAI, ScriptedReply
from tests.slackapp import Bot, running_bot
from tests.store_rows import feedback_votes, usage_rows

ADMIN = "U0ADMIN"
BOB = "U0BOB"
HELP = "C0HELP"  # #it-help: its own persona, model and tools, auto-answer on
QUIET = fs.CHANNEL_ID  # #general: the defaults
PERSONA = "You are the IT help desk. Answer from the IT documents and end with a ticket hint."


@pytest.fixture
async def bot(tmp_path):
    async with running_bot(tmp_path, THREADBOT_ADMINS=ADMIN) as b:
        for user in (ADMIN, BOB):
            b.slack.add_user(user, name=user.lower())
        b.slack.add_channel(HELP, name="it-help", members=[fs.USER_ID, ADMIN, BOB])
        b.slack.channels[QUIET].members += [ADMIN, BOB]
        yield b


async def threadbot(bot: Bot, text: str, *, user: str = ADMIN, channel: str = HELP) -> str:
    result, _ = await bot.command("/threadbot", text, user_id=user, channel_id=channel)
    body = result.json()
    assert body["response_type"] == "ephemeral"
    return body["text"]


def tool_names(request: dict) -> list[str]:
    return [t["name"] for t in request.get("tools", [])]


async def test_a_channels_prompt_model_and_tools_reach_its_requests_and_not_others(bot: Bot):
    await threadbot(bot, f"prompt {PERSONA}")
    await threadbot(bot, "model claude-haiku-4-5")
    await threadbot(bot, "tools get_weather")

    bot.model.add(Reply.text("Restart the VPN client."), Reply.text("It is sunny."), Reply.text("Try again."))
    first = bot.slack.user_message(HELP, "my VPN is down", mention=True)
    await bot.deliver(first)
    await bot.final_text(HELP, first["ts"], "Restart the VPN client.")
    elsewhere = bot.slack.user_message(QUIET, "weather in Lisbon?", mention=True)
    await bot.deliver(elsewhere)
    await bot.final_text(QUIET, elsewhere["ts"], "It is sunny.")
    again = bot.slack.user_message(HELP, "still down", thread_ts=first["ts"], mention=True)
    await bot.deliver(again)
    await bot.final_text(HELP, first["ts"], "Try again.")

    help_request, quiet_request, help_again = bot.model.requests
    assert help_request["model"] == "claude-haiku-4-5"
    system = help_request["system"][0]["text"]
    # The bot's own rules come first and stay; the channel's persona follows.
    assert system == f"{DEFAULT_SYSTEM_PROMPT}\n\n{CHANNEL_RULES}\n\n{PERSONA}"
    assert tool_names(help_request) == ["get_weather"]

    assert quiet_request["model"] == bot.services.settings.model
    assert quiet_request["system"][0]["text"] == DEFAULT_SYSTEM_PROMPT
    assert set(tool_names(quiet_request)) == set(bot.services.registry.names) and len(tool_names(quiet_request)) > 1

    # The cache prefix (tools, then system) is the same from turn to turn in one channel.
    assert help_again["tools"] == help_request["tools"] and help_again["system"] == help_request["system"]

    rows = usage_rows(bot.services.store)
    assert [(r.channel_id, r.model) for r in rows] == [
        (HELP, "claude-haiku-4-5"), (QUIET, bot.services.settings.model), (HELP, "claude-haiku-4-5")]


async def test_feedback_under_an_answer_counts_for_the_channels_model(bot: Bot):
    await threadbot(bot, "model claude-haiku-4-5")
    bot.model.add(Reply.text("Restart the VPN client."), Reply.text("It is sunny."))
    asked = bot.slack.user_message(HELP, "my VPN is down", mention=True)
    await bot.deliver(asked)
    answer = await bot.final_text(HELP, asked["ts"], "Restart the VPN client.")
    elsewhere = bot.slack.user_message(QUIET, "weather in Lisbon?", mention=True)
    await bot.deliver(elsewhere)
    other = await bot.final_text(QUIET, elsewhere["ts"], "It is sunny.")

    buttons = answer.blocks[-1]["elements"][0]
    assert buttons["positive_button"]["value"] == "up claude-haiku-4-5"
    assert other.blocks[-1]["elements"][0]["positive_button"]["value"] == f"up {bot.services.settings.model}"
    await bot.deliver(fs.block_actions(FEEDBACK_ACTION_ID, buttons["negative_button"]["value"], user_id=fs.USER_ID,
                                       channel_id=HELP, message_ts=answer.ts, thread_ts=asked["ts"]))
    await bot.slack.wait_for(lambda: len(bot.slack.ephemerals) == 1)
    [vote] = feedback_votes(bot.services.store, channel_id=HELP, message_ts=answer.ts)
    assert (vote.vote, vote.model) == ("down", "claude-haiku-4-5")


async def test_a_channel_model_of_another_provider_goes_to_that_provider(tmp_path):
    openai = FakeOpenAI(api_key="sk-test-fake-key-1234")
    await openai.start()
    try:
        async with running_bot(tmp_path, THREADBOT_ADMINS=ADMIN, OPENAI_API_KEY="sk-test-fake-key-1234",
                               OPENAI_BASE_URL=openai.base_url) as bot:
            bot.slack.add_user(ADMIN, name="admin")
            answer = await threadbot(bot, "model gpt-4o-mini", channel=QUIET)
            assert answer.startswith("Changed *model* from the default to `gpt-4o-mini`.")
            openai.script(ScriptedReply(text="Hello from OpenAI."))
            event = bot.slack.user_message(QUIET, "hi", mention=True)
            await bot.deliver(event)
            await bot.final_text(QUIET, event["ts"], "Hello from OpenAI.")
            assert bot.model.requests == []  # nothing went to Anthropic
            (request,) = openai.chat_requests
            assert request.body["model"] == "gpt-4o-mini"
            assert request.body["messages"][0]["role"] == "system"
            assert [r.model for r in usage_rows(bot.services.store)] == ["gpt-4o-mini"]
    finally:
        await openai.stop()


async def test_only_admins_change_settings_and_everyone_else_is_refused_politely(bot: Bot):
    for text in ("prompt Be a pirate.", "model claude-haiku-4-5", "autoanswer on", "reset", "show"):
        assert await threadbot(bot, text, user=BOB) == NOT_ADMIN
    assert await bot.services.store.channel_settings(HELP) is None
    assert await bot.services.store.channel_setting_changes(HELP) == []
    assert "*/threadbot*" in await threadbot(bot, "help", user=BOB)  # what it does is no secret


@pytest.mark.parametrize("text, says", [
    ("model gemini-pro", "is not a model I know"),
    ("model claude-sonet-4-6", "I don't know the model claude-sonet-4-6"),
    ("model gpt-4o", "OPENAI_API_KEY is not set: the model gpt-4o needs an OpenAI API key."),
    ("tools get_weather,launch_rockets", "I have no tool or MCP server called `launch_rockets`"),
    ("prompt " + "x" * 20_000, f"That prompt is 20,000 characters; a channel prompt can have at most "
                                f"{MAX_PROMPT_CHARS:,}."),
    ("prompt", "Give the prompt after the word"),
    ("autoanswer maybe", "Say `/threadbot autoanswer on`"),
])
async def test_invalid_values_get_a_clear_answer_and_change_nothing(bot: Bot, text: str, says: str):
    await threadbot(bot, "prompt Keep it short.")
    before = await bot.services.store.channel_settings(HELP)
    answer = await threadbot(bot, text)
    assert says in answer and answer.endswith("Nothing was changed.")
    assert await bot.services.store.channel_settings(HELP) == before
    assert len(await bot.services.store.channel_setting_changes(HELP)) == 1


async def test_show_lists_the_settings_and_every_change_with_who_and_old_and_new(bot: Bot):
    assert (await threadbot(bot, "show")).splitlines()[1:] == [
        "• Prompt: none (my default instructions)", f"• Model: `{bot.services.settings.model}` (the default)",
        "• Tools: all (the default)", "• Auto-answer: off"]
    await threadbot(bot, "prompt Answer like a librarian.")
    await threadbot(bot, "tools get_weather, search_docs")
    await threadbot(bot, "autoanswer on")
    assert await threadbot(bot, "autoanswer on") == "That is already the setting here; nothing changed."
    lines = (await threadbot(bot, "show")).splitlines()
    assert lines[:5] == [f"*How I behave in <#{HELP}>*", "• Prompt: _Answer like a librarian._",
                         f"• Model: `{bot.services.settings.model}` (the default)",
                         "• Tools: `get_weather`, `search_docs`", "• Auto-answer: on"]
    assert lines[5] == "*Latest changes*"
    changes = lines[6:]
    assert [c.split(f"<@{ADMIN}> changed ")[1] for c in changes] == [
        "*autoanswer* from off to `on`", "*tools* from all to `get_weather,search_docs`",
        "*prompt* from the default to `Answer like a librarian.`"]
    assert all(c.startswith("• 20") and " UTC " in c for c in changes)

    answer = await threadbot(bot, "reset")
    assert answer.splitlines()[:3] == ["Changed *prompt* from `Answer like a librarian.` to the default.",
                                       "Changed *tools* from `get_weather,search_docs` to all.",
                                       "Changed *autoanswer* from `on` to off."]
    assert await bot.services.store.channel_settings(HELP) is None
    assert len(await bot.services.store.channel_setting_changes(HELP, limit=100)) == 6


async def test_a_tool_the_channel_does_not_offer_is_not_run(bot: Bot):
    await threadbot(bot, "tools none")
    bot.model.add(Reply.tool("get_weather", {"place": "Lisbon"}), Reply.text("I can't check that here."))
    event = bot.slack.user_message(HELP, "weather?", mention=True)
    await bot.deliver(event)
    await bot.final_text(HELP, event["ts"], "I can't check that here.")
    first, second = bot.model.requests
    assert "tools" not in first or first["tools"] == []
    result = second["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert "not available in this channel" in str(result["content"])


async def test_auto_answer_answers_every_new_message_in_its_channel_only(bot: Bot):
    await threadbot(bot, "autoanswer on")
    bot.model.add(Reply.text("Try turning it off and on."), Reply.text("Then call IT."))
    question = bot.slack.user_message(HELP, "my laptop won't boot", user=BOB)
    await bot.deliver(question)
    await bot.final_text(HELP, question["ts"], "Try turning it off and on.")

    # Not in a channel without auto-answer; never for bots, edits or joins.
    ignored = [
        bot.slack.user_message(QUIET, "my laptop won't boot either", user=BOB),
        {**bot.slack.user_message(HELP, "deploy finished"), "bot_id": "B0CI", "subtype": "bot_message"},
        bot.slack.edit_message(HELP, question["ts"], "my laptop won't boot (edited)"),
        {**fs.message_event(f"<@{BOB}> has joined the channel", user=BOB, channel=HELP), "subtype": "channel_join"},
    ]
    for event in ignored:
        await bot.deliver(event)

    # A reply in the answered thread is a follow-up, as in any thread the bot answered in.
    follow_up = bot.slack.user_message(HELP, "it still won't", user=BOB, thread_ts=question["ts"])
    await bot.deliver(follow_up)
    await bot.final_text(HELP, question["ts"], "Then call IT.")
    await asyncio.sleep(0.3)
    assert len(bot.model.requests) == 2
    assert bot.bot_messages(QUIET, ignored[0]["ts"]) == []
    rows = usage_rows(bot.services.store)
    assert [(r.user_id, r.channel_id, r.surface) for r in rows] == [(BOB, HELP, "autoanswer"), (BOB, HELP, "mention")]


async def test_auto_answer_keeps_the_usual_limits(tmp_path):
    async with running_bot(tmp_path, THREADBOT_ADMINS=ADMIN, THREADBOT_USER_DAILY_USD="0.000001") as bot:
        bot.slack.add_user(ADMIN, name="admin")
        await threadbot(bot, "autoanswer on", channel=QUIET)
        bot.model.add(Reply.text("First answer.", input_tokens=1000, output_tokens=1000))
        first = bot.slack.user_message(QUIET, "question one")
        await bot.deliver(first)
        await bot.final_text(QUIET, first["ts"], "First answer.")
        second = bot.slack.user_message(QUIET, "question two")
        await bot.deliver(second)
        await bot.bot_message_where(QUIET, second["ts"], lambda t: t.startswith("You've reached your daily budget"),
                                    what="the daily budget notice")
        assert len(bot.model.requests) == 1
