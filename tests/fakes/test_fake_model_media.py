"""The model fakes check image and document input as the real APIs do, driven through the real SDKs."""
from __future__ import annotations

import base64
import io
from typing import Any

import anthropic
import openai
import pytest
from PIL import Image
from pypdf import PdfWriter

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.media import LLAMA_CPP_NO_VISION, OPENAI_NO_VISION
from tests.fakes.openai import FakeOpenAI

KEY = "sk-test-fake-key-1234"


def picture(width: int = 64, height: int = 48, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, fmt)
    return out.getvalue()


def pdf(pages: int = 1, *, password: str | None = None) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    if password:
        writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image_block(data: bytes | str, media_type: str = "image/png") -> dict[str, Any]:
    text = data if isinstance(data, str) else b64(data)
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": text}}


def pdf_block(data: bytes) -> dict[str, Any]:
    return {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(data)}}


@pytest.fixture
async def claude():
    async with FakeAnthropic() as server:
        client = anthropic.AsyncAnthropic(api_key=server.api_key, base_url=server.base_url, max_retries=0)
        yield server, client
        await client.close()


async def ask_claude(client: anthropic.AsyncAnthropic, *blocks: dict[str, Any]):
    content = [*blocks, {"type": "text", "text": "What is in this?"}]
    return await client.messages.create(model="claude-test", max_tokens=64,
                                        messages=[{"role": "user", "content": content}])


async def rejected_by_claude(client, *blocks) -> str:
    with pytest.raises(anthropic.BadRequestError) as info:
        await ask_claude(client, *blocks)
    body = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    return body["error"]["message"]


# --- Anthropic ------------------------------------------------------------------------------------


async def test_claude_accepts_a_valid_image_and_counts_it_by_size(claude):
    server, client = claude
    small = await ask_claude(client, image_block(picture(150, 150)))
    large = await ask_claude(client, image_block(picture(1000, 1000)))
    # w*h/750 tokens: 30 for 150x150 and 1334 for 1000x1000, whatever the base64 length.
    assert large.usage.input_tokens - small.usage.input_tokens == 1334 - 30
    assert server.calls[-1].media.images == 1


async def test_claude_rejects_a_media_type_that_does_not_match_the_bytes(claude):
    _, client = claude
    message = await rejected_by_claude(client, image_block(picture(fmt="JPEG"), "image/png"))
    assert message == ("messages.0.content.0.image.source.base64: The image was specified using the image/png "
                       "media type, but the image appears to be a image/jpeg image")
    message = await rejected_by_claude(client, image_block(b"not an image at all", "image/png"))
    assert message == "messages.0.content.0.image.source.base64.data: Image does not match the provided media type image/png"


async def test_claude_rejects_unsupported_media_types_invalid_and_empty_base64(claude):
    _, client = claude
    assert await rejected_by_claude(client, image_block(picture(fmt="TIFF"), "image/tiff")) == (
        "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
        "'image/gif' or 'image/webp'")
    assert await rejected_by_claude(client, image_block("@@not base64@@")) == (
        "messages.0.content.0.image.source.base64.data: invalid base64 data")
    assert await rejected_by_claude(client, image_block("")) == (
        "messages.0.content.0.image.source.base64: image cannot be empty")


async def test_claude_measures_the_5_mb_limit_on_the_base64_text(claude):
    _, client = claude
    # 4 MB of bytes is 5.3 MB of base64: over the limit although the image itself is under 5 MB.
    data = picture(16, 16) + b"\x00" * (4 * 1024 * 1024)
    message = await rejected_by_claude(client, image_block(data))
    assert message == (f"messages.0.content.0.image.source.base64: image exceeds 5 MB maximum: {len(b64(data))} "
                       f"bytes > 5242880 bytes")


async def test_claude_rejects_images_over_8000_pixels_and_over_2000_when_many(claude):
    _, client = claude
    assert await rejected_by_claude(client, image_block(picture(8001, 10))) == (
        "messages.0.content.0.image.source.base64.data: At least one of the image dimensions exceed max "
        "allowed size: 8000 pixels")
    many = [image_block(picture(20, 20)) for _ in range(20)] + [image_block(picture(2001, 10))]
    assert await rejected_by_claude(client, *many) == (
        "messages.0.content.20.image.source.base64.data: At least one of the image dimensions exceed max "
        "allowed size for many-image requests: 2000 pixels")


async def test_claude_counts_images_and_pdf_pages_against_the_media_limit(claude):
    _, client = claude
    blocks = [image_block(picture(8, 8)) for _ in range(95)] + [pdf_block(pdf(6))]
    assert await rejected_by_claude(client, *blocks) == "Too much media: 6 document pages + 95 images > 100"


async def test_claude_takes_a_pdf_document_and_refuses_broken_encrypted_and_long_ones(claude):
    server, client = claude
    reply = await ask_claude(client, pdf_block(pdf(3)))
    assert server.calls[-1].media.pdf_pages == 3
    assert reply.usage.input_tokens >= 3 * 1500
    assert await rejected_by_claude(client, pdf_block(b"%PDF-1.7 garbage")) == (
        "messages.0.content.0.pdf.source.base64.data: The PDF specified was not valid.")
    assert await rejected_by_claude(client, pdf_block(b"plain text, no pdf")) == (
        "messages.0.content.0.pdf.source.base64.data: The PDF specified was not valid.")
    assert await rejected_by_claude(client, pdf_block(pdf(2, password="secret"))) == (
        "messages.0.content.0.pdf.source.base64.data: The PDF specified is password protected.")
    assert await rejected_by_claude(client, pdf_block(pdf(101))) == (
        "messages.0.content.0.pdf.source.base64.data: A maximum of 100 PDF pages may be provided.")


async def test_claude_checks_images_inside_tool_results_and_only_in_user_turns(claude):
    _, client = claude
    bad = image_block(picture(fmt="JPEG"), "image/png")
    messages = [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [bad]}]},
    ]
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(model="claude-test", max_tokens=16, messages=messages)
    assert info.value.body["error"]["message"].startswith(
        "messages.2.content.0.tool_result.content.0.image.source.base64: The image was specified")
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(model="claude-test", max_tokens=16, messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [image_block(picture())]},
            {"role": "user", "content": "and?"}])


async def test_claude_cannot_fetch_url_images(claude):
    _, client = claude
    block = {"type": "image", "source": {"type": "url", "url": "https://files.slack.com/x.png"}}
    assert await rejected_by_claude(client, block) == "Unable to download the file. Please verify the URL and try again."


async def test_claude_refuses_a_request_over_32_mb_with_413(claude):
    server, client = claude
    blocks = [image_block(picture(16, 16) + b"\x00" * (3 * 1024 * 1024)) for _ in range(9)]
    with pytest.raises(anthropic.APIStatusError) as info:
        await ask_claude(client, *blocks)
    assert info.value.status_code == 413
    assert info.value.body["error"]["type"] == "request_too_large"


# --- OpenAI ---------------------------------------------------------------------------------------


def image_part(data: bytes | str, mime: str = "image/png", detail: str | None = None) -> dict[str, Any]:
    url = data if isinstance(data, str) else f"data:{mime};base64,{b64(data)}"
    image_url: dict[str, Any] = {"url": url}
    if detail:
        image_url["detail"] = detail
    return {"type": "image_url", "image_url": image_url}


@pytest.fixture
async def gpt():
    servers: list[FakeOpenAI] = []

    async def make(**options) -> openai.AsyncOpenAI:
        server = FakeOpenAI(api_key=KEY, **options)
        await server.start()
        servers.append(server)
        return openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)

    yield make
    for server in servers:
        await server.stop()


async def ask_gpt(client: openai.AsyncOpenAI, *parts: dict[str, Any]):
    content = [{"type": "text", "text": "What is this?"}, *parts]
    return await client.chat.completions.create(model="gpt-4o", max_completion_tokens=32,
                                                messages=[{"role": "user", "content": content}])


async def rejected_by_gpt(client, *parts) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as info:
        await ask_gpt(client, *parts)
    return info.value.body


async def test_gpt_accepts_a_data_url_and_counts_tiles(gpt):
    client = await gpt()
    small = await ask_gpt(client, image_part(picture(512, 512), detail="high"))
    large = await ask_gpt(client, image_part(picture(1024, 1024), detail="high"))
    low = await ask_gpt(client, image_part(picture(1024, 1024), detail="low"))
    assert large.usage.prompt_tokens - low.usage.prompt_tokens == 765 - 85
    assert small.usage.prompt_tokens - low.usage.prompt_tokens == 255 - 85


async def test_gpt_rejects_bad_data_urls_and_unsupported_images(gpt):
    client = await gpt()
    body = await rejected_by_gpt(client, image_part("data:image/png;base64,@@@"))
    assert body["code"] == "invalid_value" and body["message"].startswith("Invalid image URL: 'messages[0].content[1]")
    body = await rejected_by_gpt(client, image_part(b"plain text", "image/png"))
    assert body["code"] == "invalid_image_format"
    assert body["message"].startswith("You uploaded an unsupported image.")
    body = await rejected_by_gpt(client, image_part(picture(fmt="TIFF"), "image/tiff"))
    assert body["code"] == "invalid_image_format"
    body = await rejected_by_gpt(client, image_part(picture(), detail="ultra"))
    assert body["param"] == "messages[0].content[1].image_url.detail"


async def test_gpt_cannot_fetch_url_images(gpt):
    client = await gpt()
    body = await rejected_by_gpt(client, image_part("https://files.slack.com/files-pri/T1-F1/x.png"))
    assert body["code"] == "invalid_image_url"


@pytest.mark.parametrize("wording", [OPENAI_NO_VISION, LLAMA_CPP_NO_VISION])
async def test_a_model_without_vision_answers_images_with_a_400_saying_so(gpt, wording):
    client = await gpt(rejects_images=wording)
    body = await rejected_by_gpt(client, image_part(picture()))
    assert body["message"] == wording
    assert body["param"] == "messages.[0].content.[1].type"
    # Text alone still works on that model.
    reply = await client.chat.completions.create(model="local", max_completion_tokens=8,
                                                 messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content
