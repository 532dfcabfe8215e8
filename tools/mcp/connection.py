"""One MCP server: connect (stdio or Streamable HTTP), list its tools, call them, reconnect with backoff."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Literal, TextIO

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher

from tools.mcp.keepalive import keepalive_transport
from tools.mcp.servers_file import ServerConfig

log = logging.getLogger(__name__)

CLIENT_INFO = types.Implementation(name="threadbot", version="0.1.0")
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 60.0
# A connection that lived this long was healthy: the next failure starts the backoff over.
HEALTHY_AFTER_S = 30.0
_MAX_LIST_PAGES = 50
# The SDK caps one SSE event at 1 MiB and drops the connection beyond; a 5 MB tool result is legitimate
# (it is truncated for the model later), so allow more, still bounded.
MAX_HTTP_EVENT_BYTES = 32 * 1024 * 1024

Status = Literal["starting", "running", "failed", "stopped"]


class ServerUnavailable(Exception):
    """The server is not connected (did not start, crashed, or went away); the message says why."""


class CallTimedOut(Exception):
    """The server did not answer a tools/call in time."""


class _WatchedDispatcher(JSONRPCDispatcher):
    """The SDK's dispatcher, telling us when its receive loop ends (the server exited or hung up)."""

    def __init__(self, *args: Any, ended: asyncio.Event, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._ended = ended

    async def run(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().run(*args, **kwargs)
        finally:
            self._ended.set()


@dataclass
class ServerState:
    """What `threadbot mcp` and the logs say about a server."""

    status: Status = "starting"
    error: str | None = None
    tools: tuple[types.Tool, ...] = ()
    connected_at: float | None = None
    restarts: int = 0


class ServerConnection:
    """Owns one server's session in a supervisor task; callers in any task use `call`.

    The SDK's transports are anyio context managers that must be entered and left in one task,
    so a single supervisor task holds them and reconnects when the connection ends.
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        start_timeout_s: float,
        on_tools_changed: Callable[[], None] = lambda: None,
        errlog: TextIO | None = None,
    ):
        self.config = config
        self.state = ServerState()
        self._start_timeout_s = start_timeout_s
        self._on_tools_changed = on_tools_changed
        self._errlog = errlog
        self._session: ClientSession | None = None
        self._connected = asyncio.Event()
        self._first_outcome = asyncio.Event()
        self._stop = asyncio.Event()
        self._broken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None
        self._last_transport_error: str | None = None
        self._last_http_error: str | None = None

    @property
    def name(self) -> str:
        return self.config.name

    async def start(self) -> None:
        """Begin connecting; returns once the first attempt succeeded or failed (bounded by the start timeout)."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"mcp:{self.name}")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._first_outcome.wait(), self._start_timeout_s + 1)

    async def close(self) -> None:
        """Stop the server (stdio: stdin closed, then terminate/kill) and the supervisor."""
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            # The SDK's stdio shutdown is bounded (about 6 s in the worst case); leave it that long.
            await asyncio.wait_for(asyncio.shield(task), 10)
        except asyncio.TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.state.status = "stopped"

    async def call(self, tool: str, arguments: dict[str, Any], *, timeout: float) -> types.CallToolResult:
        """One tools/call. Raises ServerUnavailable, CallTimedOut, or MCPError (the server's own error)."""
        deadline = time.monotonic() + timeout
        session = await self._wait_connected(timeout)
        remaining = max(deadline - time.monotonic(), 0.001)
        try:
            result = await session.call_tool(tool, arguments, read_timeout_seconds=remaining)
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                raise CallTimedOut(f"{self.name} did not answer within {timeout:g} seconds") from None
            if exc.code == types.CONNECTION_CLOSED or exc.message == "Session terminated":
                self._lose(session)
                raise ServerUnavailable(f"the MCP server {self.name} disconnected during the call") from None
            if self._last_http_error and exc.code == types.INTERNAL_ERROR:
                raise ServerUnavailable(f"the MCP server {self.name} answered {self._last_http_error}") from None
            raise
        except (httpx2.HTTPError, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self._lose(session)
            raise ServerUnavailable(f"the MCP server {self.name} could not be reached ({_reason(exc)})") from None
        if not isinstance(result, types.CallToolResult):
            raise ServerUnavailable(f"the MCP server {self.name} answered with something other than a tool result")
        refresh = self._refresh
        if refresh is not None and not refresh.done():
            # The call changed the server's tools (it announced so before answering): the model's next
            # request should offer the new list, so the call ends once it is known (bounded).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(refresh), max(deadline - time.monotonic(), 0.001))
        return result

    def _lose(self, session: ClientSession) -> None:
        """This session is gone: later calls wait for the reconnect instead of failing on it too."""
        if self._session is session:
            self._session = None
            self._connected.clear()
        self._broken.set()

    async def _wait_connected(self, timeout: float) -> ClientSession:
        if self._session is None:
            # A restart may be under way; a short wait lets a call ride over a quick reconnect.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._connected.wait(), min(timeout, self._start_timeout_s))
        session = self._session
        if session is None:
            why = f": {self.state.error}" if self.state.error else ""
            raise ServerUnavailable(f"the MCP server {self.name} is not connected{why}")
        return session

    # --- the supervisor ------------------------------------------------------------------------

    async def _supervise(self) -> None:
        failures = 0
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                reason = await self._connect_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure to connect is recorded, then retried
                reason = self._describe_failure(exc)
            finally:
                self._session = None
                self._connected.clear()
            if self._stop.is_set():
                break
            if self.state.connected_at is not None and time.monotonic() - began > HEALTHY_AFTER_S:
                failures = 0
            delay = min(BACKOFF_FIRST_S * 2**failures, BACKOFF_MAX_S)
            failures += 1
            self.state.status, self.state.error = "failed", reason
            self.state.restarts += 1
            log.warning("MCP server %s: %s; trying again in %.1f s", self.name, reason, delay)
            self._first_outcome.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        self.state.status = "stopped"
        self._first_outcome.set()

    async def _connect_once(self) -> str:
        """Connect, serve until the connection ends or we are stopped; returns why it ended."""
        ended = asyncio.Event()
        self._broken.clear()
        self._last_transport_error = self._last_http_error = None
        async with contextlib.AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(self._transport())
            dispatcher = _WatchedDispatcher(read, write, ended=ended)
            session = await stack.enter_async_context(
                ClientSession(dispatcher=dispatcher, message_handler=self._on_message, client_info=CLIENT_INFO)
            )
            try:
                with anyio.fail_after(self._start_timeout_s):
                    await session.initialize()
                    tools = await self._list_tools(session)
            except TimeoutError:
                raise TimeoutError(
                    self._last_transport_error
                    or f"no answer to the handshake within {self._start_timeout_s:g} seconds"
                ) from None
            self.state.tools = tools
            self.state.status, self.state.error = "running", None
            self.state.connected_at = time.time()
            self._session = session
            self._connected.set()
            self._first_outcome.set()
            log.info("MCP server %s connected: %d tools", self.name, len(tools))
            self._on_tools_changed()
            waiters = [asyncio.ensure_future(e.wait()) for e in (ended, self._stop, self._broken)]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
                self._session = None
                self._connected.clear()
                if self._refresh is not None:
                    self._refresh.cancel()
            if self._stop.is_set():
                return "stopped"
            if self.config.transport == "stdio":
                return "the server exited"
            return self._last_transport_error or "the connection was lost"

    def _transport(self) -> contextlib.AbstractAsyncContextManager[Any]:
        config = self.config
        if config.command is not None:
            params = StdioServerParameters(
                command=config.command, args=list(config.args), env=dict(config.env) or None, cwd=config.cwd
            )
            return stdio_client(params, errlog=self._errlog or sys.stderr)
        return _http_transport(config.url or "", dict(config.headers), self._start_timeout_s, self._on_http_response)

    async def _on_http_response(self, response: httpx2.Response) -> None:
        # The SDK reports any 4xx/5xx as "Server returned an error response"; keep the status for the reason.
        if response.status_code >= 400:
            self._last_http_error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
            self._last_transport_error = f"{self._last_http_error} from {self.config.target}"
        else:
            self._last_http_error = None

    async def _list_tools(self, session: ClientSession) -> tuple[types.Tool, ...]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(_MAX_LIST_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
        allowed = self.config.allowed_tools
        if allowed is not None:
            offered = {t.name for t in tools}
            missing = sorted(allowed - offered)
            if missing:
                log.warning("MCP server %s does not offer allowlisted tools: %s", self.name, ", ".join(missing))
            tools = [t for t in tools if t.name in allowed]
        return tuple(tools)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            # Garbage on stdout, an HTTP error status: logged once per kind, the session goes on.
            reason = _reason(message)
            if reason != self._last_transport_error:
                log.warning("MCP server %s: transport error: %s", self.name, reason)
            self._last_transport_error = reason
            return
        if isinstance(message, types.ToolListChangedNotification) and self._session is not None:
            if self._refresh is None or self._refresh.done():
                self._refresh = asyncio.create_task(self._refresh_tools(self._session))

    async def _refresh_tools(self, session: ClientSession) -> None:
        try:
            with anyio.fail_after(self._start_timeout_s):
                tools = await self._list_tools(session)
        except Exception as exc:  # noqa: BLE001 - keep the old list; the next change or reconnect retries
            log.warning("MCP server %s: could not refresh its tools: %s", self.name, _reason(exc))
            return
        self.state.tools = tools
        log.info("MCP server %s changed its tools: %d now", self.name, len(tools))
        self._on_tools_changed()

    def _describe_failure(self, exc: BaseException) -> str:
        if isinstance(exc, BaseExceptionGroup):
            inner = exc.exceptions[0] if exc.exceptions else exc
            return self._describe_failure(inner)
        if isinstance(exc, FileNotFoundError):
            return f"command not found: {self.config.command}"
        if isinstance(exc, MCPError) and exc.code == types.CONNECTION_CLOSED:
            return self._last_transport_error or "the server closed the connection during the handshake"
        return self._last_transport_error or _reason(exc)


@contextlib.asynccontextmanager
async def _http_transport(
    url: str, headers: dict[str, str], timeout_s: float, on_response: Callable[[httpx2.Response], Awaitable[None]]
) -> Any:
    timeout = httpx2.Timeout(timeout_s, read=300)
    hooks = {"response": [on_response]}
    async with httpx2.AsyncClient(headers=headers, timeout=timeout, event_hooks=hooks,
                                  transport=keepalive_transport()) as client:
        async with streamable_http_client(url, http_client=client, max_sse_event_size=MAX_HTTP_EVENT_BYTES) as streams:
            yield streams


def _reason(exc: BaseException) -> str:
    """One line for a log or a status; never the request (its headers may carry secrets)."""
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from the server"
    if isinstance(exc, httpx2.HTTPError):
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}"
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
