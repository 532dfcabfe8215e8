"""Assistant-panel threads: which DM threads are the assistant's, which channel the user is viewing, titles."""
from __future__ import annotations

import logging
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.web_api import FAILURES, call, reason
from bot.store import Store

log = logging.getLogger(__name__)

TITLE_CHARS = 80


async def record(store: Store, info: dict[str, Any], *, channel_id: str, thread_ts: str, user_id: str | None) -> None:
    """Store an assistant thread and its context, from the `assistant_thread` object Slack sends."""
    context = info.get("context") or {}
    await store.record_assistant_thread(channel_id=channel_id, thread_ts=thread_ts, user_id=user_id,
                                        context_channel_id=context.get("channel_id"),
                                        context_team_id=context.get("team_id"))


async def is_assistant_thread(store: Store, event: dict[str, Any], *, channel: str, thread_ts: str) -> bool:
    """A DM thread is an assistant thread when Slack said so (assistant_thread_started, recorded by the
    assistant listener) or the message carries the assistant thread's details itself."""
    info = event.get("assistant_thread")
    if info:
        if await store.assistant_thread(channel, thread_ts) is None:
            await record(store, info, channel_id=channel, thread_ts=thread_ts, user_id=info.get("user_id") or event.get("user"))
        return True
    return event.get("thread_ts") is not None and await store.assistant_thread(channel, thread_ts) is not None


async def viewing_channel(store: Store, event: dict[str, Any], *, channel: str, thread_ts: str) -> str | None:
    """The channel the user is viewing beside an assistant thread (Slack's latest word on it)."""
    context = (event.get("assistant_thread") or {}).get("context") or {}
    if context.get("channel_id"):
        return context["channel_id"]
    thread = await store.assistant_thread(channel, thread_ts)
    return thread.context_channel_id if thread else None


async def set_title(client: AsyncWebClient, store: Store, *, channel: str, thread_ts: str, question: str) -> None:
    """Title a new assistant thread after its first question, once (also across replicas)."""
    if not question or not await store.claim_assistant_title(channel, thread_ts):
        return
    first_line = " ".join(question.split())
    title = first_line if len(first_line) <= TITLE_CHARS else first_line[:TITLE_CHARS - 1].rstrip() + "…"
    try:
        await call(client, "assistant.threads.setTitle", patient=False, channel_id=channel, thread_ts=thread_ts,
                   title=title)
    except FAILURES as exc:
        log.warning("assistant.threads.setTitle failed: %s", reason(exc))
