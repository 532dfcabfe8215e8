"""A loopback stand-in for Anthropic's Messages API: checks auth and history, streams scripted replies as SSE."""
from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import math
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Union

from aiohttp import web

from tests.fakes.media import MediaCount, anthropic_media_error

DEFAULT_API_KEY = "sk-ant-fake-test-key"
VERSION_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_REQUEST_BYTES = 32 * 1024 * 1024  # the Messages API's request size limit


@dataclass
class ToolUse:
    """A tool_use block the fake model emits; `id` is generated when not given."""

    name: str
    input: dict[str, Any]
    id: str | None = None


@dataclass
class Reply:
    """One scripted model answer.

    `content` holds text (str) and ToolUse blocks in order. Token counts left as None are
    estimated from the request / reply size (len/4), so every reply reports some usage.
    `disconnect_after` / `error_after` cut the stream after that many content deltas.
    """

    content: list[Union[str, ToolUse]] = field(default_factory=list)
    stop_reason: str | None = None  # None: "tool_use" when a ToolUse is present, else "end_turn"
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    token_delay_s: float = 0.0  # sleep before every delta ("slow tokens")
    chunk_chars: int = 4  # text is split into deltas of this many characters
    json_chunk_chars: int = 5  # tool input JSON is split into fragments of this many characters
    model: str | None = None  # None: echo the request's model
    # Mid-stream failures (streaming requests only):
    disconnect_after: int | None = None  # drop the TCP connection after N deltas
    error_after: int | None = None  # send `event: error` after N deltas
    error_type: str = "overloaded_error"
    error_message: str = "Overloaded"

    @classmethod
    def text(cls, text: str, **options: Any) -> "Reply":
        return cls(content=[text], **options)

    @classmethod
    def tool(cls, name: str, input: dict[str, Any], *, id: str | None = None,
             text: str | None = None, **options: Any) -> "Reply":
        """A reply that calls one tool, optionally preceded by some text."""
        blocks: list[Union[str, ToolUse]] = [text] if text else []
        blocks.append(ToolUse(name=name, input=input, id=id))
        return cls(content=blocks, **options)


@dataclass
class ErrorReply:
    """An HTTP error answer, in the real API's body shape `{"type":"error","error":{type,message}}`."""

    status: int
    type: str
    message: str
    retry_after: str | None = None  # value of the `retry-after` header, if any

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = 1) -> "ErrorReply":
        return cls(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit",
                   None if retry_after is None else str(retry_after))

    @classmethod
    def overloaded(cls) -> "ErrorReply":
        return cls(529, "overloaded_error", "Overloaded")

    @classmethod
    def api_error(cls, status: int = 500) -> "ErrorReply":
        return cls(status, "api_error", "Internal server error")

    @classmethod
    def bad_request(cls, message: str) -> "ErrorReply":
        return cls(400, "invalid_request_error", message)

    @classmethod
    def prompt_too_long(cls, tokens: int = 210_000, maximum: int = 200_000) -> "ErrorReply":
        return cls.bad_request(f"prompt is too long: {tokens} tokens > {maximum} maximum")


ScriptItem = Union[Reply, ErrorReply]
# Decides one turn from the request body; may be async; None falls through to the echo reply.
Responder = Callable[[dict[str, Any]], Union[ScriptItem, None, Awaitable[Union[ScriptItem, None]]]]


@dataclass
class RecordedCall:
    """One request the fake received (headers without credentials) and the status it answered."""

    body: dict[str, Any]
    headers: dict[str, str]
    status: int = 0
    media: MediaCount | None = None  # images and PDF pages of an accepted request


class InvalidRequest(Exception):
    pass


class FakeAnthropic:
    """The fake server. Queue replies with `add(...)`, or set `respond` to decide per request.

    Use in-loop (`await start()` / `await stop()`, or `async with`) or from another loop or
    process via `start_in_thread()` / `stop_in_thread()`.
    """

    def __init__(self, *, api_key: str = DEFAULT_API_KEY, respond: Responder | None = None,
                 anthropic_versions: set[str] | None = None):
        self.api_key = api_key
        # None accepts any dated version (SDK releases move it); a set pins the accepted ones.
        self.anthropic_versions = anthropic_versions
        self.respond = respond
        self.calls: list[RecordedCall] = []
        self._queue: deque[ScriptItem] = deque()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self.base_url = ""

    # --- script ---------------------------------------------------------------------------------

    def add(self, *items: ScriptItem) -> None:
        """Queue replies/errors; each request takes the next one (before `respond` is asked)."""
        self._queue.extend(items)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Bodies of every request received, including rejected ones, in order."""
        return [c.body for c in self.calls]

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def wait_for_requests(self, count: int, *, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.calls) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"fake Anthropic got {len(self.calls)} requests, expected {count}")
            await asyncio.sleep(0.01)
        return self.requests

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._handle_messages)
        # Cancel a handler whose client went away (a timed-out call), so stop() never waits on it.
        self._runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeAnthropic":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self) -> str:
        """Serve from a daemon thread with its own loop (for tests that run the bot as a process)."""
        started = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            loop.run_until_complete(self.start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-anthropic", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("fake Anthropic did not start")
        return self.base_url

    def stop_in_thread(self) -> None:
        if self._thread_loop is not None and self._thread is not None:
            self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
            self._thread.join(10)
            self._thread = None
            self._thread_loop = None

    # --- HTTP -----------------------------------------------------------------------------------

    async def _handle_messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = {}
        headers = {k.lower(): v for k, v in request.headers.items()
                   if k.lower() not in ("authorization", "x-api-key")}
        call = RecordedCall(body=body, headers=headers)
        self.calls.append(call)

        if not self._authorized(request):
            return self._error(call, ErrorReply(401, "authentication_error", "invalid x-api-key"))
        version = request.headers.get("anthropic-version")
        if not version:
            return self._error(call, ErrorReply.bad_request("anthropic-version: header is required"))
        if not VERSION_FORMAT.match(version) or (
                self.anthropic_versions is not None and version not in self.anthropic_versions):
            return self._error(call, ErrorReply.bad_request(f"anthropic-version: invalid version {version!r}"))
        if len(raw) > MAX_REQUEST_BYTES:
            return self._error(call, ErrorReply(413, "request_too_large",
                                                "Request exceeds the maximum allowed number of bytes."))
        media = MediaCount()
        try:
            validate_request(body)
            problem = anthropic_media_error(body["messages"], media)
            if problem:
                raise InvalidRequest(problem)
        except InvalidRequest as exc:
            return self._error(call, ErrorReply.bad_request(str(exc)))
        call.media = media

        item = await self._next_item(body)
        if isinstance(item, ErrorReply):
            return self._error(call, item)
        message = self._build_message(body, item, media)
        call.status = 200
        if body.get("stream"):
            return await self._stream(request, message, item)
        return web.json_response(message, headers=self._request_id())

    def _authorized(self, request: web.Request) -> bool:
        bearer = request.headers.get("Authorization", "")
        return bearer == f"Bearer {self.api_key}" or request.headers.get("x-api-key") == self.api_key

    def _request_id(self) -> dict[str, str]:
        return {"request-id": f"req_fake_{next(self._ids):06d}"}

    def _error(self, call: RecordedCall, error: ErrorReply) -> web.Response:
        call.status = error.status
        headers = self._request_id()
        if error.retry_after is not None:
            headers["retry-after"] = error.retry_after
        return web.json_response(
            {"type": "error", "error": {"type": error.type, "message": error.message}},
            status=error.status, headers=headers,
        )

    async def _next_item(self, body: dict[str, Any]) -> ScriptItem:
        if self._queue:
            return self._queue.popleft()
        if self.respond is not None:
            item = self.respond(body)
            if inspect.isawaitable(item):
                item = await item
            if item is not None:
                return item
        return Reply.text(echo_text(body))

    def _build_message(self, body: dict[str, Any], reply: Reply, media: MediaCount) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for block in reply.content:
            if isinstance(block, str):
                content.append({"type": "text", "text": block})
            else:
                tool_id = block.id or f"toolu_fake_{next(self._ids):06d}"
                content.append({"type": "tool_use", "id": tool_id, "name": block.name, "input": block.input})
        has_tool = any(b["type"] == "tool_use" for b in content)
        out_chars = sum(len(b.get("text", "")) + len(json.dumps(b.get("input", ""))) for b in content)
        # Media is counted as the API counts it (images by size, PDF pages), not as the length of its base64.
        in_chars = len(json.dumps([body.get("system"), body.get("messages"), body.get("tools")])) - media.base64_chars
        return {
            "id": f"msg_fake_{next(self._ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": reply.model or body.get("model", "claude-fake"),
            "content": content,
            "stop_reason": reply.stop_reason or ("tool_use" if has_tool else "end_turn"),
            "stop_sequence": None,
            "usage": {
                "input_tokens": reply.input_tokens if reply.input_tokens is not None
                else math.ceil(in_chars / 4) + media.tokens,
                "output_tokens": reply.output_tokens if reply.output_tokens is not None
                else max(1, math.ceil(out_chars / 4)),
                "cache_creation_input_tokens": reply.cache_creation_input_tokens,
                "cache_read_input_tokens": reply.cache_read_input_tokens,
            },
        }

    async def _stream(self, request: web.Request, message: dict[str, Any], reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               **self._request_id()})
        await response.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None,
                 "usage": {**usage, "output_tokens": 1}}
        await send("message_start", {"type": "message_start", "message": start})
        deltas_sent = 0
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                await send("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "text", "text": ""}})
                fragments = [("text_delta", "text", piece) for piece in chunks(block["text"], reply.chunk_chars)]
            else:
                await send("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {**block, "input": {}}})
                raw = json.dumps(block["input"])
                fragments = [("input_json_delta", "partial_json", piece)
                             for piece in chunks(raw, reply.json_chunk_chars)]
            if index == 0:
                await send("ping", {"type": "ping"})
            for delta_type, key, piece in fragments:
                if reply.disconnect_after is not None and deltas_sent >= reply.disconnect_after:
                    # Drop the connection without ending the chunked body, as a broken network would.
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                if reply.error_after is not None and deltas_sent >= reply.error_after:
                    await send("error", {"type": "error",
                                         "error": {"type": reply.error_type, "message": reply.error_message}})
                    await response.write_eof()
                    return response
                if reply.token_delay_s:
                    await asyncio.sleep(reply.token_delay_s)
                await send("content_block_delta", {"type": "content_block_delta", "index": index,
                                                   "delta": {"type": delta_type, key: piece}})
                deltas_sent += 1
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
        # A cut scheduled past the last delta still happens, before the message ends.
        if reply.disconnect_after is not None:
            assert request.transport is not None
            request.transport.abort()
            return response
        if reply.error_after is not None:
            await send("error", {"type": "error", "error": {"type": reply.error_type, "message": reply.error_message}})
            await response.write_eof()
            return response
        await send("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                     "usage": usage})
        await send("message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response


def chunks(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def echo_text(body: dict[str, Any]) -> str:
    """The default answer: 'echo: ' plus the last user message's text (or its tool results)."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return f"echo: {content}"
        parts = []
        for block in content or []:
            if block.get("type") == "text":
                parts.append(block.get("text", ""))
            elif block.get("type") == "tool_result":
                result = block.get("content")
                if isinstance(result, list):  # text and image blocks: the echo repeats the text only
                    result = " ".join(inner.get("text", "") for inner in result if inner.get("type") == "text")
                parts.append(result if isinstance(result, str) else json.dumps(result))
        return "echo: " + " ".join(parts)
    return "echo:"


def validate_request(body: dict[str, Any]) -> None:
    """The cheap subset of the API's own validation, with its wording, so tests catch invalid history."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise InvalidRequest("max_tokens: Field required")
    if max_tokens < 1:
        raise InvalidRequest("max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Field required")
    if messages[0].get("role") != "user":
        raise InvalidRequest('messages: first message must use the "user" role')

    breakpoints = 0
    system = body.get("system")
    if isinstance(system, list):
        for block in system:
            if block.get("type") != "text" or not block.get("text"):
                raise InvalidRequest("system: text content blocks must be non-empty")
            breakpoints += "cache_control" in block
    tool_names = set()
    for i, tool in enumerate(body.get("tools") or []):
        if not tool.get("name") or not isinstance(tool.get("input_schema"), dict):
            raise InvalidRequest(f"tools.{i}: name and input_schema are required")
        tool_names.add(tool["name"])
        breakpoints += "cache_control" in tool
    choice = body.get("tool_choice")
    if choice and choice.get("type") == "tool" and choice.get("name") not in tool_names:
        raise InvalidRequest(f"tool_choice: tool {choice.get('name')!r} not found in tools")

    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i and messages[i - 1].get("role") == role:
            raise InvalidRequest(f'messages: roles must alternate between "user" and "assistant", '
                                 f'but found multiple "{role}" roles in a row')
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        is_final_assistant = i == len(messages) - 1 and role == "assistant"
        if not content and not is_final_assistant:
            raise InvalidRequest(f"messages.{i}: all messages must have non-empty content except for "
                                 f"the optional final assistant message")
        for block in content:
            breakpoints += "cache_control" in block
            if block.get("type") == "text" and not block.get("text"):
                raise InvalidRequest("messages: text content blocks must be non-empty")
            if block.get("type") == "tool_use" and role != "assistant":
                raise InvalidRequest(f"messages.{i}: tool_use blocks are only allowed in assistant messages")
            if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                for k, inner in enumerate(block["content"]):
                    if inner.get("type") not in ("text", "image", "document", "search_result"):
                        raise InvalidRequest(f"messages.{i}.content.tool_result.content.{k}.type: Input tag "
                                             f"'{inner.get('type')}' does not match any of the expected tags: "
                                             "'document', 'image', 'search_result', 'text'")
                    if inner.get("type") == "text" and not inner.get("text"):
                        raise InvalidRequest("messages: text content blocks must be non-empty")
            if block.get("type") == "tool_result" and role != "user":
                raise InvalidRequest(f"messages.{i}: tool_result blocks are only allowed in user messages")

        # Every tool_result must answer a tool_use of the message right before it.
        if role == "user" and i:
            previous = messages[i - 1].get("content")
            asked = {b.get("id") for b in previous if b.get("type") == "tool_use"} \
                if isinstance(previous, list) else set()
            for j, block in enumerate(content):
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in asked:
                    raise InvalidRequest(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                        f"`tool_use` block in the previous message.")
        # Every tool_use must be answered in the very next message.
        if role == "assistant":
            asked_ids = [b.get("id") for b in content if b.get("type") == "tool_use"]
            following = messages[i + 1].get("content") if i + 1 < len(messages) else []
            answered = {b.get("tool_use_id") for b in following if b.get("type") == "tool_result"} \
                if isinstance(following, list) else set()
            missing = [tid for tid in asked_ids if tid not in answered]
            if missing:
                raise InvalidRequest(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(map(str, missing))}. Each `tool_use` block must have a corresponding "
                    f"`tool_result` block in the next message.")
    if breakpoints > 4:
        raise InvalidRequest(f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}.")
