"""Dedupe: Bolt middleware that lets each Slack event, and each answered message, through once (invariant 2).

Slack redelivers an event it thinks was not acked (same `event_id`, `X-Slack-Retry-Num`), also to
another replica or after a restart, and Bolt does not drop those. One message can also arrive as two
event types (a mention in a DM is an `app_mention` and a `message.im`; a follow-up that @mentions the
bot is a `message.channels` and an `app_mention`). So before any listener runs, the event's keys are
claimed durably in the store, `event:<event_id>` for every event and `msg:<channel>:<ts>` for a
message the listeners answer, and whatever was claimed before is acked and dropped (invariant 1:
acked all the same). A message that is answered is recorded as a durable turn in the same transaction
as its claim (bot/store turns), so a question that was acked is never forgotten, even if the process
dies before answering it: bot/slack/recovery.py answers or closes it after a restart.
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.store import NewTurn, Store

log = logging.getLogger(__name__)

# Where the listeners find how the event's message is answered ("mention", "dm"; None: not answered),
# decided once, here, so the claim and the answer never disagree.
ANSWER_AS = "threadbot_answer_as"

AnsweredAs = Callable[[dict[str, Any], "str | None"], Awaitable["str | None"]]
# Where the listeners find the id of the answered message's durable turn record.
TURN_RECORD = "threadbot_turn_record"
# The turn record of an answered event: (event_callback body, how it is answered, bot user id, bot id).
TurnRecord = Callable[[dict[str, Any], str, "str | None", "str | None"], NewTurn]


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

    def __init__(self, store: Store, *, answered_as: AnsweredAs, record: TurnRecord | None = None,
                 owner: str = ""):
        self.store = store
        self.answered_as = answered_as
        self.record = record
        self.owner = owner  # this process, as the owner of the turns it records

    async def async_process(self, *, req: AsyncBoltRequest, resp: BoltResponse,
                            next: Callable[[], Awaitable[BoltResponse]]) -> BoltResponse:
        if req.body.get("type") != "event_callback":
            return await next()
        event = req.body.get("event") or {}
        surface = await self.answered_as(event, req.context.bot_user_id)
        req.context[ANSWER_AS] = surface
        keys = claim_keys(req.body, answered=surface is not None)
        if surface is not None and self.record is not None:
            turn = self.record(req.body, surface, req.context.bot_user_id, req.context.get("bot_id"))
            req.context[TURN_RECORD] = record_id = await self.store.claim_turn(*keys, turn=turn, owner=self.owner)
            claimed = record_id is not None
        else:
            claimed = not keys or await self.store.claim_event(*keys)
        if not claimed:
            log.info("dropping duplicate %s event %s (%s)", event.get("type"), req.body.get("event_id"),
                     ", ".join(keys))
            return await req.context.ack()
        return await next()
