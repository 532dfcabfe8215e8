"""Run the real `threadbot run` process against the loopback fakes, configured only by environment."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.fakes import slack as fake_slack

THREADBOT = Path(sys.executable).with_name("threadbot")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BotProcess:
    """One `threadbot run` subprocess; `restart()` keeps its database, as a real redeploy would."""

    def __init__(self, *, slack_api_url: str, anthropic_url: str, db_path: Path, socket_mode: bool,
                 extra_env: dict[str, str] | None = None, log_path: Path):
        self.port = free_port()
        self.socket_mode = socket_mode
        self.log_path = log_path
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "SLACK_BOT_TOKEN": fake_slack.BOT_TOKEN,
            "SLACK_API_URL": slack_api_url,
            "ANTHROPIC_API_KEY": "sk-ant-fake-test-key",
            "ANTHROPIC_BASE_URL": anthropic_url,
            "THREADBOT_DB": str(db_path),
            "THREADBOT_LOG_LEVEL": "INFO",
            "PORT": str(self.port),
            **(extra_env or {}),
        }
        if socket_mode:
            self.env["SLACK_APP_TOKEN"] = fake_slack.APP_TOKEN
        else:
            self.env["SLACK_SIGNING_SECRET"] = fake_slack.SIGNING_SECRET
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(THREADBOT), "run"], env=self.env, stdout=log, stderr=log,
                                     cwd=self.log_path.parent)
        if not self.socket_mode:
            self._wait_healthy()

    def _wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"threadbot exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"threadbot did not become healthy:\n{self.log()}")

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL, as an OOM kill or a node failure does: nothing in the process runs any more."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
