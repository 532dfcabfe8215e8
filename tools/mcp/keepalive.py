"""An HTTP transport that lets a Streamable HTTP connection be reused after the SDK closes a response early.

The MCP SDK closes each tools/call's SSE response as soon as the JSON-RPC answer arrived, a moment before
the server's last chunk. A response closed with body left unread cannot go back to the connection pool,
so every call paid for a new TCP connection (connect, and the server accepting it): about half of what an
HTTP call cost on loopback (bench/mcp_overhead.py). Here closing first reads what is left, briefly and
bounded, so the connection stays alive; a stream that really goes on (the server's GET stream) is closed
as before once the bound is reached.
"""
from __future__ import annotations

import urllib.request
from typing import AsyncIterator

import anyio
import httpx2

# The server ends a finished SSE response right after its last event: it is normally already in the
# socket buffer. Longer than this, or more than this much data, and the connection is not worth keeping.
DRAIN_S = 0.05
DRAIN_MAX_BYTES = 64 * 1024


class _DrainOnClose(httpx2.AsyncByteStream):
    """The transport's response body, read to its end (within the bounds) when closed early."""

    def __init__(self, stream: httpx2.AsyncByteStream):
        self._stream = stream
        self._chunks: AsyncIterator[bytes] | None = None
        self._ended = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._chunks = self._stream.__aiter__()
        async for chunk in self._chunks:
            yield chunk
        self._ended = True

    async def aclose(self) -> None:
        try:
            if self._chunks is not None and not self._ended:
                left = DRAIN_MAX_BYTES
                with anyio.move_on_after(DRAIN_S):
                    async for chunk in self._chunks:
                        left -= len(chunk)
                        if left < 0:
                            break
        except (httpx2.HTTPError, anyio.BrokenResourceError, OSError):
            pass  # the connection is gone anyway; closing below releases it
        finally:
            await self._stream.aclose()


class KeepAliveTransport(httpx2.AsyncBaseTransport):
    """httpx's own transport, with response bodies drained on an early close (see the module docstring)."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(status_code=response.status_code, headers=response.headers,
                               stream=_DrainOnClose(response.stream), extensions=response.extensions)

    async def aclose(self) -> None:
        await self._inner.aclose()


def keepalive_transport() -> KeepAliveTransport | None:
    """The transport for an MCP server's http client; None (httpx's default) when a proxy is configured in
    the environment, which httpx only honours with its default transport (as bot.llm.connections does)."""
    proxies = urllib.request.getproxies()
    if any(proxies.get(scheme) for scheme in ("http", "https", "all")):
        return None
    return KeepAliveTransport()
