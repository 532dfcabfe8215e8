"""One user message → one answer: limits, history from SQLite, the agent turn, persistence, failures."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from bot.conversation.context_window import input_budget
from bot.conversation.thread_context import ThreadSource, question_with_context, user_message_tokens
from bot.accounting.limits import check_and_reserve
from bot.accounting.meter import Attribution, Meter
from bot.config import Settings
from bot.conversation.agent import Agent, ReplySink
from bot.conversation.channels import ChannelAgents
from bot.conversation.approvals import Approve
from bot.conversation.history import repair
from bot.conversation.media import Attachment, document_blocks, image_blocks, with_image_data, without_images
from bot.conversation.transcript import Counted, Transcript
from bot.errors import ConfigError, Failure, ImagesNotSupported, Interrupted, LimitExceeded, failure_for
from bot.llm import catalog
from bot.llm.base import Provider
from bot.llm.providers import Providers
from bot.llm.tokens import count_message_tokens, count_text_tokens
from bot.messages import Message, TextBlock
from bot.store import Store, StoredMessage
from tools.context import ConversationReader, ToolContext
from tools.registry import Registry

log = logging.getLogger(__name__)

EMPTY_MESSAGE_HELP = (
    "Hi! Ask me anything in this thread — I remember the conversation. I can check the weather, "
    "search documents shared with me, and pull structured records out of text."
)
GENERIC_FAILURE = "Sorry, something went wrong on my side while answering."


@dataclass(frozen=True)
class Turn:
    """One user message the bot must answer, as the listeners hand it over."""

    team_id: str
    channel_id: str
    thread_ts: str
    user_id: str
    text: str
    ts: str
    surface: str  # "mention" | "autoanswer" | "dm" | "assistant" | "shortcut" | "console"
    viewing_channel_id: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    thread: ThreadSource | None = None  # a channel thread: what others wrote there joins the question
    # Images shared with the message, already fetched by the surface; they go to the model, not the knowledge base.
    attachments: list[Attachment] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # sentences from the surface, e.g. an image it couldn't fetch
    # Documents shared with the question (already in the knowledge base), given whole for this turn if they fit.
    documents: list[Attachment] = field(default_factory=list)
    reader: ConversationReader | None = None  # what the read_messages tool may read (the surface decides)
    record_id: int | None = None  # its durable record (bot/store turns): progress and done are written there
    question_id: int | None = None  # resuming after a crash: the question is stored already (this message)


NO_VISION = ImagesNotSupported.__doc__ or ""


def _text_only(entries: list[Counted]) -> list[Counted]:
    """Every image as its `[image: name]` text, recounted (a model that takes no images)."""
    return [Counted(without_images(e.message), None) if e.message.images else e for e in entries]


class Reply(ReplySink, Protocol):
    async def start(self) -> None: ...
    async def finish(self, *, notice: str | None = None) -> None: ...
    async def fail(self, failure: Failure) -> None: ...
    async def say(self, text: str) -> None: ...


class Conversations:
    """Answers turns. Different threads run concurrently; turns within one thread run in order."""

    def __init__(self, *, settings: Settings, store: Store, provider: Provider, model: str,
                 registry: Registry, http: aiohttp.ClientSession, providers: Providers | None = None):
        self.settings = settings
        self.store = store
        self.provider = provider
        self.model = model
        self.registry = registry
        self.http = http
        self.agent = Agent(
            registry, max_rounds=settings.max_tool_rounds, tool_timeout_s=settings.tool_timeout_s,
            max_tokens=settings.max_tokens, system_prompt=settings.system_prompt, model=model,
        )
        # A channel's own model may need another provider; THREADBOT_MODEL's is the one given.
        self.providers = providers or Providers(settings, default=provider)
        self.channels = ChannelAgents(settings=settings, store=store, registry=registry, providers=self.providers)
        self._locks: dict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._waiting: dict[tuple[str, str], int] = defaultdict(int)
        self._active: set[asyncio.Task[None]] = set()

    async def handle(self, turn: Turn, reply: Reply, *, approve: Approve | None = None) -> None:
        """Answer one turn; `approve` is how this surface asks the user before a tool that acts runs.

        Its durable record (turn.record_id) is marked done once the reply's last edit is made, also
        when it failed or was interrupted by a shutdown; only a process that dies leaves it open."""
        outcome = "failed"
        try:
            outcome = await self._handle(turn, reply, approve)
        except asyncio.CancelledError:
            outcome = "closed"
            raise
        finally:
            if turn.record_id is not None:
                await self.store.finish_turn(turn.record_id, outcome=outcome)

    async def _handle(self, turn: Turn, reply: Reply, approve: Approve | None) -> str:
        text = turn.text.strip()
        if not text and not turn.attachments and turn.question_id is None:
            await reply.say(" ".join(turn.notices) or EMPTY_MESSAGE_HELP)
            return "answered"
        try:
            # On the loop thread like every other store call: one short transaction, and no contention
            # between worker threads and the loop for the store's lock.
            await check_and_reserve(self.store, user_id=turn.user_id, team_id=turn.team_id,
                              settings=self.settings, now=datetime.now(timezone.utc))
        except LimitExceeded as exc:
            await reply.say(exc.user_message())
            return "limited"
        await reply.start()
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        key = (turn.channel_id, turn.thread_ts)
        self._waiting[key] += 1
        started = False
        try:
            async with self._locks[key], self.store.thread_turn(turn.channel_id, turn.thread_ts, turn.ts):
                started = True
                return await self._answer(turn, text, reply, approve)
        except asyncio.CancelledError:
            if not started:  # shut down while waiting for the thread's earlier turn: close this one too
                await reply.fail(failure_for(Interrupted(), log=log, doing="turn", generic=GENERIC_FAILURE))
            raise
        finally:
            self._active.discard(task)  # type: ignore[arg-type]
            self._waiting[key] -= 1
            if not self._waiting[key]:  # forget idle threads so the dicts don't grow forever
                del self._waiting[key]
                self._locks.pop(key, None)

    async def _answer(self, turn: Turn, text: str, reply: Reply, approve: Approve | None) -> str:
        conversation_id = await self.store.conversation_id(
            team_id=turn.team_id, channel_id=turn.channel_id, thread_ts=turn.thread_ts, user_id=turn.user_id)
        stored = await self.store.history(conversation_id)
        try:
            setup = await self.channels.setup(turn.channel_id)
        except ConfigError as exc:  # a channel's model whose API key was removed since it was chosen
            await reply.fail(failure_for(exc, log=log, doing="turn", generic=GENERIC_FAILURE))
            return "failed"
        model = setup.profile.model
        if turn.question_id is not None:
            # Resumed after a crash: the question (with its context and images) is stored; repair() below
            # answers any tool_use the crash left open, and the agent goes on from there.
            history = await with_image_data([m.message for m in stored], self.store)
            entries = [Counted(m, row.token_count) for m, row in zip(history, stored)]
            images, notes = [], list(turn.notices)
        else:
            asked = await self._ask(turn, text, conversation_id, stored, reply, model=model,
                                    fixed_tokens=self.agent.fixed_tokens_for(setup.profile))
            if asked is None:
                return "answered"
            entries, images, notes = asked
        originals = [entry.message for entry in entries]
        repaired = repair(originals)
        if repaired != originals:  # rare (a crash or an old bug): the repaired messages are counted when needed
            entries = [Counted(m, None) for m in repaired]
        vision = catalog.capabilities(model).vision
        if not vision and any(entry.message.images for entry in entries):
            entries = _text_only(entries)
            if images:
                notes.append(NO_VISION)
        meter = Meter(self.store, setup.provider, Attribution(
            team_id=turn.team_id, user_id=turn.user_id, channel_id=turn.channel_id,
            thread_ts=turn.thread_ts, surface=turn.surface))
        ctx = ToolContext(
            user_id=turn.user_id, team_id=turn.team_id, channel_id=turn.channel_id, thread_ts=turn.thread_ts,
            store=self.store, http=self.http, settings=self.settings, call_model=meter.complete,
            viewing_channel_id=turn.viewing_channel_id, reader=turn.reader, model=model,
        )
        try:
            try:
                transcript = Transcript(self.store, conversation_id, entries, vision=vision)
                outcome = await self.agent.run(transcript, ctx=ctx, reply=reply, stream=meter.stream,
                                               approve=approve, profile=setup.profile)
            except ImagesNotSupported as exc:
                # The catalog thought this model reads images; its 400 says otherwise. Answer the text, going on
                # from where the turn got to: tool rounds already run (and stored) are not run again.
                log.info("model %s takes no images (%s); answering without them", model, exc)
                notes.append(exc.user_message())
                done = transcript.entries[len(entries):]
                text_only = Transcript(self.store, conversation_id, _text_only(transcript.entries), vision=False)
                outcome = await self.agent.run(text_only, ctx=ctx, reply=reply, stream=meter.stream, approve=approve,
                                               profile=setup.profile,
                                               rounds_done=sum(e.message.role == "assistant" for e in done))
        except asyncio.CancelledError:
            # Shutting down mid-answer: tell the user and close the turn rather than leave "Thinking…".
            await self._fail(conversation_id, reply, Interrupted())
            raise
        except Exception as exc:
            await self._fail(conversation_id, reply, exc)
            return "failed"
        await reply.finish(notice=" ".join([*notes, *([outcome.notice] if outcome.notice else [])]) or None)
        return "answered"

    async def _ask(self, turn: Turn, text: str, conversation_id: int, stored: list[StoredMessage], reply: Reply, *,
                   model: str, fixed_tokens: int) -> tuple[list[Counted], list[Any], list[str]] | None:
        """Store the question (with what others said in the thread, and its images) and record that it is
        stored; the history for the model with it. None when there is nothing to ask (the reply said why)."""
        text_tokens: int | None = None
        if turn.thread is not None:
            # Thread context may take half of what the window leaves; older turns of history give way.
            room = input_budget(model=model, max_tokens=self.settings.max_tokens) // 2
            text, context = await question_with_context(
                turn.thread, question=text, question_ts=turn.ts, asker_id=turn.user_id,
                budget_tokens=room - fixed_tokens - count_text_tokens(text))
            text_tokens = user_message_tokens(text, context, model=model)  # the context was counted once already
        images, notes = await image_blocks(turn.attachments, store=self.store, max_images=self.settings.max_images)
        notes = [*turn.notices, *notes]
        if not text and not images:  # only images, none readable: the sentences say why
            await reply.finish(notice=" ".join(notes))
            return None
        documents, document_notes = await document_blocks(turn.documents, model=model,
                                                          max_tokens=self.settings.max_tokens)
        notes += document_notes
        stored_message = Message("user", [*images, *([TextBlock(text)] if text else [])])
        stored_tokens = (text_tokens if text_tokens is not None and not images
                         else count_message_tokens(stored_message, model=model))
        [question_id] = await self.store.append_messages(conversation_id, [stored_message],
                                                         token_counts=[stored_tokens], user_id=turn.user_id,
                                                         slack_ts=turn.ts)
        if turn.record_id is not None:  # a resumed answer must not ask it again
            await self.store.turn_question_saved(turn.record_id, conversation_id=conversation_id,
                                                 question_id=question_id)
        # Whole documents go with this turn only; history keeps the question (the knowledge base keeps the file).
        user_message = Message("user", [*documents, *stored_message.content])
        user_tokens = count_message_tokens(user_message, model=model) if documents else stored_tokens
        history = await with_image_data([m.message for m in stored], self.store)
        return ([Counted(m, row.token_count) for m, row in zip(history, stored)] + [Counted(user_message, user_tokens)],
                images, notes)

    async def drain(self, timeout_s: float) -> None:
        """On shutdown: let answers in flight finish for up to `timeout_s`, then interrupt the rest."""
        if not self._active:
            return
        log.info("waiting up to %ss for %d answers in flight", timeout_s, len(self._active))
        _, pending = await asyncio.wait(set(self._active), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=10)

    async def _fail(self, conversation_id: int, reply: Reply, exc: Exception) -> None:
        failure = failure_for(exc, log=log, doing="turn", generic=GENERIC_FAILURE)
        # Close the turn so the stored history stays a valid request (invariant 3).
        if await self.store.last_role(conversation_id) == "user":
            await self.store.append_messages(conversation_id,
                                             [Message("assistant", [TextBlock(f"(No answer: {failure.message})")])])
        await reply.fail(failure)
