"""Benchmark: what calling a tool through MCP adds per call, over stdio and over HTTP, and start-up time.

In one run, the same work (echo a short text) is done three ways, interleaved in rounds so machine
load hits each alike:
- built-in: a `@tool` function run by the tool registry (the reference: validation + the call);
- stdio:    the same tool on an MCP server (the official SDK's MCPServer) over stdio, via MCPManager;
- http:     the same server over Streamable HTTP on loopback;
- http sdk: the official SDK's bare ClientSession.call_tool on its default http client, to the same server
            (what the SDK itself costs; it opens a new TCP connection per call, see tools/mcp/keepalive.py).
Printed: median and p90 per call, and the median added over the built-in tool (target: < 5 ms).
Then: the time MCPManager.start() takes for one stdio server and for three at once (two stdio, one HTTP).

    .venv/bin/python bench/mcp_overhead.py [--calls 300]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from bot.messages import ToolUseBlock  # noqa: E402
from tests.fakes.mcp_servers import http_server, stdio_entry  # noqa: E402
from tools.context import ToolContext  # noqa: E402
from tools.mcp import MCPManager, parse_servers  # noqa: E402
from tools.registry import Registry, tool  # noqa: E402


@tool
async def echo(ctx: ToolContext, text: str) -> str:
    """Return the text unchanged.

    Args:
        text: what to return
    """
    return text


def manager(servers: dict) -> MCPManager:
    return MCPManager(parse_servers({"mcpServers": servers}, {}), start_timeout_s=30)


async def main(calls: int) -> None:
    registry = Registry([echo])
    ctx = None  # the echo tool does not touch its context
    with http_server() as url:
        async with AsyncExitStack() as stack:
            m = await stack.enter_async_context(
                manager({"local": stdio_entry(tools=["echo"]), "web": {"url": url, "tools": ["echo"]}}))
            assert [s.status for s in m.status()] == ["running", "running"], [s.error for s in m.status()]
            bare = await stack.enter_async_context(ClientSession(*await stack.enter_async_context(
                streamable_http_client(url))))
            await bare.initialize()

            async def builtin(i: int) -> None:
                result = await registry.run(ctx, ToolUseBlock(f"t{i}", "echo", {"text": f"hello {i}"}))  # type: ignore[arg-type]
                assert result.content == f"hello {i}"

            def over(name: str):
                async def run(i: int) -> None:
                    result = await m.call(name, {"text": f"hello {i}"}, tool_use_id=f"t{i}", timeout=10)
                    assert result.content == f"hello {i}", result.content
                return run

            async def sdk(i: int) -> None:
                result = await bare.call_tool("echo", {"text": f"hello {i}"})
                assert result.content[0].text == f"hello {i}"  # type: ignore[union-attr]

            ways = {"built-in": builtin, "stdio": over("local_echo"), "http": over("web_echo"), "http sdk": sdk}
            times: dict[str, list[float]] = {name: [] for name in ways}
            for i in range(20):  # warm-up
                for run in ways.values():
                    await run(i)
            for i in range(calls):
                for name, run in ways.items():
                    started = time.perf_counter()
                    await run(i)
                    times[name].append((time.perf_counter() - started) * 1000)
        reference = statistics.median(times["built-in"])
        print(f"per call, {calls} calls each, interleaved:")
        for name, samples in times.items():
            median = statistics.median(samples)
            p90 = statistics.quantiles(samples, n=10)[-1]
            note = "(the SDK alone, for reference)" if name == "http sdk" else "(target < 5 ms)"
            added = "" if name == "built-in" else f"   added {median - reference:6.2f} ms  {note}"
            print(f"  {name:9s} median {median:7.3f} ms  p90 {p90:7.3f} ms{added}")

        async def start_time(servers: dict) -> float:
            m = manager(servers)
            started = time.perf_counter()
            await m.start()
            took = time.perf_counter() - started
            assert all(s.status == "running" for s in m.status()), [s.error for s in m.status()]
            await m.close()
            return took

        one = statistics.median([await start_time({"a": stdio_entry()}) for _ in range(3)])
        three = statistics.median([await start_time({"a": stdio_entry(), "b": stdio_entry(), "c": {"url": url}})
                                   for _ in range(3)])
        print(f"start-up: one stdio server {one * 1000:.0f} ms; three servers at once (2 stdio + 1 HTTP) "
              f"{three * 1000:.0f} ms = {three / one:.2f}x one")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    asyncio.run(main(parser.parse_args().calls))
