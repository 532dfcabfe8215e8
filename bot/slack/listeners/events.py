"""Event listeners: mentions, DMs, assistant-panel messages and thread follow-ups become Turns; channel
messages in threads the bot is part of are recorded; the rest is acked and ignored.

bot/slack/dedupe.py has already let each event through once; it asked `answered_as` how (if at all) the
event's message is answered and left the answer in the context under ANSWER_AS, and the id of its
durable turn record (turn_record below) under TURN_RECORD.
"""
from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation import Turn
from bot.services import Services
from bot.slack import assistant_threads
from bot.slack.answer import answer
from bot.slack.approvals import SlackApprovals
from bot.slack.dedupe import ANSWER_AS, TURN_RECORD
from bot.slack.edit_budget import EditBudgets
from bot.slack.conversation_reader import Reading
from bot.slack.thread_messages import is_followup, is_top_level_post
from bot.slack.thread_sync import SlackThreadSource, ThreadSync
from bot.store import NewTurn

log = logging.getLogger(__name__)

# Message subtypes that are a person saying something new; edits, deletions, joins etc. are not.
ANSWERABLE_SUBTYPES = {None, "file_share", "thread_broadcast"}


async def answered_as(services: Services, event: dict[str, Any], *, bot_user_id: str | None) -> str | None:
    """How the listeners answer this event's message: as a "mention", a "dm", an "autoanswer", or not at all
    (None)."""
    if not (event.get("channel") and event.get("ts") and event.get("user")):
        return None
    if event.get("type") == "app_mention":
        return "mention"
    if event.get("type") != "message":
        return None
    if event.get("channel_type") == "im":
        # Bolt already drops our own messages; other bots, edits and deletions are not answered either.
        return "dm" if not event.get("bot_id") and event.get("subtype") in ANSWERABLE_SUBTYPES else None
    if is_top_level_post(event, bot_user_id=bot_user_id):
        # Auto-answer channels (/threadbot autoanswer on) answer every new message from a person, in its thread.
        return "autoanswer" if await services.conversations.channels.autoanswer(event["channel"]) else None
    # A person's reply in a channel thread the bot answered in; if it also @mentions the bot it comes
    # again as app_mention, and the channel+ts claim lets only the first through.
    if services.settings.thread_followups and is_followup(event, bot_user_id=bot_user_id):
        thread = await services.store.slack_thread(event["channel"], event["thread_ts"])
        if thread is not None and thread.answered:
            return "mention"
    return None


def turn_record(body: dict[str, Any], surface: str, bot_user_id: str | None, bot_id: str | None) -> NewTurn:
    """What a restart needs to answer (or close) this event's message if the process dies first."""
    event = body.get("event") or {}
    return NewTurn(kind="answer", team_id=body.get("team_id") or event.get("team") or "", channel_id=event["channel"],
                   thread_ts=event.get("thread_ts") or event["ts"], ts=event["ts"], user_id=event["user"],
                   surface=surface, text=strip_mention(event.get("text") or "", bot_user_id),
                   details={"bot_user_id": bot_user_id, "bot_id": bot_id})


def register(app: AsyncApp, services: Services, budgets: EditBudgets, *,
             approvals: SlackApprovals | None = None, reading: Reading | None = None) -> None:
    reading = reading or Reading(ThreadSync(services.store))
    sync = reading.sync

    async def handle_app_mention(body: dict[str, Any], event: dict[str, Any], context: Any,
                                 client: AsyncWebClient) -> None:
        if context.get(ANSWER_AS) is None:
            log.warning("ignoring malformed %s event %s", event.get("type"), body.get("event_id"))
            return
        turn = turn_of(body, event, context, surface="mention", reading=reading, client=client)
        await answer(services, budgets, client, turn, approvals=approvals)

    async def handle_message(body: dict[str, Any], event: dict[str, Any], context: Any,
                             client: AsyncWebClient) -> None:
        if event.get("channel_type") != "im":
            # Channels: record what is said in the threads the bot is part of (no API call).
            await sync.observe(event)
        surface = context.get(ANSWER_AS)
        if surface is None:
            return
        channel, thread_ts = event["channel"], event.get("thread_ts") or event["ts"]
        viewing = None
        if surface == "dm" and await assistant_threads.is_assistant_thread(services.store, event, channel=channel,
                                                                      thread_ts=thread_ts):
            surface = "assistant"
            viewing = await assistant_threads.viewing_channel(services.store, event, channel=channel, thread_ts=thread_ts)
            if context.get(TURN_RECORD) is not None:
                await services.store.turn_details(context[TURN_RECORD], surface=surface,
                                                  details={"viewing_channel_id": viewing})
        turn = turn_of(body, event, context, surface=surface, reading=reading, client=client,
                       viewing_channel_id=viewing)
        if surface == "assistant":
            await assistant_threads.set_title(client, services.store, channel=channel, thread_ts=thread_ts,
                                              question=turn.text)
        await answer(services, budgets, client, turn, approvals=approvals)

    app.event("app_mention")(handle_app_mention)
    app.event("message")(handle_message)


def turn_of(body: dict[str, Any], event: dict[str, Any], context: Any, *, surface: str, reading: Reading,
            client: AsyncWebClient, viewing_channel_id: str | None = None) -> Turn:
    """The Turn an answered event carries; in a channel thread it reads what others said there too, and its
    tools may read this conversation (or the channel viewed beside the assistant panel)."""
    channel, ts = event["channel"], event["ts"]
    thread_ts = event.get("thread_ts") or ts
    bot_user_id = context.get("bot_user_id")
    thread = None
    if not channel.startswith("D"):
        thread = SlackThreadSource(reading.sync, client, channel_id=channel, thread_ts=thread_ts, question_ts=ts,
                                   bot_user_id=bot_user_id or "", bot_id=context.get("bot_id"))
    return Turn(
        team_id=body.get("team_id") or event.get("team") or "",
        channel_id=channel,
        thread_ts=thread_ts,
        user_id=event["user"],
        text=strip_mention(event.get("text") or "", bot_user_id),
        ts=ts,
        surface=surface,
        viewing_channel_id=viewing_channel_id,
        files=list(event.get("files") or []),
        thread=thread,
        reader=reading.reader(client, channel_id=channel, thread_ts=thread_ts, user_id=event["user"],
                              viewing_channel_id=viewing_channel_id),
        record_id=context.get(TURN_RECORD),
    )


def strip_mention(text: str, bot_user_id: str | None) -> str:
    """Remove the bot's own <@U…> mention so the model sees the question only."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", "", text)
    return text.strip()
