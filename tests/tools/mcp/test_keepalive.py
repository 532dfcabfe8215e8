"""The MCP HTTP transport keeps its connection when a response is closed early, as the SDK does per call."""
from __future__ import annotations

import asyncio
import time

import httpx2
import pytest
from aiohttp import web

from tools.mcp.keepalive import DRAIN_S, KeepAliveTransport


@pytest.fixture
async def sse_server():
    """One SSE event, a short pause, then the end of the body (as an MCP server answers a tools/call);
    /forever never ends. Records the client port of every request: one port per TCP connection."""
    ports: list[int] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        ports.append(request.transport.get_extra_info("peername")[1])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'event: message\ndata: {"jsonrpc": "2.0", "id": 1, "result": {}}\n\n')
        if request.path == "/forever":
            await asyncio.sleep(30)
        await asyncio.sleep(0.005)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/mcp", answer)
    app.router.add_post("/forever", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", ports
    await runner.cleanup()


async def first_event_then_close(client: httpx2.AsyncClient, url: str) -> None:
    async with client.stream("POST", url, json={}) as response:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                break
        await response.aclose()  # what the SDK does once the JSON-RPC answer arrived


async def test_an_early_closed_response_leaves_the_connection_reusable(sse_server) -> None:
    url, ports = sse_server
    async with httpx2.AsyncClient() as plain:
        for _ in range(4):
            await first_event_then_close(plain, f"{url}/mcp")
    assert len(set(ports)) == 4  # httpx's own transport: a new connection every time
    ports.clear()
    async with httpx2.AsyncClient(transport=KeepAliveTransport()) as kept:
        for _ in range(4):
            await first_event_then_close(kept, f"{url}/mcp")
    assert len(ports) == 4 and len(set(ports)) == 1


async def test_a_stream_that_goes_on_is_closed_after_the_bound(sse_server) -> None:
    url, ports = sse_server
    async with httpx2.AsyncClient(transport=KeepAliveTransport()) as kept:
        started = time.monotonic()
        await first_event_then_close(kept, f"{url}/forever")
        assert time.monotonic() - started < DRAIN_S + 1
        await first_event_then_close(kept, f"{url}/mcp")
    assert len(set(ports)) == 2  # the unfinished one was not put back
