"""The /usage slash command: the caller's usage (admins: the team's or someone's), as an ephemeral reply."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.slack.listeners.commands import answer_command
from bot.services import Services
from bot.accounting.report import handle_usage_command

HOLDING_LINE = "Adding up your usage…"
FAILURE = "Sorry, I couldn't build the usage report just now."


def register(app: AsyncApp, services: Services) -> None:
    async def handle_usage(ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]) -> None:
        # A report normally takes milliseconds; on a slow database it follows through response_url.
        work = handle_usage_command(
            services.store, services.settings, caller_id=command.get("user_id") or "",
            text=command.get("text") or "", now=datetime.now(timezone.utc),
        )
        await answer_command(ack, respond, work, name="/usage", holding=HOLDING_LINE, failure=FAILURE)

    app.command("/usage")(handle_usage)
