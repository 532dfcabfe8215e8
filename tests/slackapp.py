"""The real Bolt app (bot.app.build_app) served in-process on loopback against FakeSlack and FakeAnthropic."""
from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

from aiohttp import web

from bot.slack.app import build_app
from bot.config import load_settings
from bot.services import Services
from tests.fakes import slack as fs
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack, HttpResult


@dataclass
class Bot:
    slack: FakeSlack
    model: FakeAnthropic
    services: Services
    events_url: str

    async def deliver(self, payload: dict[str, Any]) -> HttpResult:
        """Deliver an event (wrapped in its envelope unless it already is one) or an interaction; must be acked."""
        if payload.get("type") not in fs._INTERACTIVE_TYPES and payload.get("type") != "event_callback":
            payload = fs.event_callback(payload)
        result = await self.slack.deliver_http(self.events_url, payload)
        assert result.status == 200, (result.status, result.body)
        assert result.elapsed < 3.0  # Slack's ack deadline
        return result

    async def command(self, command: str, text: str = "", *, user_id: str = fs.USER_ID,
                      channel_id: str = fs.CHANNEL_ID) -> tuple[HttpResult, str]:
        """Run a slash command; returns the HTTP ack and the command's response_url."""
        response_url = self.slack.new_response_url()
        form = fs.command_form(command, text, user_id=user_id, channel_id=channel_id, response_url=response_url)
        result = await self.slack.deliver_http(self.events_url, form)
        assert result.status == 200, result.body
        assert result.elapsed < 3.0
        return result, response_url

    def bot_messages(self, channel: str, thread_ts: str) -> list[fs.FakeMessage]:
        return [m for m in self.slack.messages_in_thread(channel, thread_ts) if m.user == fs.BOT_USER_ID]

    async def bot_message_where(self, channel: str, thread_ts: str, predicate: Any, *,
                                timeout: float = 15, what: str = "a bot message") -> fs.FakeMessage:
        """Wait for a bot message in the thread whose current text satisfies `predicate(text)`."""
        return await self.slack.wait_for(
            lambda: next((m for m in self.bot_messages(channel, thread_ts) if predicate(m.text)), None),
            timeout=timeout,
            what=lambda: f"{what}; have {[m.text for m in self.bot_messages(channel, thread_ts)]}")

    async def final_text(self, channel: str, thread_ts: str, expected: str, *, timeout: float = 15) -> fs.FakeMessage:
        """Wait for a bot message in the thread whose current text is exactly `expected`."""
        return await self.bot_message_where(channel, thread_ts, lambda text: text == expected, timeout=timeout,
                                            what=repr(expected))


@asynccontextmanager
async def running_bot(tmp_path: Path, **env: str) -> AsyncIterator[Bot]:
    """Settings from keyword arguments only (SLACK_API_URL etc. point at the fakes), the Services and the app."""
    async with FakeSlack() as slack, FakeAnthropic() as model:
        settings = load_settings(**{
            "SLACK_BOT_TOKEN": fs.BOT_TOKEN, "SLACK_SIGNING_SECRET": fs.SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url, "ANTHROPIC_API_KEY": "sk-ant-fake-test-key",
            "ANTHROPIC_BASE_URL": model.base_url, "THREADBOT_DB": str(tmp_path / "bot.db"),
            "THREADBOT_USER_RPM": "1000", **env})
        services = await Services.create(settings)
        runner = web.AppRunner(build_app(services).web_app(path="/slack/events"), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
        try:
            yield Bot(slack, model, services, url)
        finally:
            await runner.cleanup()
            await services.aclose()
