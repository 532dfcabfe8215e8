"""Event listeners: mentions, DMs and assistant-panel messages become Turns; the rest is acked and ignored."""
from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation import Turn
from bot.conversation.approvals import ApprovalRequest
from bot.slack.approvals import SlackApprovals
from bot.slack.listeners.feedback import feedback_blocks
from bot.slack.assistant_status import AssistantStatus
from bot.slack.reply import SlackReply
from bot.slack.stream_reply import NativeReply
from bot.services import Runtime
from bot.conversation.media import Attachment, is_image
from bot.slack.thread_messages import is_followup
from bot.slack.thread_sync import SlackThreadSource, ThreadSync
from bot.slack.uploads import fetch_images, ingest_shared_files
from bot.slack.web_api import FAILURES, call, reason

log = logging.getLogger(__name__)

# Message subtypes that are a person saying something new; edits, deletions, joins etc. are not.
ANSWERABLE_SUBTYPES = {None, "file_share", "thread_broadcast"}
TITLE_CHARS = 80


def register(app: AsyncApp, runtime: Runtime, *, approvals: SlackApprovals | None = None) -> None:
    sync = ThreadSync(runtime.store)

    async def handle_app_mention(body: dict[str, Any], event: dict[str, Any], context: Any,
                                 client: AsyncWebClient) -> None:
        await _answer(runtime, client, body, event, surface="mention", bot_user_id=context.get("bot_user_id"),
                      bot_id=context.get("bot_id"), sync=sync, approvals=approvals)

    async def handle_message(body: dict[str, Any], event: dict[str, Any], context: Any,
                             client: AsyncWebClient) -> None:
        bot_user_id = context.get("bot_user_id")
        if event.get("channel_type") != "im":
            # Channels: record what is said in the threads the bot is part of (no API call), and answer
            # a person's reply in a thread the bot answered in. A reply that also @mentions the bot
            # arrives again as app_mention; the durable channel+ts claim in _answer answers it once.
            await sync.observe(event)
            if not (runtime.settings.thread_followups and is_followup(event, bot_user_id=bot_user_id)):
                return
            thread = await runtime.store.slack_thread(event["channel"], event["thread_ts"])
            if thread is None or not thread.answered:
                return
            await _answer(runtime, client, body, event, surface="mention", bot_user_id=bot_user_id,
                          bot_id=context.get("bot_id"), sync=sync, approvals=approvals)
            return
        # Bolt already drops our own messages; drop other bots, edits and deletions here.
        if event.get("bot_id") or event.get("subtype") not in ANSWERABLE_SUBTYPES:
            return
        await _answer(runtime, client, body, event, surface="dm", bot_user_id=bot_user_id, approvals=approvals)

    app.event("app_mention")(handle_app_mention)
    app.event("message")(handle_message)


async def _answer(runtime: Runtime, client: AsyncWebClient, body: dict[str, Any], event: dict[str, Any], *,
                  surface: str, bot_user_id: str | None, bot_id: str | None = None,
                  sync: ThreadSync | None = None, approvals: SlackApprovals | None = None) -> None:
    channel, ts, user = event.get("channel"), event.get("ts"), event.get("user")
    if not (channel and ts and user):
        log.warning("ignoring malformed %s event %s", event.get("type"), body.get("event_id"))
        return
    # Durable de-duplication: a retry has the same event_id; the same message can also arrive under
    # another event (e.g. a mention inside a DM), hence the channel+ts key.
    keys = [f"msg:{channel}:{ts}"]
    if body.get("event_id"):
        keys.insert(0, f"event:{body['event_id']}")
    if not await runtime.store.claim_event(*keys):
        log.info("dropping duplicate event %s (%s:%s)", body.get("event_id"), channel, ts)
        return
    thread_ts = event.get("thread_ts") or ts
    viewing_channel_id = None
    assistant = surface == "dm" and await _is_assistant_thread(runtime, event, channel, thread_ts)
    if assistant:
        surface = "assistant"
        viewing_channel_id = await _viewing_channel(runtime, event, channel, thread_ts)
    text = strip_mention(event.get("text") or "", bot_user_id)
    # Images shared with a question go to the model with this turn, never to the knowledge base; a file
    # shared with no question is handled as before (the knowledge base says which files it cannot read).
    images = [f for f in event.get("files") or [] if text.strip() and is_image(str(f.get("name") or ""),
                                                                               f.get("mimetype"))]
    attachments, notices = (await fetch_images(files=images, client=client, http=runtime.http,
                                               settings=runtime.settings)) if images else ([], [])
    turn = Turn(
        team_id=body.get("team_id") or event.get("team") or "",
        channel_id=channel,
        thread_ts=thread_ts,
        user_id=user,
        text=text,
        ts=ts,
        surface=surface,
        viewing_channel_id=viewing_channel_id,
        files=[f for f in event.get("files") or [] if f not in images],
        attachments=attachments,
        notices=notices,
        thread=SlackThreadSource(sync, client, channel_id=channel, thread_ts=thread_ts, question_ts=ts,
                                 bot_user_id=bot_user_id or "", bot_id=bot_id)
        if sync is not None and not channel.startswith("D") else None,
    )
    if assistant and turn.text and await runtime.store.claim_assistant_title(channel, thread_ts):
        await _set_title(client, channel, thread_ts, turn.text)
    if turn.files:
        # Shared files go into the knowledge base first, so a question asked with them can use them; with a
        # question they also go whole to the model for this turn, when they fit.
        added: list[Attachment] = []
        await ingest_shared_files(files=turn.files, client=client, http=runtime.http, store=runtime.store,
                                  settings=runtime.settings, user_id=user, channel_id=channel, thread_ts=thread_ts,
                                  budget=runtime.budget, keep=added if turn.text.strip() else None)
        turn = replace(turn, documents=added)
        if not turn.text and not turn.attachments:
            return
    reply = build_reply(runtime, client, turn, assistant=assistant)
    approve = None
    if approvals is not None:
        async def approve(request: ApprovalRequest) -> bool:
            return await approvals.ask(client, request, channel=channel, thread_ts=thread_ts)
    await runtime.conversations.handle(turn, reply, approve=approve)


def build_reply(runtime: Runtime, client: AsyncWebClient, turn: Turn, *, assistant: bool) -> SlackReply | NativeReply:
    """The reply for one turn: chat.update edits or Slack's streaming API (THREADBOT_STREAMING), with
    the panel's status line in assistant threads and 👍/👎 under the finished answer."""
    status = AssistantStatus(client, channel_id=turn.channel_id, thread_ts=turn.thread_ts) if assistant else None
    blocks = feedback_blocks(runtime.model)
    if runtime.settings.streaming == "native":
        return NativeReply(client, runtime.budget, stream_budget=runtime.stream_budget, channel=turn.channel_id,
                           thread_ts=turn.thread_ts, recipient_user_id=turn.user_id,
                           recipient_team_id=turn.team_id or None, status=status, final_blocks=blocks,
                           registry=runtime.registry)
    return SlackReply(client, runtime.budget, channel=turn.channel_id, thread_ts=turn.thread_ts, status=status,
                      final_blocks=blocks, registry=runtime.registry)


async def _is_assistant_thread(runtime: Runtime, event: dict[str, Any], channel: str, thread_ts: str) -> bool:
    # A DM thread is an assistant thread when Slack said so (assistant_thread_started, recorded by
    # the assistant listener) or the message carries the assistant thread's details itself.
    info = event.get("assistant_thread")
    if info:
        if await runtime.store.assistant_thread(channel, thread_ts) is None:
            context = info.get("context") or {}
            await runtime.store.record_assistant_thread(
                channel_id=channel, thread_ts=thread_ts, user_id=info.get("user_id") or event.get("user"),
                context_channel_id=context.get("channel_id"), context_team_id=context.get("team_id"))
        return True
    return event.get("thread_ts") is not None and await runtime.store.assistant_thread(channel, thread_ts) is not None


async def _viewing_channel(runtime: Runtime, event: dict[str, Any], channel: str, thread_ts: str) -> str | None:
    context = (event.get("assistant_thread") or {}).get("context") or {}
    if context.get("channel_id"):
        return context["channel_id"]
    thread = await runtime.store.assistant_thread(channel, thread_ts)
    return thread.context_channel_id if thread else None


async def _set_title(client: AsyncWebClient, channel: str, thread_ts: str, question: str) -> None:
    first_line = " ".join(question.split())
    title = first_line if len(first_line) <= TITLE_CHARS else first_line[:TITLE_CHARS - 1].rstrip() + "…"
    try:
        await call(client, "assistant.threads.setTitle", patient=False, channel_id=channel, thread_ts=thread_ts,
                   title=title)
    except FAILURES as exc:
        log.warning("assistant.threads.setTitle failed: %s", reason(exc))


def strip_mention(text: str, bot_user_id: str | None) -> str:
    """Remove the bot's own <@U…> mention so the model sees the question only."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", "", text)
    return text.strip()
