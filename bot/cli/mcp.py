"""`threadbot mcp [--json]`: each configured MCP server, whether it started (or why not), and its tools."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from bot.config import Settings
from bot.errors import ConfigError
from tools.mcp import MCPManager, ServerStatus, load_servers_file
from tools.registry import Registry


def run_mcp(settings: Settings, *, as_json: bool) -> int:
    """Start every server as `threadbot run` would, report, stop them. Exit 1 when one did not start."""
    if settings.mcp_config is None:
        raise ConfigError("THREADBOT_MCP_CONFIG is not set: point it at an MCP servers file (mcpServers JSON).")
    servers = load_servers_file(settings.mcp_config, settings.environment())
    approvals = {server.name: server.approval for server in servers}
    statuses = asyncio.run(_collect(servers))
    if as_json:
        print(json.dumps([_as_json(s, approvals[s.name]) for s in statuses], indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(_as_text(s, approvals[s.name]) for s in statuses) or "No servers in the file.")
    return 0 if all(s.status == "running" for s in statuses) else 1


async def _collect(servers: list) -> list[ServerStatus]:
    manager = MCPManager(servers, reserved_names=Registry.discover().names)
    await manager.start()
    try:
        return manager.status()
    finally:
        await manager.close()


def _as_json(status: ServerStatus, approval: str) -> dict[str, Any]:
    return {
        "name": status.name, "transport": status.transport, "target": status.target,
        "started": status.status == "running", "error": status.error, "approval": approval,
        "tools": [{"name": t.name, "server_tool": t.tool, "description": t.description, "read_only": t.read_only,
                   "needs_approval": t.acts} for t in status.tools],
        "skipped": list(status.skipped),
    }


def _as_text(status: ServerStatus, approval: str) -> str:
    head = f"{status.name} ({status.transport}: {status.target}), approval: {approval}"
    if status.status != "running":
        return f"{head}\n  not started: {status.error or 'no answer in time'}"
    width = max((len(t.name) for t in status.tools), default=0)
    lines = [f"{head}\n  started, {len(status.tools)} tools"]
    lines += [f"    {t.name:<{width}}  {'asks for approval' if t.acts else 'runs without asking'}"
              + ("  (read-only)" if t.read_only else "") for t in status.tools]
    lines += [f"  skipped {reason}" for reason in status.skipped]
    return "\n".join(lines)
