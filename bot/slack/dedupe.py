"""Dedupe: Bolt middleware that lets each Slack event, and each answered message, through once (invariant 2).

Slack redelivers an event it thinks was not acked (same `event_id`, `X-Slack-Retry-Num`), also to
another replica or after a restart, and Bolt does not drop those. One message can also arrive as two
event types (a mention in a DM is an `app_mention` and a `message.im`; a follow-up that @mentions the
bot is a `message.channels` and an `app_mention`). So before any listener runs, the event's keys are
claimed durably in the store, `event:<event_id>` for every event and `msg:<channel>:<ts>` for a
message the listeners answer, and whatever was claimed before is acked and dropped (invariant 1:
acked all the same).
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.store import Store

log = logging.getLogger(__name__)

# Where the listeners find how the event's message is answered ("mention", "dm"; None: not answered),
# decided once, here, so the claim and the answer never disagree.
ANSWER_AS = "threadbot_answer_as"

AnsweredAs = Callable[[dict[str, Any], "str | None"], Awaitable["str | None"]]


def claim_keys(body: dict[str, Any], *, answered: bool) -> list[str]:
    """The de-duplication keys of one event_callback body; `answered`: the listeners answer its message."""
    event = body.get("event") or {}
    keys = [f"event:{body['event_id']}"] if body.get("event_id") else []
    # Only a message that is answered claims its channel+ts: an event the listeners ignore must not
    # keep the event that does answer the same message (e.g. a mention) from getting through.
    if answered:
        keys.append(f"msg:{event['channel']}:{event['ts']}")
    return keys


class Dedupe(AsyncMiddleware):
    """Claims each event's keys before the listeners see it; a request whose keys were claimed before is
    acked and goes no further. `answered_as(event, bot_user_id)` is the listeners' own rule for how an
    event's message is answered (not None only for an event with channel and ts)."""

    def __init__(self, store: Store, *, answered_as: AnsweredAs):
        self.store = store
        self.answered_as = answered_as

    async def async_process(self, *, req: AsyncBoltRequest, resp: BoltResponse,
                            next: Callable[[], Awaitable[BoltResponse]]) -> BoltResponse:
        if req.body.get("type") != "event_callback":
            return await next()
        event = req.body.get("event") or {}
        surface = await self.answered_as(event, req.context.bot_user_id)
        req.context[ANSWER_AS] = surface
        keys = claim_keys(req.body, answered=surface is not None)
        if keys and not await self.store.claim_event(*keys):
            log.info("dropping duplicate %s event %s (%s)", event.get("type"), req.body.get("event_id"),
                     ", ".join(keys))
            return await req.context.ack()
        return await next()
