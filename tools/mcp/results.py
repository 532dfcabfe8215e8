"""An MCP `CallToolResult` as the project's tool_result: text, structured content, notes for the rest."""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from mcp import types

from bot.messages import ToolResultBlock

# A tool_result goes into every later request of the thread: beyond this it is cut, with a marker.
MAX_RESULT_CHARS = 100_000
TRUNCATED = "\n[… truncated: the tool returned {total:,} characters, only the first {kept:,} are shown]"


def to_tool_result(tool_use_id: str, result: types.CallToolResult) -> ToolResultBlock:
    """Text parts in order; structured content as JSON unless a text part already says the same."""
    parts: list[str] = []
    for block in result.content:
        parts.append(_describe(block))
    structured = result.structured_content
    if structured is not None and not _already_said(parts, structured):
        parts.append(json.dumps(structured, ensure_ascii=False, default=str))
    text = "\n".join(p for p in parts if p)
    if not text:
        text = "The tool reported an error without details." if result.is_error else "Done (the tool returned nothing)."
    return ToolResultBlock(tool_use_id=tool_use_id, content=truncate(text), is_error=bool(result.is_error))


def truncate(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATED.format(total=len(text), kept=limit)


def _describe(block: Any) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, (types.ImageContent, types.AudioContent)):
        kind = "image" if isinstance(block, types.ImageContent) else "audio"
        # The tool_result shape is text only; say what was there rather than drop it silently.
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
