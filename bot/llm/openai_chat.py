"""The chat-completions wire format: our history as chat messages, and a streamed completion assembled back."""
from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from bot.messages import (
    DocumentBlock,
    ImageBlock,
    Message,
    MessageDone,
    StreamEvent,
    TextBlock,
    TextDelta,
    ToolResultBlock,
    ToolUseBlock,
    ToolUseStarted,
    Usage,
)

# Chat-completions finish_reason → the Messages API's stop_reason, so the rest of the bot speaks one language.
STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


# --- history translation -----------------------------------------------------------------------


def to_chat_messages(system: str, messages: list[Message]) -> list[dict[str, Any]]:
    """Canonical (Messages-API shaped) history → chat-completions messages."""
    chat: list[dict[str, Any]] = []
    if system:
        chat.append({"role": "system", "content": system})
    for message in messages:
        if message.role == "assistant":
            chat.append(_assistant_message(message))
            continue
        # Tool results must directly follow the assistant message that called the tools, so they go
        # first; any text the user sent alongside becomes an ordinary user message after them.
        shown: list[dict[str, Any]] = []
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                chat.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": _tool_text(block)})
                shown += _tool_images(block)
        text = message.text
        media = [b for b in message.content if isinstance(b, (ImageBlock, DocumentBlock))]
        if media or shown:
            # A tool message is text only: the images a tool returned follow in a user message of their own.
            chat.append({"role": "user", "content": [*shown, *_user_parts(message)]})
        elif text or not any(isinstance(b, ToolResultBlock) for b in message.content):
            chat.append({"role": "user", "content": text})
    return chat


def _tool_text(block: ToolResultBlock) -> str:
    content = f"Error: {block.content}" if block.is_error else block.content
    names = [image.name for image in block.images if image.data is not None]
    if names:
        content += f"\n[the tool returned {len(names)} image(s), shown in the next message: {', '.join(names)}]"
    missing = [image.placeholder for image in block.images if image.data is None]
    return "\n".join([content, *missing])


def _tool_images(block: ToolResultBlock) -> list[dict[str, Any]]:
    images = [image for image in block.images if image.data is not None]
    if not images:
        return []
    parts: list[dict[str, Any]] = [{"type": "text", "text": f"Images returned by tool call {block.tool_use_id}:"}]
    for image in images:
        parts.append({"type": "text", "text": image.placeholder})
        parts.append(_image_part(image))
    return parts


def _user_parts(message: Message) -> list[dict[str, Any]]:
    """A user message with images or documents: content parts, images as data URLs (OpenAI fetches nothing)."""
    parts: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, TextBlock) and block.text:
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append({"type": "text", "text": block.placeholder} if block.data is None else _image_part(block))
        elif isinstance(block, DocumentBlock):
            # Chat completions reads no PDFs here: the parsed text stands in for the file.
            parts.append({"type": "text", "text": f"<document name=\"{block.name}\">\n{block.text}\n</document>"})
    return parts


def _image_part(block: ImageBlock) -> dict[str, Any]:
    url = f"data:{block.media_type};base64,{base64.b64encode(block.data or b'').decode('ascii')}"
    return {"type": "image_url", "image_url": {"url": url}}


def _assistant_message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant"}
    tool_uses = message.tool_uses
    # With tool calls and no text, OpenAI expects content null rather than an empty string.
    out["content"] = message.text if (message.text or not tool_uses) else None
    if tool_uses:
        out["tool_calls"] = [
            {
                "id": use.id,
                "type": "function",
                "function": {"name": use.name, "arguments": json.dumps(use.input, ensure_ascii=False)},
            }
            for use in tool_uses
        ]
    return out


# --- stream assembly ---------------------------------------------------------------------------


@dataclass
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    announced: bool = False


@dataclass
class StreamedTurn:
    """Accumulates one streamed completion into text, tool calls, usage and finish reason."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, _ToolCallParts] = field(default_factory=dict)
    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None
    emitted: bool = False

    def feed(self, chunk: Any) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if getattr(chunk, "model", None):
            self.model = chunk.model
        if getattr(chunk, "usage", None) is not None:
            # The last usage seen wins: some servers repeat running totals on every chunk.
            self.usage = _normalise_usage(chunk.usage)
        for choice in chunk.choices or []:
            if getattr(choice, "index", 0) not in (0, None):
                continue
            delta = choice.delta
            if delta is not None:
                if delta.content:
                    self.text.append(delta.content)
                    events.append(TextDelta(delta.content))
                for position, fragment in enumerate(delta.tool_calls or []):
                    events.extend(self._feed_tool_call(position, fragment))
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
        return events

    def _feed_tool_call(self, position: int, fragment: Any) -> list[StreamEvent]:
        index = fragment.index
        if index is None:
            # Some compatible servers omit the index and send each call whole.
            index = len(self.calls) if fragment.id else max(self.calls, default=position)
        parts = self.calls.setdefault(index, _ToolCallParts())
        if fragment.id and not parts.id:
            parts.id = fragment.id
        function = fragment.function
        if function is not None:
            if function.name and not parts.name:
                parts.name = function.name
            if function.arguments:
                parts.arguments.append(function.arguments)
        if parts.name and not parts.announced:
            parts.id = parts.id or f"call_{uuid.uuid4().hex[:24]}"
            parts.announced = True
            return [ToolUseStarted(id=parts.id, name=parts.name)]
        return []

    def done(self, requested_model: str) -> MessageDone:
        content: list[Any] = []
        text = "".join(self.text)
        if text:
            content.append(TextBlock(text=text))
        for index in sorted(self.calls):
            parts = self.calls[index]
            content.append(
                ToolUseBlock(
                    id=parts.id or f"call_{uuid.uuid4().hex[:24]}",
                    name=parts.name,
                    input=_parse_arguments("".join(parts.arguments)),
                )
            )
        stop_reason = STOP_REASONS.get(self.finish_reason or "", self.finish_reason or "end_turn")
        if self.calls and stop_reason == "end_turn":
            # Several local servers report "stop" even when the reply is tool calls.
            stop_reason = "tool_use"
        return MessageDone(
            message=Message(role="assistant", content=content),
            usage=self.usage or Usage(),
            stop_reason=stop_reason,
            model=self.model or requested_model,
        )


def _parse_arguments(raw: str) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    # Kept verbatim so the tool layer can report a validation error the model can fix.
    return parsed if isinstance(parsed, dict) else {"_raw": raw}


def _normalise_usage(usage: Any) -> Usage:
    """OpenAI counts cached tokens inside prompt_tokens; Anthropic counts them apart. Use Anthropic's."""
    details = getattr(usage, "prompt_tokens_details", None)
    cached = (getattr(details, "cached_tokens", None) or 0) if details is not None else 0
    prompt = usage.prompt_tokens or 0
    return Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=usage.completion_tokens or 0,
        cache_creation_input_tokens=0,
        cache_read_input_tokens=cached,
    )
