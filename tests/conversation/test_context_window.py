"""Fitting history into the context window: whole turns, tool pairs together, always a valid request."""
from __future__ import annotations

import random

import pytest

from bot.conversation import context_window as budget
from bot.llm import catalog
from bot.errors import MessageTooLarge, PromptTooLong
from bot.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
from bot.store import StoredMessage
from bot.store.sqlite import SqliteStore

MODEL = "test-model"


@pytest.fixture(autouse=True)
def _clean_overrides():
    catalog.configure(None)
    yield
    catalog.configure(None)


def window_for_budget(history_budget: int, *, max_tokens: int = 100) -> int:
    """The context window that leaves exactly `history_budget` estimated tokens for history."""
    factor = catalog.safety_factor(MODEL)
    return int((history_budget + 1) * factor) + max_tokens + budget.SAFETY_MARGIN


def user(text: str) -> Message:
    return Message("user", [TextBlock(text)])


def assistant(text: str) -> Message:
    return Message("assistant", [TextBlock(text)])


def random_history(rng: random.Random, turns: int) -> list[StoredMessage]:
    messages: list[Message] = []
    for t in range(turns):
        messages.append(user(f"question {t}"))
        for r in range(rng.choice([0, 0, 1, 2, 3])):
            uses = [ToolUseBlock(id=f"toolu_{t}_{r}_{k}", name="search", input={"q": "x"}) for k in range(rng.randint(1, 2))]
            messages.append(Message("assistant", [TextBlock("let me look"), *uses]))
            messages.append(Message("user", [ToolResultBlock(u.id, "result") for u in uses]))
        if rng.random() < 0.9:  # sometimes a question went unanswered
            messages.append(assistant(f"answer {t}"))
    return [StoredMessage(id=i + 1, message=m, token_count=rng.randint(5, 400)) for i, m in enumerate(messages)]


def assert_valid_request(messages: list[Message]) -> None:
    assert messages, "a request needs at least one message"
    first = messages[0]
    assert first.role == "user" and not any(isinstance(b, ToolResultBlock) for b in first.content)
    for before, after in zip(messages, messages[1:]):
        assert before.role != after.role, "roles must alternate"
    for i, message in enumerate(messages):
        uses = {b.id for b in message.content if isinstance(b, ToolUseBlock)}
        if uses and i + 1 < len(messages):
            results = {b.tool_use_id for b in messages[i + 1].content if isinstance(b, ToolResultBlock)}
            assert uses <= results, "every tool_use needs its tool_result in the next message"
        results = {b.tool_use_id for b in message.content if isinstance(b, ToolResultBlock)}
        if results:
            assert i > 0
            asked = {b.id for b in messages[i - 1].content if isinstance(b, ToolUseBlock)}
            assert results <= asked, "a tool_result must answer the tool_use just before it"


def blocks(messages: list[Message]) -> list:
    return [b for m in messages for b in m.content]


@pytest.mark.parametrize("seed", range(200))
def test_random_histories_trim_to_a_valid_suffix_that_fits(seed):
    rng = random.Random(seed)
    history = random_history(rng, rng.randint(1, 40))
    # The current turn is the last real user message onwards; it must fit for a valid test.
    starts = [i for i, s in enumerate(history) if budget._starts_turn(s.message)]
    current = sum(s.token_count for s in history[starts[-1]:])
    total = sum(s.token_count for s in history)
    history_budget = rng.randint(current, max(current, total + 50))
    catalog.set_context_window(MODEL, window_for_budget(history_budget))
    assert budget.input_budget(model=MODEL, max_tokens=100) >= history_budget

    trimmed = budget.trim_history(history, model=MODEL, max_tokens=100, system_tokens=0, tools_tokens=0,
                                  step_fraction=0)
    assert_valid_request(trimmed.messages)
    kept = history[trimmed.dropped:]
    # A suffix of the stored history, content for content (same-role neighbours merged).
    assert blocks(trimmed.messages) == blocks([s.message for s in kept])
    assert trimmed.estimated_tokens == sum(s.token_count for s in kept) <= budget.input_budget(model=MODEL, max_tokens=100)
    # Nothing more could have been kept: the previous turn start would not fit.
    earlier = [i for i in starts if i < trimmed.dropped]
    if earlier:
        assert sum(s.token_count for s in history[earlier[-1]:]) > budget.input_budget(model=MODEL, max_tokens=100)

    # With cache-friendly snapping (the default) the result is still valid, fits, and keeps no more.
    snapped = budget.trim_history(history, model=MODEL, max_tokens=100, system_tokens=0, tools_tokens=0)
    assert_valid_request(snapped.messages)
    assert snapped.dropped >= trimmed.dropped
    assert blocks(snapped.messages) == blocks([s.message for s in history[snapped.dropped:]])


def test_everything_kept_when_it_fits_and_leading_assistant_dropped():
    history = [StoredMessage(1, assistant("I was mentioned first"), 10), StoredMessage(2, user("hi"), 10),
               StoredMessage(3, assistant("hello"), 10)]
    out = budget.fit_history(history, model="claude-sonnet-4-6", max_tokens=1024, system_tokens=500, tools_tokens=500)
    assert [m.text for m in out] == ["hi", "hello"]


def test_unanswered_user_message_is_merged_with_the_next():
    history = [StoredMessage(1, user("first?"), 5), StoredMessage(2, user("anyone?"), 5)]
    out = budget.fit_history(history, model="claude-sonnet-4-6", max_tokens=1024, system_tokens=0, tools_tokens=0)
    assert len(out) == 1 and out[0].role == "user" and out[0].text == "first?anyone?"


def test_plain_messages_are_counted_when_no_count_is_stored():
    history = [user("hello world")] * 1 + [assistant("hi")] + [user("again")]
    trimmed = budget.trim_history(history, model="claude-sonnet-4-6", max_tokens=1024, system_tokens=0, tools_tokens=0)
    assert trimmed.dropped == 0 and trimmed.estimated_tokens == sum(
        budget.count_message_tokens(m) for m in history)


def test_single_message_too_large():
    catalog.set_context_window(MODEL, window_for_budget(1_000))
    history = [StoredMessage(1, user("old"), 10), StoredMessage(2, assistant("ok"), 10),
               StoredMessage(3, user("huge paste"), 5_000)]
    with pytest.raises(MessageTooLarge):
        budget.fit_history(history, model=MODEL, max_tokens=100, system_tokens=0, tools_tokens=0)


def test_current_turn_too_large_with_tool_results():
    catalog.set_context_window(MODEL, window_for_budget(1_000))
    use = ToolUseBlock(id="toolu_1", name="fetch", input={})
    history = [StoredMessage(1, user("summarise the file"), 10),
               StoredMessage(2, Message("assistant", [use]), 10),
               StoredMessage(3, Message("user", [ToolResultBlock("toolu_1", "x" * 10)]), 5_000)]
    with pytest.raises(PromptTooLong):
        budget.fit_history(history, model=MODEL, max_tokens=100, system_tokens=0, tools_tokens=0)


def test_system_and_tools_count_against_the_budget():
    catalog.set_context_window(MODEL, window_for_budget(1_000))
    history = [StoredMessage(1, user("a"), 400), StoredMessage(2, assistant("b"), 100), StoredMessage(3, user("c"), 400)]
    assert len(budget.fit_history(history, model=MODEL, max_tokens=100, system_tokens=0, tools_tokens=0)) == 3
    out = budget.fit_history(history, model=MODEL, max_tokens=100, system_tokens=100, tools_tokens=100)
    assert [m.text for m in out] == ["c"]
    with pytest.raises(PromptTooLong):
        budget.fit_history(history, model=MODEL, max_tokens=100, system_tokens=5_000, tools_tokens=0)


def test_cut_point_is_stable_while_the_thread_grows():
    """Snapping the cut to budget steps keeps the prompt prefix (and so the prompt cache) unchanged."""
    catalog.set_context_window(MODEL, window_for_budget(4_000))
    history: list[StoredMessage] = []
    firsts = []
    for t in range(60):
        history.append(StoredMessage(len(history) + 1, user(f"q{t}"), 100))
        trimmed = budget.trim_history(history, model=MODEL, max_tokens=100, system_tokens=0, tools_tokens=0)
        firsts.append(trimmed.messages[0].text)
        history.append(StoredMessage(len(history) + 1, assistant(f"a{t}"), 100))
    changes = sum(1 for a, b in zip(firsts, firsts[1:]) if a != b)
    # 60 turns of 200 tokens against a 4,000 budget: without snapping the start would move on
    # nearly every turn after the 20th (~40 changes); with 1,000-token steps it moves every ~5 turns.
    assert 0 < changes <= 10


def test_context_window_table():
    assert catalog.context_window("claude-sonnet-4-6") == 200_000
    assert catalog.context_window("claude-haiku-4-5-20251001") == 200_000
    assert catalog.context_window("claude-opus-5") == 1_000_000
    assert catalog.context_window("gpt-4o") == 128_000
    assert catalog.context_window("gpt-4o-mini-2024-07-18") == 128_000
    assert catalog.context_window("gpt-4.1-mini") == 1_047_576
    assert catalog.context_window("o4-mini") == 200_000
    assert catalog.context_window("openai:llama3.1:8b") == catalog.DEFAULT_CONTEXT_WINDOW == 8_192
    catalog.set_context_window("llama3.1", 32_768)
    assert catalog.context_window("openai:llama3.1:8b") == 32_768
    catalog.set_context_window("claude-sonnet-4-6", 1_000_000)
    assert catalog.context_window("claude-sonnet-4-6") == 1_000_000


def test_safety_factor_and_calibration():
    assert catalog.safety_factor("claude-sonnet-4-6") == catalog.CLAUDE_SAFETY_FACTOR
    assert catalog.safety_factor("gpt-4o") == catalog.OPENAI_SAFETY_FACTOR
    # Real counts 10 % above our estimate: the factor drifts down towards 1.21 but not below it.
    factor = catalog.CLAUDE_SAFETY_FACTOR
    for _ in range(50):
        factor = catalog.calibrate(1000, 1100, model="claude-sonnet-4-6")
    assert factor == pytest.approx(1.21, abs=0.01)
    assert catalog.calibrate(1000, 10_000, model="claude-sonnet-4-6") <= 2.0
    assert catalog.safety_factor("claude-opus-4-6") == catalog.CLAUDE_SAFETY_FACTOR  # per model


def test_cache_point():
    assert budget.cache_point([]) is None
    assert budget.cache_point([user("hi")]) is None
    assert budget.cache_point([user("a"), assistant("b"), user("c")]) == 1
    use = ToolUseBlock(id="t1", name="x", input={})
    loop = [user("a"), Message("assistant", [use]), Message("user", [ToolResultBlock("t1", "r")])]
    assert budget.cache_point(loop) == 2


async def test_with_a_real_store(tmp_path):
    store = SqliteStore(tmp_path / "t.db")
    cid = await store.conversation_id(team_id="T1", channel_id="C1", thread_ts="1.0", user_id="U1")
    msgs = [user("hi"), assistant("hello"), user("more")]
    counts = [budget.count_message_tokens(m) for m in msgs]
    await store.append_messages(cid, msgs, token_counts=counts)
    out = budget.fit_history(await store.history(cid), model="claude-sonnet-4-6", max_tokens=1024, system_tokens=0,
                             tools_tokens=0)
    assert [m.text for m in out] == ["hi", "hello", "more"]
    await store.close()
