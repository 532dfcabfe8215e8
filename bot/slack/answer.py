"""Answering one Turn from Slack: shared images to the model, other files into the knowledge base first, then
one reply to Conversations."""
from __future__ import annotations

from dataclasses import replace

from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation import Turn
from bot.conversation.approvals import ApprovalRequest
from bot.conversation.media import Attachment, is_image
from bot.errors import ConfigError
from bot.services import Services
from bot.slack.approvals import SlackApprovals
from bot.slack.assistant_status import AssistantStatus
from bot.slack.edit_budget import EditBudgets
from bot.slack.feedback import feedback_blocks
from bot.slack.reply import SlackReply
from bot.slack.stream_reply import NativeReply
from bot.slack.uploads import fetch_images, ingest_shared_files


async def answer(services: Services, budgets: EditBudgets, client: AsyncWebClient, turn: Turn, *,
                 approvals: SlackApprovals | None = None) -> None:
    # Images shared with a question go to the model with this turn, never to the knowledge base; a file
    # shared with no question is handled as before (the knowledge base says which files it cannot read).
    images = [f for f in turn.files if turn.text.strip() and is_image(str(f.get("name") or ""), f.get("mimetype"))]
    if images:
        attachments, notices = await fetch_images(files=images, client=client, http=services.http,
                                                  settings=services.settings)
        turn = replace(turn, files=[f for f in turn.files if f not in images], attachments=attachments,
                       notices=notices)
    if turn.files:
        # Shared files go into the knowledge base first, so a question asked with them can use them; with a
        # question they also go whole to the model for this turn, when they fit.
        added: list[Attachment] = []
        await ingest_shared_files(files=turn.files, client=client, http=services.http, store=services.store,
                                  settings=services.settings, user_id=turn.user_id, channel_id=turn.channel_id,
                                  thread_ts=turn.thread_ts, budget=budgets.chat_update,
                                  keep=added if turn.text.strip() else None, owner=services.owner)
        turn = replace(turn, documents=added)
        if not turn.text and not turn.attachments:
            if turn.record_id is not None:  # the files were the whole message
                await services.store.finish_turn(turn.record_id, outcome="answered")
            return
    approve = None
    if approvals is not None:
        async def approve(request: ApprovalRequest) -> bool:
            return await approvals.ask(client, request, channel=turn.channel_id, thread_ts=turn.thread_ts)
    await services.conversations.handle(turn, await build_reply(services, budgets, client, turn), approve=approve)


async def build_reply(services: Services, budgets: EditBudgets, client: AsyncWebClient, turn: Turn, *,
                native: bool = True) -> SlackReply | NativeReply:
    """The reply for one turn: chat.update edits or Slack's streaming API (THREADBOT_STREAMING), with
    the panel's status line in assistant threads and 👍/👎 under the finished answer. A chat.update reply
    tells the turn's durable record which message it is in and what that shows (for a restart)."""
    status = (AssistantStatus(client, channel_id=turn.channel_id, thread_ts=turn.thread_ts)
              if turn.surface == "assistant" else None)
    blocks = feedback_blocks(await answering_model(services, turn.channel_id))
    journal = None
    if turn.record_id is not None:
        record_id, store = turn.record_id, services.store

        async def journal(ts: str, shown: str, streaming: bool) -> None:
            await store.turn_shown(record_id, reply_ts=ts, shown_text=shown, streaming=streaming)
    if native and services.settings.streaming == "native":
        return NativeReply(client, budgets.chat_update, stream_budget=budgets.append_stream, channel=turn.channel_id,
                           thread_ts=turn.thread_ts, recipient_user_id=turn.user_id,
                           recipient_team_id=turn.team_id or None, status=status, final_blocks=blocks,
                           registry=services.registry)
    return SlackReply(client, budgets.chat_update, channel=turn.channel_id, thread_ts=turn.thread_ts, status=status,
                      final_blocks=blocks, registry=services.registry, journal=journal)


async def answering_model(services: Services, channel_id: str) -> str:
    """The model this channel's turns go to (its /threadbot model, else THREADBOT_MODEL's), as usage records it,
    so a 👍/👎 is counted for the model that wrote the answer."""
    try:
        return await services.conversations.channels.model_for(channel_id)
    except ConfigError:  # the channel's model lost its key: the turn itself says so; the buttons fall back
        return services.model
