"""Bolt listeners grouped by Slack surface; each module has register(app, runtime)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt.async_app import AsyncApp

if TYPE_CHECKING:
    from bot.services import Runtime


def register_all(app: AsyncApp, runtime: "Runtime") -> None:
    # Imported here: the listener modules import bot.runtime, which imports most of the bot.
    from bot.slack.approvals import SlackApprovals
    from bot.slack.listeners import assistant, events, feedback, knowledge, usage

    # One set of waiting approval questions: asked from a turn, answered by a button click.
    approvals = SlackApprovals(timeout_s=runtime.settings.approval_timeout_s)
    approvals.register(app)
    events.register(app, runtime, approvals=approvals)
    for module in (assistant, feedback, usage, knowledge):
        module.register(app, runtime)
