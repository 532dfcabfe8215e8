"""The /usage slash command: the caller's usage (admins: the team's or someone's), as an ephemeral reply."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.conversation import reference_id
from bot.runtime import Runtime
from bot.usage_report import handle_usage_command

log = logging.getLogger(__name__)

# Slack wants the ack within 3 s. A report normally takes milliseconds; if the database is slow the
# command is acked with a holding line and the report follows through response_url.
ACK_WITHIN_S = 2.0
HOLDING_LINE = "Adding up your usage…"
FAILURE = "Sorry, I couldn't build the usage report just now."


def register(app: AsyncApp, runtime: Runtime) -> None:
    async def handle_usage(ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]) -> None:
        report = asyncio.ensure_future(asyncio.to_thread(
            handle_usage_command, runtime.store, runtime.settings, caller_id=command.get("user_id") or "",
            text=command.get("text") or "", now=datetime.now(timezone.utc),
        ))
        try:
            text = await asyncio.wait_for(asyncio.shield(report), ACK_WITHIN_S)
        except asyncio.TimeoutError:
            await ack(text=HOLDING_LINE, response_type="ephemeral")
            await respond(text=await _or_failure(report), response_type="ephemeral")
            return
        except Exception:
            text = _failure()
        await ack(text=text, response_type="ephemeral")

    app.command("/usage")(handle_usage)


async def _or_failure(report: "asyncio.Future[str]") -> str:
    try:
        return await report
    except Exception:
        return _failure()


def _failure() -> str:
    ref = reference_id()
    log.exception("/usage failed ref=%s", ref)
    return f":warning: {FAILURE} (ref `{ref}`)"
