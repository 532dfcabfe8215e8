"""The one way bot/slack calls Slack's Web API: Retry-After honoured within a deadline, server errors and
dropped connections retried a few times, and a 429 pauses the shared budget the call spends from."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.slack.edit_budget import EditBudget

log = logging.getLogger(__name__)

# A patient call (text that must arrive: a final edit, a posted answer) outlasts rate limits, not forever.
DEADLINE_S = 600.0
MAX_WAIT_S = 30.0  # one wait at most; a longer Retry-After is waited out in several tries
TRANSIENT_RETRIES = 3  # 5xx answers and dropped connections, with 1, 2, 4 s between tries
# What a call can raise once the policy gives up: Slack's answer, or the connection's failure.
FAILURES = (SlackApiError, aiohttp.ClientError, asyncio.TimeoutError)


def retry_after_s(exc: SlackApiError) -> float:
    """Seconds Slack asked us to wait in a 429's Retry-After header (1 when it says nothing usable)."""
    try:
        return max(float(exc.response.headers.get("Retry-After", exc.response.headers.get("retry-after", 1))), 0.0)
    except (TypeError, ValueError):
        return 1.0


def reason(exc: BaseException) -> str:
    """Why a call failed, for the log: Slack's error code ("msg_too_long", "ratelimited", …) or the
    kind of connection failure."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error"))
    return type(exc).__name__


async def call(client: AsyncWebClient, method: str, *, patient: bool = True, budget: EditBudget | None = None,
               deadline_s: float = DEADLINE_S, **params: Any) -> AsyncSlackResponse:
    """Call Web API `method` (Slack's name, e.g. "chat.update") with `params`; SlackApiError when it fails.

    `budget` is the workspace budget this call spends from (chat.update's, chat.appendStream's): a 429
    pauses it for everyone, and a patient retry waits for a token from it like any final edit. An
    impatient call (an intermediate edit, a status line: a later one replaces it) gives up at the first
    429, 5xx or dropped connection; a patient one waits and retries until `deadline_s`.
    """
    send = getattr(client, method.replace(".", "_"))
    deadline = time.monotonic() + deadline_s
    transient = 0
    while True:
        try:
            return await send(**params)
        except SlackApiError as exc:
            status = exc.response.status_code
            if status == 429:
                wait = min(retry_after_s(exc), MAX_WAIT_S)
                if budget is not None:
                    budget.pause(wait)
                if not patient or time.monotonic() + wait > deadline:
                    raise
                log.info("%s rate limited: retrying in %.0f s", method, wait)
                if budget is not None:
                    await budget.acquire()  # waits out the pause, queued with the other final edits
                else:
                    await asyncio.sleep(wait)
                continue
            if status < 500 or not patient or transient >= TRANSIENT_RETRIES:
                raise
            log.info("%s answered HTTP %s: retrying", method, status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if not patient or transient >= TRANSIENT_RETRIES:
                raise
            log.info("%s failed (%s): retrying", method, type(exc).__name__)
        transient += 1
        await asyncio.sleep(0.5 * 2 ** transient)
