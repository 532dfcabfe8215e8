"""`threadbot mcp [--json]` through the real command: each server, started or why not, its tools and their
approval mode; secrets from the file never in the output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.mcp_servers import http_server, stdio_entry

THREADBOT = Path(sys.executable).with_name("threadbot")
SECRET = "tok-Very-Secret-42"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "THREADBOT_MCP_CONFIG": str(tmp_path / "mcp.json"),
           "WEB_TOKEN": SECRET}
    return subprocess.run([str(THREADBOT), "mcp", *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


def test_the_report_in_text_and_json(tmp_path: Path) -> None:
    with http_server("--token", SECRET) as url:
        (tmp_path / "mcp.json").write_text(json.dumps({"mcpServers": {
            "notes": stdio_entry(tools=["echo", "add_note"]),
            "web": {"url": url, "headers": {"Authorization": "Bearer ${WEB_TOKEN}"}, "tools": ["echo"],
                    "approval": "always"},
            "gone": {"command": "no-such-mcp-server-command"},
        }}), encoding="utf-8")
        text = run(tmp_path)
        as_json = run(tmp_path, "--json")
    # One server did not start: the exit status says so, and both outputs name why.
    assert text.returncode == 1 and as_json.returncode == 1, text.stderr
    assert SECRET not in text.stdout + text.stderr + as_json.stdout + as_json.stderr
    report = {server["name"]: server for server in json.loads(as_json.stdout)}
    assert list(report) == ["notes", "web", "gone"]
    notes, web, gone = report["notes"], report["web"], report["gone"]
    assert notes["started"] and notes["approval"] == "writes" and notes["transport"] == "stdio"
    assert {t["name"]: t["needs_approval"] for t in notes["tools"]} == {"notes_add_note": True, "notes_echo": False}
    assert web["started"] and [(t["name"], t["needs_approval"], t["read_only"]) for t in web["tools"]] == [
        ("web_echo", True, True)]  # approval: always asks even for a read-only tool
    assert not gone["started"] and "command not found: no-such-mcp-server-command" in gone["error"]
    assert gone["tools"] == []
    lines = text.stdout.splitlines()
    assert "notes (stdio: " in text.stdout and "approval: writes" in text.stdout
    assert any(line.split() == ["notes_add_note", "asks", "for", "approval"] for line in lines)
    assert any(line.split() == ["notes_echo", "runs", "without", "asking", "(read-only)"] for line in lines)
    assert "  not started: command not found: no-such-mcp-server-command" in lines


def test_without_the_setting_it_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([str(THREADBOT), "mcp"], env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "THREADBOT_MCP_CONFIG is not set" in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1
