"""Loopback fake of Slack: Web API, file downloads, response_url, signed event delivery, Socket Mode."""
from __future__ import annotations

import asyncio
import inspect
import hashlib
import hmac
import itertools
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from tests.fakes.slack_conversations import ConversationsMixin, SlackApiFailure, ts_key
from tests.fakes.slack_socket import SocketModeHub

TEAM_ID = "T0TEAM"
APP_ID = "A0APP"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
USER_ID = "U0ALICE"
CHANNEL_ID = "C0GENERAL"
DM_CHANNEL_ID = "D0ALICE"
BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-1-fake-app-token"
SIGNING_SECRET = "fake-signing-secret"

APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
STREAM_TEXT_LIMIT = 12_000  # markdown_text per call
LOGIN_PAGE = (
    "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Slack</title></head>"
    "<body><h1>Sign in to your workspace</h1><form action=\"/signin\" method=\"post\">"
    "<input name=\"domain\"></form></body></html>"
)

# Process-wide clock so bot messages, user messages and events sort in the order they were made.
_ts_counter = itertools.count(1)


def next_ts() -> str:
    """A unique, increasing Slack timestamp such as "1700000000.000100"."""
    micros = 1_700_000_000_000_000 + next(_ts_counter) * 100
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _missing(*names: str) -> SlackApiFailure:
    return SlackApiFailure(
        "invalid_arguments",
        response_metadata={"messages": [f"[ERROR] missing required field: {n}" for n in names]},
    )


@dataclass
class SlackCall:
    """One Web API request as the fake saw it."""

    method: str
    params: dict[str, Any]
    at: float
    auth: str | None  # "bot", "app", "invalid" or None (no token)
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return self.response.get("error")


@dataclass
class FakeMessage:
    channel: str
    ts: str
    text: str
    user: str
    bot_id: str | None = None
    thread_ts: str | None = None
    blocks: list[dict[str, Any]] | None = None
    history: list[str] = field(default_factory=list)  # text after post and after every update
    reactions: set[str] = field(default_factory=set)
    deleted: bool = False
    streaming: bool = False
    subtype: str | None = None  # "bot_message", "thread_broadcast", "channel_join", "file_share", …
    files: list[dict[str, Any]] | None = None
    edited: str | None = None  # ts of the last edit

    def to_api(self, team_id: str) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "message", "text": self.text, "user": self.user, "ts": self.ts, "team": team_id}
        if self.bot_id:
            data["bot_id"] = self.bot_id
        if self.thread_ts:
            data["thread_ts"] = self.thread_ts
        if self.blocks:
            data["blocks"] = self.blocks
        if self.subtype:
            data["subtype"] = self.subtype
        if self.files:
            data["files"] = self.files
        if self.edited:
            data["edited"] = {"user": self.user, "ts": self.edited}
        return data


@dataclass
class FakeFile:
    id: str
    name: str
    content: bytes
    mimetype: str
    filetype: str
    user: str
    title: str
    channels: list[str]
    created: int = field(default_factory=lambda: int(time.time()))
    url_override: str | None = None  # url_private(_download) pointing elsewhere (token-leak tests)

    def to_api(self, base_url: str) -> dict[str, Any]:
        url = self.url_override or f"{base_url}/files/{self.id}/{quote(self.name)}"
        return {
            "id": self.id, "created": self.created, "timestamp": self.created, "name": self.name,
            "title": self.title, "mimetype": self.mimetype, "filetype": self.filetype,
            "pretty_type": self.filetype.upper(), "user": self.user, "size": len(self.content),
            "mode": "hosted", "is_external": False, "is_public": False, "channels": self.channels,
            "url_private": url, "url_private_download": url, "permalink": f"{base_url}/archives/{self.id}",
        }


@dataclass
class HttpResult:
    """What the app answered to a delivered event, command or interaction."""

    status: int
    body: str
    headers: dict[str, str]
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Injected:
    method: str
    error: str
    status: int
    retry_after: int | None
    remaining: int
    when: Callable[[dict[str, Any]], bool] | None


@dataclass
class _Bucket:
    per_second: float
    capacity: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0 when a request may pass, else seconds until one token is back."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_second


class FakeSlack(ConversationsMixin):
    """Slack on 127.0.0.1: start with `await start()` in a test's loop or `start_in_thread()` for subprocesses."""

    def __init__(
        self,
        *,
        bot_token: str = BOT_TOKEN,
        app_token: str = APP_TOKEN,
        signing_secret: str = SIGNING_SECRET,
        team_id: str = TEAM_ID,
        app_id: str = APP_ID,
        bot_user_id: str = BOT_USER_ID,
        bot_id: str = BOT_ID,
        max_text_length: int = 40_000,
    ) -> None:
        self.bot_token, self.app_token, self.signing_secret = bot_token, app_token, signing_secret
        self.team_id, self.app_id, self.bot_user_id, self.bot_id = team_id, app_id, bot_user_id, bot_id
        self.max_text_length = max_text_length
        self.latency: dict[str, float] = {}  # method (or "*") -> seconds added before answering
        self.socket = SocketModeHub(app_id=app_id)
        self.users: dict[str, dict[str, Any]] = {}
        self.files: dict[str, FakeFile] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.downloads: list[tuple[str, bool]] = []  # (file id, authorized)
        self.responses: dict[str, list[Any]] = {}  # response_url -> bodies posted to it
        self.assistant_status: dict[tuple[str, str], str] = {}
        self.assistant_titles: dict[tuple[str, str], str] = {}
        self.home_views: dict[str, dict[str, Any]] = {}  # user id -> the Home tab view last published
        self._calls: list[SlackCall] = []
        self._messages: dict[tuple[str, str], FakeMessage] = {}
        self._injected: list[_Injected] = []
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._file_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self._init_conversations()
        self.add_user(USER_ID, name="alice", real_name="Alice Example")
        self.add_user(bot_user_id, name="threadbot", real_name="threadbot", is_bot=True)
        self.add_channel(CHANNEL_ID, name="general", members=[USER_ID])
        self.add_channel(DM_CHANNEL_ID, name=DM_CHANNEL_ID, is_im=True, members=[USER_ID])
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.startStream": self._chat_start_stream,
            "chat.appendStream": self._chat_append_stream,
            "chat.stopStream": self._chat_stop_stream,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "files.info": self._files_info,
            "assistant.threads.setStatus": self._assistant_set_status,
            "assistant.threads.setTitle": self._assistant_set_title,
            "assistant.threads.setSuggestedPrompts": self._assistant_set_suggested_prompts,
            "views.publish": self._views_publish,
            **self._conversation_handlers(),
        }

    # ---------------------------------------------------------------- lifecycle

    @property
    def api_url(self) -> str:
        """What SLACK_API_URL / AsyncWebClient(base_url=…) should be."""
        return f"{self.base_url}/api/"

    async def start(self) -> str:
        self._loop = asyncio.get_running_loop()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_get("/files/{file_id}/{name}", self._handle_file)
        app.router.add_post("/commands/{team}/{n}/{secret}", self._handle_response_url)
        app.router.add_get("/socket", self.socket.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._thread is not None:
            await asyncio.to_thread(self.stop_thread)
            return
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self.socket.close_all()
            await self._runner.cleanup()
            self._runner = None

    def start_in_thread(self) -> str:
        """Run the fake on its own loop in a daemon thread; returns the base URL."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # surface start-up failures in the caller's thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-slack", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self.base_url

    def stop_thread(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _on_server_loop(self, coro: Any) -> Any:
        if self._loop is None:
            raise RuntimeError("FakeSlack is not started")
        if asyncio.get_running_loop() is self._loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    # ---------------------------------------------------------------- test controls

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        *,
        status: int | None = None,
        retry_after: int | None = None,
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` (matching `when(params)`) with `error`."""
        if status is None:
            status = 429 if error == "ratelimited" else 200
        if retry_after is None and status == 429:
            retry_after = 1
        with self._lock:
            self._injected.append(_Injected(method, error, status, retry_after, times, when))

    def rate_limit(self, method: str, *, per_minute: float, burst: int) -> None:
        """A token bucket for `method`; beyond it: 429, Retry-After and error "ratelimited"."""
        with self._lock:
            self._buckets[method] = _Bucket(per_minute / 60.0, float(burst), float(burst), time.monotonic())

    def set_latency(self, seconds: float, *, method: str = "*") -> None:
        self.latency[method] = seconds

    def add_user(self, user_id: str, *, name: str, real_name: str = "", tz: str = "Europe/Berlin",
                 is_admin: bool = False, is_bot: bool = False, email: str | None = None) -> None:
        profile = {"real_name": real_name or name, "display_name": name}
        if email:
            profile["email"] = email
        self.users[user_id] = {
            "id": user_id, "team_id": self.team_id, "name": name, "real_name": real_name or name,
            "deleted": False, "tz": tz, "tz_offset": 3600, "is_admin": is_admin, "is_bot": is_bot,
            "profile": profile,
        }

    def add_message(self, channel: str, text: str, *, user: str = USER_ID, thread_ts: str | None = None,
                    ts: str | None = None, files: list[dict[str, Any]] | None = None, subtype: str | None = None,
                    bot_id: str | None = None) -> str:
        """Seed a message a person (or, with `bot_id`, another app) wrote; returns its ts."""
        if files and subtype is None:
            subtype = "file_share"
        msg = FakeMessage(channel=channel, ts=ts or next_ts(), text=text, user=user, thread_ts=thread_ts,
                          files=files, subtype=subtype, bot_id=bot_id)
        msg.history.append(text)
        self._messages[(channel, msg.ts)] = msg
        return msg.ts

    def add_thread(self, channel: str, parent: str, replies: list[tuple[str, str]], *,
                   user: str = USER_ID) -> str:
        """Seed a parent by `user` and `replies` as (user, text) pairs, in order; returns the parent's ts."""
        parent_ts = self.add_message(channel, parent, user=user)
        for author, text in replies:
            self.add_message(channel, text, user=author, thread_ts=parent_ts)
        return parent_ts

    def edit_message(self, channel: str, ts: str, text: str) -> dict[str, Any]:
        """A person edits a message; returns the `message_changed` event Slack would send."""
        msg = self._messages[(channel, ts)]
        previous = msg.to_api(self.team_id)
        msg.text, msg.edited = text, next_ts()
        msg.history.append(text)
        return message_changed(channel, msg.to_api(self.team_id), previous)

    def delete_message(self, channel: str, ts: str) -> dict[str, Any]:
        """A person deletes a message; returns the `message_deleted` event Slack would send."""
        msg = self._messages[(channel, ts)]
        previous = msg.to_api(self.team_id)
        msg.deleted = True
        return message_deleted(channel, ts, previous, thread_ts=msg.thread_ts)

    def user_message(self, channel: str, text: str, *, user: str = USER_ID, thread_ts: str | None = None,
                     mention: bool = False) -> dict[str, Any]:
        """Record a message a person sends now and return its event: `app_mention` if `mention`, else `message`."""
        if mention and f"<@{self.bot_user_id}>" not in text:
            text = f"<@{self.bot_user_id}> {text}"
        ts = self.add_message(channel, text, user=user, thread_ts=thread_ts)
        if mention:
            return app_mention(text, user=user, channel=channel, ts=ts, thread_ts=thread_ts, team=self.team_id,
                               bot_user_id=self.bot_user_id)
        kind = self.channels[channel] if channel in self.channels else None
        channel_type = "channel"
        if kind is not None and (kind.is_im or kind.is_mpim or kind.is_private):
            channel_type = "im" if kind.is_im else "mpim" if kind.is_mpim else "group"
        return message_event(text, user=user, channel=channel, channel_type=channel_type, ts=ts,
                             thread_ts=thread_ts, team=self.team_id)

    def add_file(self, name: str, content: bytes, *, mimetype: str = "text/plain", filetype: str = "text",
                 user: str = USER_ID, title: str | None = None, channels: list[str] | None = None,
                 url_override: str | None = None) -> str:
        file_id = f"F0FILE{next(self._file_ids):04d}"
        self.files[file_id] = FakeFile(file_id, name, content, mimetype, filetype, user, title or name,
                                       list(channels or []), url_override=url_override)
        return file_id

    def new_response_url(self) -> str:
        url = f"{self.base_url}/commands/{self.team_id}/{uuid.uuid4().int % 10**12}/{uuid.uuid4().hex[:24]}"
        self.responses[url] = []
        return url

    # ---------------------------------------------------------------- inspection

    def calls(self, method: str | None = None) -> list[SlackCall]:
        return [c for c in list(self._calls) if method is None or c.method == method]

    def count_429(self, method: str | None = None) -> int:
        return sum(1 for c in self.calls(method) if c.status == 429)

    def message(self, channel: str, ts: str) -> FakeMessage | None:
        return self._messages.get((channel, ts))

    def messages_in_thread(self, channel: str, thread_ts: str) -> list[FakeMessage]:
        """Parent first, then replies, in ts order, without deleted ones (like conversations.replies)."""
        found = [m for (ch, _), m in list(self._messages.items())
                 if ch == channel and not m.deleted and (m.ts == thread_ts or m.thread_ts == thread_ts)]
        return sorted(found, key=lambda m: (m.ts != thread_ts, ts_key(m.ts)))

    def bot_messages(self, channel: str | None = None) -> list[FakeMessage]:
        return sorted((m for m in list(self._messages.values())
                       if m.bot_id and not m.deleted and (channel is None or m.channel == channel)),
                      key=lambda m: float(m.ts))

    async def wait_for(self, predicate: Callable[[], Any], *, timeout: float = 5.0,
                       what: str | Callable[[], str] = "condition") -> Any:
        """Poll `predicate` (from any loop or thread) until it returns something truthy; a predicate
        may also return an awaitable (e.g. a store read), which is awaited."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
            await asyncio.sleep(0.01)

    def wait_for_sync(self, predicate: Callable[[], Any], *, timeout: float = 5.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.01)
        return value

    async def wait_for_call(self, method: str, predicate: Callable[[SlackCall], bool] | None = None, *,
                            timeout: float = 5.0) -> SlackCall:
        return await self.wait_for(
            lambda: next((c for c in self.calls(method) if predicate is None or predicate(c)), None),
            timeout=timeout,
            what=lambda: f"a matching {method} call; seen: {[(c.method, c.error) for c in self.calls()][-20:]}",
        )

    # ---------------------------------------------------------------- Socket Mode

    async def push_socket_event(self, payload: dict[str, Any], *, type: str = "events_api", retry_attempt: int = 0,
                                retry_reason: str = "", accepts_response_payload: bool | None = None,
                                envelope_id: str | None = None, connect_timeout: float = 5.0) -> str:
        """Send one envelope to the newest connected client; returns its envelope_id."""
        return await self._on_server_loop(self.socket.push(
            payload, type=type, retry_attempt=retry_attempt, retry_reason=retry_reason,
            accepts_response_payload=accepts_response_payload, envelope_id=envelope_id,
            connect_timeout=connect_timeout))

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        return await self.wait_for(lambda: self.socket.acks.get(envelope_id), timeout=timeout,
                                   what=f"an ack of envelope {envelope_id}")

    async def send_socket_disconnect(self, reason: str = "refresh_requested") -> int:
        return await self._on_server_loop(self.socket.send_disconnect(reason))

    # ---------------------------------------------------------------- signed HTTP delivery

    async def deliver_http(self, url: str, payload: dict[str, Any], *, retry_num: int | None = None,
                           retry_reason: str = "http_timeout", signing_secret: str | None = None,
                           timestamp: int | None = None, timeout: float = 10.0) -> HttpResult:
        """POST an event (JSON), slash command (form) or interaction (form `payload`) signed as Slack does."""
        body, content_type = encode_body(payload)
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(signing_secret or self.signing_secret, ts, body),
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason
        started = time.monotonic()
        async with aiohttp.ClientSession(trust_env=False) as session:
            async with session.post(url, data=body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                text = await resp.text()
                return HttpResult(resp.status, text, dict(resp.headers), time.monotonic() - started)

    # ---------------------------------------------------------------- HTTP handlers

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call = SlackCall(method=method, params=await _read_params(request), at=time.time(), auth=None)
        delay = self.latency.get(method, self.latency.get("*", 0.0))
        if delay:
            await asyncio.sleep(delay)
            # Latency is the way to Slack: a caller that died meanwhile (SIGKILL) never reached it.
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499)
        headers: dict[str, str] = {}
        try:
            call.auth = self._authenticate(request, call.params)
            self._check_token_type(method, call.auth)
            self._apply_injected(method, call.params, headers, call)
            body = {"ok": True, **self._handlers[method](call.params)}
        except SlackApiFailure as failure:
            body = {"ok": False, "error": failure.error, **failure.extra}
        call.response = body
        self._calls.append(call)
        return web.json_response(body, status=call.status, headers=headers)

    def _authenticate(self, request: web.Request, params: dict[str, Any]) -> str:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else params.pop("token", None)
        if not token:
            raise SlackApiFailure("not_authed")
        if token == self.bot_token:
            return "bot"
        if token == self.app_token:
            return "app"
        raise SlackApiFailure("invalid_auth")

    def _check_token_type(self, method: str, auth: str) -> None:
        if method not in self._handlers:
            raise SlackApiFailure("unknown_method", req_method=method)
        if (auth == "app") != (method in APP_TOKEN_METHODS):
            raise SlackApiFailure("not_allowed_token_type")

    def _apply_injected(self, method: str, params: dict[str, Any], headers: dict[str, str], call: SlackCall) -> None:
        with self._lock:
            rule = next((r for r in self._injected if r.method == method and (r.when is None or r.when(params))), None)
            if rule is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._injected.remove(rule)
            bucket = self._buckets.get(method)
            wait = 0.0 if rule is not None or bucket is None else bucket.take(time.monotonic())
        if rule is not None:
            call.status = rule.status
            if rule.retry_after is not None:
                headers["Retry-After"] = str(rule.retry_after)
            raise SlackApiFailure(rule.error)
        if wait:
            call.status = 429
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
            raise SlackApiFailure("ratelimited")

    async def _handle_file(self, request: web.Request) -> web.Response:
        file = self.files.get(request.match_info["file_id"])
        if file is None:
            return web.Response(status=404, text="<html><body>Not Found</body></html>", content_type="text/html")
        authorized = request.headers.get("Authorization") == f"Bearer {self.bot_token}"
        self.downloads.append((file.id, authorized))
        if not authorized:
            # Slack answers a missing or wrong token with its sign-in page, not an HTTP error.
            return web.Response(status=200, text=LOGIN_PAGE, content_type="text/html")
        return web.Response(status=200, body=file.content, content_type=file.mimetype)

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        url = f"{self.base_url}{request.path}"
        if url not in self.responses:
            return web.Response(status=404, text="invalid response_url")
        raw = await request.text()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        self.responses[url].append(body)
        return web.json_response({"ok": True})

    # ---------------------------------------------------------------- Web API methods

    def _auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"{self.base_url}/", "team": "Fake Team", "user": "threadbot", "team_id": self.team_id,
                "user_id": self.bot_user_id, "bot_id": self.bot_id, "is_enterprise_install": False}

    def _apps_connections_open(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.socket.issue_url(self.base_url.replace("http://", "ws://", 1))}

    def _chat_post_message(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = _channel(p)
        text, blocks = p.get("text") or "", _json_field(p.get("blocks"))
        if not text and not blocks and not p.get("attachments"):
            raise SlackApiFailure("no_text")
        self._check_content(text, blocks)
        msg = self._post(channel, text, thread_ts=p.get("thread_ts") or None, blocks=blocks)
        return {"channel": channel, "ts": msg.ts, "message": msg.to_api(self.team_id)}

    def _chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._own_message(p, "cant_update_message")
        text, blocks = p.get("text"), _json_field(p.get("blocks"))
        self._check_content(text or "", blocks)
        if text is not None:
            msg.text = text
        if blocks is not None:
            msg.blocks = blocks or None
        msg.history.append(msg.text)
        return {"channel": msg.channel, "ts": msg.ts, "text": msg.text, "message": msg.to_api(self.team_id)}

    def _chat_delete(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._own_message(p, "cant_delete_message")
        msg.deleted = True
        return {"channel": msg.channel, "ts": msg.ts}

    def _chat_post_ephemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = _channel(p)
        if not p.get("user"):
            raise SlackApiFailure("user_not_found")
        if not p.get("text") and not p.get("blocks"):
            raise SlackApiFailure("no_text")
        self._check_content(p.get("text") or "", _json_field(p.get("blocks")))
        ts = next_ts()
        self.ephemerals.append({"channel": channel, "user": p["user"], "text": p.get("text") or "",
                                "thread_ts": p.get("thread_ts") or None, "ts": ts})
        return {"message_ts": ts}

    def _chat_start_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = _channel(p)
        if not channel.startswith("D"):
            # Streams in channels are shown to one person, so Slack needs to know whom.
            missing = [k for k in ("recipient_user_id", "recipient_team_id") if not p.get(k)]
            if missing:
                raise _missing(*missing)
        msg = self._post(channel, _stream_text(p, required=False), thread_ts=p.get("thread_ts") or None)
        msg.streaming = True
        return {"channel": channel, "ts": msg.ts}

    def _chat_append_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._streaming_message(p)
        msg.text += _stream_text(p, required=True)
        msg.history.append(msg.text)
        return {"channel": msg.channel, "ts": msg.ts}

    def _chat_stop_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._streaming_message(p)
        msg.text += _stream_text(p, required=False)
        blocks = _json_field(p.get("blocks"))
        if blocks:
            msg.blocks = blocks
        msg.streaming = False
        msg.history.append(msg.text)
        return {"channel": msg.channel, "ts": msg.ts, "message": msg.to_api(self.team_id)}

    def _reactions_add(self, p: dict[str, Any]) -> dict[str, Any]:
        msg, name = self._reaction_target(p)
        if name in msg.reactions:
            raise SlackApiFailure("already_reacted")
        msg.reactions.add(name)
        return {}

    def _reactions_remove(self, p: dict[str, Any]) -> dict[str, Any]:
        msg, name = self._reaction_target(p)
        if name not in msg.reactions:
            raise SlackApiFailure("no_reaction")
        msg.reactions.discard(name)
        return {}

    def _files_info(self, p: dict[str, Any]) -> dict[str, Any]:
        file = self.files.get(p.get("file") or "")
        if file is None:
            raise SlackApiFailure("file_not_found")
        return {"file": file.to_api(self.base_url), "comments": [], "response_metadata": {"next_cursor": ""}}

    def _assistant_set_status(self, p: dict[str, Any]) -> dict[str, Any]:
        key = _assistant_thread(p)
        if "status" not in p:
            raise _missing("status")
        self.assistant_status[key] = p["status"]
        return {}

    def _assistant_set_title(self, p: dict[str, Any]) -> dict[str, Any]:
        key = _assistant_thread(p)
        if not p.get("title"):
            raise _missing("title")
        self.assistant_titles[key] = p["title"]
        return {}

    def _assistant_set_suggested_prompts(self, p: dict[str, Any]) -> dict[str, Any]:
        _assistant_thread(p)
        prompts = _json_field(p.get("prompts"))
        if not isinstance(prompts, list) or not prompts:
            raise _missing("prompts")
        if len(prompts) > 4 or not all(isinstance(x, dict) and x.get("title") and x.get("message") for x in prompts):
            raise SlackApiFailure("invalid_arguments")
        return {}

    def _views_publish(self, p: dict[str, Any]) -> dict[str, Any]:
        # Slack's checks: a known user, a home view of at most 100 blocks; the view is echoed back with an id.
        missing = [k for k in ("user_id", "view") if not p.get(k)]
        if missing:
            raise _missing(*missing)
        if p["user_id"] not in self.users:
            raise SlackApiFailure("user_not_found")
        view = _json_field(p["view"])
        if not isinstance(view, dict) or view.get("type") != "home":
            raise SlackApiFailure("invalid_arguments", response_metadata={"messages": ["[ERROR] invalid view type"]})
        blocks = view.get("blocks")
        if not isinstance(blocks, list) or len(blocks) > 100:
            raise SlackApiFailure("invalid_arguments", response_metadata={"messages": ["[ERROR] must be at most 100 blocks"]})
        self._check_content("", blocks)
        self.home_views[p["user_id"]] = view
        return {"view": {"id": f"V{len(self.home_views):08d}", "team_id": self.team_id, **view}}

    # ---------------------------------------------------------------- helpers

    def _post(self, channel: str, text: str, *, thread_ts: str | None,
              blocks: list[dict[str, Any]] | None = None) -> FakeMessage:
        msg = FakeMessage(channel=channel, ts=next_ts(), text=text, user=self.bot_user_id, bot_id=self.bot_id,
                          thread_ts=thread_ts, blocks=blocks)
        msg.history.append(text)
        self._messages[(channel, msg.ts)] = msg
        return msg

    def _check_content(self, text: str, blocks: list[dict[str, Any]] | None) -> None:
        if len(text) > self.max_text_length:
            raise SlackApiFailure("msg_too_long")
        if blocks is None:
            return
        if not isinstance(blocks, list) or len(blocks) > 50:
            raise SlackApiFailure("invalid_blocks", response_metadata={"messages": ["[ERROR] must be at most 50 blocks"]})
        for i, block in enumerate(blocks):
            kind = block.get("type") if isinstance(block, dict) else None
            limit = {"section": 3000, "markdown": STREAM_TEXT_LIMIT}.get(kind or "")
            body = block.get("text") if isinstance(block, dict) else None
            body = body.get("text", "") if isinstance(body, dict) else body or ""
            if kind is None or (limit is not None and len(body) > limit):
                raise SlackApiFailure("invalid_blocks", response_metadata={
                    "messages": [f"[ERROR] invalid block at /blocks/{i}"]})

    def _own_message(self, p: dict[str, Any], refused: str) -> FakeMessage:
        channel = _channel(p)
        msg = self._messages.get((channel, p.get("ts") or ""))
        if msg is None or msg.deleted:
            raise SlackApiFailure("message_not_found")
        if msg.user != self.bot_user_id:
            raise SlackApiFailure(refused)
        return msg

    def _streaming_message(self, p: dict[str, Any]) -> FakeMessage:
        msg = self._own_message(p, "cant_update_message")
        if not msg.streaming:
            raise SlackApiFailure("message_not_in_streaming_state")
        return msg

    def _reaction_target(self, p: dict[str, Any]) -> tuple[FakeMessage, str]:
        msg = self._messages.get((_channel(p), p.get("timestamp") or ""))
        if msg is None or msg.deleted:
            raise SlackApiFailure("message_not_found")
        if not p.get("name"):
            raise SlackApiFailure("invalid_name")
        return msg, p["name"]


# -------------------------------------------------------------------- module helpers


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Slack merges query string, form and JSON body into one set of arguments."""
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        else:
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    return params


def _json_field(value: Any) -> Any:
    # Form-encoded requests carry blocks, chunks and prompts as JSON strings.
    if isinstance(value, str):
        try:
            return json.loads(value) if value else None
        except ValueError:
            raise SlackApiFailure("invalid_arguments") from None
    return value


def _channel(p: dict[str, Any], key: str = "channel") -> str:
    channel = p.get(key) or ""
    if not (isinstance(channel, str) and len(channel) >= 2 and channel[0] in "CDG" and channel.isalnum()):
        raise SlackApiFailure("channel_not_found")
    return channel


def _assistant_thread(p: dict[str, Any]) -> tuple[str, str]:
    missing = [k for k in ("channel_id", "thread_ts") if not p.get(k)]
    if missing:
        raise _missing(*missing)
    return p["channel_id"], p["thread_ts"]


def _stream_text(p: dict[str, Any], *, required: bool) -> str:
    text = p.get("markdown_text")
    chunks = _json_field(p.get("chunks"))
    if text is None and chunks is None:
        if required:
            raise _missing("markdown_text")
        return ""
    parts = [text] if isinstance(text, str) else []
    if chunks is not None:
        if not isinstance(chunks, list) or not all(isinstance(c, dict) for c in chunks):
            raise SlackApiFailure("invalid_chunks")
        for chunk in chunks:
            if chunk.get("type") not in ("markdown_text", "task_update", "plan_update", "blocks"):
                raise SlackApiFailure("invalid_chunks")
            if chunk["type"] == "markdown_text":
                if not isinstance(chunk.get("text"), str):
                    raise SlackApiFailure("invalid_chunks")
                parts.append(chunk["text"])
    if any(len(part) > STREAM_TEXT_LIMIT for part in parts):
        raise SlackApiFailure("msg_too_long")
    return "".join(parts)


def sign(signing_secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 request signature."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


_INTERACTIVE_TYPES = frozenset({"block_actions", "view_submission", "view_closed", "shortcut", "message_action",
                                "block_suggestion"})


def encode_body(payload: dict[str, Any]) -> tuple[bytes, str]:
    """Encode as Slack does: commands as a form, interactions as form field `payload`, events as JSON."""
    if "command" in payload:
        return urlencode(payload).encode(), "application/x-www-form-urlencoded"
    if payload.get("type") in _INTERACTIVE_TYPES:
        return urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
    return json.dumps(payload).encode(), "application/json"


# -------------------------------------------------------------------- payload builders


def event_callback(event: dict[str, Any], team_id: str = TEAM_ID, event_id: str | None = None, *,
                   api_app_id: str = APP_ID, bot_user_id: str = BOT_USER_ID) -> dict[str, Any]:
    """The Events API envelope around one event."""
    return {
        "token": "legacy-verification-token", "team_id": team_id, "api_app_id": api_app_id, "event": event,
        "type": "event_callback", "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": bot_user_id, "is_bot": True,
                            "is_enterprise_install": False}],
        "is_ext_shared_channel": False, "event_context": f"4-{event.get('type', 'event')}-{team_id}",
    }


def app_mention(text: str, *, user: str = USER_ID, channel: str = CHANNEL_ID, ts: str | None = None,
                thread_ts: str | None = None, team: str = TEAM_ID, bot_user_id: str = BOT_USER_ID) -> dict[str, Any]:
    """An `app_mention` event; the bot mention is put in front of `text` unless it is already there."""
    mention = f"<@{bot_user_id}>"
    ts = ts or next_ts()
    event = {"type": "app_mention", "user": user, "text": text if mention in text else f"{mention} {text}",
             "ts": ts, "channel": channel, "team": team, "event_ts": ts, "client_msg_id": str(uuid.uuid4())}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message_event(text: str, *, user: str = USER_ID, channel: str = CHANNEL_ID, channel_type: str = "channel",
                  ts: str | None = None, thread_ts: str | None = None, team: str = TEAM_ID,
                  files: list[dict[str, Any]] | None = None, subtype: str | None = None) -> dict[str, Any]:
    ts = ts or next_ts()
    event: dict[str, Any] = {"type": "message", "user": user, "text": text, "ts": ts, "channel": channel,
                             "channel_type": channel_type, "team": team, "event_ts": ts,
                             "client_msg_id": str(uuid.uuid4())}
    if thread_ts:
        event["thread_ts"] = thread_ts
    if files:
        event["files"], event["subtype"] = files, "file_share"
    if subtype:
        event["subtype"] = subtype
    return event


def dm_message(text: str, *, user: str = USER_ID, channel: str = DM_CHANNEL_ID, **kwargs: Any) -> dict[str, Any]:
    """A direct message to the bot (`channel_type: "im"`); pass `files=[...]` for a file share."""
    return message_event(text, user=user, channel=channel, channel_type="im", **kwargs)


def file_shared(file_id: str, *, user_id: str = USER_ID, channel_id: str = DM_CHANNEL_ID) -> dict[str, Any]:
    ts = next_ts()
    return {"type": "file_shared", "file_id": file_id, "user_id": user_id, "channel_id": channel_id,
            "file": {"id": file_id}, "event_ts": ts}


def url_verification(challenge: str = "fake-challenge") -> dict[str, Any]:
    return {"token": "legacy-verification-token", "challenge": challenge, "type": "url_verification"}


def command_form(command: str, text: str = "", *, user_id: str = USER_ID, channel_id: str = CHANNEL_ID,
                 response_url: str, team_id: str = TEAM_ID, user_name: str = "alice",
                 api_app_id: str = APP_ID) -> dict[str, str]:
    """A slash command's fields (form body over HTTP, JSON payload over Socket Mode)."""
    return {
        "token": "legacy-verification-token", "team_id": team_id, "team_domain": "fake-team",
        "channel_id": channel_id, "channel_name": "general" if channel_id.startswith("C") else "directmessage",
        "user_id": user_id, "user_name": user_name, "command": command, "text": text, "api_app_id": api_app_id,
        "is_enterprise_install": "false", "response_url": response_url,
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**10}.{uuid.uuid4().hex[:16]}",
    }


def block_actions(action_id: str, value: str = "", *, user_id: str = USER_ID, channel_id: str = CHANNEL_ID,
                  message_ts: str | None = None, thread_ts: str | None = None, response_url: str = "",
                  block_id: str = "actions", team_id: str = TEAM_ID, api_app_id: str = APP_ID) -> dict[str, Any]:
    """A `block_actions` interaction on a button in a bot message."""
    message_ts = message_ts or next_ts()
    message: dict[str, Any] = {"type": "message", "ts": message_ts, "user": BOT_USER_ID, "bot_id": BOT_ID, "text": ""}
    if thread_ts:
        message["thread_ts"] = thread_ts
    return {
        "type": "block_actions", "user": {"id": user_id, "username": "alice", "name": "alice", "team_id": team_id},
        "api_app_id": api_app_id, "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id, "is_ephemeral": False},
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().hex[:16]}", "team": {"id": team_id, "domain": "fake-team"},
        "enterprise": None, "is_enterprise_install": False, "channel": {"id": channel_id, "name": "general"},
        "message": message, "response_url": response_url,
        "actions": [{"action_id": action_id, "block_id": block_id, "type": "button", "value": value,
                     "text": {"type": "plain_text", "text": action_id}, "action_ts": f"{time.time():.6f}"}],
    }


def message_changed(channel: str, message: dict[str, Any], previous: dict[str, Any], *,
                    channel_type: str = "channel") -> dict[str, Any]:
    """The `message` event with subtype `message_changed` Slack sends after an edit."""
    ts = next_ts()
    return {"type": "message", "subtype": "message_changed", "hidden": True, "channel": channel,
            "channel_type": channel_type, "ts": ts, "event_ts": ts, "message": message,
            "previous_message": previous}


def message_deleted(channel: str, deleted_ts: str, previous: dict[str, Any], *, thread_ts: str | None = None,
                    channel_type: str = "channel") -> dict[str, Any]:
    """The `message` event with subtype `message_deleted` Slack sends after a deletion."""
    ts = next_ts()
    event = {"type": "message", "subtype": "message_deleted", "hidden": True, "channel": channel,
             "channel_type": channel_type, "ts": ts, "event_ts": ts, "deleted_ts": deleted_ts,
             "previous_message": previous}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message_action(callback_id: str, message: dict[str, Any], *, channel_id: str = CHANNEL_ID,
                   user_id: str = USER_ID, response_url: str = "", team_id: str = TEAM_ID,
                   api_app_id: str = APP_ID) -> dict[str, Any]:
    """A message shortcut (`message_action`) on `message` (an API message dict with at least `ts`)."""
    return {
        "type": "message_action", "callback_id": callback_id, "token": "legacy-verification-token",
        "action_ts": f"{time.time():.6f}", "trigger_id": f"{int(time.time())}.{uuid.uuid4().hex[:16]}",
        "team": {"id": team_id, "domain": "fake-team"}, "api_app_id": api_app_id,
        "user": {"id": user_id, "name": "alice", "username": "alice", "team_id": team_id},
        "channel": {"id": channel_id, "name": "general"}, "is_enterprise_install": False, "enterprise": None,
        "message_ts": message["ts"], "message": {"type": "message", **message}, "response_url": response_url,
    }
