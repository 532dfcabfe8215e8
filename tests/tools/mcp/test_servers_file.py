"""The servers file: the mcpServers format, ${VAR} from the given environment, one clear line per mistake."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import ConfigError
from tools.mcp.servers_file import load_servers_file, parse_servers


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_the_design_example_parses(tmp_path: Path) -> None:
    path = write(tmp_path, {"mcpServers": {
        "files": {"command": "python", "args": ["-m", "my_server"], "env": {"ROOT": "/srv"}},
        "github": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}"},
                   "tools": ["search_issues", "create_issue"], "approval": "writes"},
    }})
    files, github = load_servers_file(path, {"GITHUB_TOKEN": "ghp_secret"})
    assert (files.name, files.transport, files.command, files.args, dict(files.env)) == (
        "files", "stdio", "python", ("-m", "my_server"), {"ROOT": "/srv"})
    assert files.approval == "writes" and files.allowed_tools is None
    assert github.transport == "http" and github.headers["Authorization"] == "Bearer ghp_secret"
    assert github.allowed_tools == frozenset({"search_issues", "create_issue"})
    assert files.target == "python -m my_server" and github.target == "https://example.com/mcp"


def test_secrets_stay_out_of_repr_and_target() -> None:
    (server,) = parse_servers({"mcpServers": {"s": {
        "url": "https://user:pw@example.com/mcp?key=k123", "headers": {"X-Key": "${K}"}}}}, {"K": "hunter2"})
    shown = repr(server) + server.target
    assert "hunter2" not in shown and "k123" not in shown and "pw" not in shown
    (stdio,) = parse_servers({"mcpServers": {"s": {"command": "x", "env": {"TOKEN": "${K}"}}}}, {"K": "hunter2"})
    assert "hunter2" not in repr(stdio)


def test_variables_expand_everywhere_a_string_goes() -> None:
    (server,) = parse_servers({"mcpServers": {"s": {
        "command": "${BIN}/run", "args": ["--root", "${ROOT}"], "env": {"A": "${ROOT}-x"}}}},
        {"BIN": "/opt", "ROOT": "/srv"})
    assert server.command == "/opt/run" and server.args == ("--root", "/srv") and server.env["A"] == "/srv-x"


@pytest.mark.parametrize("data, says", [
    ("{not json", "not valid JSON (line 1"),
    ({"servers": {}}, '"mcpServers"'),
    ({"mcpServers": []}, '"mcpServers" must be an object'),
    ({"mcpServers": {"a": "python"}}, "mcpServers.a must be an object"),
    ({"mcpServers": {"a": {}}}, 'needs either "command"'),
    ({"mcpServers": {"a": {"command": "x", "url": "http://h/"}}}, 'needs either "command"'),
    ({"mcpServers": {"a": {"command": "x", "approval": "sometimes"}}}, "mcpServers.a.approval must be"),
    ({"mcpServers": {"a": {"command": "x", "tools": "search"}}}, "mcpServers.a.tools must be a list"),
    ({"mcpServers": {"a": {"command": "x", "args": "-v"}}}, "mcpServers.a.args must be a list"),
    ({"mcpServers": {"a": {"command": "x", "headers": {}}}}, "unknown setting 'headers'"),
    ({"mcpServers": {"a": {"url": "ftp://h/x"}}}, "mcpServers.a.url must be an http(s) URL"),
    ({"mcpServers": {"a": {"url": "http://h/", "type": "sse"}}}, "SSE servers are not supported"),
    ({"mcpServers": {"a": {"url": "http://h/", "headers": {"A": "${NOPE}"}}}},
     "mcpServers.a.headers.A uses ${NOPE}, which is not set"),
])
def test_a_malformed_file_is_one_line_naming_the_setting(tmp_path: Path, data: object, says: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_servers_file(path, {})
    message = str(caught.value)
    assert message.startswith("THREADBOT_MCP_CONFIG (") and str(path) in message
    assert says in message and "\n" not in message


def test_a_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^THREADBOT_MCP_CONFIG \(.*nope.json\): cannot read the file"):
        load_servers_file(tmp_path / "nope.json", {})
