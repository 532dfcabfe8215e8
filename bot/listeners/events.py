"""Event listeners: mentions and DMs become Turns; everything else subscribed is acked and ignored."""
from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation import Turn
from bot.reply import SlackReply
from bot.runtime import Runtime

log = logging.getLogger(__name__)

# Message subtypes that are a person saying something new; edits, deletions, joins etc. are not.
ANSWERABLE_SUBTYPES = {None, "file_share", "thread_broadcast"}


def register(app: AsyncApp, runtime: Runtime) -> None:
    async def handle_app_mention(body: dict[str, Any], event: dict[str, Any], context: Any,
                                 client: AsyncWebClient) -> None:
        await _answer(runtime, client, body, event, surface="mention", bot_user_id=context.get("bot_user_id"))

    async def handle_message(body: dict[str, Any], event: dict[str, Any], context: Any,
                             client: AsyncWebClient) -> None:
        # Bolt already drops our own messages; drop other bots, edits and deletions here.
        if event.get("channel_type") != "im" or event.get("bot_id") or event.get("subtype") not in ANSWERABLE_SUBTYPES:
            return
        await _answer(runtime, client, body, event, surface="dm", bot_user_id=context.get("bot_user_id"))

    app.event("app_mention")(handle_app_mention)
    app.event("message")(handle_message)


async def _answer(runtime: Runtime, client: AsyncWebClient, body: dict[str, Any], event: dict[str, Any], *,
                  surface: str, bot_user_id: str | None) -> None:
    channel, ts, user = event.get("channel"), event.get("ts"), event.get("user")
    if not (channel and ts and user):
        log.warning("ignoring malformed %s event %s", event.get("type"), body.get("event_id"))
        return
    # Durable de-duplication: a retry has the same event_id; the same message can also arrive under
    # another event (e.g. a mention inside a DM), hence the channel+ts key.
    keys = [f"msg:{channel}:{ts}"]
    if body.get("event_id"):
        keys.insert(0, f"event:{body['event_id']}")
    if not runtime.store.claim_event(*keys):
        log.info("dropping duplicate event %s (%s:%s)", body.get("event_id"), channel, ts)
        return
    turn = Turn(
        team_id=body.get("team_id") or event.get("team") or "",
        channel_id=channel,
        thread_ts=event.get("thread_ts") or ts,
        user_id=user,
        text=strip_mention(event.get("text") or "", bot_user_id),
        ts=ts,
        surface=surface,
        files=list(event.get("files") or []),
    )
    reply = SlackReply(client, runtime.budget, channel=channel, thread_ts=turn.thread_ts)
    await runtime.conversations.handle(turn, reply)


def strip_mention(text: str, bot_user_id: str | None) -> str:
    """Remove the bot's own <@U…> mention so the model sees the question only."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", "", text)
    return text.strip()
