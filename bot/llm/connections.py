"""The model clients' HTTP connections: a burst of new conversations opens its connections a few at a time.

Each streamed answer holds one connection for as long as it streams, so 100 questions at once need 100
connections. Opened all in the same moment (socket, name lookup, TLS handshake each), they block the
event loop for a noticeable stall; opened a few at a time, the loop keeps serving everything else in
between. Connections are then kept alive for reuse by the next burst.
"""
from __future__ import annotations

import asyncio
import urllib.request
from typing import Any, Iterable

import httpcore2
import httpx2

CONNECTS_AT_ONCE = 4
MAX_CONNECTIONS = 1000  # the SDKs' own ceiling
KEEPALIVE_CONNECTIONS = 200  # two bursts' worth stay open for reuse (the SDKs keep 100)
KEEPALIVE_EXPIRY_S = 30.0


class _FewConnectsAtOnce(httpcore2.AsyncNetworkBackend):
    def __init__(self, at_once: int):
        self._backend = httpcore2.AnyIOBackend()
        self._at_once = at_once
        self._gate: asyncio.Semaphore | None = None  # made on the loop that uses it

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        if self._gate is None:
            self._gate = asyncio.Semaphore(self._at_once)
        async with self._gate:
            stream = await self._backend.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            await asyncio.sleep(0)  # one loop turn for everything else before the next set-up
            return stream

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        return await self._backend.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _SpreadTransport(httpx2.AsyncHTTPTransport):
    """httpx's own transport over a connection pool whose new connections open a few at a time."""

    def __init__(self, *, at_once: int):
        super().__init__()
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(), max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=KEEPALIVE_CONNECTIONS, keepalive_expiry=KEEPALIVE_EXPIRY_S,
            network_backend=_FewConnectsAtOnce(at_once))


def spread_transport(*, at_once: int = CONNECTS_AT_ONCE) -> httpx2.AsyncBaseTransport | None:
    """The transport for a model SDK's http client; None (the SDK's default) when a proxy is configured
    in the environment, which httpx only honours with its default transport."""
    proxies = urllib.request.getproxies()
    if any(proxies.get(scheme) for scheme in ("http", "https", "all")):
        return None
    return _SpreadTransport(at_once=at_once)
