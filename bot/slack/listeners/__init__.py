"""Bolt listeners grouped by Slack surface; each module has register(app, services, …)."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.services import Services
from bot.slack.approvals import SlackApprovals
from bot.slack.conversation_reader import Reading
from bot.slack.edit_budget import EditBudgets
from bot.slack.listeners import assistant, events, feedback, home, knowledge, shortcuts, threadbot, usage
from bot.slack.thread_sync import ThreadSync


def register_all(app: AsyncApp, services: Services, budgets: EditBudgets, *,
                 approvals: SlackApprovals | None = None) -> None:
    # One set of waiting approval questions: asked from a turn, answered by a button click; each a durable
    # turn until decided, so a restart after a crash takes its buttons away.
    if approvals is None:
        approvals = SlackApprovals(timeout_s=services.settings.approval_timeout_s, store=services.store,
                                   owner=services.owner)
    approvals.register(app)
    # One record of the threads the bot is part of, and one access cache, for every listener that reads.
    reading = Reading(ThreadSync(services.store))
    events.register(app, services, budgets, approvals=approvals, reading=reading)
    shortcuts.register(app, services, budgets, reading=reading)
    for module in (assistant, feedback, usage, knowledge, threadbot, home):
        module.register(app, services)
