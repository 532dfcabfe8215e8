"""Slack message payloads (events and `conversations.replies` items) as thread messages, and which are follow-ups."""
from __future__ import annotations

import re
from typing import Any

from bot.conversation.thread_context import ThreadMessage

# Subtypes that are someone saying something; joins, topic changes, tombstones, edits and deletions are not.
SAID_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "bot_message", "me_message"})
# Of those, what a person's follow-up can be (never an app's message).
FOLLOWUP_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
THREAD_CHANNEL_TYPES = frozenset({"channel", "group", "mpim"})
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def thread_message(message: dict[str, Any]) -> ThreadMessage | None:
    """The recordable part of one Slack message, or None when it is not something someone said."""
    if message.get("subtype") not in SAID_SUBTYPES or message.get("hidden") or not message.get("ts"):
        return None
    text = message.get("text") or ""
    if not text.strip():
        # Apps often put everything in attachments; their fallback is the plain-text version.
        text = "\n".join(a.get("fallback") or "" for a in message.get("attachments") or []
                         if isinstance(a, dict)).strip()
    names = tuple(str(f.get("name") or f.get("title") or f.get("id") or "file")
                  for f in message.get("files") or [] if isinstance(f, dict))
    return ThreadMessage(ts=str(message["ts"]), user_id=str(message.get("user") or ""), text=text,
                         file_names=names, bot_id=message.get("bot_id") or None)


def in_channel_thread(event: dict[str, Any]) -> bool:
    """A reply inside a thread of a channel, private channel or group DM (not a DM, not top level)."""
    thread_ts = event.get("thread_ts")
    return (event.get("channel_type") in THREAD_CHANNEL_TYPES and bool(thread_ts)
            and thread_ts != event.get("ts"))


def is_followup(event: dict[str, Any], *, bot_user_id: str | None) -> bool:
    """A person's new reply in a channel thread that is not addressed only to other people.

    Whether the bot has answered in that thread is the caller's question (the store knows)."""
    if not in_channel_thread(event) or event.get("bot_id") or not event.get("user"):
        return False
    if event.get("subtype") not in FOLLOWUP_SUBTYPES or event.get("user") == bot_user_id:
        return False
    mentioned = set(_MENTION.findall(event.get("text") or ""))
    return not mentioned or (bot_user_id is not None and bot_user_id in mentioned)


def is_top_level_post(event: dict[str, Any], *, bot_user_id: str | None) -> bool:
    """A person's new message at the top of a channel (not in a thread, not an edit, join or app's post):
    what auto-answer answers."""
    if event.get("channel_type") not in THREAD_CHANNEL_TYPES or event.get("bot_id") or not event.get("user"):
        return False
    thread_ts = event.get("thread_ts")
    return (event.get("subtype") in (None, "file_share") and event.get("user") != bot_user_id
            and (not thread_ts or thread_ts == event.get("ts")))
