"""An MCP `CallToolResult` as the project's tool_result: text, structured content, images, notes for the rest."""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Mapping

from mcp import types

from bot.errors import ImageUnreadable
from bot.llm.images import prepare_image_async
from bot.messages import ImageBlock, ToolResultBlock

# A tool_result goes into every later request of the thread: beyond this it is cut, with a marker.
MAX_RESULT_CHARS = 100_000
TRUNCATED = "\n[… truncated: the tool returned {total:,} characters, only the first {kept:,} are shown]"
# Images per tool_result that go to the model (each costs about as much as a page of text, and the
# Messages API takes 100 per request); the rest are named in a note.
MAX_IMAGES = 4
# Base64 beyond this is not decoded at all (Pillow would only shrink it: nobody needs 20 MB to show a chart).
MAX_IMAGE_BASE64_CHARS = 28 * 1024 * 1024


async def read_tool_result(tool_use_id: str, result: types.CallToolResult, *, store: Any, name: str
                           ) -> ToolResultBlock:
    """The tool_result with the images the tool returned as image blocks: decoded and fitted to the
    providers' limits (bot.llm.images), kept in the store by content address. An image that cannot be
    shown becomes a sentence saying why; the call never fails for it."""
    images: dict[int, ImageBlock | str] = {}
    for index, block in enumerate(result.content):
        if not isinstance(block, types.ImageContent):
            continue
        if len(images) >= MAX_IMAGES:
            images[index] = (f"[the tool returned another image ({block.mime_type}, {_decoded_size(block.data)}); "
                             f"only the first {MAX_IMAGES} are shown]")
            continue
        images[index] = await _image(block, name=f"{name}-{len(images) + 1}", store=store)
    return to_tool_result(tool_use_id, result, images=images)


async def _image(block: types.ImageContent, *, name: str, store: Any) -> ImageBlock | str:
    size = _decoded_size(block.data)
    unreadable = f"[the tool returned an image ({block.mime_type}, {size}) that cannot be shown: {{why}}]"
    if len(block.data) > MAX_IMAGE_BASE64_CHARS:
        return unreadable.format(why=f"it is larger than {MAX_IMAGE_BASE64_CHARS // 4 * 3 // 2**20} MB")
    try:
        data = base64.b64decode(block.data, validate=True)
    except (binascii.Error, ValueError):
        return unreadable.format(why="its data is not valid base64")
    try:
        prepared = await prepare_image_async(data, name)
    except ImageUnreadable as exc:
        return unreadable.format(why=exc.user_message())
    if store is not None:  # without a store (a bench) the image goes to this call's request only
        await store.put_blob(prepared.sha256, prepared.media_type, prepared.data)
    return ImageBlock(name=name, media_type=prepared.media_type, sha256=prepared.sha256, width=prepared.width,
                      height=prepared.height, data=prepared.data)


def to_tool_result(tool_use_id: str, result: types.CallToolResult,
                   images: Mapping[int, ImageBlock | str] | None = None) -> ToolResultBlock:
    """Text parts in order; structured content as JSON unless a text part already says the same; `images`
    (by content index, from read_tool_result) as image blocks or the note that stands in for one."""
    images = images or {}
    parts: list[str] = []
    shown: list[ImageBlock] = []
    for index, block in enumerate(result.content):
        image = images.get(index)
        if isinstance(image, ImageBlock):
            # Where it was among the parts, so the model can tell which text an image goes with.
            parts.append(f"[image {image.name}: {image.media_type}, {image.width}x{image.height} px]")
            shown.append(image)
        elif isinstance(image, str):
            parts.append(image)
        else:
            parts.append(_describe(block))
    structured = result.structured_content
    if structured is not None and not _already_said(parts, structured):
        parts.append(json.dumps(structured, ensure_ascii=False, default=str))
    text = "\n".join(p for p in parts if p)
    if not text and not shown:
        text = "The tool reported an error without details." if result.is_error else "Done (the tool returned nothing)."
    return ToolResultBlock(tool_use_id=tool_use_id, content=truncate(text), is_error=bool(result.is_error),
                           images=tuple(shown))


def truncate(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATED.format(total=len(text), kept=limit)


def _describe(block: Any) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, (types.ImageContent, types.AudioContent)):
        kind = "image" if isinstance(block, types.ImageContent) else "audio"
        # Audio (and an image nobody read for this call): say what was there rather than drop it silently.
        return f"[the tool returned {kind} ({block.mime_type}, {_decoded_size(block.data)}), which is not shown here]"
    if isinstance(block, types.ResourceLink):
        return f"[resource: {block.name} {block.uri}]"
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return resource.text
        return f"[embedded resource {resource.uri} ({resource.mime_type or 'binary'}), not shown]"
    return f"[unsupported content: {getattr(block, 'type', type(block).__name__)}]"


def _decoded_size(data: str) -> str:
    try:
        size = len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        size = len(data)
    return f"{size / 1024:.0f} KB" if size >= 1024 else f"{size} bytes"


def _already_said(parts: list[str], structured: Any) -> bool:
    """Servers SHOULD repeat structured content as text; SDK servers wrap a plain value as {"result": …}."""
    if any(_same_json(part, structured) for part in parts):
        return True
    if isinstance(structured, dict) and set(structured) == {"result"}:
        value = structured["result"]
        joined = "\n".join(parts)
        if joined == value or _same_json(joined, value) or any(_same_json(p, value) for p in parts):
            return True
        # A list comes as one text part per item.
        return isinstance(value, list) and len(value) == len(parts) and all(
            part == item or _same_json(part, item) for part, item in zip(parts, value))
    return False


def _same_json(text: str, value: Any) -> bool:
    try:
        return json.loads(text) == value
    except (ValueError, TypeError):
        return False
