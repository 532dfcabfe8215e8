"""Slack's assistant panel: suggested prompts, status while working, title, context tracked into the Turn."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.conversation import Turn
from bot.slack.mrkdwn import to_mrkdwn
from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply
from tests.fakes.slack import FakeSlack
from tests.slackapp import Bot, running_bot

pytestmark = pytest.mark.timeout(60)

ASSISTANT_DM = "D0ASSIST"
VIEWED_CHANNEL = "C0VIEWED"
OTHER_CHANNEL = "C0OTHER"
# Tools that reach out fail fast and become error results; the status is what matters here.
TOOLS_UNREACHABLE = {"THREADBOT_WEATHER_API_URL": "http://127.0.0.1:9/forecast",
                     "THREADBOT_GEOCODING_API_URL": "http://127.0.0.1:9/search"}


def assistant_thread_started(thread_ts: str, *, context_channel: str | None = VIEWED_CHANNEL) -> dict[str, Any]:
    context = {"channel_id": context_channel, "team_id": fs.TEAM_ID, "enterprise_id": None} if context_channel else {}
    return {"type": "assistant_thread_started", "event_ts": fs.next_ts(),
            "assistant_thread": {"user_id": fs.USER_ID, "channel_id": ASSISTANT_DM, "thread_ts": thread_ts,
                                 "context": context}}


def assistant_thread_context_changed(thread_ts: str, channel: str) -> dict[str, Any]:
    event = assistant_thread_started(thread_ts, context_channel=channel)
    event["type"] = "assistant_thread_context_changed"
    return event


def status_calls(slack: FakeSlack, thread_ts: str) -> list[str]:
    return [c.params["status"] for c in slack.calls("assistant.threads.setStatus") if c.params["thread_ts"] == thread_ts]


@pytest.fixture
async def bot(tmp_path):
    async with running_bot(tmp_path, **TOOLS_UNREACHABLE) as running:
        yield running


async def test_thread_started_sets_suggested_prompts_and_records_the_context(bot: Bot):
    thread_ts = fs.next_ts()
    await bot.deliver(assistant_thread_started(thread_ts))
    call = await bot.slack.wait_for_call("assistant.threads.setSuggestedPrompts")
    assert call.ok and call.params["channel_id"] == ASSISTANT_DM and call.params["thread_ts"] == thread_ts
    prompts = call.params["prompts"]
    assert 3 <= len(prompts) <= 4 and all(p["title"] and p["message"] for p in prompts)
    thread = await bot.services.store.assistant_thread(ASSISTANT_DM, thread_ts)
    assert thread is not None and thread.context_channel_id == VIEWED_CHANNEL and thread.user_id == fs.USER_ID


async def context_is(bot: Bot, thread_ts: str, channel: str) -> bool:
    thread = await bot.services.store.assistant_thread(ASSISTANT_DM, thread_ts)
    return thread is not None and thread.context_channel_id == channel


async def test_message_in_assistant_thread_uses_status_title_and_viewed_channel(bot: Bot):
    thread_ts = fs.next_ts()
    await bot.deliver(assistant_thread_started(thread_ts))
    await bot.slack.wait_for_call("assistant.threads.setSuggestedPrompts")
    await bot.deliver(assistant_thread_context_changed(thread_ts, OTHER_CHANNEL))
    await bot.slack.wait_for(
        lambda: context_is(bot, thread_ts, OTHER_CHANNEL))

    seen: list[Turn] = []
    handle = bot.services.conversations.handle

    async def spy(turn: Turn, reply: Any, **options: Any) -> None:
        seen.append(turn)
        await handle(turn, reply, **options)

    bot.services.conversations.handle = spy  # type: ignore[method-assign]
    bot.model.add(
        Reply.tool("get_weather", {"place": "Lisbon"}, token_delay_s=0.05),
        Reply.text("I could not reach the **forecast** service just now.", chunk_chars=6, token_delay_s=0.03),
    )
    question = "What's the weather in Lisbon this weekend? I want to plan a walk along the river and need to know"
    await bot.deliver(fs.dm_message(question, channel=ASSISTANT_DM, thread_ts=thread_ts))
    final = await bot.final_text(ASSISTANT_DM, thread_ts, to_mrkdwn("I could not reach the **forecast** service just now."))

    # No "Thinking…" placeholder in the panel: the status line says it instead.
    assert final.history[0] != "_Thinking…_"
    assert all("Thinking" not in m.text for m in bot.bot_messages(ASSISTANT_DM, thread_ts))
    await bot.slack.wait_for(lambda: status_calls(bot.slack, thread_ts)[-1:] == [""])
    statuses = status_calls(bot.slack, thread_ts)
    assert statuses[0] == "is thinking…"
    assert "is checking the forecast…" in statuses
    assert statuses.index("is checking the forecast…") > 0 and statuses[-1] == ""
    assert bot.slack.assistant_status[(ASSISTANT_DM, thread_ts)] == ""

    [title] = [c.params["title"] for c in bot.slack.calls("assistant.threads.setTitle")]
    assert title.startswith("What's the weather in Lisbon this weekend?") and len(title) <= 80

    [turn] = seen
    assert turn.surface == "assistant" and turn.viewing_channel_id == OTHER_CHANNEL and turn.thread_ts == thread_ts

    # The second question in the same thread keeps the title.
    bot.model.add(Reply.text("Sure."))
    await bot.deliver(fs.dm_message("and on Monday?", channel=ASSISTANT_DM, thread_ts=thread_ts))
    await bot.final_text(ASSISTANT_DM, thread_ts, "Sure.")
    assert len(bot.slack.calls("assistant.threads.setTitle")) == 1
    assert seen[1].viewing_channel_id == OTHER_CHANNEL


async def test_assistant_thread_info_on_the_message_is_enough(bot: Bot):
    thread_ts = fs.next_ts()
    event = fs.dm_message("hello from the panel", channel=ASSISTANT_DM, thread_ts=thread_ts)
    event["assistant_thread"] = {"user_id": fs.USER_ID, "context": {"channel_id": VIEWED_CHANNEL, "team_id": fs.TEAM_ID}}
    await bot.deliver(event)
    await bot.final_text(ASSISTANT_DM, thread_ts, "echo: hello from the panel")
    await bot.slack.wait_for(lambda: status_calls(bot.slack, thread_ts)[-1:] == [""])
    assert status_calls(bot.slack, thread_ts)[0] == "is thinking…"
    assert (await bot.services.store.assistant_thread(ASSISTANT_DM, thread_ts)).context_channel_id == VIEWED_CHANNEL


async def test_plain_dm_thread_still_gets_a_placeholder_and_no_status(bot: Bot):
    event = fs.dm_message("a normal DM")
    await bot.deliver(event)
    final = await bot.final_text(fs.DM_CHANNEL_ID, event["ts"], "echo: a normal DM")
    assert final.history[0] == "_Thinking…_"
    await asyncio.sleep(0.2)
    assert bot.slack.calls("assistant.threads.setStatus") == []
    assert bot.slack.calls("assistant.threads.setTitle") == []


async def test_every_manifest_event_is_acked(bot: Bot):
    from tests.slack.test_manifest import manifest

    samples = {
        "app_mention": {**fs.app_mention("hi"), "user": None},  # malformed: acked, then ignored
        "message.im": {**fs.dm_message("from a bot"), "bot_id": "B0OTHER"},
        "assistant_thread_started": assistant_thread_started(fs.next_ts()),
        "assistant_thread_context_changed": assistant_thread_context_changed(fs.next_ts(), OTHER_CHANNEL),
    }
    for name in manifest()["settings"]["event_subscriptions"]["bot_events"]:
        event = samples.get(name) or {"type": name.split(".")[0], "event_ts": fs.next_ts()}
        await bot.deliver(event)  # asserts HTTP 200: Bolt answers 404 when no listener matches


def test_tools_declare_their_assistant_status():
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.messages import ToolUseBlock
    from bot.slack.edit_budget import EditBudget
    from bot.slack.reply import SlackReply
    from tools.registry import Registry

    registry = Registry.discover()
    assert registry.assistant_status("search_docs") == "is searching your documents…"
    assert registry.assistant_status("get_weather") == "is checking the forecast…"
    assert registry.assistant_status("extract_record") == "is extracting the details…"

    class Panel:
        def __init__(self) -> None:
            self.shown: list[str | None] = []

        async def thinking(self) -> bool: return True
        def show(self, status: str | None) -> None: self.shown.append(status)
        async def clear(self) -> None: ...

    panel = Panel()
    reply = SlackReply(AsyncWebClient(token="xoxb-unused"), EditBudget(), channel=ASSISTANT_DM, thread_ts="1.0",
                       status=panel, registry=registry)
    # Parallel calls: the panel has one line, the first tool's.
    reply.tools_started([ToolUseBlock("t1", "get_weather", {"place": "Oslo"}), ToolUseBlock("t2", "search_docs", {})])
    assert panel.shown[-1] == "is checking the forecast…"
    reply.tools_started([ToolUseBlock("t3", "something_else_entirely", {})])
    assert panel.shown[-1] == "is working on it…"


async def test_status_refused_falls_back_to_a_placeholder():
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.slack.edit_budget import EditBudget
    from bot.slack.assistant_status import AssistantStatus
    from bot.slack.reply import SlackReply

    async with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        thread_ts = fs.next_ts()
        slack.fail_next("assistant.threads.setStatus", "channel_not_found")
        status = AssistantStatus(client, channel_id=ASSISTANT_DM, thread_ts=thread_ts)
        reply = SlackReply(client, EditBudget(), channel=ASSISTANT_DM, thread_ts=thread_ts, status=status, interval_s=5)
        await reply.start()
        reply.append("Done.")
        await reply.finish()
        [message] = [m for m in slack.messages_in_thread(ASSISTANT_DM, thread_ts) if m.user == fs.BOT_USER_ID]
        assert message.history == ["_Thinking…_", "Done."]
