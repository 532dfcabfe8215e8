"""The MCP servers file (`THREADBOT_MCP_CONFIG`): the `mcpServers` JSON format, parsed and checked."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping
from urllib.parse import urlsplit

from bot.errors import ConfigError

Approval = Literal["writes", "always", "never"]
APPROVALS: tuple[str, ...] = ("writes", "always", "never")

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_COMMON_KEYS = {"tools", "approval", "type"}
_STDIO_KEYS = {"command", "args", "env", "cwd"} | _COMMON_KEYS
_HTTP_KEYS = {"url", "headers"} | _COMMON_KEYS
_HTTP_TYPES = {"http", "streamable-http", "streamableHttp", "streamable_http"}
SETTING = "THREADBOT_MCP_CONFIG"


@dataclass(frozen=True)
class ServerConfig:
    """One configured server. Secrets (env values, header values) are kept out of repr."""

    name: str
    approval: Approval = "writes"
    # None: every tool the server offers; otherwise only these (the server's own tool names).
    allowed_tools: frozenset[str] | None = None
    # stdio
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: str | None = None
    # Streamable HTTP
    url: str | None = field(default=None, repr=False)  # may carry a key in its query
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"

    @property
    def target(self) -> str:
        """What an operator may see: the command line, or the URL without query or credentials."""
        if self.command is not None:
            return " ".join([self.command, *self.args])
        parts = urlsplit(self.url or "")
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"


def load_servers_file(path: Path, environ: Mapping[str, str]) -> list[ServerConfig]:
    """Read and check the servers file; any problem is one ConfigError line naming THREADBOT_MCP_CONFIG."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _error(path, f"cannot read the file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise _error(path, "the file is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _error(path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    try:
        return parse_servers(data, environ)
    except ValueError as exc:
        raise _error(path, str(exc)) from None


def _error(path: Path, what: str) -> ConfigError:
    return ConfigError(f"{SETTING} ({path}): {what}. Fix the file or unset {SETTING}.")


def parse_servers(data: Any, environ: Mapping[str, str]) -> list[ServerConfig]:
    """The servers of an already decoded file, in file order; raises ValueError saying what is wrong."""
    if not isinstance(data, dict) or "mcpServers" not in data:
        raise ValueError('expected a JSON object with an "mcpServers" object')
    servers = data["mcpServers"]
    if not isinstance(servers, dict):
        raise ValueError('"mcpServers" must be an object of server name → settings')
    return [_server(name, entry, environ) for name, entry in servers.items()]


def _server(name: str, entry: Any, environ: Mapping[str, str]) -> ServerConfig:
    where = f"mcpServers.{name}"
    if not name.strip():
        raise ValueError("a server has an empty name")
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object")
    kind = entry.get("type")
    if kind == "sse":
        raise ValueError(f"{where}: SSE servers are not supported; use the server's Streamable HTTP URL")
    if kind is not None and kind != "stdio" and kind not in _HTTP_TYPES:
        raise ValueError(f'{where}.type must be "stdio" or "http", not {kind!r}')
    if ("command" in entry) == ("url" in entry):
        raise ValueError(f'{where} needs either "command" (a stdio server) or "url" (a Streamable HTTP server)')
    allowed_keys = _STDIO_KEYS if "command" in entry else _HTTP_KEYS
    unknown = sorted(set(entry) - allowed_keys)
    if unknown:
        raise ValueError(f"{where}: unknown setting {unknown[0]!r} (expected one of: {', '.join(sorted(allowed_keys))})")
    approval = entry.get("approval", "writes")
    if approval not in APPROVALS:
        raise ValueError(f'{where}.approval must be "writes", "always" or "never", not {approval!r}')
    tools = entry.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, str) and t for t in tools)):
        raise ValueError(f"{where}.tools must be a list of tool names")
    common: dict[str, Any] = {
        "name": name, "approval": approval, "allowed_tools": frozenset(tools) if tools is not None else None,
    }

    def expand(value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{where}.{key} must be a string")
        return expand_vars(value, environ, f"{where}.{key}")

    if "command" in entry:
        command = expand(entry["command"], "command")
        if not command.strip():
            raise ValueError(f"{where}.command is empty")
        args = entry.get("args", [])
        if not isinstance(args, list):
            raise ValueError(f"{where}.args must be a list of strings")
        env = entry.get("env", {})
        if not isinstance(env, dict):
            raise ValueError(f"{where}.env must be an object of NAME → value")
        cwd = expand(entry["cwd"], "cwd") if "cwd" in entry else None
        return ServerConfig(
            **common, command=command, cwd=cwd,
            args=tuple(expand(a, f"args[{i}]") for i, a in enumerate(args)),
            env={k: expand(v, f"env.{k}") for k, v in env.items()},
        )
    url = expand(entry["url"], "url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{where}.url must be an http(s) URL")
    headers = entry.get("headers", {})
    if not isinstance(headers, dict):
        raise ValueError(f"{where}.headers must be an object of Header → value")
    return ServerConfig(**common, url=url, headers={k: expand(v, f"headers.{k}") for k, v in headers.items()})


def expand_vars(value: str, environ: Mapping[str, str], where: str) -> str:
    """Replace each `${VAR}` with its value from `environ`; an unset variable is an error naming it."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ValueError(f"{where} uses ${{{name}}}, which is not set in the environment")
        return environ[name]

    return _VAR.sub(one, value)
