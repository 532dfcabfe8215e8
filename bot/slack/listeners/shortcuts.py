"""The `summarize_thread` message shortcut: the bot reads that message's thread and posts a summary in it."""
from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation import Turn
from bot.services import Services
from bot.slack.answer import build_reply
from bot.slack.conversation_access import Refused
from bot.slack.conversation_reader import Reading
from bot.slack.edit_budget import EditBudgets
from bot.slack.thread_sync import SlackThreadSource
from bot.store import NewTurn

log = logging.getLogger(__name__)

CALLBACK_ID = "summarize_thread"  # manifest.yml features.shortcuts
SUMMARY_REQUEST = ("Summarise this thread for the people in it: what it is about, what was decided, what is "
                   "still open and who is on it. Keep it short, and attribute points to the people who made them.")
NOT_IN_DM = "I summarise channel threads; in our DM I remember the whole conversation already."
INVITE_ME = "I am not in <#{channel}>, so I cannot read this thread. Invite me (/invite @threadbot) and try again."


def register(app: AsyncApp, services: Services, budgets: EditBudgets, *, reading: Reading) -> None:
    async def handle_summarize_thread(ack: Any, body: dict[str, Any], respond: Any, context: Any,
                                      client: AsyncWebClient) -> None:
        await ack()
        channel = (body.get("channel") or {}).get("id") or ""
        user = (body.get("user") or {}).get("id") or ""
        message = body.get("message") or {}
        action_ts = str(body.get("action_ts") or "")
        if not (channel and user and message.get("ts") and action_ts):
            log.warning("ignoring a malformed %s shortcut", CALLBACK_ID)
            return
        if channel.startswith("D"):
            await respond(text=NOT_IN_DM, response_type="ephemeral")
            return
        try:
            info = await reading.access.info(client, channel)
        except Refused as exc:
            await respond(text=str(exc), response_type="ephemeral")
            return
        if not info.bot_is_member:
            await respond(text=INVITE_ME.format(channel=channel), response_type="ephemeral")
            return
        thread_ts = str(message.get("thread_ts") or message["ts"])
        bot_user_id, bot_id = context.get("bot_user_id") or "", context.get("bot_id")
        # The click is the question (no message of its own in the thread; action_ts keys the turn). Usage
        # is the clicker's; the summary does not make later replies in the thread follow-ups for the bot.
        team_id = (body.get("team") or {}).get("id") or ""
        # Recorded like a question (invariant 13), so a crash mid-summary leaves a notice, not a stuck message;
        # the key makes a redelivered click (Socket Mode, after a slow ack) summarise once.
        record_id = await services.store.claim_turn(f"shortcut:{channel}:{action_ts}", owner=services.owner,
                                                    turn=NewTurn(kind="summary", team_id=team_id, channel_id=channel,
                                                                 thread_ts=thread_ts, ts=action_ts, user_id=user,
                                                                 surface="shortcut", text=SUMMARY_REQUEST))
        if record_id is None:
            return
        turn = Turn(team_id=team_id, channel_id=channel, thread_ts=thread_ts, record_id=record_id,
                    user_id=user, text=SUMMARY_REQUEST, ts=action_ts, surface="shortcut",
                    thread=SlackThreadSource(reading.sync, client, channel_id=channel, thread_ts=thread_ts,
                                             question_ts=None, bot_user_id=bot_user_id, bot_id=bot_id,
                                             answered=False),
                    reader=reading.reader(client, channel_id=channel, thread_ts=thread_ts, user_id=user))
        await services.conversations.handle(turn, await build_reply(services, budgets, client, turn))

    app.shortcut(CALLBACK_ID)(handle_summarize_thread)
