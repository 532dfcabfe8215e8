"""The MCP client against real MCP servers (the official SDK's MCPServer) over stdio and Streamable HTTP."""
from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest

from tests.fakes.mcp_servers import http_server, stdio_entry
from tools.mcp import MCPManager, parse_servers
from tools.mcp.names import VALID
from tools.mcp.results import MAX_RESULT_CHARS

TOKEN = "tok-Secret-123"


def manager(servers: dict, environ: dict | None = None, **kwargs) -> MCPManager:
    return MCPManager(parse_servers({"mcpServers": servers}, environ or {}), start_timeout_s=8, **kwargs)


async def call(m: MCPManager, tool_name: str, timeout: float = 10, **arguments):
    return await m.call(tool_name, arguments, tool_use_id="toolu_1", timeout=timeout)


@pytest.fixture(scope="module")
def web_url():
    with http_server("--token", TOKEN) as url:
        yield url


async def test_tools_over_stdio_and_http(web_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    servers = {
        "notes": stdio_entry(),
        "web": {"url": web_url, "headers": {"Authorization": "Bearer ${WEB_TOKEN}"}},
        "strict": stdio_entry(tools=["echo", "add_note"], approval="always"),
        "lax": stdio_entry(tools=["add_note"], approval="never"),
    }
    async with manager(servers, {"WEB_TOKEN": TOKEN}, reserved_names={"get_weather"}) as m:
        assert [s.status for s in m.status()] == ["running"] * 4, [s.error for s in m.status()]
        names = [t.name for t in m.tools]
        assert "notes_echo" in names and "web_echo" in names and all(VALID.match(n) for n in names)
        assert sorted(n for n in names if n.startswith("strict_")) == ["strict_add_note", "strict_echo"]
        assert [n for n in names if n.startswith("lax_")] == ["lax_add_note"]
        acts = {t.name: t.acts for t in m.tools}
        assert acts["notes_echo"] is False and acts["notes_add_note"] is True  # readOnlyHint decides
        assert acts["strict_echo"] is True and acts["lax_add_note"] is False  # approval overrides
        assert m.get("notes_echo").description == "Return the text unchanged."

        for name in ("notes_echo", "web_echo"):
            result = await call(m, name, text="hello")
            assert result.content.startswith("hello") and not result.is_error and result.tool_use_id == "toolu_1"
        # Pydantic models on the server side come as $ref/$defs, unions as anyOf: both repaired and usable.
        note_schema = m.get("notes_add_note").input_schema
        assert "$defs" not in note_schema and note_schema["properties"]["note"]["properties"]["title"]
        assert "anyOf" in m.get("notes_find").input_schema["properties"]["limit"]
        saved = await call(m, "notes_add_note", note={"title": "plan", "body": "ship it"})
        assert saved.content.startswith("saved plan")
        found = await call(m, "notes_find", query="ship")
        assert '"plan"' in found.content or "plan" in found.content

        failed = await call(m, "web_fail", why="no disk")
        assert failed.is_error
        refused = await call(m, "notes_echo")  # missing argument: the server's validation error
        assert refused.is_error
        picture = await call(m, "notes_picture")
        assert picture.content.startswith("a dot") and "image/png" in picture.content and not picture.is_error
        assert [(i.media_type, i.width, i.height) for i in picture.images] == [("image/png", 1, 1)]
        for name in ("notes_big", "web_big"):
            big = await call(m, name, size=5_000_000)
            assert len(big.content) < MAX_RESULT_CHARS + 200 and "5,000,000 characters" in big.content
        started = time.monotonic()
        slow = await call(m, "notes_slow", timeout=0.5, seconds=5)
        assert slow.is_error and "timed out" in slow.content and time.monotonic() - started < 3

        task = asyncio.create_task(call(m, "web_slow", seconds=30))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await call(m, "web_echo", text="still here")).content.startswith("still here")
        unknown = await call(m, "nobody_home")
        assert unknown.is_error and "not available" in unknown.content
    assert TOKEN not in caplog.text


async def test_faults_are_contained(web_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with http_server("--fail-status", "500") as broken_url:
        servers = {
            "hang": stdio_entry("--hang"),
            "garbage": stdio_entry("--garbage"),
            "missing": {"command": "/nonexistent/mcp-server"},
            "wrongkey": {"url": web_url, "headers": {"Authorization": "Bearer wrong-Secret-999"}},
            "broken": {"url": broken_url},
        }
        m = MCPManager(parse_servers({"mcpServers": servers}, {}), start_timeout_s=6)
        started = time.monotonic()
        await m.start()
        try:
            assert time.monotonic() - started < 9  # the hanging handshake bounds start-up, nothing waits longer
            status = {s.name: s for s in m.status()}
            assert status["garbage"].status == "running", status["garbage"].error
            assert (await call(m, "garbage_echo", text="ok")).content.startswith("ok")
            assert status["hang"].status == "failed" and "handshake" in status["hang"].error
            assert status["missing"].status == "failed" and "/nonexistent/mcp-server" in status["missing"].error
            assert "HTTP 401" in status["wrongkey"].error and "HTTP 500" in status["broken"].error
            assert all(not s.tools for name, s in status.items() if name != "garbage")
            assert all(t.server == "garbage" for t in m.tools)
        finally:
            await m.close()
    assert "wrong-Secret-999" not in caplog.text


async def test_a_server_that_dies_mid_call_is_an_error_then_restarts() -> None:
    async with manager({"notes": stdio_entry()}) as m:
        first = int((await call(m, "notes_pid")).content.split()[0])
        crashed = await call(m, "notes_crash")
        assert crashed.is_error and "disconnected" in crashed.content
        again = await call(m, "notes_pid", timeout=15)
        assert not again.is_error, again.content
        assert int(again.content.split()[0]) != first
        assert m.status()[0].status == "running"


async def test_an_http_server_that_goes_away_is_an_error_result() -> None:
    with http_server() as url:
        async with manager({"web": {"url": url}}) as m:
            crashed = await call(m, "web_crash")
            assert crashed.is_error
            later = await call(m, "web_echo", timeout=2, text="x")
            assert later.is_error and "web" in later.content


async def test_allowlist_and_announced_tool_changes() -> None:
    changes: list[int] = []
    async with manager({"notes": stdio_entry(tools=["echo", "grow", "extra"])}) as m:
        m.on_change(lambda: changes.append(len(m.tools)))
        assert [t.name for t in m.tools] == ["notes_echo", "notes_grow"]
        assert (await call(m, "notes_grow")).content.startswith("grown")
        for _ in range(100):
            if m.get("notes_extra"):
                break
            await asyncio.sleep(0.05)
        assert [t.name for t in m.tools] == ["notes_echo", "notes_extra", "notes_grow"] and changes[-1] == 3
        assert (await call(m, "notes_extra")).content.startswith("extra")


async def test_duplicate_names_across_servers_stay_apart() -> None:
    servers = {"my.notes": stdio_entry(tools=["env"], env={"WHO": "dotted"}),
               "my_notes": stdio_entry(tools=["env"], env={"WHO": "underscored"})}
    async with manager(servers) as m:
        names = {t.server: t.name for t in m.tools}
        assert len(set(names.values())) == 2 and all(VALID.match(n) for n in names.values())
        for server, who in (("my.notes", "dotted"), ("my_notes", "underscored")):
            assert (await call(m, names[server], name="WHO")).content.startswith(who)


async def test_close_stops_the_server_processes() -> None:
    m = manager({"a": stdio_entry(), "b": stdio_entry()})
    await m.start()
    pids = [int((await call(m, f"{s}_pid")).content.split()[0]) for s in ("a", "b")]
    await m.close()
    for pid in pids:
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"MCP server {pid} still runs after close()")
