"""Assistant-panel listeners: a new assistant thread gets suggested prompts; its context is tracked.

The messages people type in the panel arrive as `message` events (channel_type "im") and are
answered by bot/slack/listeners/events.py, which looks up what is recorded here.
"""
from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from bot.slack import assistant_threads
from bot.slack.web_api import FAILURES, call, reason

log = logging.getLogger(__name__)

PROMPTS_TITLE = "Try asking"
# What the bot is good at: its tools (weather, documents, extraction) and plain questions.
SUGGESTED_PROMPTS = [
    {"title": "Search our documents", "message": "Search our documents for the onboarding checklist and summarise it."},
    {"title": "Weather this week", "message": "What's the weather going to be in Berlin over the next three days?"},
    {"title": "Pull out the details",
     "message": "Extract the contact details from this: Jane Roe, ACME Corp, jane@acme.example, +1 555 0100"},
    {"title": "Explain it simply", "message": "Explain the difference between a process and a thread in a few sentences."},
]


def register(app: AsyncApp, services: Services) -> None:
    async def handle_assistant_thread_started(event: dict[str, Any], client: AsyncWebClient) -> None:
        thread = await _record_thread(services, event)
        if thread is None:
            return
        channel_id, thread_ts = thread
        try:
            await call(client, "assistant.threads.setSuggestedPrompts", channel_id=channel_id, thread_ts=thread_ts,
                       title=PROMPTS_TITLE, prompts=SUGGESTED_PROMPTS)
        except FAILURES as exc:
            log.warning("assistant.threads.setSuggestedPrompts failed: %s", reason(exc))

    async def handle_assistant_thread_context_changed(event: dict[str, Any]) -> None:
        await _record_thread(services, event)

    app.event("assistant_thread_started")(handle_assistant_thread_started)
    app.event("assistant_thread_context_changed")(handle_assistant_thread_context_changed)


async def _record_thread(services: Services, event: dict[str, Any]) -> tuple[str, str] | None:
    """Store the thread and its context; returns (channel_id, thread_ts), or None for an event without one."""
    info = event.get("assistant_thread") or {}
    if not (info.get("channel_id") and info.get("thread_ts")):
        log.warning("ignoring %s without an assistant_thread", event.get("type"))
        return None
    await assistant_threads.record(services.store, info, channel_id=info["channel_id"], thread_ts=info["thread_ts"],
                                   user_id=info.get("user_id"))
    return info["channel_id"], info["thread_ts"]
