"""All configured MCP servers: started together, their tools under model-facing names, calls routed."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TextIO

from mcp import types
from mcp.shared.exceptions import MCPError

from bot.messages import ToolResultBlock, ToolSpec
from tools.mcp.connection import CallTimedOut, ServerConnection, ServerUnavailable
from tools.mcp.names import assign_names
from tools.mcp.results import read_tool_result
from tools.mcp.schema import SchemaRejected, repair_schema
from tools.mcp.servers_file import Approval, ServerConfig

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
MAX_DESCRIPTION_CHARS = 4000


@dataclass(frozen=True)
class MCPTool:
    """One MCP tool as the model sees it, and where it comes from."""

    name: str  # model-facing, ^[a-zA-Z0-9_-]{1,64}$
    server: str
    tool: str  # the server's own name
    description: str
    input_schema: dict[str, Any]
    read_only: bool  # the server annotated it readOnlyHint: true
    approval: Approval

    @property
    def acts(self) -> bool:
        """Whether a call waits for the asking user's approval (invariant 10)."""
        if self.approval == "always":
            return True
        if self.approval == "never":
            return False
        return not self.read_only

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, input_schema=self.input_schema)


@dataclass(frozen=True)
class ServerStatus:
    """One line of `threadbot mcp`: the server, whether it runs, why not, and its tools."""

    name: str
    transport: str
    target: str
    status: str
    error: str | None
    tools: tuple[MCPTool, ...]
    skipped: tuple[str, ...]  # "tool: why" for tools left out (schema the APIs reject, duplicate)


class MCPManager:
    """Starts the servers concurrently, keeps the tool list current, turns calls into tool_results."""

    def __init__(
        self,
        servers: Iterable[ServerConfig],
        *,
        start_timeout_s: float = START_TIMEOUT_S,
        reserved_names: Iterable[str] = (),
        errlog: TextIO | None = None,
    ):
        self._reserved = frozenset(reserved_names)
        self._connections = {
            config.name: ServerConnection(
                config, start_timeout_s=start_timeout_s, on_tools_changed=self._rebuild, errlog=errlog
            )
            for config in servers
        }
        self._tools: dict[str, MCPTool] = {}
        self._skipped: dict[str, tuple[str, ...]] = {}
        self._listeners: list[Callable[[], None]] = []

    async def start(self) -> None:
        """Start every server at once; returns when each has connected or failed (bounded)."""
        await asyncio.gather(*(c.start() for c in self._connections.values()))
        for connection in self._connections.values():
            if connection.state.status != "running":
                log.warning("MCP server %s did not start: %s", connection.name, connection.state.error or "timed out")
        self._rebuild()

    async def close(self) -> None:
        """Stop every server explicitly (stdio servers run in their own session, so nothing else would)."""
        await asyncio.gather(*(c.close() for c in self._connections.values()))

    async def __aenter__(self) -> "MCPManager":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever the set of tools changed (a server connected, or announced a change)."""
        self._listeners.append(listener)

    # --- tools ----------------------------------------------------------------------------------

    @property
    def tools(self) -> list[MCPTool]:
        return [self._tools[name] for name in sorted(self._tools)]

    def get(self, name: str) -> MCPTool | None:
        return self._tools.get(name)

    def status(self) -> list[ServerStatus]:
        by_server: dict[str, list[MCPTool]] = {}
        for found in self.tools:
            by_server.setdefault(found.server, []).append(found)
        return [
            ServerStatus(
                name=c.name, transport=c.config.transport, target=c.config.target, status=c.state.status,
                error=c.state.error, tools=tuple(by_server.get(c.name, ())), skipped=self._skipped.get(c.name, ()),
            )
            for c in self._connections.values()
        ]

    def _rebuild(self) -> None:
        """Recompute names over every connected server's tools, so they stay deterministic and unique."""
        offered: dict[tuple[str, str], tuple[types.Tool, ServerConfig]] = {}
        skipped: dict[str, list[str]] = {}
        for connection in self._connections.values():
            if connection.state.status != "running":
                continue
            for listed in connection.state.tools:
                key = (connection.name, listed.name)
                if key in offered:
                    skipped.setdefault(connection.name, []).append(f"{listed.name}: listed twice by the server")
                    continue
                offered[key] = (listed, connection.config)
        names = assign_names(offered, taken=self._reserved)
        tools: dict[str, MCPTool] = {}
        for key, (listed, config) in sorted(offered.items()):
            try:
                schema = repair_schema(listed.input_schema)
            except SchemaRejected as exc:
                if f"{listed.name}: {exc}" not in skipped.get(config.name, []):
                    skipped.setdefault(config.name, []).append(f"{listed.name}: {exc}")
                continue
            description = (listed.description or "").strip() or f"{listed.name} (from the MCP server {config.name})"
            annotations = listed.annotations
            tools[names[key]] = MCPTool(
                name=names[key], server=config.name, tool=listed.name,
                description=description[:MAX_DESCRIPTION_CHARS], input_schema=schema,
                read_only=bool(annotations is not None and annotations.read_only_hint), approval=config.approval,
            )
        for server, reasons in skipped.items():
            if tuple(reasons) != self._skipped.get(server):
                for reason in reasons:
                    log.warning("MCP server %s: skipped tool %s", server, reason)
        self._skipped = {server: tuple(reasons) for server, reasons in skipped.items()}
        changed = tools != self._tools
        self._tools = tools
        if changed:
            for listener in self._listeners:
                listener()

    # --- calls ----------------------------------------------------------------------------------

    async def call(self, name: str, arguments: dict[str, Any], *, tool_use_id: str, timeout: float,
                   store: Any = None) -> ToolResultBlock:
        """Run one MCP tool; every failure becomes an is_error tool_result (cancellation passes through).
        Images it returns are kept in `store` (bot.store's blobs) for the later requests of the thread."""
        found = self._tools.get(name)
        if found is None:
            return ToolResultBlock(tool_use_id, f"The tool {name} is not available right now.", True)
        connection = self._connections[found.server]
        try:
            result = await connection.call(found.tool, arguments, timeout=timeout)
        except CallTimedOut as exc:
            log.warning("MCP tool %s (%s): %s", name, tool_use_id, exc)
            return ToolResultBlock(tool_use_id, f"The tool {name} timed out after {timeout:g} seconds.", True)
        except ServerUnavailable as exc:
            log.warning("MCP tool %s (%s): %s", name, tool_use_id, exc)
            return ToolResultBlock(tool_use_id, f"The tool {name} failed: {exc}. Try again later.", True)
        except MCPError as exc:
            # The server refused the call (unknown tool, invalid arguments): its message helps the model.
            log.info("MCP tool %s (%s) refused: %s", name, tool_use_id, exc.message)
            return ToolResultBlock(tool_use_id, f"The tool {name} failed: {exc.message[:500]}", True)
        except RuntimeError as exc:
            # The SDK's own checks (structured content not matching the declared output schema).
            log.warning("MCP tool %s (%s): %s", name, tool_use_id, exc)
            return ToolResultBlock(tool_use_id, f"The tool {name} returned an invalid result: {str(exc)[:300]}", True)
        return await read_tool_result(tool_use_id, result, store=store, name=name)
