"""One workspace-wide budget for chat.update: a token bucket shared by every reply in flight.

Slack rate-limits chat.update per workspace (Tier 3, about 50 a minute with bursts), not per message.
Final edits wait for a token and go first. Progress edits only take a token the finals of the answers
in flight will not need by the time they finish (bot/slack/edit_forecast.py decides which edits spend;
this module keeps the tokens). A 429 pauses the whole bucket for its Retry-After, so one reply's 429
slows every reply instead of each reply hammering Slack on its own.

Replicas on one database share the bucket itself (SharedEditBudget): each takes tokens from the
store's bucket one at a time, so N replicas make the workspace's edits, not N times as many.
"""
from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from bot.slack.edit_forecast import StreamDurations, progress_may_spend

if TYPE_CHECKING:
    from bot.store import Store

log = logging.getLogger(__name__)

# A final that waits this long means the bucket, not the model, decides when answers land. Said after
# a moment rather than at the first wait so the log line carries the whole queue, not its first few.
BOTTLENECK_AFTER_S = 1.0
# Slack counts an edit when it arrives, we when we send it: when calls' latency varies, Slack's bucket
# can be a little behind ours. Every final leaves this much refill in the bucket (it takes a token at
# 1 + rate × skew, not at 1): a constant lag behind the refill, not a cost per edit, that keeps a
# queue of finals clear of 429s. Each final keeps it, also one that arrives while others wait: a
# newcomer taking the token at exactly 1 would use up the margin the one before it left.
ARRIVAL_SKEW_S = 0.25


class InFlight:
    """One answer being streamed: its final edit will need a token when it finishes."""

    def __init__(self, budget: "EditBudget"):
        self._budget = budget
        self.started_at = budget._clock()
        self._expected: float | None = None

    @property
    def ends_at(self) -> float | None:
        """The earliest it may finish (budget clock): as told, else by the durations of the answers
        seen before (bot/slack/edit_forecast.py); None: any moment."""
        if self._expected is not None:
            return self._expected
        shortest = self._budget.durations.shortest()
        return None if shortest is None else self.started_at + shortest

    def expect_end(self, at: float | None) -> None:
        self._expected = at

    def finished(self, *, streamed: bool = True) -> None:
        """The answer is done streaming: its final now asks for its token through acquire().
        `streamed=False` (a one-off message, an answer shown whole) teaches the forecast nothing."""
        if self in self._budget._in_flight and streamed:
            self._budget.durations.record(self._budget._clock() - self.started_at)
        self._budget._in_flight.discard(self)


class EditBudget:
    def __init__(self, *, per_minute: float = 50.0, burst: int = 20, reserve_for_finals: int = 0,
                 clock: Callable[[], float] = time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        # Tokens progress edits always leave alone, on top of what the forecast keeps for finals.
        self.reserve_for_finals = reserve_for_finals
        self._tokens = float(burst)
        self._clock = clock
        self._updated = clock()
        self._paused_until = 0.0
        self._finals_waiting = 0
        # Held weakly: a reply that is dropped without finishing (an error before its final) stops
        # counting when it is collected, instead of keeping a token back for ever.
        self._in_flight: weakref.WeakSet[InFlight] = weakref.WeakSet()
        self.durations = StreamDurations()  # how long answers ran: when the ones in flight may end
        self._bottleneck_logged = False
        self.rate_limited = 0  # 429s reported, for the bench and the logs

    def _refill(self) -> None:
        now = self._clock()
        if now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def answer_started(self) -> InFlight:
        """Count an answer in flight until its `finished()` (or until the caller drops it): progress
        edits leave a token for its final."""
        answer = InFlight(self)
        self._in_flight.add(answer)
        return answer

    def _final_ends(self, now: float) -> list[float]:
        """When the finals will ask for their tokens, as offsets from now (0: waiting, or any moment)."""
        ends = [0.0] * self._finals_waiting
        for answer in list(self._in_flight):
            end = answer.ends_at
            ends.append(0.0 if end is None else max(end - now, 0.0))
        return ends

    def try_acquire(self, *, keep: int = 0) -> bool:
        """Take a token for a progress edit if no final needs it (and `keep` more stay); never waits."""
        self._refill()
        now = self._clock()
        if now < self._paused_until:
            return False
        # Keep a token back for every final edit that is waiting: finals go first.
        reserve = self.reserve_for_finals + keep
        if self._tokens < 1 + self._finals_waiting + reserve:
            return False
        if not progress_may_spend(self._tokens - reserve, rate=self.rate, burst=self.burst,
                                  paused_for=0.0, ends=self._final_ends(now)):
            return False
        self._tokens -= 1
        return True

    async def acquire(self) -> None:
        """Wait for a token for a final edit (priority over progress edits)."""
        self._finals_waiting += 1
        asked = self._clock()
        need = min(1.0 + self.rate * ARRIVAL_SKEW_S, self.burst)
        try:
            while True:
                self._refill()
                now = self._clock()
                if now >= self._paused_until and self._tokens >= need:
                    self._tokens -= 1
                    return
                if now - asked >= BOTTLENECK_AFTER_S:
                    self._say_bottleneck()
                wait = max(self._paused_until - now, (need - self._tokens) / self.rate, 0.01)
                await asyncio.sleep(min(wait, 1.0))
        finally:
            self._finals_waiting -= 1
            if self._finals_waiting == 0:
                self._bottleneck_logged = False  # the queue drained: the next backlog is news again

    def _say_bottleneck(self) -> None:
        if not self._bottleneck_logged:
            self._bottleneck_logged = True
            log.warning("chat.update budget is the bottleneck: %d final edits waiting, %d answers in flight, "
                        "%.0f a minute", self._finals_waiting, len(self._in_flight), self.rate * 60)

    async def wait_for_spare(self, *, keep: int = 0) -> None:
        """Wait until a progress edit could take a token with `keep` more left, without taking it: work that
        can wait, such as closing what a crashed process left, never takes the edits answers in flight need
        (nor, with `keep`, those of answers about to start)."""
        while not self.try_acquire(keep=keep):  # the shared bucket's try_acquire also fetches tokens meanwhile
            await asyncio.sleep(0.25)
        self._tokens += 1  # only looked: the token stays for the edit that follows

    def pause(self, retry_after_s: float) -> None:
        """Slack said 429: stop every edit until Retry-After has passed, and start with an empty bucket."""
        self.rate_limited += 1
        self._paused_until = max(self._paused_until, self._clock() + max(retry_after_s, 0.0))
        self._tokens = 0.0
        self._updated = max(self._updated, self._paused_until)

    def report(self) -> dict[str, float | int | None]:
        """The budget's state for /healthz."""
        self._refill()
        shortest = self.durations.shortest()  # the forecast; None: no answer seen yet
        return {"tokens": round(self._tokens, 2), "finals_waiting": self._finals_waiting,
                "answers_in_flight": len(self._in_flight), "per_minute": round(self.rate * 60, 1),
                "burst": int(self.burst), "paused_for_s": round(max(self._paused_until - self._clock(), 0.0), 2),
                "rate_limited": self.rate_limited,
                "answers_run_at_least_s": None if shortest is None else round(shortest, 2)}


class SharedEditBudget(EditBudget):
    """The same budget with its bucket in the database, shared by every replica (the same interface).

    The database's bucket refills (Slack's 429s, if any, are its arrival-time correction); this replica holds at most one token taken from it, for at most
    HOLD_S (then it goes back). try_acquire never waits: with no token in hand it asks the store in
    the background and says no, so this edit is coalesced into the next one, which finds the token.
    Intermediate takes leave reserve_for_finals tokens in the bucket; finals take any. A 429 seen by
    one replica empties the shared bucket for its Retry-After, pausing every replica.
    """

    HOLD_S = 2.0

    def __init__(self, store: "Store", name: str, *, per_minute: float = 50.0, burst: int = 20,
                 reserve_for_finals: int = 0, clock: Callable[[], float] = time.monotonic):
        super().__init__(per_minute=per_minute, burst=burst, reserve_for_finals=reserve_for_finals, clock=clock)
        self.store = store
        self.name = name
        self._tokens = 0.0  # tokens in hand, taken from the shared bucket at _taken_at
        self._taken_at = 0.0
        self._next_ask = 0.0  # when a background take is worth trying again
        self._asking: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    def _refill(self) -> None:
        """Tokens refill in the database; one held too long goes back for another replica to use."""
        if self._tokens >= 1 and self._clock() - self._taken_at > self.HOLD_S:
            held, self._tokens = int(self._tokens), 0.0
            self._spawn(self.store.give_edit_tokens(self.name, held, burst=self.burst))

    def try_acquire(self, *, keep: int = 0) -> bool:
        self._refill()
        if self._clock() < self._paused_until:
            return False
        if self._tokens >= 1 + self._finals_waiting and not keep:
            self._tokens -= 1
            return True
        if self._asking is None and self._clock() >= self._next_ask:
            # In place of the forecast (which needs the whole bucket): leave a token for the final
            # of every answer this replica has in flight, and for each final already waiting.
            keep += self.reserve_for_finals + self._finals_waiting + len(self._in_flight)
            self._asking = self._spawn(self._take(keep=keep))
        return False

    async def acquire(self) -> None:
        self._finals_waiting += 1
        asked = self._clock()
        try:
            while True:
                if self._clock() - asked >= BOTTLENECK_AFTER_S:
                    self._say_bottleneck()
                self._refill()
                wait = self._paused_until - self._clock()
                if wait <= 0:
                    if self._tokens >= 1:
                        self._tokens -= 1
                        return
                    wait = await self._take(keep=0)
                    if self._tokens >= 1:
                        continue
                await asyncio.sleep(min(max(wait, 0.01), 1.0))
        finally:
            self._finals_waiting -= 1
            if self._finals_waiting == 0:
                self._bottleneck_logged = False

    async def wait_for_spare(self, *, keep: int = 0) -> None:
        """As EditBudget's, asking the shared bucket itself: the token it gives stays in hand for the edit that
        follows, and the bucket keeps `keep` more (besides the finals of this replica's answers in flight)."""
        while True:
            self._refill()
            wait = self._paused_until - self._clock()
            if wait <= 0:
                had = self._tokens
                wait = await self._take(keep=keep + self.reserve_for_finals + self._finals_waiting
                                        + len(self._in_flight))
                if self._tokens > had:
                    return
            await asyncio.sleep(min(max(wait, 0.05), 1.0))

    def pause(self, retry_after_s: float) -> None:
        super().pause(retry_after_s)
        self._spawn(self.store.pause_edit_tokens(self.name, retry_after_s))

    async def _take(self, *, keep: float) -> float:
        """One token from the shared bucket into hand, if one is spare; returns the wait for the next."""
        try:
            taken, wait = await self.store.take_edit_tokens(self.name, per_s=self.rate, burst=self.burst,
                                                            keep=keep)
        except Exception as exc:  # the database is away: no edit budget, so no intermediate edits
            log.warning("edit budget %s: the database did not answer (%s)", self.name, type(exc).__name__)
            taken, wait = 0, 1.0
        if taken:
            self._tokens += taken
            self._taken_at = self._clock()
        else:
            self._next_ask = self._clock() + min(wait, 1.0)
        return wait

    def _spawn(self, coro) -> "asyncio.Task[None]":
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: "asyncio.Task[None]") -> None:
        self._background.discard(task)
        if task is self._asking:
            self._asking = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("edit budget %s: %s", self.name, type(task.exception()).__name__)

    async def drain(self) -> None:
        """Wait for background store calls (a shutdown, a test)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)


CHAT_UPDATE = {"per_minute": 50.0, "burst": 20}
APPEND_STREAM = {"per_minute": 100.0, "burst": 20}


@dataclass(frozen=True)
class EditBudgets:
    """The workspace budgets every reply in flight shares, one per rate-limited method."""

    # Tier 3 (about 50 a minute); progress edits leave the tokens the finals in flight will need.
    chat_update: EditBudget = field(default_factory=lambda: EditBudget(**CHAT_UPDATE))
    # chat.appendStream (THREADBOT_STREAMING=native) has its own workspace rate: Tier 4.
    append_stream: EditBudget = field(default_factory=lambda: EditBudget(**APPEND_STREAM))

    @classmethod
    def for_store(cls, store: "Store") -> "EditBudgets":
        """Replicas sharing a database share each bucket there; one process keeps them in memory."""
        if not store.shared_by_replicas:
            return cls()
        return cls(chat_update=SharedEditBudget(store, "chat.update", **CHAT_UPDATE),
                   append_stream=SharedEditBudget(store, "chat.appendStream", **APPEND_STREAM))

    async def drain(self) -> None:
        """Let shared budgets finish their store calls (tokens given back) before the store closes."""
        for budget in (self.chat_update, self.append_stream):
            if isinstance(budget, SharedEditBudget):
                await budget.drain()
