"""The OpenAI chat-completions provider (OpenAI itself and OpenAI-compatible servers)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, AsyncIterator

import httpx2
import openai

from bot.config import scrub
from bot.llm.connections import spread_transport
from bot.errors import (
    ConfigError,
    ImagesNotSupported,
    ModelError,
    ModelOverloaded,
    ModelRateLimited,
    ModelRejected,
    ModelUnavailable,
    PromptTooLong,
)
from bot.llm.openai_chat import StreamedTurn, to_chat_messages
from bot.llm.retry import RetryPolicy, parse_retry_after
from bot.messages import ModelRequest, StreamEvent, Usage

log = logging.getLogger(__name__)

# The SDK insists on a key even when a local server (Ollama, vLLM, LM Studio) ignores it.
PLACEHOLDER_API_KEY = "not-needed"



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
        self.retry = RetryPolicy(max_retries=max_retries, max_wait_s=max_retry_wait_s, budget_s=retry_budget_s)
        self._api_key = api_key
        # The SDK's own retries would honour Retry-After without a bound; we retry ourselves instead.
        # New connections open a few at a time (bot.llm.connections): a burst of questions stalls nothing.
        transport = spread_transport()
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s,
            **({"http_client": openai.DefaultAsyncHttpxClient(transport=transport)} if transport else {}),
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        params = self.request_params(request)
        attempts = self.retry.start()
        spent: Usage | None = None  # usage reported by failed attempts, which are billed too
        while True:
            turn = StreamedTurn()
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
                error, retry_after = self._classify(exc)
                error.usage = spent
            wait = attempts.wait_before_retry(error, streamed=turn.emitted, retry_after=retry_after)
            if wait is None:
                log.warning("openai call failed for good after %d attempt(s): %s", attempts.failures, error)
                raise error from None
            log.info("openai call failed (%s); retry %d/%d in %.2f s",
                     error, attempts.failures, self.retry.max_retries, wait)
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

    async def _one_call(self, params: dict[str, Any], turn: StreamedTurn) -> AsyncIterator[StreamEvent]:
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

    def _classify(self, exc: Exception) -> tuple[ModelError, float | None]:
        """Our error for an SDK failure and the server's Retry-After (bot.llm.retry decides on retrying)."""
        if isinstance(exc, _StreamCut):
            return ModelUnavailable(str(exc)), None
        if isinstance(exc, (openai.APIConnectionError, httpx2.TransportError)):
            what = "timed out" if isinstance(exc, openai.APITimeoutError) else "connection failed"
            return ModelUnavailable(f"OpenAI {what}: {self._scrub(str(exc))}"), None
        detail = self._scrub(getattr(exc, "message", None) or str(exc))
        code = str(getattr(exc, "code", None) or "")
        kind = str(getattr(exc, "type", None) or "")
        if not isinstance(exc, openai.APIStatusError):
            # An error event inside a 200 stream: the SDK gives no status, only the error body.
            if "insufficient_quota" in (code, kind):
                return ModelRejected(_quota_message(detail)), None
            if "rate_limit" in code or kind in ("requests", "tokens", "rate_limit_error"):
                return ModelRateLimited(detail), None
            if code == "context_length_exceeded":
                return PromptTooLong(detail), None
            if kind == "invalid_request_error":
                return ModelRejected(detail), None
            return ModelUnavailable(f"OpenAI stream error: {detail}"), None

        status = exc.status_code
        retry_after = parse_retry_after(exc.response.headers)
        if status == 429:
            if "insufficient_quota" in (code, kind):
                return ModelRejected(_quota_message(detail), status_code=status), None
            return ModelRateLimited(detail, status_code=status), retry_after
        if status in (503, 529) or "overloaded" in kind:
            return ModelOverloaded(detail, status_code=status), retry_after
        if status >= 500:
            return ModelUnavailable(f"OpenAI server error {status}: {detail}", status_code=status), retry_after
        if status == 413 or code == "context_length_exceeded" or _says_context_too_long(detail):
            return PromptTooLong(detail, status_code=status), None
        if status == 400 and says_no_images(detail):
            return ImagesNotSupported(detail, status_code=status), None
        if status == 401:
            key_hint = "the server's key" if self.compatible else "OPENAI_API_KEY"
            return ModelRejected(f"the API key was rejected (401); check {key_hint}: {detail}", status_code=status), None
        return ModelRejected(f"OpenAI rejected the request ({status}): {detail}", status_code=status), None

    def _scrub(self, text: str) -> str:
        # Some servers and proxies echo the key back in their error text; it must not reach logs or users.
        return scrub(text, self._api_key if self._api_key != PLACEHOLDER_API_KEY else None)


class _StreamCut(Exception):
    """The response ended without a finish_reason (connection dropped or server gave up)."""


def says_no_images(detail: str) -> bool:
    """A 400 that says the model takes no images: OpenAI's wording and the local servers' (llama.cpp, vLLM …)."""
    lowered = detail.lower()
    return "image" in lowered and any(phrase in lowered for phrase in (
        "only supported by certain models", "not supported", "does not support", "not a multimodal",
        "unsupported content", "mmproj"))


def _says_context_too_long(detail: str) -> bool:
    # Compatible servers often send no error code; their wording is all there is.
    lowered = detail.lower()
    return "context length" in lowered or "context window" in lowered or "too many tokens" in lowered


def _quota_message(detail: str) -> str:
    return (
        "the OpenAI account has run out of quota (insufficient_quota); check the plan and billing "
        f"before retrying: {detail}"
    )
