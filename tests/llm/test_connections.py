"""The model clients' connection set-up: a burst opens its connections a few at a time, and they stream."""
from __future__ import annotations

import asyncio

import anthropic
import httpcore2

from bot.llm.connections import _FewConnectsAtOnce, spread_transport
from tests.fakes.anthropic import FakeAnthropic, Reply


class CountingBackend(httpcore2.AsyncNetworkBackend):
    """Stands in for the socket layer: records how many connection set-ups overlap."""

    def __init__(self) -> None:
        self.now = self.most = self.opened = 0

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.01)  # a handshake's worth of waiting
        self.now -= 1
        self.opened += 1
        return object()


async def test_a_burst_of_connections_opens_a_few_at_a_time():
    gate = _FewConnectsAtOnce(3)
    counting = CountingBackend()
    gate._backend = counting
    streams = await asyncio.gather(*(gate.connect_tcp("127.0.0.1", 443) for _ in range(30)))
    assert len(streams) == 30 and counting.opened == 30
    assert counting.most == 3


async def test_a_burst_of_streams_through_the_spread_transport_all_complete():
    model = FakeAnthropic(respond=lambda body: Reply.text("one two three four", chunk_chars=4, token_delay_s=0.01))
    await model.start()
    client = anthropic.AsyncAnthropic(api_key="sk-ant-fake-test-key", base_url=model.base_url, max_retries=0,
                                      http_client=anthropic.DefaultAsyncHttpxClient(transport=spread_transport()))
    try:
        async def one() -> str:
            async with client.messages.stream(model="claude-test", max_tokens=50,
                                              messages=[{"role": "user", "content": "hi"}]) as stream:
                return "".join([t async for t in stream.text_stream])

        assert await asyncio.gather(*(one() for _ in range(20))) == ["one two three four"] * 20
    finally:
        await client.close()
        await model.stop()


def test_a_configured_proxy_keeps_the_sdks_default_transport(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert spread_transport() is None
