"""The OpenAI chat-completions provider (OpenAI itself and OpenAI-compatible servers)."""
from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import httpx2
import openai

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

log = logging.getLogger(__name__)

# The SDK insists on a key even when a local server (Ollama, vLLM, LM Studio) ignores it.
PLACEHOLDER_API_KEY = "not-needed"

# Chat-completions finish_reason → the Messages API's stop_reason, so the rest of the bot speaks one language.
STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}

_RETRY_STATUSES = {429, 500, 502, 503, 504}
_FIRST_BACKOFF_S = 0.5
_KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-*]{6,}")


class OpenAIProvider:
    """Streams chat completions and returns them as the project's StreamEvents.

    `compatible=True` is for generic OpenAI-compatible servers: the output cap goes as `max_tokens`
    (which they accept) instead of `max_completion_tokens` (which newer OpenAI models require), and no
    key is needed. Such servers may send no usage at all; then every count in MessageDone.usage is 0.
    """

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        compatible: bool = False,
        max_retries: int = 3,
        max_retry_wait_s: float = 8.0,
        timeout_s: float = 120.0,
        retry_budget_s: float = 30.0,
    ) -> None:
        if not api_key:
            if not compatible:
                raise ConfigError("OPENAI_API_KEY is not set: set it to your OpenAI API key (sk-…).")
            api_key = PLACEHOLDER_API_KEY
        self.compatible = compatible
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        # All waits of one call together stay under this, whatever the server asks for.
        self.retry_budget_s = retry_budget_s
        self._api_key = api_key
        # The SDK's own retries would honour Retry-After without a bound; we retry ourselves instead.
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s
        )

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        params = self.request_params(request)
        started = time.monotonic()
        spent: Usage | None = None  # usage reported by failed attempts, which are billed too
        attempt = 0
        while True:
            turn = _StreamedTurn()
            try:
                # aclosing: a caller that stops early must release the HTTP response now, not at GC.
                async with contextlib.aclosing(self._one_call(params, turn)) as events:
                    async for event in events:
                        yield event
                done = turn.done(request.model)
                if spent is not None:
                    done.usage = done.usage + spent
                yield done
                return
            except (openai.APIError, httpx2.TransportError, _StreamCut) as exc:
                if turn.usage is not None:
                    spent = turn.usage + spent if spent is not None else turn.usage
                error, retryable, retry_after = self._classify(exc)
                error.usage = spent
            wait = self._backoff(attempt, retry_after)
            # Once the user has seen output a retry would repeat it, so only a silent failure is retried.
            if (not retryable or turn.emitted or attempt >= self.max_retries
                    or time.monotonic() - started + wait > self.retry_budget_s):
                log.warning("openai call failed for good after %d attempt(s): %s", attempt + 1, error)
                raise error from None
            attempt += 1
            log.info("openai call failed (%s); retry %d/%d in %.2f s", error, attempt, self.max_retries, wait)
            await asyncio.sleep(wait)

    # --- request ------------------------------------------------------------------------------

    def request_params(self, request: ModelRequest) -> dict[str, Any]:
        """The chat.completions.create arguments for one request (without `stream`)."""
        params: dict[str, Any] = {
            "model": request.model,
            "messages": to_chat_messages(request.system, request.messages),
            "stream_options": {"include_usage": True},
        }
        # Newer OpenAI models reject max_tokens; most local servers only know max_tokens.
        params["max_tokens" if self.compatible else "max_completion_tokens"] = request.max_tokens
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.input_schema,
                    },
                }
                for tool in request.tools
            ]
            if request.tool_choice:
                params["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice}}
        return params

    async def _one_call(self, params: dict[str, Any], turn: "_StreamedTurn") -> AsyncIterator[StreamEvent]:
        started = time.monotonic()
        chunks = await self._client.chat.completions.create(**params, stream=True)
        async with chunks:
            async for chunk in chunks:
                for event in turn.feed(chunk):
                    turn.emitted = True
                    yield event
        if turn.finish_reason is None:
            raise _StreamCut("the stream ended before the model finished")
        log.debug("openai stream finished in %.2fs", time.monotonic() - started)

    # --- failures -----------------------------------------------------------------------------

    def _classify(self, exc: Exception) -> tuple[ModelError, bool, float | None]:
        """Our error for an SDK failure, whether a retry may help, and the server's Retry-After."""
        if isinstance(exc, _StreamCut):
            return ModelUnavailable(str(exc)), True, None
        if isinstance(exc, (openai.APIConnectionError, httpx2.TransportError)):
            what = "timed out" if isinstance(exc, openai.APITimeoutError) else "connection failed"
            return ModelUnavailable(f"OpenAI {what}: {self._scrub(str(exc))}"), True, None
        detail = self._scrub(getattr(exc, "message", None) or str(exc))
        code = str(getattr(exc, "code", None) or "")
        kind = str(getattr(exc, "type", None) or "")
        if not isinstance(exc, openai.APIStatusError):
            # An error event inside a 200 stream: the SDK gives no status, only the error body.
            if "insufficient_quota" in (code, kind):
                return ModelRejected(_quota_message(detail)), False, None
            if "rate_limit" in code or kind in ("requests", "tokens", "rate_limit_error"):
                return ModelRateLimited(detail), True, None
            if code == "context_length_exceeded":
                return PromptTooLong(detail), False, None
            if kind == "invalid_request_error":
                return ModelRejected(detail), False, None
            return ModelUnavailable(f"OpenAI stream error: {detail}"), True, None

        status = exc.status_code
        retry_after = _retry_after_s(exc.response.headers)
        if status == 429:
            if "insufficient_quota" in (code, kind):
                return ModelRejected(_quota_message(detail), status_code=status), False, None
            return ModelRateLimited(detail, status_code=status), True, retry_after
        if status in (503, 529) or "overloaded" in kind:
            return ModelOverloaded(detail, status_code=status), True, retry_after
        if status >= 500:
            error = ModelUnavailable(f"OpenAI server error {status}: {detail}", status_code=status)
            return error, status in _RETRY_STATUSES, retry_after
        if status == 413 or code == "context_length_exceeded" or _says_context_too_long(detail):
            return PromptTooLong(detail, status_code=status), False, None
        if status == 401:
            key_hint = "the server's key" if self.compatible else "OPENAI_API_KEY"
            return (
                ModelRejected(f"the API key was rejected (401); check {key_hint}: {detail}", status_code=status),
                False,
                None,
            )
        return ModelRejected(f"OpenAI rejected the request ({status}): {detail}", status_code=status), False, None

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number attempt+1; never more than max_retry_wait_s."""
        # Jitter keeps many threads that failed together from retrying together.
        backoff = _FIRST_BACKOFF_S * (2**attempt) * random.uniform(0.75, 1.0)
        wait = max(backoff, retry_after) if retry_after is not None else backoff
        return min(wait, self.max_retry_wait_s)

    def _scrub(self, text: str) -> str:
        # Some servers and proxies echo the key back in their error text; it must not reach logs or users.
        if self._api_key and self._api_key != PLACEHOLDER_API_KEY and len(self._api_key) >= 6:
            text = text.replace(self._api_key, "[redacted]")
        return _KEY_PATTERN.sub("sk-[redacted]", text)


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
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                content = f"Error: {block.content}" if block.is_error else block.content
                chat.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": content})
        text = message.text
        if text or not any(isinstance(b, ToolResultBlock) for b in message.content):
            chat.append({"role": "user", "content": text})
    return chat


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


class _StreamCut(Exception):
    """The response ended without a finish_reason (connection dropped or server gave up)."""


@dataclass
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    announced: bool = False


@dataclass
class _StreamedTurn:
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


# --- helpers -----------------------------------------------------------------------------------


def _retry_after_s(headers: Any) -> float | None:
    """Retry-After as seconds (retry-after-ms, delta-seconds or an HTTP date), or None."""
    try:
        value = headers.get("retry-after-ms")
        if value is not None:
            return float(value) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _says_context_too_long(detail: str) -> bool:
    # Compatible servers often send no error code; their wording is all there is.
    lowered = detail.lower()
    return "context length" in lowered or "context window" in lowered or "too many tokens" in lowered


def _quota_message(detail: str) -> str:
    return (
        "the OpenAI account has run out of quota (insufficient_quota); check the plan and billing "
        f"before retrying: {detail}"
    )
