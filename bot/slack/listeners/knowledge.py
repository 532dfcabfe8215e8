"""The /knowledge slash command (uploads happen by sharing files; see bot/uploads.py)."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.slack.knowledge_commands import handle_knowledge_command
from bot.slack.listeners.commands import answer_command
from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    async def handle_knowledge(ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]) -> None:
        work = handle_knowledge_command(services.store, services.settings, user_id=command.get("user_id") or "",
                                        channel_id=command.get("channel_id") or "", text=command.get("text") or "")
        await answer_command(ack, respond, work, name="/knowledge", holding="Looking through the documents…",
                             failure="Sorry, I couldn't do that with the knowledge base just now.")

    app.command("/knowledge")(handle_knowledge)
