"""Test-wide guards (no internet, no proxies, no stray settings) and the shared fake-service fixtures."""
from __future__ import annotations

import ipaddress
import os
import socket

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack

# pg_server / pg_url: one real PostgreSQL + pgvector per session, a fresh database per test.
pytest_plugins = ["tests.pg"]

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX paths
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkAccessError(RuntimeError):
    """A test tried to reach a non-loopback address."""


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_loopback(address):
        raise NetworkAccessError(f"tests must not touch the network (tried {address!r})")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_loopback(address):
        raise NetworkAccessError(f"tests must not touch the network (tried {address!r})")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]

# The SDKs honour proxy variables (and ignore NO_PROXY); a proxy would route loopback calls away.
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Each test starts with no threadbot/Slack/model settings and runs in its own directory (no .env)."""
    for name in list(os.environ):
        if name.startswith(("THREADBOT_", "SLACK_", "ANTHROPIC_", "OPENAI_")) or name == "PORT":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
async def slack():
    """A FakeSlack on loopback, for tests that drive slack_sdk clients against it directly."""
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    """The real AsyncWebClient with the bot token, pointed at the `slack` fixture."""
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


@pytest.fixture
def fakes():
    """FakeSlack and FakeAnthropic each on its own thread, for a bot in another process (tests/botproc.py)."""
    slack = FakeSlack()
    slack.start_in_thread()
    model = FakeAnthropic()
    model.start_in_thread()
    yield slack, model
    slack.stop_thread()
    model.stop_in_thread()
