"""A channel's tools with real MCP servers (the official SDK over stdio): a server's name offers all of its
tools, a single MCP tool only itself, a built-in name only that tool; names nobody has are refused."""
from __future__ import annotations

import pytest

from bot.config import load_settings
from bot.conversation.channels import ChannelAgents, InvalidSetting
from bot.llm.providers import Providers
from bot.store.sqlite import SqliteStore
from tests.fakes.mcp_servers import stdio_entry
from tools.mcp import MCPManager, parse_servers
from tools.registry import Registry


@pytest.fixture
async def channels(tmp_path):
    registry = Registry.discover()
    servers = {"notes": stdio_entry(), "lax": stdio_entry(tools=["add_note"], approval="never")}
    manager = MCPManager(parse_servers({"mcpServers": servers}, {}), start_timeout_s=8,
                         reserved_names=set(registry.names))
    await manager.start()
    registry.attach_mcp(manager)
    settings = load_settings(ANTHROPIC_API_KEY="sk-ant-test", THREADBOT_DB=str(tmp_path / "t.db"))
    store = SqliteStore(settings.db_path)
    try:
        yield ChannelAgents(settings=settings, store=store, registry=registry, providers=Providers(settings))
    finally:
        await store.close()
        await manager.close()


async def test_server_names_single_mcp_tools_and_built_ins_select_what_they_name(channels: ChannelAgents):
    registry = channels.registry
    assert registry.servers == ["lax", "notes"]
    notes_tools = [n for n in registry.names if n.startswith("notes_")]
    assert len(notes_tools) > 2

    chosen = channels.check_tools("notes, lax_add_note, get_weather")
    await channels.change("C1", team_id="T1", user_id="UA", changes={"tools": ",".join(chosen)})
    setup = await channels.setup("C1")
    assert list(setup.profile.tools) == sorted([*notes_tools, "lax_add_note", "get_weather"])
    assert [s.name for s in registry.specs(setup.profile.tools)] == list(setup.profile.tools)

    assert channels.check_tools("all") is None and (await channels.setup("C2")).profile.tools is None
    with pytest.raises(InvalidSetting) as refused:
        channels.check_tools("notes_echo,github")
    assert "`github`" in str(refused.value) and "`notes` (MCP server)" in str(refused.value)
