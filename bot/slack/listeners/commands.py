"""Answering a slash command within Slack's 3 s: the reply itself if ready in time, else a holding
line now and the reply through response_url; any failure is one sentence with a reference id."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable

from slack_bolt.async_app import AsyncAck, AsyncRespond

from bot.errors import failure_for
from bot.slack.mrkdwn import failure_text

log = logging.getLogger(__name__)

ACK_WITHIN_S = 2.0


async def answer_command(ack: AsyncAck, respond: AsyncRespond, work: Awaitable[str], *, name: str,
                         holding: str, failure: str) -> None:
    task = asyncio.ensure_future(work)
    try:
        text = await asyncio.wait_for(asyncio.shield(task), ACK_WITHIN_S)
    except asyncio.TimeoutError:
        await ack(text=holding, response_type="ephemeral")
        await respond(text=await _or_failure(task, name=name, failure=failure), response_type="ephemeral")
        return
    except Exception as exc:
        text = _failure(exc, name=name, failure=failure)
    await ack(text=text, response_type="ephemeral")


async def _or_failure(task: "asyncio.Future[str]", *, name: str, failure: str) -> str:
    try:
        return await task
    except Exception as exc:
        return _failure(exc, name=name, failure=failure)


def _failure(exc: Exception, *, name: str, failure: str) -> str:
    return failure_text(failure_for(exc, log=log, doing=name, generic=failure))
