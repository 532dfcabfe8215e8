"""Approval in Slack: a message in the thread with Approve/Deny buttons; only the asking user decides."""
from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation.approvals import ApprovalRequest
from bot.slack.web_api import FAILURES, call, reason
from bot.store import NewTurn, Store

log = logging.getLogger(__name__)

# With several replicas the click may reach another one: the waiter also reads the store this often.
POLL_S = 0.5
APPROVE_ACTION_ID = "tool_approve"
DENY_ACTION_ID = "tool_deny"
BLOCK_ID = "tool_approval"
Outcome = Literal["approved", "denied", "timeout"]


@dataclass
class _Waiting:
    user_id: str
    decided: asyncio.Future[tuple[bool, str]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


def _escape(text: str) -> str:
    # Model-chosen text in mrkdwn: no mentions or links it could smuggle in.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _describe(request: ApprovalRequest) -> str:
    arguments = request.readable_arguments()
    lines = [f"<@{request.user_id}>, I'd like to run *{_escape(request.tool)}*" + (" with:" if arguments else ".")]
    lines += [f"• `{_escape(name)}`: {_escape(value)}" for name, value in arguments]
    return "\n".join(lines)


def question_blocks(request: ApprovalRequest, approval_id: str) -> list[dict[str, Any]]:
    def button(text: str, action_id: str, style: str) -> dict[str, Any]:
        return {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id,
                "value": approval_id, "style": style}

    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": _describe(request)[:2900]}},
        {"type": "actions", "block_id": BLOCK_ID, "elements": [
            button("Approve", APPROVE_ACTION_ID, "primary"), button("Deny", DENY_ACTION_ID, "danger")]},
    ]


def decision_text(request: ApprovalRequest, outcome: Outcome, *, timeout_s: float) -> str:
    tool = f"*{_escape(request.tool)}*"
    if outcome == "approved":
        return f"✅ <@{request.user_id}> approved running {tool}."
    if outcome == "denied":
        return f"🚫 <@{request.user_id}> declined running {tool}; it was not run."
    return f"⏱️ No answer within {_duration(timeout_s)}, so {tool} was not run."


def _outcome(decision: str) -> Outcome:
    """A decision the store recorded, as this module's outcome (a closed question was not approved)."""
    return decision if decision in ("approved", "denied") else "timeout"  # type: ignore[return-value]


def _duration(seconds: float) -> str:
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"


class SlackApprovals:
    """The approval questions this process is waiting on, and the button listener that answers them.

    With a store, a click is recorded there by whichever process Slack sent it to (replicas behind a load
    balancer), and the waiting process reads it: at once when the click came to it, else within POLL_S.
    The store also settles a click racing the timeout: the first decision recorded stands."""

    def __init__(self, *, timeout_s: float, store: Store | None = None, owner: str | None = None):
        self.timeout_s = timeout_s
        # With a store, each question is a durable turn until its decision is shown: after a crash the
        # restart edits it to say it was interrupted (its buttons would answer nobody).
        self.store = store
        self.turn_owner = owner  # this process, as the owner of the turns it records
        self._waiting: dict[str, _Waiting] = {}

    async def ask(self, client: AsyncWebClient, request: ApprovalRequest, *, channel: str, thread_ts: str) -> bool:
        """Post the question, wait for the asking user's click (or the timeout), show the decision."""
        approval_id = secrets.token_urlsafe(12)
        first_line = f"Approval needed: {request.tool}"
        # Waiting before the question is posted: a quick click may arrive before chat.postMessage returns.
        waiting = self._waiting[approval_id] = _Waiting(request.user_id)
        if self.store is not None:  # before the question is posted, for a click that reaches another replica
            await self.store.open_approval(approval_id, user_id=request.user_id)
        try:
            posted = await call(client, "chat.postMessage", channel=channel, thread_ts=thread_ts, text=first_line,
                                blocks=question_blocks(request, approval_id))
        except FAILURES as exc:
            self._waiting.pop(approval_id, None)
            if self.store is not None:
                await self.store.close_approval(approval_id, decision="closed")
            log.warning("could not ask approval for %s in %s: %s", request.tool, channel, reason(exc))
            return False
        record_id = None
        if self.store is not None and self.turn_owner is not None:
            record_id = await self.store.claim_turn(owner=self.turn_owner, turn=NewTurn(
                kind="approval", team_id="", channel_id=channel, thread_ts=thread_ts, ts=posted["ts"],
                user_id=request.user_id, text=request.tool, reply_ts=posted["ts"],
                details={"interrupted": f"⏹️ I was restarted before a decision, so *{_escape(request.tool)}* "
                                        "was not run.", "approval_id": approval_id}))
        try:
            outcome = await self._decision(approval_id, waiting)
            approved = outcome == "approved"
        except asyncio.CancelledError:
            # Shutting down: the buttons would answer nobody. Say so, and record it as closed.
            if record_id is not None and self.store is not None:
                stopped = f"⏹️ I was stopped before a decision, so *{_escape(request.tool)}* was not run."
                try:
                    await call(client, "chat.update", channel=channel, ts=posted["ts"], text=stopped, blocks=[])
                except FAILURES as exc:
                    log.warning("could not close the approval question in %s: %s", channel, reason(exc))
                await self.store.finish_turn(record_id, outcome="closed")
            if self.store is not None:
                await asyncio.shield(self.store.close_approval(approval_id, decision="closed"))
            raise
        finally:
            self._waiting.pop(approval_id, None)
        text = decision_text(request, outcome, timeout_s=self.timeout_s)
        try:
            await call(client, "chat.update", channel=channel, ts=posted["ts"], text=text,
                       blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])
        except FAILURES as exc:
            log.warning("could not show the approval decision in %s: %s", channel, reason(exc))
        if record_id is not None and self.store is not None:
            await self.store.finish_turn(record_id, outcome=outcome)
        return approved

    async def _decision(self, approval_id: str, waiting: _Waiting) -> Outcome:
        """The click (here, or recorded in the store by another process), or the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while (left := deadline - loop.time()) > 0:
            try:
                approved, _ = await asyncio.wait_for(asyncio.shield(waiting.decided),
                                                     left if self.store is None else min(left, POLL_S))
                return "approved" if approved else "denied"
            except asyncio.TimeoutError:
                pass
            if self.store is not None and (found := await self.store.approval_decision(approval_id)) is not None:
                return _outcome(found)
        if self.store is None:
            return "timeout"
        # A click may land at the last moment: whichever the store recorded first stands.
        return _outcome(await self.store.close_approval(approval_id, decision="timeout"))

    async def decide(self, approval_id: str, user_id: str, approved: bool
                     ) -> tuple[Literal["decided", "not_yours", "gone"], str | None]:
        """Record a click; (what it did, the user who may decide). The store decides when there is one."""
        waiting = self._waiting.get(approval_id)
        if self.store is not None:
            recorded = await self.store.decide_approval(approval_id, user_id=user_id,
                                                        decision="approved" if approved else "denied")
            result, owner = recorded.result, recorded.owner
        elif waiting is None or waiting.decided.done():
            result, owner = "gone", waiting.user_id if waiting else None
        else:
            result, owner = ("decided" if user_id == waiting.user_id else "not_yours"), waiting.user_id
        if result == "decided" and waiting is not None and not waiting.decided.done():
            waiting.decided.set_result((approved, user_id))  # waiting here: it goes on at once
        return result, owner

    def register(self, app: AsyncApp) -> None:
        async def handle_tool_approval(ack: Any, body: dict[str, Any], action: dict[str, Any],
                                       client: AsyncWebClient) -> None:
            await ack()
            approval_id = str(action.get("value") or "")
            user_id = (body.get("user") or {}).get("id") or ""
            container = body.get("container") or {}
            channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
            thread_ts = (body.get("message") or {}).get("thread_ts") or container.get("thread_ts")
            result, owner = await self.decide(approval_id, user_id, action.get("action_id") == APPROVE_ACTION_ID)
            if result == "decided" or not channel:
                return
            text = (f"Only <@{owner}> can approve this." if result == "not_yours"
                    else "This request is no longer waiting for an answer.")
            try:
                await call(client, "chat.postEphemeral", patient=False, channel=channel, user=user_id, text=text,
                           **({"thread_ts": thread_ts} if thread_ts else {}))
            except FAILURES as exc:
                log.warning("chat.postEphemeral failed: %s", reason(exc))

        app.action(APPROVE_ACTION_ID)(handle_tool_approval)
        app.action(DENY_ACTION_ID)(handle_tool_approval)
