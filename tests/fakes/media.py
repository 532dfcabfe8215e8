"""Image and document checks the model APIs make, for the Anthropic and OpenAI fakes, with their wording.

The wording is the APIs' own as they answer today (seen in their 400 bodies); the fakes decode the bytes with
Pillow and pypdf the way the services decode them, independently of the product's code.
"""
from __future__ import annotations

import base64
import binascii
import io
import math
import re
from dataclasses import dataclass
from typing import Any, Iterator

from PIL import Image

ANTHROPIC_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
ANTHROPIC_MAX_IMAGE_BASE64 = 5 * 1024 * 1024  # measured on the base64 text
ANTHROPIC_MAX_SIDE = 8000
ANTHROPIC_MANY_IMAGES = 20  # above this many images, each side must be ≤ 2000 px
ANTHROPIC_MANY_IMAGES_MAX_SIDE = 2000
ANTHROPIC_MAX_MEDIA = 100  # images + PDF pages per request
ANTHROPIC_PDF_TOKENS_PER_PAGE = 1500  # the low end of Anthropic's 1,500-3,000 tokens per page

OPENAI_MAX_IMAGE_BYTES = 20 * 1024 * 1024
OPENAI_MAX_IMAGES = 500
OPENAI_NO_VISION = "Invalid content type. image_url is only supported by certain models."
# llama.cpp's server without a vision projector says this (other local servers word it their own way).
LLAMA_CPP_NO_VISION = "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.S)


def sniff(data: bytes) -> str | None:
    """The media type the bytes are, by magic number (what the services check the declared type against)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height as a decoder reads them, or None when the bytes do not decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.size
    except Exception:  # noqa: BLE001 — any decoder failure is "could not process"
        return None


def decode_base64(text: Any) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def anthropic_image_tokens(width: int, height: int) -> int:
    scale = min(1.0, 1568 / max(width, height), math.sqrt(1_191_000 / (width * height)))
    return math.ceil(width * scale * height * scale / 750)


def openai_image_tokens(width: int, height: int, detail: str) -> int:
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    if min(w, h) > 768:
        w, h = w * 768 / min(w, h), h * 768 / min(w, h)
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


# --- Anthropic ------------------------------------------------------------------------------------


@dataclass
class MediaCount:
    """What a request carried, for the media limits and the usage the fake reports."""

    images: int = 0
    pdf_pages: int = 0
    tokens: int = 0  # the media's input tokens (images by w*h/750, PDF pages at a flat rate)
    base64_chars: int = 0  # base64 text the token estimate must not count as text


def _anthropic_blocks(messages: list[dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, role, block) for every content block, also the image blocks inside tool results."""
    for i, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            path = f"messages.{i}.content.{j}"
            yield path, message.get("role", ""), block
            if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                for k, inner in enumerate(block["content"]):
                    yield f"{path}.tool_result.content.{k}", message.get("role", ""), inner


def anthropic_media_error(messages: list[dict[str, Any]], count: MediaCount) -> str | None:
    """The 400 message the Messages API gives for the first bad image/document block, or None; fills `count`."""
    sized: list[tuple[str, int, int]] = []
    for path, role, block in _anthropic_blocks(messages):
        kind = block.get("type")
        if kind not in ("image", "document"):
            continue
        if role != "user":
            return f"{path}.{kind}: {kind} content is only allowed in user messages"
        source = block.get("source") or {}
        if source.get("type") == "url":
            return "Unable to download the file. Please verify the URL and try again."
        if kind == "image":
            problem = _anthropic_image(path, source, count, sized)
        else:
            problem = _anthropic_document(path, source, count)
        if problem:
            return problem
    if count.images + count.pdf_pages > ANTHROPIC_MAX_MEDIA:
        return f"Too much media: {count.pdf_pages} document pages + {count.images} images > {ANTHROPIC_MAX_MEDIA}"
    if count.images > ANTHROPIC_MANY_IMAGES:
        for path, width, height in sized:
            if max(width, height) > ANTHROPIC_MANY_IMAGES_MAX_SIDE:
                return (f"{path}.image.source.base64.data: At least one of the image dimensions exceed max "
                        f"allowed size for many-image requests: {ANTHROPIC_MANY_IMAGES_MAX_SIDE} pixels")
    return None


def _anthropic_image(path: str, source: dict[str, Any], count: MediaCount,
                     sized: list[tuple[str, int, int]]) -> str | None:
    where = f"{path}.image.source.base64"
    if source.get("type") != "base64":
        return (f"{path}.image.source: Input tag '{source.get('type')}' found using 'type' does not match any "
                f"of the expected tags: 'base64', 'url'")
    media_type = source.get("media_type")
    if media_type not in ANTHROPIC_IMAGE_TYPES:
        return f"{where}.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
    text = source.get("data")
    if not text:
        return f"{where}: image cannot be empty"
    data = decode_base64(text)
    if data is None:
        return f"{where}.data: invalid base64 data"
    if len(text) > ANTHROPIC_MAX_IMAGE_BASE64:
        return f"{where}: image exceeds 5 MB maximum: {len(text)} bytes > {ANTHROPIC_MAX_IMAGE_BASE64} bytes"
    actual = sniff(data)
    if actual is None or not actual.startswith("image/"):
        return f"{where}.data: Image does not match the provided media type {media_type}"
    if actual != media_type:
        return (f"{where}: The image was specified using the {media_type} media type, but the image appears "
                f"to be a {actual} image")
    size = image_size(data)
    if size is None:
        return "Could not process image"
    if max(size) > ANTHROPIC_MAX_SIDE:
        return f"{where}.data: At least one of the image dimensions exceed max allowed size: {ANTHROPIC_MAX_SIDE} pixels"
    sized.append((path, *size))
    count.images += 1
    count.tokens += anthropic_image_tokens(*size)
    count.base64_chars += len(text)
    return None


def _anthropic_document(path: str, source: dict[str, Any], count: MediaCount) -> str | None:
    if source.get("type") == "text":
        if source.get("media_type") != "text/plain" or not isinstance(source.get("data"), str):
            return f"{path}.document.source.text.media_type: Input should be 'text/plain'"
        return None
    if source.get("type") != "base64":
        return (f"{path}.document.source: Input tag '{source.get('type')}' found using 'type' does not match any "
                f"of the expected tags: 'base64', 'content', 'text', 'url'")
    where = f"{path}.pdf.source.base64.data"
    if source.get("media_type") != "application/pdf":
        return f"{path}.document.source.base64.media_type: Input should be 'application/pdf'"
    data = decode_base64(source.get("data"))
    if data is None:
        return f"{where}: invalid base64 data"
    pages = _pdf_pages(data)
    if pages is None:
        return f"{where}: The PDF specified was not valid."
    if pages < 0:
        return f"{where}: The PDF specified is password protected."
    if pages > ANTHROPIC_MAX_MEDIA:
        return f"{where}: A maximum of {ANTHROPIC_MAX_MEDIA} PDF pages may be provided."
    count.pdf_pages += pages
    count.tokens += pages * ANTHROPIC_PDF_TOKENS_PER_PAGE
    count.base64_chars += len(source["data"])
    return None


def _pdf_pages(data: bytes) -> int | None:
    """Page count; -1 for an encrypted PDF; None when the bytes are not a PDF."""
    if not data.startswith(b"%PDF-"):
        return None
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            return -1
        return len(reader.pages)
    except (PdfReadError, ValueError, KeyError, OSError):
        return None


# --- OpenAI ---------------------------------------------------------------------------------------


@dataclass
class OpenAIMediaProblem:
    message: str
    param: str | None
    code: str | None


def openai_media_problem(messages: list[dict[str, Any]], count: MediaCount, *,
                         rejects_images: str | None) -> OpenAIMediaProblem | None:
    """The 400 chat completions gives for the first bad content part, or None; fills `count`."""
    for i, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        role = message.get("role")
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                continue
            if role != "user":
                # Tool (and system, assistant) messages take text parts only: images go in a user message.
                return OpenAIMediaProblem(f"Invalid 'messages[{i}]'. Image URLs are only allowed for messages "
                                          f"with role 'user', but this message with role '{role}' contains an "
                                          f"image URL." if kind == "image_url" else
                                          f"Invalid value: '{kind}'. Supported values are: 'text'.",
                                          f"messages[{i}].content[{j}].type", "invalid_value")
            if kind != "image_url":
                return OpenAIMediaProblem(f"Invalid value: '{kind}'. Supported values are: 'text' and 'image_url'.",
                                          f"messages.[{i}].content.[{j}].type", "invalid_value")
            if rejects_images is not None:
                return OpenAIMediaProblem(rejects_images, f"messages.[{i}].content.[{j}].type", None)
            problem = _openai_image(i, j, part.get("image_url") or {}, count)
            if problem:
                return problem
    if count.images > OPENAI_MAX_IMAGES:
        return OpenAIMediaProblem(f"Too many images in request. Max is {OPENAI_MAX_IMAGES}.", "messages",
                                  "too_many_images")
    return None


def _openai_image(i: int, j: int, image_url: dict[str, Any], count: MediaCount) -> OpenAIMediaProblem | None:
    url = image_url.get("url") if isinstance(image_url, dict) else None
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return OpenAIMediaProblem(f"Timeout while downloading {url}.", None, "invalid_image_url")
    match = _DATA_URL.match(url) if isinstance(url, str) else None
    data = decode_base64(match.group("data")) if match else None
    if match is None or data is None or not match.group("mime").startswith("image/"):
        return OpenAIMediaProblem(
            f"Invalid image URL: 'messages[{i}].content[{j}].image_url.url'. Expected a base64-encoded data URL "
            "with an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got an invalid value.",
            f"messages[{i}].content[{j}].image_url.url", "invalid_value")
    unsupported = ("You uploaded an unsupported image. Please make sure your image is below 20 MB in size and is "
                   "of one the following formats: ['png', 'jpeg', 'gif', 'webp'].")
    # OpenAI decodes what the bytes are: a jpeg labelled png is read; a declared type it can't read is refused.
    if match.group("mime") not in ANTHROPIC_IMAGE_TYPES or len(data) > OPENAI_MAX_IMAGE_BYTES:
        return OpenAIMediaProblem(unsupported, None, "invalid_image_format")
    size = image_size(data) if sniff(data) in ANTHROPIC_IMAGE_TYPES else None
    if size is None:
        return OpenAIMediaProblem(unsupported, None, "invalid_image_format")
    detail = image_url.get("detail", "auto")
    if detail not in ("auto", "low", "high"):
        return OpenAIMediaProblem(f"Invalid value: '{detail}'. Supported values are: 'auto', 'low', and 'high'.",
                                  f"messages[{i}].content[{j}].image_url.detail", "invalid_value")
    count.images += 1
    count.tokens += openai_image_tokens(*size, detail)
    count.base64_chars += len(url)
    return None
