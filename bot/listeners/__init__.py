"""Bolt listeners grouped by Slack surface; each module has register(app, runtime)."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp


def register_all(app: AsyncApp, runtime: "object") -> None:
    from bot.listeners import actions, assistant, events, knowledge, usage

    for module in (events, assistant, actions, usage, knowledge):
        module.register(app, runtime)  # type: ignore[arg-type]
