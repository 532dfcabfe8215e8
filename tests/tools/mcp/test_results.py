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


# --- images the tool returned ------------------------------------------------------------------------


def _png(width: int, height: int) -> str:
    import base64
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


async def test_an_image_becomes_an_image_block_kept_in_the_store(tmp_path) -> None:
    from bot.store.sqlite import SqliteStore
    from tools.mcp.results import read_tool_result

    store = SqliteStore(tmp_path / "r.db")
    try:
        result = await read_tool_result("t", types.CallToolResult(content=[
            types.TextContent(type="text", text="the chart"),
            types.ImageContent(type="image", data=_png(3000, 1000), mime_type="image/png"),
        ]), store=store, name="web_chart")
        [image] = result.images
        # Fitted to the providers' limits like a Slack image, and kept by content address for later requests.
        assert (image.name, image.media_type) == ("web_chart-1", "image/png")
        assert max(image.width, image.height) <= 1568 and image.data is not None
        assert (await store.get_blobs([image.sha256]))[image.sha256] == image.data
        assert result.content.startswith("the chart") and "web_chart-1" in result.content
        # History keeps the address only; the JSON round trip gives the same block back without bytes.
        from bot.messages import Message

        back = Message.from_json(Message("user", [result]).to_json()).content[0]
        assert back == result and back.images[0].data is None
    finally:
        await store.close()


async def test_broken_huge_and_too_many_images_are_notes_never_failures(monkeypatch) -> None:
    from tools.mcp import results
    from tools.mcp.results import MAX_IMAGES, read_tool_result

    def image(data: str, mime: str = "image/png") -> types.ImageContent:
        return types.ImageContent(type="image", data=data, mime_type=mime)

    svg = __import__("base64").b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode()
    broken = await read_tool_result("t", types.CallToolResult(content=[
        image("aGVsbG8="), image("not base64 !!"), image(svg, "image/svg+xml")]), store=None, name="x")
    assert broken.images == () and not broken.is_error
    lines = broken.content.splitlines()
    assert "image (image/png, 5 bytes)" in lines[0] and "cannot be shown" in lines[0]
    assert "not valid base64" in lines[1] and "SVG" in lines[2]

    many = await read_tool_result("t", types.CallToolResult(content=[image(_png(8, 8))] * (MAX_IMAGES + 2)),
                                  store=None, name="x")
    assert len(many.images) == MAX_IMAGES and many.content.count(f"only the first {MAX_IMAGES} are shown") == 2

    monkeypatch.setattr(results, "MAX_IMAGE_BASE64_CHARS", 100)
    huge = await read_tool_result("t", types.CallToolResult(content=[image(_png(64, 64))]), store=None, name="x")
    assert huge.images == () and "larger than" in huge.content
