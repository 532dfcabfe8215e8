"""Interactive listeners: the 👍/👎 feedback buttons under every finished answer."""
from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from bot.slack.feedback import FEEDBACK_ACTION_ID
from bot.slack.web_api import FAILURES, call, reason

log = logging.getLogger(__name__)

THANKS = {"up": "Thanks for the feedback! 👍", "down": "Thanks for the feedback — I'll try to do better. 👎"}


def register(app: AsyncApp, services: Services) -> None:
    async def handle_answer_feedback(ack: Any, body: dict[str, Any], action: dict[str, Any],
                                     client: AsyncWebClient) -> None:
        await ack()
        vote, _, model = str(action.get("value") or "").partition(" ")
        container = body.get("container") or {}
        channel_id = container.get("channel_id") or (body.get("channel") or {}).get("id")
        message = body.get("message") or {}
        message_ts = container.get("message_ts") or message.get("ts")
        user_id = (body.get("user") or {}).get("id")
        if vote not in ("up", "down") or not (channel_id and message_ts and user_id):
            log.warning("ignoring malformed feedback action: %r", action.get("value"))
            return
        thread_ts = message.get("thread_ts") or container.get("thread_ts")
        await services.store.record_feedback(
            team_id=(body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or "",
            channel_id=channel_id, message_ts=message_ts, user_id=user_id, vote=vote,
            model=model or None, thread_ts=thread_ts,
        )
        try:  # visible acknowledgement for the clicker only
            await call(client, "chat.postEphemeral", patient=False, channel=channel_id, user=user_id,
                       text=THANKS[vote], **({"thread_ts": thread_ts} if thread_ts else {}))
        except FAILURES as exc:
            log.info("feedback thanks not shown: %s", reason(exc))

    app.action(FEEDBACK_ACTION_ID)(handle_answer_feedback)
