"""The agent loop in-process: real Store, AnthropicProvider, Conversations and SlackReply against the fakes."""
from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation.agent import CUT_OFF_SENTENCE, ROUND_LIMIT_SENTENCE
from bot.config import load_settings
from bot.conversation import Conversations, Turn
from bot.slack.edit_budget import EditBudget
from bot.conversation.history import INTERRUPTED, is_valid
from bot.llm import provider_for
from bot.messages import Message, TextBlock
from bot.slack.reply import SlackReply
from bot.store.sqlite import SqliteStore
from bot.store import Store
from tests.fakes import slack as fs
from tests.fakes.anthropic import DEFAULT_API_KEY, ErrorReply, FakeAnthropic, Reply, ToolUse
from tests.fakes.open_meteo import FakeOpenMeteo
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.tools.test_extract_record import GOOD_INVOICE, INVOICE_TEXT
from tools.context import ToolContext
from tools.extract_record import extract_record
from tools.get_weather import get_weather
from tools.registry import Registry, tool
from tests.store_rows import usage_rows

pytestmark = pytest.mark.timeout(60)

# What the test tools saw: (what happened, label, monotonic time).
EVENTS: list[tuple[str, str, float]] = []


@tool(status="Waiting {seconds} s for {label}…")
async def slow_echo(ctx: ToolContext, label: str, seconds: float) -> str:
    """Wait some seconds, then echo the label back (a test tool).

    Args:
        label: Text to echo.
        seconds: How long to wait first.
    """
    EVENTS.append(("start", label, time.monotonic()))
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        EVENTS.append(("cancelled", label, time.monotonic()))
        raise
    EVENTS.append(("end", label, time.monotonic()))
    return f"echo {label}"


@tool
async def break_things(ctx: ToolContext, what: str) -> str:
    """Always fails (a test tool).

    Args:
        what: What to break.
    """
    raise RuntimeError(f"boom while breaking {what}")


BAD_INVOICE = {**GOOD_INVOICE, "total": "97.95"}  # subtotal + tax != total


@dataclass
class Rig:
    model: FakeAnthropic
    slack: FakeSlack
    weather: FakeOpenMeteo
    store: Store
    conversations: Conversations
    client: AsyncWebClient
    budget: EditBudget

    def turn(self, text: str, *, thread_ts: str | None = None) -> Turn:
        ts = fs.next_ts()
        return Turn(team_id=fs.TEAM_ID, channel_id=fs.CHANNEL_ID, thread_ts=thread_ts or ts, user_id=fs.USER_ID,
                    text=text, ts=ts, surface="mention")

    def reply_for(self, turn: Turn) -> SlackReply:
        # A short edit interval so progress lines reach Slack while tools run, even when they are quick.
        return SlackReply(self.client, self.budget, channel=turn.channel_id, thread_ts=turn.thread_ts,
                          interval_s=0.05, registry=self.conversations.registry)

    async def ask(self, text: str, *, thread_ts: str | None = None) -> tuple[Turn, FakeMessage]:
        turn = self.turn(text, thread_ts=thread_ts)
        reply = self.reply_for(turn)
        await self.conversations.handle(turn, reply)
        message = self.slack.message(turn.channel_id, reply.parts[0].ts)
        assert message is not None
        return turn, message

    async def history(self, turn: Turn) -> list[Message]:
        conversation_id = await self.store.conversation_id(team_id=turn.team_id, channel_id=turn.channel_id,
                                                     thread_ts=turn.thread_ts, user_id=turn.user_id)
        return [m.message for m in await self.store.history(conversation_id)]


@pytest.fixture
async def make_rig(tmp_path):
    EVENTS.clear()
    async with AsyncExitStack() as stack:
        model = await stack.enter_async_context(FakeAnthropic())
        slack = await stack.enter_async_context(FakeSlack())
        weather = await stack.enter_async_context(FakeOpenMeteo())

        async def build(**env: str) -> Rig:
            settings = load_settings(
                ANTHROPIC_API_KEY=DEFAULT_API_KEY, ANTHROPIC_BASE_URL=model.base_url,
                THREADBOT_DB=str(tmp_path / "bot.db"), THREADBOT_USER_RPM="1000", **weather.env(), **env,
            )
            provider, model_id = provider_for(settings)
            stack.push_async_callback(provider.aclose)
            store = SqliteStore(settings.db_path)
            stack.push_async_callback(store.close)
            http = await stack.enter_async_context(aiohttp.ClientSession())
            registry = Registry([get_weather, extract_record, slow_echo, break_things])
            conversations = Conversations(settings=settings, store=store, provider=provider, model=model_id,
                                          registry=registry, http=http)
            return Rig(model=model, slack=slack, weather=weather, store=store, conversations=conversations,
                       client=AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url), budget=EditBudget())

        yield build


def blocks(request: dict[str, Any], index: int, kind: str) -> list[dict[str, Any]]:
    return [b for b in request["messages"][index]["content"] if b["type"] == kind]


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks of a request's last message."""
    return blocks(request, -1, "tool_result")


# --- one tool round, progress, follow-up --------------------------------------------------------


async def test_weather_round_shows_progress_then_answer_and_follow_up_keeps_tool_context(make_rig):
    rig = await make_rig()
    rig.weather.slow("forecast", 0.6)  # long enough for several edits while the tool runs
    rig.model.add(Reply.tool("get_weather", {"place": "Lisbon"}, text="Let me check."),
                  Reply.text("Sunny in Lisbon, around 19 °C."))
    turn, message = await rig.ask("what's the weather in Lisbon?")

    assert any("Checking the forecast for Lisbon…" in text for text in message.history), message.history
    assert "Checking the forecast" not in message.text
    assert message.text == "Let me check.\n\nSunny in Lisbon, around 19 °C."

    first, second = rig.model.requests
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    [call] = blocks(second, 1, "tool_use")
    assert call["name"] == "get_weather" and call["input"] == {"place": "Lisbon"}
    [result] = tool_results(second)
    assert result["tool_use_id"] == call["id"] and result["is_error"] is False
    assert '"name":"Lisbon"' in result["content"] and "Portugal" in result["content"]

    # The follow-up carries the earlier tool_use/tool_result, so the model can resolve "and in Porto?".
    rig.model.add(Reply.tool("get_weather", {"place": "Porto"}), Reply.text("Porto is a bit cooler."))
    _, follow = await rig.ask("and in Porto?", thread_ts=turn.thread_ts)
    assert follow.text == "Porto is a bit cooler."
    third = rig.model.requests[2]
    assert [m["role"] for m in third["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assert blocks(third, 1, "tool_use")[0]["input"] == {"place": "Lisbon"}
    assert blocks(third, 2, "tool_result")[0]["tool_use_id"] == call["id"]
    assert third["messages"][4]["content"][-1]["text"] == "and in Porto?"
    assert [r.params["name"] for r in rig.weather.requests_to("geocoding")] == ["Lisbon", "Porto"]

    history = await rig.history(turn)
    assert is_valid(history) and len(history) == 8
    rows = usage_rows(rig.store)
    assert len(rows) == len(rig.model.requests) == 4
    assert {(r.user_id, r.team_id, r.channel_id, r.thread_ts) for r in rows} == {
        (fs.USER_ID, fs.TEAM_ID, fs.CHANNEL_ID, turn.thread_ts)}


# --- concurrency, timeouts, failures ------------------------------------------------------------


async def test_parallel_tool_calls_run_concurrently_and_answer_in_order(make_rig):
    rig = await make_rig()
    delay = 0.8
    rig.model.add(
        Reply(content=[ToolUse("slow_echo", {"label": "first", "seconds": delay}),
                       ToolUse("slow_echo", {"label": "second", "seconds": delay})]),
        Reply.text("Both came back."),
    )
    turn, message = await rig.ask("do two slow things")

    starts = {label: t for kind, label, t in EVENTS if kind == "start"}
    ends = {label: t for kind, label, t in EVENTS if kind == "end"}
    assert set(starts) == set(ends) == {"first", "second"}
    assert max(starts.values()) < min(ends.values()), "the second call only started after the first ended"
    span = max(ends.values()) - min(starts.values())
    assert span < 1.5 * delay < 2 * delay, f"two {delay}s tools took {span:.2f}s"

    calls = blocks(rig.model.requests[1], 1, "tool_use")
    results = tool_results(rig.model.requests[1])
    assert [r["tool_use_id"] for r in results] == [c["id"] for c in calls]
    assert [r["content"] for r in results] == ["echo first", "echo second"]
    assert len(rig.model.requests[1]["messages"]) == 3  # all results in one user message
    assert any("Waiting 0.8 s for first…" in t and "Waiting 0.8 s for second…" in t for t in message.history)
    assert message.text == "Both came back."


async def test_timeout_exception_and_unknown_tool_become_error_results_and_the_loop_goes_on(make_rig):
    rig = await make_rig(THREADBOT_TOOL_TIMEOUT_S="0.5")
    rig.model.add(
        Reply(content=["Trying everything.",
                       ToolUse("slow_echo", {"label": "quick", "seconds": 0.01}),
                       ToolUse("slow_echo", {"label": "stuck", "seconds": 30}),
                       ToolUse("break_things", {"what": "the build"}),
                       ToolUse("launch_rockets", {"count": 3})]),
        Reply.text("Only one of those worked."),
    )
    started = time.monotonic()
    turn, message = await rig.ask("try all the tools")
    assert time.monotonic() - started < 10

    results = tool_results(rig.model.requests[1])
    calls = blocks(rig.model.requests[1], 1, "tool_use")
    assert [r["tool_use_id"] for r in results] == [c["id"] for c in calls]
    assert [r["is_error"] for r in results] == [False, True, True, True]
    assert results[0]["content"] == "echo quick"
    assert results[1]["content"] == "The tool slow_echo timed out after 0.5 seconds."
    assert "RuntimeError: boom while breaking the build" in results[2]["content"]
    assert "Unknown tool 'launch_rockets'" in results[3]["content"]
    assert "get_weather" in results[3]["content"]  # the model is told what it can call instead
    assert ("cancelled", "stuck") in [(kind, label) for kind, label, _ in EVENTS]
    assert message.text == "Trying everything.\n\nOnly one of those worked."
    assert is_valid(await rig.history(turn))


async def test_invalid_arguments_are_explained_and_the_model_retries(make_rig):
    rig = await make_rig()

    def respond(body: dict[str, Any]) -> Reply:
        results = [b for b in body["messages"][-1]["content"] if b["type"] == "tool_result"]
        if not results:
            return Reply.tool("get_weather", {"city": "Lisbon", "days": 40})
        if results[0]["is_error"]:
            return Reply.tool("get_weather", {"place": "Lisbon", "days": 2})
        return Reply.text("Fixed my call: two days of Lisbon weather.")

    rig.model.respond = respond
    turn, message = await rig.ask("weather in Lisbon for the next days?")

    assert len(rig.model.requests) == 3
    [rejected] = tool_results(rig.model.requests[1])
    assert rejected["is_error"] is True
    assert rejected["content"].startswith("Invalid arguments for get_weather:")
    assert "place: Field required" in rejected["content"]
    assert "days: Input should be less than or equal to 16" in rejected["content"]
    assert "city: unknown field" in rejected["content"]
    [accepted] = tool_results(rig.model.requests[2])
    assert accepted["is_error"] is False and "Lisbon" in accepted["content"]
    [forecast] = rig.weather.requests_to("forecast")  # the invalid call never reached the service
    assert forecast.params["forecast_days"] == "2"
    assert message.text == "Fixed my call: two days of Lisbon weather."


# --- the round bound ----------------------------------------------------------------------------


async def test_round_limit_makes_exactly_n_calls_shows_the_sentence_and_keeps_history_valid(make_rig):
    rig = await make_rig(THREADBOT_MAX_TOOL_ROUNDS="3")
    rig.model.respond = lambda body: Reply.tool(
        "slow_echo", {"label": f"step {len(body['messages'])}", "seconds": 0}, text=f"Step {len(body['messages'])}.")
    turn, message = await rig.ask("keep going forever")

    assert len(rig.model.requests) == 3
    assert len(usage_rows(rig.store)) == 3
    assert message.text.startswith("Step 1.\n\nStep 3.\n\nStep 5.")
    assert message.text.endswith(f"_{ROUND_LIMIT_SENTENCE}_")
    history = await rig.history(turn)
    assert is_valid(history)
    assert history[-1].role == "assistant" and history[-1].text == ROUND_LIMIT_SENTENCE
    assert len(history) == 1 + 3 * 2 + 1

    rig.model.respond = None
    rig.model.add(Reply.text("Here is a summary."))
    _, follow = await rig.ask("so what happened?", thread_ts=turn.thread_ts)
    assert follow.text == "Here is a summary."
    last = rig.model.calls[-1]
    assert last.status == 200  # the fake validates every request like the API does
    assert len(last.body["messages"]) == len(history) + 1


# --- interrupted turns --------------------------------------------------------------------------


async def test_model_error_in_round_two_leaves_valid_history_and_the_next_question_has_tool_context(make_rig):
    rig = await make_rig()
    rig.model.add(Reply.tool("get_weather", {"place": "Lisbon"}),
                  Reply.text("Lisbon is sunny and", error_after=2))
    turn, message = await rig.ask("what's the weather in Lisbon?")

    assert "overloaded" in message.text and "ref `" in message.text
    assert "Thinking" not in message.text and "Checking the forecast" not in message.text
    history = await rig.history(turn)
    assert is_valid(history)
    assert [m.role for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[1].tool_uses[0].input == {"place": "Lisbon"}
    rows = usage_rows(rig.store)
    assert len(rows) == 2 and rows[-1].error == "ModelOverloaded"

    rig.model.add(Reply.tool("get_weather", {"place": "Porto"}), Reply.text("Porto: partly cloudy."))
    _, follow = await rig.ask("and in Porto?", thread_ts=turn.thread_ts)
    assert follow.text == "Porto: partly cloudy."
    request = rig.model.requests[2]
    assert blocks(request, 1, "tool_use")[0]["input"] == {"place": "Lisbon"}
    assert "Lisbon" in blocks(request, 2, "tool_result")[0]["content"]
    assert len(usage_rows(rig.store)) == 4


async def test_turn_cancelled_mid_tool_keeps_the_call_and_a_restarted_bot_answers_the_next_question(make_rig):
    rig = await make_rig()
    rig.model.add(Reply.tool("slow_echo", {"label": "long job", "seconds": 30}))
    turn = rig.turn("start the long job")
    reply = rig.reply_for(turn)
    task = asyncio.create_task(rig.conversations.handle(turn, reply))
    await rig.slack.wait_for(lambda: any(kind == "start" for kind, _, _ in EVENTS), what="the tool to start")
    task.cancel()  # what shutdown does to an answer that does not finish in time
    with pytest.raises(asyncio.CancelledError):
        await task

    history = await rig.history(turn)
    assert is_valid(history)
    assert history[1].tool_uses[0].name == "slow_echo"
    assert history[2].content[0].content == INTERRUPTED and history[2].content[0].is_error
    message = rig.slack.message(turn.channel_id, reply.parts[0].ts)
    assert message is not None and "Thinking" not in message.text

    # A fresh process on the same database: history from SQLite only.
    restarted = await make_rig()
    restarted.model.add(Reply.text("The long job was interrupted; shall I start it again?"))
    _, follow = await restarted.ask("did it finish?", thread_ts=turn.thread_ts)
    assert follow.text == "The long job was interrupted; shall I start it again?"
    request = restarted.model.calls[-1]
    assert request.status == 200
    assert blocks(request.body, 2, "tool_result")[0]["content"] == INTERRUPTED


# --- extraction through the agent (nested, metered model call) ---------------------------------


def _extraction_answer(body: dict[str, Any]) -> Reply:
    [result] = tool_results(body)
    return Reply.text("Could not read it." if result["is_error"] else "Total due: 79.95 EUR.")


@pytest.mark.parametrize("nested, outcome", [
    ([GOOD_INVOICE], "success"),
    ([BAD_INVOICE, GOOD_INVOICE], "retry"),
    ([BAD_INVOICE, BAD_INVOICE], "failure"),
])
async def test_extraction_through_the_agent_records_the_nested_usage_for_the_user(make_rig, nested, outcome):
    rig = await make_rig()
    rig.model.add(Reply.tool("extract_record", {"kind": "invoice", "text": INVOICE_TEXT}))
    for i, record in enumerate(nested):
        # The first nested answer streams slowly, so the progress line is visible meanwhile.
        rig.model.add(Reply.tool("record_invoice", record, json_chunk_chars=40, token_delay_s=0.08 if i == 0 else 0))
    rig.model.respond = _extraction_answer
    turn, message = await rig.ask("what's the total of this invoice?\n" + INVOICE_TEXT)

    requests = rig.model.requests
    assert len(requests) == 2 + len(nested)
    for nested_request in requests[1:-1]:
        assert nested_request["tool_choice"] == {"type": "tool", "name": "record_invoice"}
        assert [t["name"] for t in nested_request["tools"]] == ["record_invoice"]
    if len(nested) == 2:  # the retry shows the model its validation errors
        [complaint] = tool_results(requests[2])
        assert complaint["is_error"] and "totals are inconsistent" in complaint["content"]
    [result] = tool_results(requests[-1])
    if outcome == "failure":
        assert result["is_error"] is True
        assert result["content"].startswith("Could not extract a valid invoice record: totals are inconsistent")
        assert message.text == "Could not read it."
    else:
        assert result["is_error"] is False
        assert '"invoice_number":"INV-2025-041"' in result["content"] and '"total":"79.95"' in result["content"]
        assert message.text == "Total due: 79.95 EUR."
    assert any("Extracting the invoice details…" in text for text in message.history), message.history

    rows = usage_rows(rig.store)
    assert len(rows) == len(requests)  # one row per model call, nested ones included
    assert {(r.user_id, r.thread_ts, r.surface) for r in rows} == {(fs.USER_ID, turn.thread_ts, "mention")}
    assert all(r.error is None and r.output_tokens > 0 for r in rows)
    assert is_valid(await rig.history(turn))


async def test_failed_nested_call_is_a_tool_error_and_its_usage_row_is_still_written(make_rig):
    rig = await make_rig()
    rig.model.add(Reply.tool("extract_record", {"kind": "contact", "text": "Ana Silva, ana@example.pt"}),
                  ErrorReply.bad_request("tool_choice: something the API refused"))
    rig.model.respond = lambda body: Reply.text("The extraction failed, sorry.")
    turn, message = await rig.ask("extract this contact")

    [result] = tool_results(rig.model.requests[2])
    assert result["is_error"] is True
    assert result["content"] == "extract_record failed: The model rejected this request."
    assert message.text == "The extraction failed, sorry."
    rows = usage_rows(rig.store)
    assert len(rows) == 3 and [r.error for r in rows].count("ModelRejected") == 1
    assert {r.user_id for r in rows} == {fs.USER_ID}


# --- cut off -----------------------------------------------------------------------------------


async def test_tool_call_cut_off_by_max_tokens_is_not_run_and_history_stays_valid(make_rig):
    rig = await make_rig()
    rig.model.add(Reply.tool("slow_echo", {"label": "half", "seconds": 0}, text="Let me", stop_reason="max_tokens"))
    turn, message = await rig.ask("a long question")

    assert EVENTS == []  # a call whose input may be truncated is never run
    assert len(rig.model.requests) == 1
    assert message.text == f"Let me\n\n_{CUT_OFF_SENTENCE}_"
    history = await rig.history(turn)
    assert is_valid(history)
    assert history[2].content[0].is_error and history[3].text == CUT_OFF_SENTENCE


async def test_a_cancelled_model_call_still_writes_its_usage_row(tmp_path):
    from bot.llm.anthropic import AnthropicProvider
    from bot.messages import ModelRequest
    from bot.accounting.meter import Attribution, Meter
    from bot.store.sqlite import SqliteStore
    from bot.store import Store
    from tests.fakes.anthropic import FakeAnthropic, Reply

    async with FakeAnthropic() as fake:
        fake.add(Reply.text("a slow answer " * 20, token_delay_s=0.2))
        provider = AnthropicProvider(api_key=fake.api_key, base_url=fake.base_url)
        store = SqliteStore(tmp_path / "m.db")
        meter = Meter(store, provider, Attribution("T1", "U1", "C1", "1.0", "mention"))
        request = ModelRequest(model="claude-sonnet-4-6", system="s",
                               messages=[Message("user", [TextBlock("hi")])], max_tokens=100)

        async def consume() -> None:
            async for _ in meter.stream(request):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.6)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        rows = usage_rows(store)
        assert [(r.user_id, r.error) for r in rows] == [("U1", "CancelledError")]
        await provider.aclose()
        await store.close()
