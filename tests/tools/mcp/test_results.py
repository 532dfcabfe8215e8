"""CallToolResult → tool_result: text and structured content, notes for images, is_error, a size cap."""
from __future__ import annotations

from mcp import types

from tools.mcp.results import MAX_RESULT_CHARS, to_tool_result


def test_text_and_structured_content_without_repeating_the_same_json() -> None:
    same = types.CallToolResult(content=[types.TextContent(type="text", text='{"a": 1}')], structured_content={"a": 1})
    assert to_tool_result("t1", same).content == '{"a": 1}'
    both = types.CallToolResult(content=[types.TextContent(type="text", text="two notes")],
                                structured_content={"count": 2})
    result = to_tool_result("t1", both)
    assert result.content == 'two notes\n{"count": 2}' and result.tool_use_id == "t1" and not result.is_error


def test_is_error_and_empty_results() -> None:
    failed = to_tool_result("t", types.CallToolResult(content=[], is_error=True))
    assert failed.is_error and "error" in failed.content
    assert to_tool_result("t", types.CallToolResult(content=[])).content.startswith("Done")


def test_images_and_resources_are_described_not_dropped() -> None:
    result = to_tool_result("t", types.CallToolResult(content=[
        types.ImageContent(type="image", data="aGVsbG8=", mime_type="image/png"),
        types.EmbeddedResource(type="resource", resource=types.TextResourceContents(uri="file:///a.txt", text="inside")),
    ]))
    assert "image (image/png, 5 bytes)" in result.content and "inside" in result.content


def test_a_huge_result_is_cut_with_a_marker() -> None:
    result = to_tool_result("t", types.CallToolResult(content=[types.TextContent(type="text", text="x" * 5_000_000)]))
    assert len(result.content) < MAX_RESULT_CHARS + 200
    assert result.content.endswith("the tool returned 5,000,000 characters, only the first 100,000 are shown]")


def test_the_sdk_wrapping_of_a_plain_value_is_not_repeated() -> None:
    wrapped = types.CallToolResult(content=[types.TextContent(type="text", text="hi")], structured_content={"result": "hi"})
    assert to_tool_result("t", wrapped).content == "hi"
    listed = types.CallToolResult(content=[types.TextContent(type="text", text="a"), types.TextContent(type="text", text="b")],
                                  structured_content={"result": ["a", "b"]})
    assert to_tool_result("t", listed).content == "a\nb"
