"""Context budget and prompt caching through the real Bolt app: trimming, cache points, cache pricing, calibration."""
from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest

from bot.conversation import context_window as budget
from bot.llm import catalog
from bot.conversation.context_window import SAFETY_MARGIN
from bot.llm.catalog import CLAUDE_SAFETY_FACTOR, safety_factor
from bot.errors import MessageTooLarge
from bot.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
from bot.llm.tokens import count_message_tokens, count_text_tokens, count_tools_tokens
from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply
from tests.slackapp import Bot, running_bot
from tests.store_rows import usage_rows

SMALL_MODEL = "claude-tiny-test"
SMALL_WINDOW = 16_384
WORDS = ("the river city tram hill music bread coffee market bridge morning evening harbour street window "
         "garden letter station ticket museum library winter summer north south light stone paper").split()


@pytest.fixture(autouse=True)
def _isolated_budget():
    """Context-window overrides, calibration and the price table are process-wide: restore them."""
    catalog.configure(None)
    yield
    catalog.configure(None)


def small_window_env(tmp_path: Path) -> dict[str, str]:
    prices = tmp_path / "prices.toml"
    prices.write_text(f'[models."{SMALL_MODEL}"]\ninput = 1\noutput = 5\ncontext_window = {SMALL_WINDOW}\n')
    return {"THREADBOT_MODEL": SMALL_MODEL, "THREADBOT_PRICING_FILE": str(prices)}


def prose(rng: random.Random, tokens: int) -> str:
    # Each of these common words is one cl100k token (with its leading space).
    return " ".join(rng.choice(WORDS) for _ in range(tokens))


def bot_texts(bot: Bot, thread_ts: str) -> list[str]:
    return [m.text for m in bot.slack.messages_in_thread(fs.CHANNEL_ID, thread_ts) if m.user == fs.BOT_USER_ID]


async def ask(bot: Bot, text: str, *, thread_ts: str | None = None, expect: str) -> str:
    """Mention the bot and wait until its reply in the thread contains `expect`; returns the thread ts."""
    event = fs.app_mention(text, thread_ts=thread_ts)
    result = await bot.slack.deliver_http(bot.events_url, fs.event_callback(event))
    assert result.status == 200 and result.elapsed < 3.0
    thread = thread_ts or event["ts"]
    await bot.slack.wait_for(lambda: any(expect in t for t in bot_texts(bot, thread)), timeout=30,
                             what=lambda: f"{expect!r} in {bot_texts(bot, thread)}")
    return thread


def cache_marks(request: dict) -> list[tuple[int, int]]:
    """(message index, block index) of every history block carrying cache_control."""
    return [(i, j) for i, m in enumerate(request["messages"]) for j, b in enumerate(m["content"])
            if "cache_control" in b]


def assert_fixed_cache_points(request: dict) -> None:
    assert request["system"][-1]["cache_control"] == {"type": "ephemeral"}
    tools = request["tools"]
    assert len(tools) >= 2
    assert tools[-1]["cache_control"] == {"type": "ephemeral"}
    assert not any("cache_control" in t for t in tools[:-1])


async def test_cache_points_and_cache_tokens_are_recorded_and_priced_exactly(tmp_path):
    async with running_bot(tmp_path) as bot:
        bot.model.add(
            Reply.tool("no_such_tool", {"q": 1}, input_tokens=1_000, output_tokens=40,
                       cache_creation_input_tokens=2_500),
            Reply.text("Done.", input_tokens=30, output_tokens=12, cache_creation_input_tokens=20,
                       cache_read_input_tokens=3_500),
            Reply.text("Second.", input_tokens=50, output_tokens=7, cache_creation_input_tokens=40,
                       cache_read_input_tokens=3_600),
        )
        thread = await ask(bot, "first question", expect="Done.")
        await ask(bot, "second question", thread_ts=thread, expect="Second.")

        first, tool_round, second = bot.model.requests
        assert [c.status for c in bot.model.calls] == [200, 200, 200]
        for request in (first, tool_round, second):
            assert_fixed_cache_points(request)
        # First call: nothing earlier in the thread worth caching.
        assert cache_marks(first) == []
        # Mid tool loop the whole request is marked: the next round reads it back within seconds.
        assert len(tool_round["messages"]) == 3 and cache_marks(tool_round) == [(2, 0)]
        assert tool_round["messages"][2]["content"][0]["type"] == "tool_result"
        # New turn: the mark rolls forward to the previous answer, not the new question.
        assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user", "assistant", "user"]
        assert cache_marks(second) == [(3, 0)] and second["messages"][3]["content"][0]["text"] == "Done."

        rows = usage_rows(bot.services.store)
        assert [(r.input_tokens, r.output_tokens, r.cache_creation_input_tokens, r.cache_read_input_tokens)
                for r in rows] == [(1_000, 40, 2_500, 0), (30, 12, 20, 3_500), (50, 7, 40, 3_600)]
        # claude-sonnet-4-6: $3 input, $15 output, $3.75 cache write, $0.30 cache read per million tokens.
        assert [r.cost_usd for r in rows] == [Decimal("0.012975"), Decimal("0.001395"), Decimal("0.001485")]
        assert {(r.user_id, r.surface, r.thread_ts, r.model) for r in rows} == {
            (fs.USER_ID, "mention", thread, "claude-sonnet-4-6")}
        assert (await bot.services.store.usage_totals(since=0)).cost_usd == Decimal("0.015855")


async def test_reported_input_tokens_calibrate_the_safety_factor(tmp_path):
    async with running_bot(tmp_path) as bot:
        model = bot.services.model
        assert safety_factor(model) == CLAUDE_SAFETY_FACTOR
        estimate = (count_text_tokens(bot.services.settings.system_prompt)
                    + count_tools_tokens(bot.services.registry.specs())
                    + count_message_tokens(Message("user", [TextBlock("how big is my prompt")])))
        # The provider reports twice our estimate, split over uncached, cache-write and cache-read input.
        reported = 2 * estimate
        bot.model.add(Reply.text("Big.", input_tokens=reported - 300, cache_creation_input_tokens=100,
                                 cache_read_input_tokens=200))
        await ask(bot, "how big is my prompt", expect="Big.")
        assert safety_factor(model) == pytest.approx(0.8 * CLAUDE_SAFETY_FACTOR + 0.2 * (2 * 1.10))


async def test_a_very_long_thread_is_trimmed_to_a_valid_request_that_fits(tmp_path):
    rng = random.Random(5)
    async with running_bot(tmp_path, **small_window_env(tmp_path)) as bot:
        store = bot.services.store
        thread = fs.next_ts()
        conversation = await store.conversation_id(team_id=fs.TEAM_ID, channel_id=fs.CHANNEL_ID, thread_ts=thread,
                                             user_id=fs.USER_ID)
        questions: list[str] = []
        for turn in range(300):
            question = f"question {turn}: {prose(rng, 480)}"
            questions.append(question)
            messages = [Message("user", [TextBlock(question)])]
            if turn % 7 == 3:  # some turns used a tool: its tool_use and tool_result must stay together
                tool_id = f"toolu_{turn:04d}"
                messages += [
                    Message("assistant", [TextBlock("Let me check."),
                                          ToolUseBlock(tool_id, "get_weather", {"city": "Lisbon"})]),
                    Message("user", [ToolResultBlock(tool_id, prose(rng, 120))]),
                ]
            messages.append(Message("assistant", [TextBlock(f"answer {turn}: {prose(rng, 480)}")]))
            await store.append_messages(conversation, messages, token_counts=[count_message_tokens(m) for m in messages])
        stored = len(await store.history(conversation))

        await ask(bot, "and what about today?", thread_ts=thread, expect="echo: and what about today?")

        [call] = bot.model.calls
        assert call.status == 200  # the fake validated it: starts with user, roles alternate, tool pairs intact
        request = call.body
        messages = [Message.from_json(m) for m in request["messages"]]
        assert request["model"] == SMALL_MODEL and len(messages) < stored
        # It starts at a real question (not a tool_result), and keeps the newest turns whole.
        assert messages[0].role == "user" and messages[0].text in questions
        assert not any(isinstance(b, ToolResultBlock) for b in messages[0].content)
        assert messages[-1].text == "and what about today?"
        assert messages[-2].text.startswith("answer 299: ")
        assert any(m.tool_uses for m in messages)
        # It fits the window with the safety factor, the output cap and the margin, yet isn't over-trimmed.
        estimate = (count_text_tokens(request["system"][0]["text"]) + count_tools_tokens(bot.services.registry.specs())
                    + sum(count_message_tokens(m) for m in messages))
        room = SMALL_WINDOW - request["max_tokens"] - SAFETY_MARGIN
        assert estimate * CLAUDE_SAFETY_FACTOR <= room
        assert estimate * CLAUDE_SAFETY_FACTOR >= room * 0.5
        assert_fixed_cache_points(request)

        # Every message of the thread has its token count stored, counted once when it was written.
        history = await store.history(conversation)
        assert len(history) == stored + 2
        assert all(m.token_count == count_message_tokens(m.message) for m in history)


async def test_a_message_too_large_for_the_window_gets_a_clear_reply_and_the_thread_goes_on(tmp_path):
    rng = random.Random(7)
    async with running_bot(tmp_path, **small_window_env(tmp_path)) as bot:
        thread = await ask(bot, prose(rng, 12_000), expect=MessageTooLarge.__doc__ or "")
        [reply] = bot_texts(bot, thread)
        assert reply.startswith(f":warning: {MessageTooLarge.__doc__} (ref `")
        assert bot.model.requests == []

        await ask(bot, "a short one then", thread_ts=thread, expect="echo: a short one then")
        [request] = bot.model.requests
        assert [m["content"][0]["text"] for m in request["messages"]] == ["a short one then"]


async def test_trimming_uses_the_stored_token_counts_instead_of_recounting(tmp_path):
    rng = random.Random(9)
    async with running_bot(tmp_path, **small_window_env(tmp_path)) as bot:
        store = bot.services.store
        thread = fs.next_ts()
        conversation = await store.conversation_id(team_id=fs.TEAM_ID, channel_id=fs.CHANNEL_ID, thread_ts=thread,
                                             user_id=fs.USER_ID)
        for turn in range(3):
            messages = [Message("user", [TextBlock(f"q{turn} {prose(rng, 50)}")]),
                        Message("assistant", [TextBlock(f"a{turn} {prose(rng, 50)}")])]
            # Really ~60 tokens each, stored as 6,000: only the stored count can make these not fit.
            await store.append_messages(conversation, messages, token_counts=[6_000, 6_000])

        await ask(bot, "still there?", thread_ts=thread, expect="echo: still there?")
        [request] = bot.model.requests
        assert [m["content"][0]["text"] for m in request["messages"]] == ["still there?"]
