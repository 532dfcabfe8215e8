"""The Anthropic Messages API provider: request translation, prompt caching, raw-event streaming, bounded retries,
error mapping."""
from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import anthropic
import httpx2
import jiter

from bot.config import scrub
from bot.llm.connections import spread_transport
from bot.errors import (
    ConfigError,
    ModelError,
    ModelOverloaded,
    ModelRateLimited,
    ModelRejected,
    ModelUnavailable,
    PromptTooLong,
)
from bot.messages import (
    ContentBlock,
    DocumentBlock,
    ImageBlock,
    Message,
    MessageDone,
    ModelRequest,
    StreamEvent,
    TextBlock,
    TextDelta,
    ToolResultBlock,
    ToolUseBlock,
    ToolUseStarted,
    Usage,
)
from bot.llm.retry import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

EPHEMERAL = {"type": "ephemeral"}
# An `event: error` arrives inside a 200 response; its error type stands in for the status.
STATUS_BY_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def build_params(request: ModelRequest) -> dict[str, Any]:
    """ModelRequest → keyword arguments of `messages.create`, with the cache breakpoints placed."""
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": [wire_message(message) for message in request.messages],
    }
    if request.system:
        params["system"] = [{"type": "text", "text": request.system, "cache_control": EPHEMERAL}]
    if request.tools:
        tools = [{"name": t.name, "description": t.description, "input_schema": t.input_schema}
                 for t in request.tools]
        tools[-1]["cache_control"] = EPHEMERAL
        params["tools"] = tools
    if request.tool_choice is not None:
        params["tool_choice"] = {"type": "tool", "name": request.tool_choice}
    at = request.cache_history_at
    if at is not None and -len(request.messages) <= at < len(request.messages):
        content = params["messages"][at]["content"]
        if content:
            content[-1]["cache_control"] = EPHEMERAL
    return params


def wire_message(message: Message) -> dict[str, Any]:
    """One history message as the Messages API takes it: images as base64 `image` blocks, a PDF as a
    `document` block, other documents as plain-text documents; an image without its bytes as its placeholder."""
    out = message.to_json()
    out["content"] = [_wire_block(block, stored)
                      for block, stored in zip(message.content, out["content"])]
    return out


def _wire_block(block: ContentBlock, stored: dict[str, Any]) -> dict[str, Any]:
    if isinstance(block, ImageBlock):
        if block.data is None:
            return {"type": "text", "text": block.placeholder}
        return {"type": "image", "source": {"type": "base64", "media_type": block.media_type,
                                            "data": base64.b64encode(block.data).decode("ascii")}}
    if isinstance(block, DocumentBlock):
        if block.media_type == "application/pdf" and block.data is not None:
            source = {"type": "base64", "media_type": "application/pdf",
                      "data": base64.b64encode(block.data).decode("ascii")}
        else:
            source = {"type": "text", "media_type": "text/plain", "data": block.text}
        return {"type": "document", "source": source, "title": block.name}
    if isinstance(block, ToolResultBlock) and block.images:
        # A tool_result's content may be a list of text and image blocks: the images the tool returned.
        parts = [{"type": "text", "text": block.content}] if block.content else []
        parts += [_wire_block(image, {}) for image in block.images]
        return {"type": "tool_result", "tool_use_id": block.tool_use_id, "content": parts,
                "is_error": block.is_error}
    return stored


def usage_from_api(usage: Any) -> Usage:
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_creation_input_tokens=getattr(usage, "cache_creation_input_tokens", None) or 0,
        cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", None) or 0,
    )


@dataclass
class _Text:
    parts: list[str] = field(default_factory=list)


@dataclass
class _ToolUse:
    id: str
    name: str
    input: dict[str, Any]
    json_parts: list[str] = field(default_factory=list)  # input_json_delta fragments not parsed yet


class MessageAssembly:
    """The reply being streamed, built from the raw events (the SDK's MessageStream builds every event twice
    and re-parses a tool's whole input at each fragment: at a burst of answers that was half the CPU).
    Only what a Message keeps is assembled: text and tool_use blocks; other block types are skipped."""

    def __init__(self, start: Any):
        message = start.message
        self.model: str = message.model
        self.usage = usage_from_api(message.usage)
        self.stop_reason: str | None = None
        self._blocks: dict[int, _Text | _ToolUse] = {}

    def block_start(self, index: int, block: Any) -> None:
        if block.type == "text":
            self._blocks[index] = _Text([block.text] if block.text else [])
        elif block.type == "tool_use":
            self._blocks[index] = _ToolUse(block.id, block.name, dict(block.input or {}))

    def delta(self, index: int, delta: Any) -> None:
        block = self._blocks.get(index)
        if delta.type == "text_delta" and isinstance(block, _Text):
            block.parts.append(delta.text)
        elif delta.type == "input_json_delta" and isinstance(block, _ToolUse):
            block.json_parts.append(delta.partial_json)

    def block_stop(self, index: int) -> None:
        block = self._blocks.get(index)
        if isinstance(block, _ToolUse) and block.json_parts:
            # An empty input may come as no fragment or as one empty one: the start's input ({}) stands.
            raw = "".join(block.json_parts)
            block.json_parts = []
            if raw:
                block.input = tool_input(block.id, raw)

    def message_delta(self, event: Any) -> None:
        self.stop_reason = event.delta.stop_reason
        # message_delta's counts are totals so far: they replace message_start's; one it omits keeps its value.
        usage = event.usage
        self.usage.output_tokens = usage.output_tokens or 0
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            value = getattr(usage, name, None)
            if value is not None:
                setattr(self.usage, name, value)

    def message(self) -> Message:
        blocks: list[ContentBlock] = []
        for index in sorted(self._blocks):
            self.block_stop(index)  # a tool block the stream never closed still gets its input
            block = self._blocks[index]
            if isinstance(block, _ToolUse):
                blocks.append(ToolUseBlock(id=block.id, name=block.name, input=block.input))
            elif text := "".join(block.parts):
                # Empty text blocks are dropped: the API rejects them when the history is sent back.
                blocks.append(TextBlock(text=text))
        return Message(role="assistant", content=blocks)


def tool_input(tool_use_id: str, raw: str) -> dict[str, Any]:
    """A tool's input from its JSON fragments, parsed once. Lenient about a cut-off end, as the SDK's helper
    is: an answer stopped at max_tokens may end mid-input (the agent never runs such a call)."""
    try:
        value = jiter.from_json(raw.encode("utf-8"), partial_mode=True)
    except ValueError:
        raise ModelUnavailable(f"the model sent tool input that is not JSON ({tool_use_id})") from None
    if not isinstance(value, dict):
        raise ModelUnavailable(f"the model sent tool input that is not a JSON object ({tool_use_id})")
    return value


class AnthropicProvider:
    """Streams one model call at a time; retries transient failures itself (bot.llm.retry's policy)."""

    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        max_retries: int = 3,
        max_retry_wait_s: float = 8.0,
        timeout_s: float = 120.0,
        retry_budget_s: float = 30.0,
    ):
        # The SDK's own retries are off: it honours Retry-After without any cap.
        # New connections open a few at a time (bot.llm.connections): a burst of questions stalls nothing.
        transport = spread_transport()
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s,
            **({"http_client": anthropic.DefaultAsyncHttpxClient(transport=transport)} if transport else {}),
        )
        self._secret = api_key or self._client.api_key
        if not (self._secret or self._client.auth_token or getattr(self._client, "_token_cache", None)):
            # Fail at start-up with the variable's name, not with the SDK's TypeError on the first call.
            raise ConfigError("ANTHROPIC_API_KEY is not set: the Anthropic provider needs an API key.")
        self.retry = RetryPolicy(max_retries=max_retries, max_wait_s=max_retry_wait_s, budget_s=retry_budget_s)

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        params = build_params(request)
        attempts = self.retry.start()
        spent = Usage()  # tokens of failed attempts, which are billed too
        spent_known = False
        while True:
            yielded = False
            reply: MessageAssembly | None = None  # from message_start on
            try:
                events = await self._client.messages.create(**params, stream=True)
                async with events:
                    async for event in events:
                        kind = event.type
                        if kind == "content_block_delta":
                            if reply is None:
                                continue
                            reply.delta(event.index, event.delta)
                            if event.delta.type == "text_delta" and event.delta.text:
                                yielded = True
                                yield TextDelta(text=event.delta.text)
                        elif kind == "message_start":
                            reply = MessageAssembly(event)
                        elif reply is None:
                            continue  # nothing before message_start belongs to a reply
                        elif kind == "content_block_start":
                            reply.block_start(event.index, event.content_block)
                            if event.content_block.type == "tool_use":
                                yielded = True
                                yield ToolUseStarted(id=event.content_block.id, name=event.content_block.name)
                        elif kind == "content_block_stop":
                            reply.block_stop(event.index)
                        elif kind == "message_delta":
                            reply.message_delta(event)
                    # Read to the end (message_stop, then the body's end): the connection goes back to the pool.
                if reply is None:
                    raise ModelUnavailable("the model's stream ended before it started")
                if reply.stop_reason is None:
                    raise ModelUnavailable("the model's stream ended before the message was complete")
                yield MessageDone(
                    message=reply.message(),
                    usage=reply.usage + spent,
                    stop_reason=reply.stop_reason,
                    model=reply.model,
                )
                return
            except (anthropic.APIError, httpx2.TransportError, ModelUnavailable) as exc:
                if reply is not None:
                    spent, spent_known = spent + reply.usage, True
                error, retry_after = self._map_error(exc)
                error.usage = spent if spent_known else None
                wait = attempts.wait_before_retry(error, streamed=yielded, retry_after=retry_after)
                if wait is None:
                    log.warning("anthropic call failed for good after %d attempt(s): %s", attempts.failures, error)
                    raise error from None
                log.info("anthropic call failed (%s), retry %d/%d in %.2f s",
                         error, attempts.failures, self.retry.max_retries, wait)
                await asyncio.sleep(wait)

    def _map_error(self, exc: Exception) -> tuple[ModelError, float | None]:
        if isinstance(exc, ModelError):
            return exc, None
        if isinstance(exc, (anthropic.APIConnectionError, httpx2.TransportError)):
            # APITimeoutError is an APIConnectionError; mid-stream disconnects surface as TransportError.
            return ModelUnavailable(self._scrub(f"anthropic connection failed: {type(exc).__name__}")), None
        if not isinstance(exc, anthropic.APIStatusError):
            return ModelUnavailable(self._scrub(f"anthropic error: {type(exc).__name__}")), None

        error_type = exc.type or ""
        status = exc.status_code
        if status == 200:  # an `event: error` inside the stream
            status = STATUS_BY_ERROR_TYPE.get(error_type, 500)
        message = exc.api_message or str(exc)
        detail = self._scrub(f"anthropic {status} {error_type}: {message}".replace(" :", ":"))
        retry_after = parse_retry_after(exc.response.headers) if exc.response is not None else None

        if status == 529 or error_type == "overloaded_error":
            error: ModelError = ModelOverloaded(detail, status_code=status)
        elif status == 429:
            error = ModelRateLimited(detail, status_code=status)
        elif status >= 500:
            error = ModelUnavailable(detail, status_code=status)
        elif status == 413 or (status == 400 and "prompt is too long" in message.lower()):
            error = PromptTooLong(detail, status_code=status)
        else:
            error = ModelRejected(detail, status_code=status)
        return error, retry_after

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secret)

