"""The approval gate in the agent loop: a tool that acts runs only after the asking user said yes."""
from __future__ import annotations

from contextlib import AsyncExitStack

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import load_settings
from bot.conversation import Conversations, Turn
from bot.conversation.approvals import ApprovalRequest
from bot.conversation.history import is_valid
from bot.llm import provider_for
from bot.slack.edit_budget import EditBudget
from bot.slack.reply import SlackReply
from bot.store.sqlite import SqliteStore
from tests.fakes import slack as fs
from tests.fakes.anthropic import DEFAULT_API_KEY, FakeAnthropic, Reply, ToolUse
from tests.fakes.slack import FakeSlack
from tools.context import ToolContext
from tools.registry import Registry, tool

pytestmark = pytest.mark.timeout(60)
SENT: list[str] = []


@tool(acts=True)
async def send_email(ctx: ToolContext, to: str, body: str) -> str:
    """Send an email (a test tool that acts).

    Args:
        to: The address.
        body: The text.
    """
    SENT.append(to)
    return f"sent to {to}"


@tool
async def count_words(ctx: ToolContext, text: str) -> int:
    """Count words (a test tool that only reads).

    Args:
        text: The text.
    """
    return len(text.split())


@pytest.fixture
async def rig(tmp_path):
    SENT.clear()
    async with AsyncExitStack() as stack:
        model = await stack.enter_async_context(FakeAnthropic())
        slack = await stack.enter_async_context(FakeSlack())
        settings = load_settings(ANTHROPIC_API_KEY=DEFAULT_API_KEY, ANTHROPIC_BASE_URL=model.base_url,
                                 THREADBOT_DB=str(tmp_path / "bot.db"), THREADBOT_USER_RPM="1000")
        provider, model_id = provider_for(settings)
        stack.push_async_callback(provider.aclose)
        store = SqliteStore(settings.db_path)
        stack.push_async_callback(store.close)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        registry = Registry([send_email, count_words])
        conversations = Conversations(settings=settings, store=store, provider=provider, model=model_id,
                                      registry=registry, http=http)
        client = AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url)

        async def ask(text: str, approve=None) -> None:
            ts = fs.next_ts()
            turn = Turn(team_id=fs.TEAM_ID, channel_id=fs.CHANNEL_ID, thread_ts=ts, user_id=fs.USER_ID, text=text,
                        ts=ts, surface="mention")
            reply = SlackReply(client, EditBudget(), channel=fs.CHANNEL_ID, thread_ts=ts, registry=registry)
            await conversations.handle(turn, reply, approve=approve)
            conversation_id = await store.conversation_id(team_id=fs.TEAM_ID, channel_id=fs.CHANNEL_ID, thread_ts=ts,
                                                    user_id=fs.USER_ID)
            assert is_valid([m.message for m in await store.history(conversation_id)])

        yield model, registry, ask


def results(request: dict) -> list[dict]:
    return [b for b in request["messages"][-1]["content"] if b["type"] == "tool_result"]


async def test_only_the_acting_tool_is_asked_about_and_a_yes_runs_it(rig) -> None:
    model, registry, ask = rig
    assert registry.acts("send_email") and not registry.acts("count_words")
    asked: list[ApprovalRequest] = []

    async def approve(request: ApprovalRequest) -> bool:
        asked.append(request)
        return True

    model.add(Reply(content=[ToolUse("count_words", {"text": "a b c"}),
                             ToolUse("send_email", {"to": "ops@example.com", "body": "hi " * 200})]),
              Reply.text("Sent."))
    await ask("count and send", approve)
    assert [(r.tool, r.user_id, r.arguments["to"]) for r in asked] == [("send_email", fs.USER_ID, "ops@example.com")]
    body = dict(asked[0].readable_arguments())["body"]
    assert len(body) < 260 and body.endswith("(599 characters)")  # whitespace runs are folded first
    assert SENT == ["ops@example.com"]
    assert [r["content"] for r in results(model.requests[1])] == ["3", "sent to ops@example.com"]


async def test_a_no_an_error_or_no_way_to_ask_means_the_tool_does_not_run(rig) -> None:
    model, _, ask = rig

    async def deny(request: ApprovalRequest) -> bool:
        return False

    async def broken(request: ApprovalRequest) -> bool:
        raise RuntimeError("the question could not be posted")

    for approve in (deny, broken, None):
        model.add(Reply.tool("send_email", {"to": "x@example.com", "body": "b"}), Reply.text("Fine."))
        await ask("send it", approve)
        (result,) = results(model.requests[-1])
        assert result["is_error"]
        assert ("declined" if approve else "cannot be asked here") in result["content"]
    assert SENT == []
