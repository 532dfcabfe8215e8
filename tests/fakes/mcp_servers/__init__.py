"""MCP servers written with the official SDK, run as real processes by the tests (stdio or Streamable HTTP)."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

NOTES = "tests.fakes.mcp_servers.notes"
# Tests run in a temporary directory; the servers are modules of this repository.
ROOT = str(Path(__file__).resolve().parents[3])


def stdio_entry(*args: str, **extra: object) -> dict[str, object]:
    """An mcpServers entry that runs the notes server over stdio."""
    return {"command": sys.executable, "args": ["-m", NOTES, *args], "cwd": ROOT, **extra}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def http_server(*args: str) -> Iterator[str]:
    """Run the notes server over Streamable HTTP on a loopback port; yields its /mcp URL."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", NOTES, "--http", str(port), *args], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the MCP test server exited with {proc.returncode}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the MCP test server did not start listening")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
