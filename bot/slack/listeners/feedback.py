"""Interactive listeners: the 👍/👎 feedback buttons under every finished answer."""
from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from bot.slack.web_api import FAILURES, call, reason

log = logging.getLogger(__name__)

FEEDBACK_ACTION_ID = "answer_feedback"
FEEDBACK_BLOCK_ID = "answer_feedback"
THANKS = {"up": "Thanks for the feedback! 👍", "down": "Thanks for the feedback — I'll try to do better. 👎"}


def feedback_blocks(model: str) -> list[dict[str, Any]]:
    """Slack's own feedback buttons (context_actions / feedback_buttons) for the last part of an answer.

    Each button's value carries the vote and the model that wrote the answer, so a click can be
    recorded without looking anything up.
    """
    def button(emoji: str, label: str, vote: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": emoji}, "accessibility_label": label,
                "value": f"{vote} {model}"[:2000]}

    return [{
        "type": "context_actions",
        "block_id": FEEDBACK_BLOCK_ID,
        "elements": [{
            "type": "feedback_buttons",
            "action_id": FEEDBACK_ACTION_ID,
            "positive_button": button("👍", "Good answer", "up"),
            "negative_button": button("👎", "Bad answer", "down"),
        }],
    }]


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
