"""Images and documents through both providers to the fakes, which check them as the real APIs do."""
from __future__ import annotations

import io

import pytest
from PIL import Image
from pypdf import PdfWriter

from bot.errors import ImagesNotSupported
from bot.llm.anthropic import AnthropicProvider
from bot.llm.images import prepare_image
from bot.llm.openai import OpenAIProvider
from bot.llm.tokens import count_message_tokens
from bot.messages import (DocumentBlock, ImageBlock, Message, MessageDone, ModelRequest, TextBlock, ToolResultBlock,
                          ToolUseBlock)
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.media import LLAMA_CPP_NO_VISION, OPENAI_NO_VISION
from tests.fakes.openai import FakeOpenAI

KEY = "sk-test-fake-key-1234"


def shot(width: int = 800, height: int = 600, fmt: str = "PNG") -> ImageBlock:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, fmt)
    prepared = prepare_image(out.getvalue(), f"shot.{fmt.lower()}")
    return ImageBlock(name=prepared.name, media_type=prepared.media_type, sha256=prepared.sha256,
                      width=prepared.width, height=prepared.height, data=prepared.data)


def pdf_bytes(pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def ask(model: str, *blocks) -> ModelRequest:
    return ModelRequest(model=model, system="Be brief.", max_tokens=64,
                        messages=[Message("user", [*blocks, TextBlock("What does this show?")])])


async def done(provider, request: ModelRequest) -> MessageDone:
    events = [event async for event in provider.stream(request)]
    assert isinstance(events[-1], MessageDone)
    return events[-1]


@pytest.fixture
async def claude():
    async with FakeAnthropic() as server:
        provider = AnthropicProvider(api_key=server.api_key, base_url=server.base_url, max_retries=0)
        yield server, provider
        await provider.aclose()


def test_history_keeps_the_content_address_never_the_bytes():
    image = shot()
    stored = Message("user", [image, TextBlock("see?")]).to_json()
    assert stored["content"][0] == {"type": "image", "name": "shot.png", "media_type": "image/png",
                                    "sha256": image.sha256, "width": 800, "height": 600}
    back = Message.from_json(stored)
    assert back.content[0] == image and back.content[0].data is None


async def test_claude_receives_a_base64_image_block_and_counts_its_tokens(claude):
    server, provider = claude
    image = shot(1000, 750)
    result = await done(provider, ask("claude-test", image))
    sent = server.requests[-1]["messages"][0]["content"]
    assert sent[0]["type"] == "image" and sent[0]["source"]["media_type"] == "image/png"
    assert server.calls[-1].media.images == 1
    # The fake counts the image as the API does (w*h/750 = 1000), and that reaches our usage.
    assert result.usage.input_tokens >= 1000
    assert count_message_tokens(Message("user", [image]), model="claude-test") >= 1000


async def test_claude_receives_a_pdf_as_a_document_block_and_text_as_a_text_document(claude):
    server, provider = claude
    pdf = DocumentBlock(name="report.pdf", media_type="application/pdf", sha256="ab", text="Q3 numbers",
                        data=pdf_bytes(2))
    notes = DocumentBlock(name="notes.md", media_type="text/markdown", sha256="cd", text="# Notes\nship it")
    await done(provider, ask("claude-test", pdf, notes))
    sent = server.requests[-1]["messages"][0]["content"]
    assert sent[0]["type"] == "document" and sent[0]["source"]["media_type"] == "application/pdf"
    assert sent[0]["title"] == "report.pdf"
    assert sent[1]["source"] == {"type": "text", "media_type": "text/plain", "data": "# Notes\nship it"}
    assert server.calls[-1].media.pdf_pages == 2


async def test_an_image_whose_bytes_are_gone_is_sent_as_its_placeholder(claude):
    server, provider = claude
    image = ImageBlock(name="old.png", media_type="image/png", sha256="ff", width=10, height=10)
    await done(provider, ask("claude-test", image))
    assert server.requests[-1]["messages"][0]["content"][0] == {"type": "text", "text": "[image: old.png]"}


async def test_openai_receives_a_data_url_and_reports_tile_tokens():
    server = FakeOpenAI(api_key=KEY)
    await server.start()
    provider = OpenAIProvider(api_key=KEY, base_url=server.base_url, max_retries=0)
    try:
        image = shot(1024, 768, "JPEG")
        result = await done(provider, ask("gpt-4o", image,
                                          DocumentBlock(name="a.txt", media_type="text/plain", sha256="1",
                                                        text="hello doc")))
        parts = server.chat_requests[-1].messages[-1]["content"]
        assert parts[0]["type"] == "image_url"
        assert parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,/9j/")
        assert parts[1] == {"type": "text", "text": '<document name="a.txt">\nhello doc\n</document>'}
        assert parts[2] == {"type": "text", "text": "What does this show?"}
        assert result.usage.input_tokens >= 85 + 170 * 4  # the image's tiles, as the API reports them
    finally:
        await provider.aclose()
        await server.stop()


@pytest.mark.parametrize("wording", [OPENAI_NO_VISION, LLAMA_CPP_NO_VISION])
async def test_a_model_without_vision_becomes_images_not_supported(wording):
    server = FakeOpenAI(api_key=None, reject_max_tokens=False, rejects_images=wording)
    await server.start()
    provider = OpenAIProvider(api_key=None, base_url=server.base_url, compatible=True, max_retries=2,
                              max_retry_wait_s=0.01)
    try:
        with pytest.raises(ImagesNotSupported) as info:
            await done(provider, ask("llava-ish", shot()))
        assert info.value.user_message() == "This model can't read images, so I answered from the text alone."
        assert len(server.chat_requests) == 1  # a 400 is not retried
    finally:
        await provider.aclose()
        await server.stop()


# --- images a tool returned (an MCP tool's screenshot) -------------------------------------------------


def tool_round(*images: ImageBlock) -> ModelRequest:
    """A request whose history ends with a tool call answered by a tool_result holding images."""
    use = ToolUseBlock("toolu_1", "web_shot", {"url": "x"})
    result = ToolResultBlock("toolu_1", "the page", images=images)
    return ModelRequest(model="claude-test", system="Be brief.", max_tokens=64, messages=[
        Message("user", [TextBlock("Show me the page.")]), Message("assistant", [use]), Message("user", [result])])


async def test_claude_receives_the_tool_images_inside_the_tool_result(claude):
    server, provider = claude
    image = shot(1000, 750)
    result = await done(provider, tool_round(image))
    [sent] = server.requests[-1]["messages"][2]["content"]
    assert sent["type"] == "tool_result" and sent["content"][0] == {"type": "text", "text": "the page"}
    assert sent["content"][1]["type"] == "image" and sent["content"][1]["source"]["media_type"] == "image/png"
    # The fake validates and counts the image inside the tool_result as the API does.
    assert server.calls[-1].media.images == 1 and result.usage.input_tokens >= 1000
    assert count_message_tokens(tool_round(image).messages[2], model="claude-test") >= 1000


async def test_the_anthropic_fake_refuses_what_a_tool_result_may_not_hold(claude):
    import anthropic

    server, provider = claude
    client = anthropic.AsyncAnthropic(api_key=server.api_key, base_url=server.base_url, max_retries=0)
    try:
        bad = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "tool_use", "id": "x",
                                                                             "name": "n", "input": {}}]}
        with pytest.raises(anthropic.BadRequestError, match="does not match any of the expected tags"):
            await client.messages.create(model="claude-test", max_tokens=10, messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "n", "input": {}}]},
                {"role": "user", "content": [bad]}])
    finally:
        await client.close()


async def test_openai_gets_the_tool_images_in_a_user_message_after_the_tool_messages():
    import openai

    server = FakeOpenAI(api_key=KEY)
    await server.start()
    provider = OpenAIProvider(api_key=KEY, base_url=server.base_url, max_retries=0)
    client = openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
    try:
        image, gone = shot(1024, 768, "JPEG"), ImageBlock("old.png", "image/png", "ff", 10, 10)
        request = tool_round(image, gone)
        request.model = "gpt-4o"
        result = await done(provider, request)
        messages = server.chat_requests[-1].messages
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "user"]
        assert messages[3]["content"].startswith("the page") and "shown in the next message: shot.jpeg" in \
            messages[3]["content"] and "[image: old.png]" in messages[3]["content"]
        parts = messages[4]["content"]
        assert parts[0]["text"] == "Images returned by tool call toolu_1:"
        assert parts[1] == {"type": "text", "text": "[image: shot.jpeg]"}
        assert parts[2]["image_url"]["url"].startswith("data:image/jpeg;base64,/9j/") and len(parts) == 3
        assert result.usage.input_tokens >= 85 + 170 * 4
        # The fake refuses an image inside a tool (or assistant) message, as the API does.
        url = parts[2]["image_url"]["url"]
        with pytest.raises(openai.BadRequestError, match="content"):
            await client.chat.completions.create(model="gpt-4o", messages=[
                *messages[:3], {"role": "tool", "tool_call_id": "toolu_1",
                                "content": [{"type": "image_url", "image_url": {"url": url}}]}])
        with pytest.raises(openai.BadRequestError, match="only allowed for messages with role 'user'"):
            await client.chat.completions.create(model="gpt-4o", messages=[
                *messages[:4], {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": url}}]},
                {"role": "user", "content": "and?"}])
    finally:
        await client.close()
        await provider.aclose()
        await server.stop()
