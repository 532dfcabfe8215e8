"""Socket Mode half of the Slack fake: websocket URLs, hello, envelopes pushed to a client, acks."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import WSMsgType, web

# What Slack sets by default: commands and interactions may carry a response payload in the ack.
_ACCEPTS_RESPONSE_PAYLOAD = {"events_api": False, "slash_commands": True, "interactive": False}


class SocketModeHub:
    """The websocket side of `apps.connections.open`; one hub per fake, several connections at once."""

    def __init__(self, *, app_id: str) -> None:
        self.app_id = app_id
        self._tickets: set[str] = set()
        self.connections: list[web.WebSocketResponse] = []  # open connections, oldest first
        self.connections_opened = 0
        self.sent: list[dict[str, Any]] = []  # every frame the fake sent after hello
        self.received: list[dict[str, Any]] = []  # every JSON frame a client sent
        self.acks: dict[str, dict[str, Any]] = {}  # envelope_id -> first ack frame

    def issue_url(self, ws_base: str) -> str:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return f"{ws_base}/socket?ticket={ticket}&app_id={self.app_id}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._tickets:
            # Slack refuses the upgrade for a URL it did not hand out.
            return web.Response(status=401, text="invalid ticket")
        # autoping answers the SDK's keep-alive pings, as Slack does.
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections.append(ws)
        self.connections_opened += 1
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self.connections),
                "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }
        )
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    continue
                if not isinstance(frame, dict):
                    continue
                self.received.append(frame)
                envelope_id = frame.get("envelope_id")
                if envelope_id and envelope_id not in self.acks:
                    self.acks[envelope_id] = frame
        finally:
            if ws in self.connections:
                self.connections.remove(ws)
        return ws

    async def push(
        self,
        payload: dict[str, Any],
        *,
        type: str,
        retry_attempt: int,
        retry_reason: str,
        accepts_response_payload: bool | None,
        envelope_id: str | None,
        connect_timeout: float,
    ) -> str:
        ws = await self._newest_connection(connect_timeout)
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id or str(uuid.uuid4()),
            "type": type,
            "payload": payload,
            "accepts_response_payload": (
                _ACCEPTS_RESPONSE_PAYLOAD.get(type, False)
                if accepts_response_payload is None
                else accepts_response_payload
            ),
        }
        if type == "events_api":
            # Only Events API envelopes carry retry information.
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        await ws.send_json(envelope)
        self.sent.append(envelope)
        return envelope["envelope_id"]

    async def send_disconnect(self, reason: str) -> int:
        frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}}
        targets = [ws for ws in self.connections if not ws.closed]
        for ws in targets:
            await ws.send_json(frame)
        self.sent.append(frame)
        return len(targets)

    async def close_all(self) -> None:
        for ws in list(self.connections):
            await ws.close()

    async def _newest_connection(self, timeout: float) -> web.WebSocketResponse:
        # The SDK closes its old session before opening a new one, so the newest one is live.
        deadline = time.monotonic() + timeout
        while True:
            live = [ws for ws in self.connections if not ws.closed]
            if live:
                return live[-1]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no Socket Mode client connected within {timeout}s")
            await asyncio.sleep(0.01)
