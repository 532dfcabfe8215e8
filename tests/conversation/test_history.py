"""bot.conversation.history.repair turns any stored history into a valid request."""
from __future__ import annotations

import random

from bot.conversation.history import INTERRUPTED, is_valid, repair
from bot.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock


def user(text: str) -> Message:
    return Message("user", [TextBlock(text)])


def assistant(text: str) -> Message:
    return Message("assistant", [TextBlock(text)])


def test_valid_history_is_unchanged():
    history = [user("a"), Message("assistant", [ToolUseBlock("t1", "x", {})]),
               Message("user", [ToolResultBlock("t1", "ok")]), assistant("done"), user("b")]
    assert repair(history) == history
    assert is_valid(history)


def test_consecutive_user_messages_are_merged():
    fixed = repair([user("a"), user("b")])
    assert len(fixed) == 1 and [b.text for b in fixed[0].content] == ["a", "b"]


def test_dangling_tool_use_gets_an_error_result_and_tool_results_come_first():
    history = [user("a"), Message("assistant", [TextBlock("let me check"), ToolUseBlock("t1", "x", {})]), user("b")]
    fixed = repair(history)
    assert is_valid(fixed)
    first, second = fixed[2].content
    assert first == ToolResultBlock("t1", INTERRUPTED, True)
    assert second == TextBlock("b")


def test_trailing_tool_use_is_answered():
    fixed = repair([user("a"), Message("assistant", [ToolUseBlock("t1", "x", {})])])
    assert fixed[-1] == Message("user", [ToolResultBlock("t1", INTERRUPTED, True)])


def test_orphan_tool_result_and_leading_assistant_are_dropped():
    fixed = repair([assistant("hello"), Message("user", [ToolResultBlock("nope", "x"), TextBlock("q")])])
    assert fixed == [user("q")]


def test_random_histories_always_repair_to_valid_requests():
    rng = random.Random(7)
    for _ in range(500):
        history = []
        for i in range(rng.randint(1, 12)):
            kind = rng.choice(["user", "assistant", "tool_use", "tool_result"])
            if kind == "user":
                history.append(user(f"u{i}"))
            elif kind == "assistant":
                history.append(assistant(f"a{i}"))
            elif kind == "tool_use":
                history.append(Message("assistant", [ToolUseBlock(f"t{i}", "x", {})]))
            else:
                history.append(Message("user", [ToolResultBlock(f"t{i - 1}", "r")]))
        history.append(user("last"))
        fixed = repair(history)
        assert is_valid(fixed), history
