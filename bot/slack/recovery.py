"""Finishing what a dead process left open: at start-up, and (with replicas) when a turn's owner is gone.

Each open turn is adopted by one process (bot/store adopt_turns) and handled once, in the background:
the first new answer after a restart never waits for it. Answers resume through Conversations.handle
(the usual limits, thread order and edit budget); shown answers and notices are final edits that wait
for a spare edit token, so recovered turns never take the edits new answers need.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation import Turn
from bot.conversation.recovery import close_history, plan
from bot.errors import Interrupted, failure_for
from bot.slack.mrkdwn import failure_text
from bot.slack.reply import PLACEHOLDER
from bot.slack.thread_sync import SlackThreadSource, ThreadSync
from bot.slack.web_api import FAILURES, call, reason
from bot.store import OpenTurn

if TYPE_CHECKING:
    from bot.services import Services
    from bot.slack.approvals import SlackApprovals
    from bot.slack.edit_budget import EditBudgets

log = logging.getLogger(__name__)

# An owner renews its lease (settings.replica_lease_s) every third of it; a replica whose lease ran out
# is gone and its turns adoptable.
RENEWALS_PER_LEASE = 3
RESUME_CONCURRENCY = 4  # recovered answers in flight at once (new questions are not limited by this)
CLOSERS = 2  # notices / shown answers being edited at once, each waiting for a spare edit token
# Edit tokens recovery never takes, so a question asked right after a restart finds one for its answer (and
# the recovered answers in flight find theirs): recovery uses what the bucket has beyond that.
KEEP_FOR_NEW = RESUME_CONCURRENCY + 2
GENERIC = "Sorry, something went wrong on my side while answering."


class Recovery:
    """Adopts open turns whose owner is gone and answers, shows or closes each; renews this owner's lease."""

    def __init__(self, services: "Services", budgets: "EditBudgets", client: AsyncWebClient, *,
                 approvals: "SlackApprovals | None" = None):
        self.services = services
        self.budgets = budgets
        self.client = client
        self.approvals = approvals
        self.sync = ThreadSync(services.store)
        self.handled: dict[str, int] = {}  # action -> count, for the log and the benchmark
        self._closing: asyncio.Queue[OpenTurn] = asyncio.Queue()
        self._resuming: asyncio.Queue[OpenTurn] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.stopping = False  # shutting down: adopted turns not started yet stay for the next owner

    async def start(self) -> None:
        """Take the lease, adopt what previous processes left, and start the background workers."""
        store = self.services.store
        await store.renew_owner(self.services.owner, lease_s=self.lease_s)
        await self.adopt(everyone_else_gone=not store.shared_by_replicas)
        self._tasks = [asyncio.create_task(self._worker(self._closing)) for _ in range(CLOSERS)]
        self._tasks += [asyncio.create_task(self._worker(self._resuming)) for _ in range(RESUME_CONCURRENCY)]
        self._tasks.append(asyncio.create_task(self._lease_loop()))

    async def adopt(self, *, everyone_else_gone: bool = False) -> int:
        turns = await self.services.store.adopt_turns(self.services.owner, everyone_else_gone=everyone_else_gone)
        now = time.time()
        for turn in turns:
            if turn.kind == "answer" and not turn.streaming and now - turn.accepted_at <= \
                    self.services.settings.resume_window_s:
                self._resuming.put_nowait(turn)
            else:
                self._closing.put_nowait(turn)
        if turns:
            log.info("adopted %d unfinished turns of a previous process", len(turns))
        return len(turns)

    async def idle(self) -> None:
        """Wait until every adopted turn was handled (tests and the benchmark)."""
        await self._closing.join()
        await self._resuming.join()

    async def stop(self) -> None:
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.services.store.release_owner(self.services.owner)

    # --- workers ------------------------------------------------------------------------------

    @property
    def lease_s(self) -> float:
        return self.services.settings.replica_lease_s

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / RENEWALS_PER_LEASE)
            try:
                await self.services.store.renew_owner(self.services.owner, lease_s=self.lease_s)
                await self.adopt()  # a replica that died: its lease ran out
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("renewing the turn lease failed")

    async def _worker(self, queue: "asyncio.Queue[OpenTurn]") -> None:
        """Handle the turns of one queue (closing, or resuming), each when the edit budget has room."""
        while True:
            turn = await queue.get()
            try:
                await self.budgets.chat_update.wait_for_spare(keep=KEEP_FOR_NEW)
                if not self.stopping:
                    await self._handle(turn)
            except Exception:  # noqa: BLE001 - one broken turn must not stop recovery of the others
                log.exception("recovering turn %s failed", turn.id)
            finally:
                queue.task_done()

    async def _handle(self, turn: OpenTurn) -> None:
        store = self.services.store
        if turn.kind not in ("answer", "summary"):
            await self._close_other(turn)
            return
        # A summary is an answer the user asked for with a click: shown if the history holds it whole, else
        # closed with the notice (the click is no message to answer again; asking again is one click).
        window = self.services.settings.resume_window_s if turn.kind == "answer" else -1.0
        decided = await plan(store, turn, now=time.time(), resume_window_s=window)
        self.handled[decided.action] = self.handled.get(decided.action, 0) + 1
        log.info("turn %s (%s:%s) left open by %s: %s", turn.id, turn.channel_id, turn.ts, turn.owner, decided.action)
        if decided.action == "resume":
            await self._resume(turn)
        elif decided.action == "show":
            reply = await self._reply(turn)
            if turn.reply_ts:
                reply.adopt(turn.reply_ts, turn.shown_text or PLACEHOLDER)
            reply.append(decided.answer or "")
            await reply.finish()
            await store.finish_turn(turn.id, outcome="answered")
        else:
            await self._close_answer(turn)

    async def _resume(self, turn: OpenTurn) -> None:
        from bot.slack.answer import build_reply  # the answers' own reply (bot.slack.answer imports the app's parts)

        details = turn.details
        channel_thread = not turn.channel_id.startswith("D")
        resumed = Turn(
            team_id=turn.team_id, channel_id=turn.channel_id, thread_ts=turn.thread_ts, user_id=turn.user_id,
            text=turn.text, ts=turn.ts, surface=turn.surface, viewing_channel_id=details.get("viewing_channel_id"),
            thread=SlackThreadSource(self.sync, self.client, channel_id=turn.channel_id, thread_ts=turn.thread_ts,
                                     question_ts=turn.ts, bot_user_id=details.get("bot_user_id") or "",
                                     bot_id=details.get("bot_id")) if channel_thread else None,
            record_id=turn.id, question_id=turn.question_id,
        )
        reply = await build_reply(self.services, self.budgets, self.client, resumed, native=False)
        if turn.reply_ts:
            reply.adopt(turn.reply_ts, turn.shown_text or PLACEHOLDER)
        approve = None
        if self.approvals is not None:
            approvals = self.approvals

            async def approve(request: Any) -> bool:
                return await approvals.ask(self.client, request, channel=turn.channel_id, thread_ts=turn.thread_ts)
        await self.services.conversations.handle(resumed, reply, approve=approve)

    async def _reply(self, turn: OpenTurn) -> Any:
        from bot.slack.answer import build_reply

        shell = Turn(team_id=turn.team_id, channel_id=turn.channel_id, thread_ts=turn.thread_ts,
                     user_id=turn.user_id, text=turn.text, ts=turn.ts, surface=turn.surface, record_id=turn.id)
        return await build_reply(self.services, self.budgets, self.client, shell, native=False)

    async def _close_answer(self, turn: OpenTurn) -> None:
        """The message it left ends with the interrupted notice (its text kept); the history is closed."""
        notice = failure_text(failure_for(Interrupted(), log=log, doing=f"turn {turn.id}", generic=GENERIC))
        shown = (turn.shown_text or "").strip()
        text = f"{shown}\n\n{notice}" if shown and shown != PLACEHOLDER else notice
        await self._show(turn, text)
        await close_history(self.services.store, turn.conversation_id)
        await self.services.store.finish_turn(turn.id, outcome="closed")

    async def _close_other(self, turn: OpenTurn) -> None:
        """Other long work (an upload, an approval wait, a summary): its message says it was interrupted."""
        text = turn.details.get("interrupted") or failure_text(
            failure_for(Interrupted(), log=log, doing=f"{turn.kind} {turn.id}", generic=GENERIC))
        self.handled[turn.kind] = self.handled.get(turn.kind, 0) + 1
        log.info("%s %s (%s) left open by %s: closed", turn.kind, turn.id, turn.channel_id, turn.owner)
        if turn.details.get("approval_id"):  # a click from now on hears the question is no longer waiting
            await self.services.store.close_approval(turn.details["approval_id"], decision="closed")
        await self._show(turn, text)
        await self.services.store.finish_turn(turn.id, outcome="closed")

    async def _show(self, turn: OpenTurn, text: str) -> None:
        budget = self.budgets.chat_update
        try:
            if turn.reply_ts:
                await budget.acquire()
                await call(self.client, "chat.update", budget=budget, channel=turn.channel_id, ts=turn.reply_ts,
                           text=text, blocks=[])
            else:
                await call(self.client, "chat.postMessage", channel=turn.channel_id, thread_ts=turn.thread_ts,
                           text=text)
        except FAILURES as exc:
            log.warning("could not close turn %s in %s: %s", turn.id, turn.channel_id, reason(exc))
