"""Keeping the store's copy of the channel threads the bot is part of, with as few Slack reads as possible.

Messages of a thread the bot is part of are recorded as their `message.*` events arrive (no API call).
`conversations.replies` is read only when the store cannot be complete: the bot is joining a thread it
never saw (someone mentions it in the middle of a discussion), or this process was not listening for a
while (a restart). One read per turn at most, from the point up to which the store is complete
(`synced_ts`), bounded by CATCH_UP_LIMIT; a thread with more left over carries on at the next turn. A 429
or any other failure of that read leaves the turn with what is stored.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Sequence

from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation.thread_context import ThreadSnapshot, authors
from bot.llm.tokens import count_text_tokens
from bot.slack.thread_messages import in_channel_thread, thread_message
from bot.slack import web_api
from bot.store import Store
from bot.store import ThreadMessage

log = logging.getLogger(__name__)

CATCH_UP_LIMIT = 1000  # replies in one conversations.replies page: Slack's maximum
STORED_LIMIT = 2000  # newest recorded messages a turn looks at; the token budget keeps fewer
NAME_TTL_S = 3600.0
NAMES_PER_TURN = 25  # users.info look-ups one turn may make; the rest show as their user id


class ThreadSync:
    """One per process: which threads it has listened to continuously, and the display-name cache."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Threads whose every message since `synced_ts` this process has recorded from events. Empty
        # after a restart, which is exactly when the store may have missed something.
        self._continuous: set[tuple[str, str]] = set()
        self._names: dict[str, tuple[str, float]] = {}

    async def observe(self, event: dict[str, Any]) -> bool:
        """Record one `message` event if it belongs to a thread the bot is part of; True when recorded."""
        channel, subtype = event.get("channel") or "", event.get("subtype")
        if subtype == "message_changed":
            changed = event.get("message") or {}
            message = counted(thread_message(changed))
            if message is not None and changed.get("thread_ts"):
                return await self.store.update_thread_message(channel, message)
            return False
        if subtype == "message_deleted":
            return await self.store.delete_thread_message(channel, str(event.get("deleted_ts") or ""))
        if not in_channel_thread(event):
            return False
        message = counted(thread_message(event))
        if message is None:
            return False
        thread_ts = str(event["thread_ts"])
        continuous = (channel, thread_ts) in self._continuous
        return await self.store.record_thread_messages(channel, thread_ts, [message], advance_synced=continuous)

    async def snapshot(self, client: AsyncWebClient, *, channel_id: str, thread_ts: str, question_ts: str | None,
                       bot_user_id: str, bot_id: str | None) -> ThreadSnapshot:
        """The thread as the store has it after at most one catch-up read. Never raises for Slack's sake."""
        key = (channel_id, thread_ts)
        state = await self.store.slack_thread(channel_id, thread_ts)
        read, complete = False, True
        if state is None and thread_ts == question_ts:
            # A mention at the top level starts a thread: there is nothing before it to read.
            await self.store.mark_thread(channel_id, thread_ts, synced_ts=question_ts)
            self._continuous.add(key)
        elif key not in self._continuous:
            read = True
            complete = await self._catch_up(client, channel_id, thread_ts, synced_ts=state.synced_ts if state else None)
        since = state.seen_ts if state else None
        messages = await self.store.thread_messages(channel_id, thread_ts, after_ts=since, limit=STORED_LIMIT)
        names = await self.names(client, authors(messages))
        return ThreadSnapshot(tuple(messages), since, names, bot_user_id, bot_id, read, complete)

    async def looked(self, channel_id: str, thread_ts: str, *, upto_ts: str | None, shown: list[str],
                     complete: bool, answered: bool = True) -> None:
        """The bot answers `upto_ts` (the question; None for a click, not a message) in this thread, having
        shown the model `shown`; `answered=False` (a summary someone asked for) does not make later replies
        follow-ups.

        Only a complete snapshot moves the last-seen point: after a failed read, what the store missed
        is still to be shown; the flags keep what was shown from being shown again."""
        seen = upto_ts or max(shown, key=_ts_key, default=None)
        await self.store.mark_thread(channel_id, thread_ts, seen_ts=seen if complete else None, answered=answered,
                                     shown_ts=[*shown, upto_ts] if upto_ts else shown)

    async def _catch_up(self, client: AsyncWebClient, channel_id: str, thread_ts: str, *,
                        synced_ts: str | None) -> bool:
        # The row first, so events arriving during the read are recorded too.
        await self.store.mark_thread(channel_id, thread_ts)
        params: dict[str, Any] = {"channel": channel_id, "ts": thread_ts, "limit": CATCH_UP_LIMIT}
        if synced_ts:
            params["oldest"] = synced_ts
        try:
            # Impatient: a 429, 5xx or dropped connection means answering from what is stored, not waiting.
            response = await web_api.call(client, "conversations.replies", patient=False, **params)
        except web_api.FAILURES as exc:
            log.warning("conversations.replies %s/%s failed (%s): answering from what is stored",
                        channel_id, thread_ts, web_api.reason(exc))
            return False
        items = [m for m in response.get("messages") or [] if isinstance(m, dict)]
        messages = [m for m in (counted(thread_message(item)) for item in items) if m is not None]
        newest = max((str(item["ts"]) for item in items if item.get("ts")), key=_ts_key, default=synced_ts)
        await self.store.record_thread_messages(channel_id, thread_ts, messages, synced_ts=newest)
        if response.get("has_more"):
            log.info("thread %s/%s has more than %d new replies; the next turn reads on", channel_id, thread_ts,
                     CATCH_UP_LIMIT)
            return False
        self._continuous.add((channel_id, thread_ts))
        return True

    async def names(self, client: AsyncWebClient, user_ids: set[str]) -> dict[str, str]:
        """Display names (users.info, cached for an hour); an id Slack cannot resolve maps to itself."""
        now = time.monotonic()
        out: dict[str, str] = {}
        lookups = 0
        for user_id in sorted(user_ids):
            cached = self._names.get(user_id)
            if cached and cached[1] > now:
                out[user_id] = cached[0]
                continue
            if lookups >= NAMES_PER_TURN:
                continue
            lookups += 1
            try:
                user = (await web_api.call(client, "users.info", patient=False, user=user_id))["user"]
            except web_api.FAILURES as exc:
                log.info("users.info %s failed (%s)", user_id, web_api.reason(exc))
                continue
            profile = user.get("profile") or {}
            name = profile.get("display_name") or user.get("real_name") or profile.get("real_name") or user.get("name")
            if name:
                self._names[user_id] = (str(name), now + NAME_TTL_S)
                out[user_id] = str(name)
        if len(self._names) > 10_000:  # a long-running process must not grow without bound
            self._names = {k: v for k, v in self._names.items() if v[1] > now}
        return out


def counted(message: ThreadMessage | None) -> ThreadMessage | None:
    """The message with its text's tokens counted, once, as it is recorded (turns then only add them up)."""
    if message is None:
        return None
    return dataclasses.replace(message, tokens=count_text_tokens(message.text))


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds or 0), int(micros or 0)


class SlackThreadSource:
    """The ThreadSource of one turn in a channel thread (see bot/conversation/thread_context.py).

    `question_ts` is None when the turn's question is not a message in the thread (a shortcut's click):
    then the bot has looked up to the newest message it showed."""

    def __init__(self, sync: ThreadSync, client: AsyncWebClient, *, channel_id: str, thread_ts: str,
                 question_ts: str | None, bot_user_id: str, bot_id: str | None, answered: bool = True) -> None:
        self.sync, self.client, self.answered = sync, client, answered
        self.channel_id, self.thread_ts, self.question_ts = channel_id, thread_ts, question_ts
        self.bot_user_id, self.bot_id = bot_user_id, bot_id
        self._snapshot: ThreadSnapshot | None = None

    async def read(self) -> ThreadSnapshot:
        self._snapshot = await self.sync.snapshot(self.client, channel_id=self.channel_id, thread_ts=self.thread_ts,
                                        question_ts=self.question_ts, bot_user_id=self.bot_user_id,
                                        bot_id=self.bot_id)
        return self._snapshot

    async def looked(self, upto_ts: str, shown: Sequence[str]) -> None:
        complete = self._snapshot.complete if self._snapshot is not None else False
        await self.sync.looked(self.channel_id, self.thread_ts, upto_ts=upto_ts if self.question_ts else None,
                               shown=list(shown),
                               complete=complete, answered=self.answered)
