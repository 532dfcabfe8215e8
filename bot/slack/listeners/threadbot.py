"""The /threadbot slash command: per-channel settings, for admins (bot/slack/channel_commands.py)."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.services import Services
from bot.slack.channel_commands import handle_threadbot_command
from bot.slack.listeners.commands import answer_command


def register(app: AsyncApp, services: Services) -> None:
    async def handle_threadbot(ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]) -> None:
        work = handle_threadbot_command(services.conversations.channels, user_id=command.get("user_id") or "",
                                        channel_id=command.get("channel_id") or "",
                                        team_id=command.get("team_id") or "", text=command.get("text") or "")
        await answer_command(ack, respond, work, name="/threadbot", holding="Checking this channel's settings…",
                             failure="Sorry, I couldn't change this channel's settings just now.")

    app.command("/threadbot")(handle_threadbot)
