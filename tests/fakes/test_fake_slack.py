"""The Slack fake behaves like Slack toward the real slack_sdk clients."""
from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack import (
    BOT_ID,
    BOT_USER_ID,
    CHANNEL_ID,
    DM_CHANNEL_ID,
    TEAM_ID,
    USER_ID,
    FakeSlack,
    app_mention,
    block_actions,
    command_form,
    dm_message,
    event_callback,
)

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both slack_sdk clients read proxy variables and ignore NO_PROXY.
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------------ auth


async def test_auth_test_names_the_bot(slack: FakeSlack, client: AsyncWebClient) -> None:
    resp = await client.auth_test()
    assert (resp["user_id"], resp["bot_id"], resp["team_id"]) == (BOT_USER_ID, BOT_ID, TEAM_ID)
    assert slack.calls("auth.test")[0].auth == "bot"


@pytest.mark.parametrize(
    ("token", "error"),
    [(None, "not_authed"), ("xoxb-wrong", "invalid_auth"), ("xapp-1-fake-app-token", "not_allowed_token_type")],
)
async def test_bad_tokens_fail_like_slack(slack: FakeSlack, token: str | None, error: str) -> None:
    bad = AsyncWebClient(token=token, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as info:
        await bad.chat_postMessage(channel=CHANNEL_ID, text="hi")
    assert info.value.response.status_code == 200
    assert info.value.response["error"] == error
    assert slack.bot_messages() == []


async def test_unknown_method(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as info:
        await client.api_call("chat.teleport")
    assert info.value.response["error"] == "unknown_method"


# ------------------------------------------------------------------ messages


async def test_post_and_update_keep_the_final_text(slack: FakeSlack, client: AsyncWebClient) -> None:
    parent = slack.add_message(CHANNEL_ID, "question?")
    first = await client.chat_postMessage(channel=CHANNEL_ID, thread_ts=parent, text="thinking…")
    second = await client.chat_postMessage(channel=CHANNEL_ID, thread_ts=parent, text="part 2")
    assert first["ts"] != second["ts"] and float(first["ts"]) < float(second["ts"])
    assert float(parent) < float(first["ts"])
    assert first["message"]["bot_id"] == BOT_ID and first["message"]["thread_ts"] == parent

    await client.chat_update(channel=CHANNEL_ID, ts=first["ts"], text="Hello")
    await client.chat_update(channel=CHANNEL_ID, ts=first["ts"], text="Hello world")

    msg = slack.message(CHANNEL_ID, first["ts"])
    assert msg is not None and msg.text == "Hello world"
    assert msg.history == ["thinking…", "Hello", "Hello world"]
    assert [m.text for m in slack.messages_in_thread(CHANNEL_ID, parent)] == ["question?", "Hello world", "part 2"]
    # chat.update travels as a JSON body; the fake must have merged it.
    assert slack.calls("chat.update")[-1].params == {"channel": CHANNEL_ID, "ts": first["ts"], "text": "Hello world"}


async def test_update_errors(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.max_text_length = 4000
    posted = await client.chat_postMessage(channel=CHANNEL_ID, text="x")
    with pytest.raises(SlackApiError) as info:
        await client.chat_update(channel=CHANNEL_ID, ts="1600000000.000001", text="y")
    assert info.value.response["error"] == "message_not_found"
    with pytest.raises(SlackApiError) as info:
        await client.chat_update(channel=CHANNEL_ID, ts=posted["ts"], text="y" * 4001)
    assert info.value.response["error"] == "msg_too_long"
    await client.chat_update(channel=CHANNEL_ID, ts=posted["ts"], text="y" * 4000)
    with pytest.raises(SlackApiError) as info:
        await client.chat_update(channel=CHANNEL_ID, ts=posted["ts"], text="z",
                                 blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "a" * 3001}}])
    assert info.value.response["error"] == "invalid_blocks"
    user_ts = slack.add_message(CHANNEL_ID, "mine")
    with pytest.raises(SlackApiError) as info:
        await client.chat_update(channel=CHANNEL_ID, ts=user_ts, text="edited by bot")
    assert info.value.response["error"] == "cant_update_message"
    assert slack.message(CHANNEL_ID, posted["ts"]).text == "y" * 4000
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="general", text="x")
    assert info.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as info, pytest.warns(UserWarning, match="text"):
        await client.chat_postMessage(channel=CHANNEL_ID, text="")
    assert info.value.response["error"] == "no_text"


async def test_form_and_query_arguments_are_merged(slack: FakeSlack, client: AsyncWebClient) -> None:
    resp = await client.api_call("chat.postMessage", params={"channel": CHANNEL_ID}, data={"text": "form text"})
    assert slack.message(CHANNEL_ID, resp["ts"]).text == "form text"


async def test_reactions_delete_replies_and_ephemeral(slack: FakeSlack, client: AsyncWebClient) -> None:
    parent = slack.add_message(CHANNEL_ID, "hi bot")
    await client.reactions_add(channel=CHANNEL_ID, timestamp=parent, name="eyes")
    with pytest.raises(SlackApiError) as info:
        await client.reactions_add(channel=CHANNEL_ID, timestamp=parent, name="eyes")
    assert info.value.response["error"] == "already_reacted"
    assert slack.message(CHANNEL_ID, parent).reactions == {"eyes"}
    await client.reactions_remove(channel=CHANNEL_ID, timestamp=parent, name="eyes")
    assert slack.message(CHANNEL_ID, parent).reactions == set()

    reply = await client.chat_postMessage(channel=CHANNEL_ID, thread_ts=parent, text="answer")
    replies = await client.conversations_replies(channel=CHANNEL_ID, ts=parent)
    assert [m["text"] for m in replies["messages"]] == ["hi bot", "answer"]
    await client.chat_delete(channel=CHANNEL_ID, ts=reply["ts"])
    replies = await client.conversations_replies(channel=CHANNEL_ID, ts=parent)
    assert [m["text"] for m in replies["messages"]] == ["hi bot"]
    with pytest.raises(SlackApiError) as info:
        await client.conversations_replies(channel=CHANNEL_ID, ts="1500000000.000001")
    assert info.value.response["error"] == "thread_not_found"

    eph = await client.chat_postEphemeral(channel=CHANNEL_ID, user=USER_ID, text="only you")
    assert slack.ephemerals == [{"channel": CHANNEL_ID, "user": USER_ID, "text": "only you", "thread_ts": None,
                                 "ts": eph["message_ts"]}]


async def test_users_info(client: AsyncWebClient) -> None:
    user = (await client.users_info(user=USER_ID))["user"]
    assert user["id"] == USER_ID and user["name"] == "alice" and user["tz"]
    with pytest.raises(SlackApiError) as info:
        await client.users_info(user="U0NOBODY")
    assert info.value.response["error"] == "user_not_found"


# ------------------------------------------------------------------ failures and rate limits


async def test_fail_next_429_carries_retry_after(slack: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL_ID, text="a")
    slack.fail_next("chat.update", retry_after=7)
    with pytest.raises(SlackApiError) as info:
        await client.chat_update(channel=CHANNEL_ID, ts=posted["ts"], text="b")
    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "7"
    assert info.value.response["error"] == "ratelimited"
    await client.chat_update(channel=CHANNEL_ID, ts=posted["ts"], text="b")  # only once
    assert slack.count_429("chat.update") == 1
    assert [c.ok for c in slack.calls("chat.update")] == [False, True]


async def test_sdk_retry_handler_honours_retry_after(slack: FakeSlack, client: AsyncWebClient) -> None:
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    slack.fail_next("chat.postMessage", retry_after=0)
    resp = await client.chat_postMessage(channel=CHANNEL_ID, text="eventually")
    assert resp["ok"] and slack.count_429("chat.postMessage") == 1
    assert len(slack.calls("chat.postMessage")) == 2


async def test_fail_next_with_condition_and_plain_error(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.fail_next("chat.postMessage", "not_in_channel", when=lambda p: p.get("channel") == "C0PRIVATE", times=2)
    ok = await client.chat_postMessage(channel=CHANNEL_ID, text="fine")
    assert ok["ok"]
    for _ in range(2):
        with pytest.raises(SlackApiError) as info:
            await client.chat_postMessage(channel="C0PRIVATE", text="x")
        assert info.value.response.status_code == 200 and info.value.response["error"] == "not_in_channel"
    assert (await client.chat_postMessage(channel="C0PRIVATE", text="x"))["ok"]


async def test_token_bucket_rate_limit(slack: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL_ID, text="0")
    slack.rate_limit("chat.update", per_minute=6, burst=3)
    for i in range(3):
        await client.chat_update(channel=CHANNEL_ID, ts=posted["ts"], text=str(i))
    with pytest.raises(SlackApiError) as info:
        await client.chat_update(channel=CHANNEL_ID, ts=posted["ts"], text="too fast")
    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "10"  # 6 per minute = one per 10 s
    assert slack.count_429("chat.update") == 1 and slack.count_429("chat.postMessage") == 0
    assert slack.message(CHANNEL_ID, posted["ts"]).text == "2"


async def test_latency(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.set_latency(0.2, method="auth.test")
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    await client.chat_postMessage(channel=CHANNEL_ID, text="fast")
    assert time.monotonic() - started < 0.2


async def test_wait_for_call_sees_later_calls_and_times_out(slack: FakeSlack, client: AsyncWebClient) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel=CHANNEL_ID, text="late")

    task = asyncio.create_task(later())
    call = await slack.wait_for_call("chat.postMessage", lambda c: c.params.get("text") == "late", timeout=2)
    await task
    assert call.ok and call.response["message"]["text"] == "late"
    with pytest.raises(TimeoutError):
        await slack.wait_for_call("chat.update", timeout=0.05)


# ------------------------------------------------------------------ streaming and assistant threads


async def test_native_stream_through_the_sdk_helper(slack: FakeSlack, client: AsyncWebClient) -> None:
    parent = slack.add_message(CHANNEL_ID, "stream please")
    with pytest.raises(SlackApiError) as info:
        await client.chat_startStream(channel=CHANNEL_ID, thread_ts=parent)
    assert info.value.response["error"] == "invalid_arguments"

    stream = await client.chat_stream(channel=CHANNEL_ID, thread_ts=parent,
                                      recipient_team_id=TEAM_ID, recipient_user_id=USER_ID, buffer_size=5)
    for piece in ["Hello ", "streaming ", "world"]:
        await stream.append(markdown_text=piece)
    await stream.stop()

    start = slack.calls("chat.startStream")[-1]
    assert start.ok
    msg = slack.message(CHANNEL_ID, start.response["ts"])
    assert msg.text == "Hello streaming world" and not msg.streaming and msg.thread_ts == parent
    with pytest.raises(SlackApiError) as info:
        await client.chat_appendStream(channel=CHANNEL_ID, ts=msg.ts, markdown_text="more")
    assert info.value.response["error"] == "message_not_in_streaming_state"


async def test_stream_in_dm_and_chunks(slack: FakeSlack, client: AsyncWebClient) -> None:
    started = await client.chat_startStream(channel=DM_CHANNEL_ID, thread_ts=slack.add_message(DM_CHANNEL_ID, "q"))
    ts = started["ts"]
    await client.chat_appendStream(channel=DM_CHANNEL_ID, ts=ts, chunks=[{"type": "markdown_text", "text": "a"}])
    await client.chat_appendStream(channel=DM_CHANNEL_ID, ts=ts, markdown_text="b")
    for bad, error in [({"markdown_text": "x" * 12_001}, "msg_too_long"),
                       ({"chunks": [{"type": "nonsense"}]}, "invalid_chunks"), ({}, "invalid_arguments")]:
        with pytest.raises(SlackApiError) as info:
            await client.chat_appendStream(channel=DM_CHANNEL_ID, ts=ts, **bad)
        assert info.value.response["error"] == error
    await client.chat_stopStream(channel=DM_CHANNEL_ID, ts=ts, markdown_text="c")
    assert slack.message(DM_CHANNEL_ID, ts).text == "abc"


async def test_assistant_thread_methods(slack: FakeSlack, client: AsyncWebClient) -> None:
    thread = slack.add_message(DM_CHANNEL_ID, "hi")
    await client.assistant_threads_setStatus(channel_id=DM_CHANNEL_ID, thread_ts=thread, status="is thinking…")
    await client.assistant_threads_setTitle(channel_id=DM_CHANNEL_ID, thread_ts=thread, title="Weather")
    await client.assistant_threads_setSuggestedPrompts(
        channel_id=DM_CHANNEL_ID, thread_ts=thread, prompts=[{"title": "Usage", "message": "/usage"}])
    assert slack.assistant_status[(DM_CHANNEL_ID, thread)] == "is thinking…"
    assert slack.assistant_titles[(DM_CHANNEL_ID, thread)] == "Weather"
    assert slack.calls("assistant.threads.setSuggestedPrompts")[0].params["prompts"][0]["title"] == "Usage"
    with pytest.raises(SlackApiError) as info:
        await client.api_call("assistant.threads.setStatus", json={"channel_id": DM_CHANNEL_ID, "status": "x"})
    assert info.value.response["error"] == "invalid_arguments"


# ------------------------------------------------------------------ files


async def test_files_info_and_download(slack: FakeSlack, client: AsyncWebClient) -> None:
    file_id = slack.add_file("notes v1.md", b"# Notes\nhello", mimetype="text/markdown", filetype="markdown")
    info = (await client.files_info(file=file_id))["file"]
    assert info["name"] == "notes v1.md" and info["size"] == 13 and info["mimetype"] == "text/markdown"
    url = info["url_private_download"]
    assert url.startswith(slack.base_url + "/files/")

    async with aiohttp.ClientSession(trust_env=False) as http:
        async with http.get(url, headers={"Authorization": f"Bearer {slack.bot_token}"}) as resp:
            assert resp.status == 200 and resp.content_type == "text/markdown"
            assert await resp.read() == b"# Notes\nhello"
        for headers in ({}, {"Authorization": "Bearer xoxb-wrong"}):
            async with http.get(url, headers=headers) as resp:
                assert resp.status == 200 and resp.content_type == "text/html"
                assert "Sign in" in await resp.text()
    assert slack.downloads == [(file_id, True), (file_id, False), (file_id, False)]
    with pytest.raises(SlackApiError) as err:
        await client.files_info(file="F0MISSING")
    assert err.value.response["error"] == "file_not_found"


# ------------------------------------------------------------------ signed HTTP delivery


@pytest.fixture
async def receiver(slack: FakeSlack):
    """A stand-in app that verifies signatures with the real SignatureVerifier."""
    verifier = SignatureVerifier(slack.signing_secret)
    seen: list[tuple[bytes, dict[str, str]]] = []

    async def events(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((body, dict(request.headers)))
        if not verifier.is_valid_request(body, dict(request.headers)):
            return web.json_response({"error": "invalid request"}, status=401)
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/slack/events", events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/slack/events", seen
    await runner.cleanup()


async def test_deliver_http_signs_events_commands_and_actions(slack: FakeSlack, receiver) -> None:
    url, seen = receiver
    event = event_callback(app_mention("hello"), TEAM_ID, "Ev0001")
    result = await slack.deliver_http(url, event)
    assert result.status == 200
    body, headers = seen[-1]
    assert json.loads(body)["event"]["text"] == f"<@{BOT_USER_ID}> hello"
    assert headers["Content-Type"] == "application/json" and "X-Slack-Retry-Num" not in headers

    result = await slack.deliver_http(url, event, retry_num=1)
    assert result.status == 200
    assert seen[-1][1]["X-Slack-Retry-Num"] == "1" and seen[-1][1]["X-Slack-Retry-Reason"] == "http_timeout"

    form = command_form("/usage", "team", response_url=slack.new_response_url())
    assert (await slack.deliver_http(url, form)).status == 200
    assert parse_qs(seen[-1][0].decode())["command"] == ["/usage"]

    action = block_actions("feedback_up", "1", message_ts="1700000000.000100")
    assert (await slack.deliver_http(url, action)).status == 200
    assert json.loads(parse_qs(seen[-1][0].decode())["payload"][0])["actions"][0]["action_id"] == "feedback_up"

    assert (await slack.deliver_http(url, event, signing_secret="wrong")).status == 401
    assert (await slack.deliver_http(url, event, timestamp=int(time.time()) - 600)).status == 401


async def test_response_url_records_what_the_app_sends(slack: FakeSlack) -> None:
    url = slack.new_response_url()
    resp = await AsyncWebhookClient(url).send(text="Your usage: 1,234 tokens", response_type="ephemeral")
    assert resp.status_code == 200
    assert slack.responses[url] == [{"text": "Your usage: 1,234 tokens", "response_type": "ephemeral"}]
    unknown = await AsyncWebhookClient(url + "x").send(text="lost")
    assert unknown.status_code == 404


# ------------------------------------------------------------------ Socket Mode


async def _socket_client(slack: FakeSlack, received: list[SocketModeRequest], *, ack_payload=None) -> SocketModeClient:
    web_client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    sm = SocketModeClient(app_token=slack.app_token, web_client=web_client, ping_interval=1)

    async def listener(client: SocketModeClient, req: SocketModeRequest) -> None:
        received.append(req)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id, payload=ack_payload))

    sm.socket_mode_request_listeners.append(listener)
    await sm.connect()
    return sm


async def test_socket_mode_delivers_and_records_acks(slack: FakeSlack) -> None:
    received: list[SocketModeRequest] = []
    sm = await _socket_client(slack, received, ack_payload={"text": "ok"})
    try:
        assert slack.calls("apps.connections.open")[0].auth == "app"
        event = event_callback(dm_message("hi there"), TEAM_ID, "Ev0002")
        envelope_id = await slack.push_socket_event(event, retry_attempt=1, retry_reason="timeout")
        ack = await slack.wait_for_ack(envelope_id, timeout=5)
        assert ack == {"envelope_id": envelope_id, "payload": {"text": "ok"}}
        req = received[0]
        assert req.type == "events_api" and req.payload["event"]["channel_type"] == "im"
        assert (req.retry_attempt, req.retry_reason) == (1, "timeout")

        form = command_form("/knowledge", "list", response_url=slack.new_response_url())
        envelope_id = await slack.push_socket_event(form, type="slash_commands")
        await slack.wait_for_ack(envelope_id)
        assert received[-1].type == "slash_commands" and received[-1].accepts_response_payload is True
        assert received[-1].payload["command"] == "/knowledge"
    finally:
        await sm.close()


async def test_socket_mode_disconnect_makes_the_client_reconnect(slack: FakeSlack) -> None:
    received: list[SocketModeRequest] = []
    sm = await _socket_client(slack, received)
    try:
        assert await slack.send_socket_disconnect() == 1
        await slack.wait_for(lambda: slack.socket.connections_opened == 2 and len(slack.socket.connections) == 1,
                             timeout=5, what="a second connection")
        assert len(slack.calls("apps.connections.open")) == 2
        envelope_id = await slack.push_socket_event(event_callback(app_mention("again"), TEAM_ID))
        await slack.wait_for_ack(envelope_id)
        assert received[-1].payload["event"]["text"].endswith("again")
    finally:
        await sm.close()


async def test_socket_mode_needs_the_app_token(slack: FakeSlack, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as info:
        await client.apps_connections_open(app_token=slack.bot_token)
    assert info.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(TimeoutError):
        await slack.push_socket_event({"type": "event_callback"}, connect_timeout=0.05)
    with pytest.raises(TimeoutError):
        await slack.wait_for_ack("never-sent", timeout=0.05)


# ------------------------------------------------------------------ running in a thread


async def test_runs_in_a_thread_for_subprocess_tests() -> None:
    fake = FakeSlack()
    base = fake.start_in_thread()
    try:
        assert base.startswith("http://127.0.0.1:")
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
        posted = await client.chat_postMessage(channel=CHANNEL_ID, text="from another loop")
        assert fake.message(CHANNEL_ID, posted["ts"]).text == "from another loop"
        received: list[SocketModeRequest] = []
        sm = await _socket_client(fake, received)
        try:
            envelope_id = await fake.push_socket_event(event_callback(app_mention("threaded"), TEAM_ID))
            await fake.wait_for_ack(envelope_id)
            assert received[0].payload["event"]["type"] == "app_mention"
        finally:
            await sm.close()
    finally:
        await fake.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession(trust_env=False) as http:
            await http.get(base + "/api/auth.test")


# ------------------------------------------------------------------ the fake serves Bolt as Slack would


async def test_bolt_app_over_http_and_socket_mode(slack: FakeSlack) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_bolt.async_app import AsyncApp

    app = AsyncApp(client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url),
                   signing_secret=slack.signing_secret)

    @app.event("app_mention")
    async def handle_app_mention(event, say) -> None:
        await say(text="pong", thread_ts=event["ts"])

    @app.command("/usage")
    async def handle_usage(ack, respond) -> None:
        await ack("working")
        await respond("done")

    runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        mention = app_mention("ping")
        assert (await slack.deliver_http(url, event_callback(mention, TEAM_ID))).status == 200
        call = await slack.wait_for_call("chat.postMessage")
        assert call.params["thread_ts"] == mention["ts"] and slack.message(CHANNEL_ID, call.response["ts"]).text == "pong"
        response_url = slack.new_response_url()
        result = await slack.deliver_http(url, command_form("/usage", response_url=response_url))
        assert (result.status, result.body) == (200, "working")
        assert await slack.wait_for(lambda: slack.responses[response_url]) == [{"text": "done"}]
    finally:
        await runner.cleanup()

    handler = AsyncSocketModeHandler(app, slack.app_token)
    await handler.connect_async()
    try:
        envelope_id = await slack.push_socket_event(command_form("/usage", response_url=response_url),
                                                    type="slash_commands")
        assert (await slack.wait_for_ack(envelope_id))["payload"] == {"text": "working"}
        assert await slack.wait_for(lambda: len(slack.responses[response_url]) == 2)
    finally:
        await handler.close_async()
