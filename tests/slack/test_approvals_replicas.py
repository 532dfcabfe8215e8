"""Approvals across replicas: two Bolt apps over HTTP (as behind a load balancer), each with its own store
handle on one database. The question is asked by one; the clicks reach the other."""
from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation.approvals import ApprovalRequest
from bot.slack.approvals import APPROVE_ACTION_ID, BLOCK_ID, DENY_ACTION_ID, POLL_S, SlackApprovals
from tests.fakes import slack as fs
from tests.fakes.slack import FakeSlack
from tests.store.test_backends import second

OTHER_USER = "U0OTHER0001"


@asynccontextmanager
async def replica(slack: FakeSlack, store, *, timeout_s: float = 30) -> AsyncIterator[tuple[SlackApprovals, str]]:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    app = AsyncApp(client=client, signing_secret=slack.signing_secret)
    approvals = SlackApprovals(timeout_s=timeout_s, store=store, owner=f"replica-{id(store)}")
    approvals.register(app)
    runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield approvals, f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()


async def question(slack: FakeSlack, thread_ts: str) -> fs.FakeMessage:
    def find():
        return next((m for m in slack.messages_in_thread(fs.CHANNEL_ID, thread_ts)
                     if any(b.get("block_id") == BLOCK_ID for b in m.blocks or [])), None)
    message = await slack.wait_for(find, timeout=10, what="approval question")
    _values[message.ts] = next(e["value"] for b in message.blocks or [] if b.get("block_id") == BLOCK_ID
                               for e in b["elements"])
    return message


_seen_ephemerals: dict[int, int] = {}
_values: dict[str, str] = {}  # approval message ts -> its buttons' value


async def next_ephemeral(slack: FakeSlack):
    """The next chat.postEphemeral call after those already looked at."""
    seen = _seen_ephemerals.get(id(slack), 0)
    calls = await slack.wait_for(lambda: len(slack.calls("chat.postEphemeral")) > seen and
                                 slack.calls("chat.postEphemeral"), timeout=10, what="an ephemeral")
    _seen_ephemerals[id(slack)] = seen + 1
    return calls[seen]


async def click(slack: FakeSlack, url: str, message: fs.FakeMessage, action_id: str, user_id: str) -> None:
    """A button click as Slack sends it (the button's value as first posted: a decided question has none)."""
    value = _values[message.ts]
    payload = fs.block_actions(action_id, value, user_id=user_id, message_ts=message.ts,
                               thread_ts=message.thread_ts, block_id=BLOCK_ID)
    result = await slack.deliver_http(url, payload)
    assert result.status == 200 and result.elapsed < 3.0


async def test_a_click_on_another_replica_decides_and_the_asker_shows_it(slack: FakeSlack, any_store) -> None:
    other_store = await second(any_store)
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    try:
        async with replica(slack, any_store) as (asking, _), replica(slack, other_store) as (_, other_url):
            for action, expected in ((APPROVE_ACTION_ID, True), (DENY_ACTION_ID, False)):
                thread_ts = fs.next_ts()
                request = ApprovalRequest(f"toolu_{action}", "notes_add_note", {"title": "plan"}, fs.USER_ID)
                asked = asyncio.create_task(asking.ask(client, request, channel=fs.CHANNEL_ID, thread_ts=thread_ts))
                message = await question(slack, thread_ts)
                # Another user's click on the other replica: refused there, with the asker's name.
                await click(slack, other_url, message, APPROVE_ACTION_ID, OTHER_USER)
                ephemeral = await next_ephemeral(slack)
                assert (ephemeral.params["user"], ephemeral.params["text"]) == (
                    OTHER_USER, f"Only <@{fs.USER_ID}> can approve this.")
                assert not asked.done()
                clicked = time.monotonic()
                await click(slack, other_url, message, action, fs.USER_ID)
                assert await asyncio.wait_for(asked, 10) is expected
                assert time.monotonic() - clicked < POLL_S + 1.5  # seen promptly, not at the timeout
                shown = slack.message(fs.CHANNEL_ID, message.ts).history[-1]
                assert ("approved" if expected else "declined") in shown
                # A second click, on either replica, hears the question is no longer waiting.
                await click(slack, other_url, message, DENY_ACTION_ID, fs.USER_ID)
                late = await next_ephemeral(slack)
                assert (late.params["user"], late.params["text"]) == (
                    fs.USER_ID, "This request is no longer waiting for an answer.")
    finally:
        await other_store.close()


async def test_no_click_on_any_replica_is_a_deny_by_timeout(slack: FakeSlack, any_store) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    async with replica(slack, any_store, timeout_s=1.2) as (asking, _):
        request = ApprovalRequest("toolu_t", "notes_add_note", {}, fs.USER_ID)
        assert await asking.ask(client, request, channel=fs.CHANNEL_ID, thread_ts=fs.next_ts()) is False
        call = slack.calls("chat.update")[-1]
        assert "No answer within 1.2 seconds" in json.dumps(call.params)
