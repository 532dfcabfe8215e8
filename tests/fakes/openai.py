"""A loopback stand-in for OpenAI's chat-completions API (and OpenAI-compatible local servers)."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from aiohttp import web

from tests.fakes.media import MediaCount, openai_media_problem


@dataclass
class FakeToolCall:
    name: str
    arguments: str | dict[str, Any] = "{}"  # a str is sent verbatim, so malformed JSON can be scripted
    id: str | None = None

    def arguments_text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class FakeUsage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }


@dataclass
class ScriptedReply:
    """One model answer. Streamed as the real API streams it; also served non-streaming."""

    text: str = ""
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    finish_reason: str | None = None  # default: "tool_calls" when there are tool calls, else "stop"
    usage: FakeUsage | None = None  # default: a rough count of the request and the reply
    model: str | None = None  # default: the requested model
    text_chunk_chars: int = 4  # text arrives in many small deltas
    argument_chunk_chars: int = 5  # tool arguments arrive in fragments across chunks
    delay_s: float = 0.0  # pause before every chunk (slow tokens)
    disconnect_after_chunks: int | None = None  # drop the connection mid-stream after this many chunks
    error_after_chunks: int | None = None  # send `data: {"error": …}` mid-stream after this many chunks

    def finish(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")


@dataclass
class FakeError:
    """An HTTP error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    retry_after: str | None = None  # sent as the Retry-After header

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    @classmethod
    def rate_limited(cls, *, retry_after: str | None = "1") -> "FakeError":
        return cls(
            429,
            "Rate limit reached for gpt-4o in organization org-fake on requests per min (RPM): "
            "Limit 3, Used 3, Requested 1. Please try again in 20s.",
            "requests",
            "rate_limit_exceeded",
            retry_after=retry_after,
        )

    @classmethod
    def insufficient_quota(cls) -> "FakeError":
        return cls(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        )

    @classmethod
    def server_error(cls, status: int = 500) -> "FakeError":
        return cls(status, "The server had an error while processing your request. Sorry about that!", "server_error")

    @classmethod
    def overloaded(cls) -> "FakeError":
        return cls(503, "The engine is currently overloaded, please try again later.", "server_error")

    @classmethod
    def context_length_exceeded(cls) -> "FakeError":
        return cls(
            400,
            "This model's maximum context length is 128000 tokens. However, your messages resulted in "
            "131072 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "context_length_exceeded",
            param="messages",
        )


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return (self.body or {}).get("messages", [])


Script = Union[ScriptedReply, FakeError, Callable[[RecordedRequest], Union[ScriptedReply, FakeError]]]


class FakeOpenAI:
    """POST /v1/chat/completions and GET /v1/models on 127.0.0.1, port 0.

    Replies come from `queue` (first in, first out), then from `responder(request)`, then a default
    text answer. `api_key=None` accepts any caller, like a local server; `reject_max_tokens` answers
    `max_tokens` with the 400 newer OpenAI models give; `send_usage=False` never sends usage, like
    some local servers. `rejects_images` is the 400 message of a model without vision (OPENAI_NO_VISION is
    OpenAI's own; media.LLAMA_CPP_NO_VISION a local server's); images are otherwise checked as OpenAI checks them.
    """

    def __init__(
        self,
        *,
        api_key: str | None = "sk-test-fake-key-1234",
        reject_max_tokens: bool = True,
        send_usage: bool = True,
        responder: Callable[[RecordedRequest], ScriptedReply | FakeError] | None = None,
        rejects_images: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.rejects_images = rejects_images
        self.reject_max_tokens = reject_max_tokens
        self.send_usage = send_usage
        self.responder = responder
        self.queue: list[Script] = []
        self.requests: list[RecordedRequest] = []
        self.base_url = ""
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # --- scripting ----------------------------------------------------------------------------

    def script(self, *items: Script) -> "FakeOpenAI":
        with self._lock:
            self.queue.extend(items)
        return self

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _next(self, request: RecordedRequest) -> ScriptedReply | FakeError:
        with self._lock:
            item = self.queue.pop(0) if self.queue else None
        if item is None:
            if self.responder is None:
                return ScriptedReply(text="Hello from the fake model.")
            item = self.responder
        return item(request) if callable(item) else item

    # --- lifecycle ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        app.router.add_get("/v1/models", self._handle_models)
        return app

    async def start(self) -> str:
        """Serve in the running loop; returns the base URL (ending in /v1)."""
        self._runner = web.AppRunner(self.app(), handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start_in_thread(self) -> str:
        """Serve from a background thread with its own loop (for code under test that blocks)."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self.base_url

    def stop_thread(self) -> None:
        if self._thread_loop is not None and self._thread is not None:
            self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
            self._thread.join(10)
            self._thread = self._thread_loop = None

    # --- handlers -----------------------------------------------------------------------------

    def _auth_error(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        header = request.headers.get("Authorization", "")
        if header == f"Bearer {self.api_key}":
            return None
        given = header.removeprefix("Bearer ").strip()
        masked = f"{given[:3]}*****{given[-4:]}" if len(given) > 8 else "*****"
        error = FakeError(
            401,
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )
        return _error_response(error)

    async def _handle_models(self, request: web.Request) -> web.Response:
        self.requests.append(RecordedRequest(request.method, request.path, dict(request.headers), None))
        if (denied := self._auth_error(request)) is not None:
            return denied
        model = {"id": "gpt-4o-mini", "object": "model", "created": 1700000000, "owned_by": "fake"}
        return web.json_response({"object": "list", "data": [model]})

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        recorded = RecordedRequest(request.method, request.path, dict(request.headers), body)
        self.requests.append(recorded)
        if (denied := self._auth_error(request)) is not None:
            return denied
        if not isinstance(body, dict):
            return _error_response(_invalid("We could not parse the JSON body of your request."))
        media = MediaCount()
        if (problem := self._validate(body, media)) is not None:
            return _error_response(problem)
        outcome = self._next(recorded)
        if isinstance(outcome, FakeError):
            return _error_response(outcome)
        model = outcome.model or body["model"]
        usage = outcome.usage or _rough_usage(body, outcome, media)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(request, outcome, model, usage if include_usage else None)
        return web.json_response(_completion(outcome, model, usage if self.send_usage else None))

    def _validate(self, body: dict[str, Any], media: MediaCount) -> FakeError | None:
        """The checks the real API makes that our provider could get wrong."""
        if not body.get("model"):
            return _invalid("you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _invalid("[] is too short - 'messages'", param="messages")
        if self.reject_max_tokens and "max_tokens" in body:
            return _invalid(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                param="max_tokens",
                code="unsupported_parameter",
            )
        if "stream_options" in body and not body.get("stream"):
            return _invalid(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
            )
        tool_names = set()
        for tool in body.get("tools") or []:
            function = tool.get("function") or {}
            if tool.get("type") != "function" or not function.get("name"):
                return _invalid("Missing required parameter: 'tools[0].function.name'.", param="tools")
            tool_names.add(function["name"])
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and (choice.get("function") or {}).get("name") not in tool_names:
            return _invalid("Invalid value for 'tool_choice': no function with that name in 'tools'.",
                            param="tool_choice")
        if (pairs := _validate_tool_pairs(messages)) is not None:
            return pairs
        problem = openai_media_problem(messages, media, rejects_images=self.rejects_images)
        if problem is not None:
            return _invalid(problem.message, param=problem.param, code=problem.code)
        return None

    async def _stream(
        self, request: web.Request, reply: ScriptedReply, model: str, usage: FakeUsage | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:20]}"
        created = int(time.time())
        with_usage = usage is not None and self.send_usage

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            data: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if with_usage:
                data["usage"] = None
            return data

        chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
        step = max(1, reply.text_chunk_chars)
        for start in range(0, len(reply.text), step):
            chunks.append(chunk({"content": reply.text[start:start + step]}))
        for index, call in enumerate(reply.tool_calls):
            call_id = call.id or f"call_{uuid.uuid4().hex[:24]}"
            head = {"index": index, "id": call_id, "type": "function",
                    "function": {"name": call.name, "arguments": ""}}
            chunks.append(chunk({"tool_calls": [head]}))
            arguments = call.arguments_text()
            piece = max(1, reply.argument_chunk_chars)
            for start in range(0, len(arguments), piece):
                fragment = {"index": index, "function": {"arguments": arguments[start:start + piece]}}
                chunks.append(chunk({"tool_calls": [fragment]}))
        chunks.append(chunk({}, reply.finish()))
        if with_usage:
            final = chunk({})
            final["choices"] = []
            final["usage"] = usage.to_json()  # type: ignore[union-attr]
            chunks.append(final)

        for sent, data in enumerate(chunks):
            if reply.disconnect_after_chunks is not None and sent >= reply.disconnect_after_chunks:
                # Drop the TCP connection without finishing the chunked body, as a dying proxy does.
                assert request.transport is not None
                request.transport.close()
                return response
            if reply.error_after_chunks is not None and sent >= reply.error_after_chunks:
                error = FakeError.server_error().body()
                await response.write(f"data: {json.dumps(error)}\n\n".encode())
                await response.write_eof()
                return response
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            await response.write(f"data: {json.dumps(data)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _validate_tool_pairs(messages: list[dict[str, Any]]) -> FakeError | None:
    """Every assistant tool_call answered by a tool message with its id, and no tool message unasked."""
    pending: list[str] = []
    open_ids: set[str] = set()
    for position, message in enumerate(messages):
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            return _invalid(f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                            "'user', 'tool', and 'developer'.", param=f"messages.[{position}].role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in open_ids:
                return _invalid("Invalid parameter: messages with role 'tool' must be a response to a "
                                "preceeding message with 'tool_calls'.", param=f"messages.[{position}].role")
            if call_id in pending:
                pending.remove(call_id)
            if not isinstance(message.get("content"), str):
                return _invalid("Invalid type for 'content': expected a string.",
                                param=f"messages.[{position}].content")
            continue
        if pending:
            return _invalid(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                f"each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                f"{', '.join(pending)}",
                param=f"messages.[{position}].role",
            )
        open_ids = set()
        if role == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                if call.get("type") != "function" or not call.get("id") or not function.get("name"):
                    return _invalid("Missing required parameter in 'tool_calls'.",
                                    param=f"messages.[{position}].tool_calls")
                if not isinstance(function.get("arguments"), str):
                    return _invalid("Invalid type for 'function.arguments': expected a string.",
                                    param=f"messages.[{position}].tool_calls")
                pending.append(call["id"])
                open_ids.add(call["id"])
            if message.get("content") is None and not message.get("tool_calls"):
                return _invalid("Missing required parameter: 'content'.", param=f"messages.[{position}].content")
    if pending:
        return _invalid(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
            param="messages",
        )
    return None


def _invalid(message: str, *, param: str | None = None, code: str | None = None) -> FakeError:
    return FakeError(400, message, "invalid_request_error", code, param)


def _error_response(error: FakeError) -> web.Response:
    headers = {"retry-after": error.retry_after} if error.retry_after is not None else None
    return web.json_response(error.body(), status=error.status, headers=headers)


def _rough_usage(body: dict[str, Any], reply: ScriptedReply, media: MediaCount) -> FakeUsage:
    # Images count by OpenAI's tile rule, not by the length of their data URLs.
    prompt = (len(json.dumps(body.get("messages", []))) - media.base64_chars) // 4 + 1 + media.tokens
    produced = len(reply.text) + sum(len(c.arguments_text()) for c in reply.tool_calls)
    return FakeUsage(prompt_tokens=prompt, completion_tokens=produced // 4 + 1)


def _completion(reply: ScriptedReply, model: str, usage: FakeUsage | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": call.id or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": call.name, "arguments": call.arguments_text()}}
            for call in reply.tool_calls
        ]
    data: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:20]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish()}],
    }
    if usage is not None:
        data["usage"] = usage.to_json()
    return data
