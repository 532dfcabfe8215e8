"""The shared chat.update budget: burst, refill, finals first, 429 pauses everyone."""
from __future__ import annotations

import asyncio
import time

from bot.slack.edit_budget import EditBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_tier_rate():
    clock = Clock()
    budget = EditBudget(per_minute=60, burst=3, clock=clock)
    assert [budget.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.now += 1.0  # 60 a minute = one a second
    assert budget.try_acquire() is True
    assert budget.try_acquire() is False


def test_intermediate_edits_leave_tokens_for_waiting_finals():
    clock = Clock()
    budget = EditBudget(per_minute=60, burst=1, clock=clock)
    budget._finals_waiting = 1  # a final edit is queued
    assert budget.try_acquire() is False  # the one token is kept for it


def test_pause_blocks_all_edits_until_retry_after():
    clock = Clock()
    budget = EditBudget(per_minute=60, burst=5, clock=clock)
    budget.pause(2.0)
    assert budget.rate_limited == 1
    assert budget.try_acquire() is False
    clock.now += 1.5
    assert budget.try_acquire() is False
    clock.now += 1.6  # past the pause, and a token has accrued since
    assert budget.try_acquire() is True


async def test_final_acquire_waits_for_a_token():
    budget = EditBudget(per_minute=600, burst=1)  # 10 per second
    await budget.acquire()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await budget.acquire()
    assert loop.time() - started >= 0.05  # had to wait for the refill


async def test_a_final_leaves_the_arrival_margin_even_when_it_asks_first():
    clock = Clock()
    budget = EditBudget(per_minute=60, burst=5, clock=clock)
    assert sum(budget.try_acquire() for _ in range(4)) == 4  # one token left, nothing in flight
    final = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0.02)
    # One token would do on our clock, but Slack counts arrivals: the final waits for a quarter
    # second's refill on top, so it never lands right behind the edit before it.
    assert not final.done()
    clock.now += 0.3
    await asyncio.wait_for(final, 2)


# --- finals first, by forecast ------------------------------------------------------------------

def test_few_answers_in_flight_leave_progress_edits_as_they_were():
    clock = Clock()
    budget = EditBudget(per_minute=60, burst=20, clock=clock)
    answers = [budget.answer_started() for _ in range(2)]
    # 20 tokens, two finals to come: progress edits may take all but the two.
    assert sum(budget.try_acquire() for _ in range(25)) == 18
    assert budget.try_acquire() is False
    clock.now += 1.0  # the refill goes to progress again
    assert budget.try_acquire() is True
    for answer in answers:
        answer.finished()
    assert budget.try_acquire() is True  # nothing left to keep back once the finals are out of the count


def test_many_answers_in_flight_stop_progress_edits_before_any_final_waits():
    clock = Clock()
    budget = EditBudget(per_minute=60, burst=20, clock=clock)
    answers = [budget.answer_started() for _ in range(25)]
    assert budget.try_acquire() is False  # 25 finals may come at any moment: all 20 tokens are theirs
    clock.now += 30.0
    assert budget.try_acquire() is False  # the bucket is capped at 20: still short of 25
    del answers  # dropped without finishing (an error before the final): they stop counting
    assert budget.try_acquire() is True


def test_a_later_forecast_end_lets_progress_spend_the_refill_before_it():
    clock = Clock()
    budget = EditBudget(per_minute=60, burst=5, clock=clock)  # one token a second, at most 5
    answers = [budget.answer_started() for _ in range(5)]
    for answer in answers:
        answer.expect_end(clock.now + 3.0)
    # By +3 s the bucket refills to 5 from 2 tokens: three spent now cost the finals nothing; a fourth would.
    assert [budget.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_answers_seen_finishing_forecast_when_the_next_ones_may_end():
    clock = Clock()
    budget = EditBudget(per_minute=60, burst=20, clock=clock)  # one token a second, at most 20
    first = budget.answer_started()
    clock.now += 5.0
    first.finished()  # answers here stream for 5 s
    answers = [budget.answer_started() for _ in range(25)]
    # 25 finals due in 5 s: the bucket refills 5 tokens by then, which progress may spend now; no more.
    assert [budget.try_acquire() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 5.5  # past their forecast, still streaming: their finals may come at any moment
    assert budget.try_acquire() is False
    for answer in answers:
        answer.finished()
    # 26 answers seen: one of 5 s, 25 of 5.5 s; the tenth quantile (the third shortest) is 5.5 s.
    assert budget.durations.shortest() == 5.5


def test_a_one_off_message_teaches_the_forecast_nothing():
    clock = Clock()
    budget = EditBudget(per_minute=60, burst=20, clock=clock)
    said = budget.answer_started()
    clock.now += 3.0
    said.finished(streamed=False)
    assert budget.durations.shortest() is None
    answers = [budget.answer_started() for _ in range(25)]
    assert budget.try_acquire() is False  # no history: 25 finals may come at any moment
    del answers


def test_the_forecast_is_the_shortest_tenth_of_recent_answers():
    from bot.slack.edit_forecast import StreamDurations

    durations = StreamDurations(keep=20)
    assert durations.shortest() is None
    for seconds in (9.0, 4.0, 7.0):
        durations.record(seconds)
    assert durations.shortest() == 4.0  # fewer than ten: the shortest
    for seconds in range(10, 30):
        durations.record(float(seconds))  # the oldest fall out of the window
    assert durations.shortest() == 12.0  # 10..29 kept, the tenth quantile of 20 is the third


def test_a_waiting_final_and_an_answer_in_flight_both_keep_their_token():
    clock = Clock()
    budget = EditBudget(per_minute=60, burst=3, clock=clock)
    budget._finals_waiting = 1
    answer = budget.answer_started()
    assert budget.try_acquire() is True  # 3 tokens: one spare
    assert budget.try_acquire() is False
    answer.finished()
    clock.now += 1.0
    assert budget.try_acquire() is True


async def test_the_bottleneck_is_logged_once_with_the_queue_length(caplog):
    clock = Clock()
    budget = EditBudget(per_minute=60 * 20, burst=1, clock=clock)  # 20 a second, no burst to speak of
    await budget.acquire()
    finals = [asyncio.create_task(budget.acquire()) for _ in range(5)]
    await asyncio.sleep(0.02)
    assert budget.report()["finals_waiting"] == 5 and not caplog.records
    while not all(f.done() for f in finals):
        clock.now += 1.1  # one token (the bucket holds one), and every waiting final past a second
        await asyncio.sleep(0.07)
    said = [r.getMessage() for r in caplog.records if "bottleneck" in r.getMessage()]
    assert len(said) == 1
    assert "4 final edits waiting" in said[0]


def test_report_shows_tokens_waiting_finals_and_answers_in_flight():
    clock = Clock()
    budget = EditBudget(per_minute=60, burst=4, clock=clock)
    answer = budget.answer_started()
    assert budget.try_acquire() is True
    report = budget.report()
    assert report["tokens"] == 3 and report["finals_waiting"] == 0 and report["answers_in_flight"] == 1
    assert report["answers_run_at_least_s"] is None  # no answer seen finishing: no forecast yet
    clock.now += 2.5
    answer.finished()
    assert budget.report()["answers_in_flight"] == 0 and budget.report()["answers_run_at_least_s"] == 2.5
    budget.pause(2.0)
    assert budget.report()["paused_for_s"] == 2.0 and budget.report()["rate_limited"] == 1


# --- SharedEditBudget: one bucket in the database for every replica -----------------------------

async def _replica_budgets(store, **limits):
    from bot.slack.edit_budget import SharedEditBudget
    from tests.store.test_backends import second

    other = await second(store)
    return other, [SharedEditBudget(s, "chat.update", **limits) for s in (store, other)]


async def test_two_replicas_make_the_edits_of_one_workspace_not_twice_as_many(any_store):
    other, budgets = await _replica_budgets(any_store, per_minute=120, burst=4)
    try:
        counts = [0, 0]
        start = time.monotonic()

        async def edit(i: int) -> None:
            while time.monotonic() - start < 1.5:
                await budgets[i].acquire()
                counts[i] += 1

        await asyncio.gather(edit(0), edit(1))
        elapsed = time.monotonic() - start
        # One bucket: its burst plus what it refilled (2 a second), plus the edit already waiting at
        # the deadline. Two separate buckets would allow about twice that.
        assert 4 <= sum(counts) <= 4 + 2 * elapsed + 2
    finally:
        await other.close()


async def test_intermediate_edits_leave_the_reserve_for_finals_on_every_replica(any_store):
    other, (a, b) = await _replica_budgets(any_store, per_minute=0.001, burst=5, reserve_for_finals=3)
    try:
        granted = 0
        for _ in range(10):
            granted += b.try_acquire()  # never waits: the first ask only fetches a token
            await b.drain()
        assert granted == 2
        for _ in range(3):
            await asyncio.wait_for(a.acquire(), 2)  # the other replica's finals find the reserve
        assert not a.try_acquire() and not b.try_acquire()
    finally:
        await other.close()


async def test_a_429_on_one_replica_pauses_the_other(any_store):
    other, (a, b) = await _replica_budgets(any_store, per_minute=6000, burst=5)
    try:
        a.pause(0.6)
        await a.drain()
        assert not b.try_acquire()
        await b.drain()
        assert not b.try_acquire()
        start = time.monotonic()
        await b.acquire()
        assert time.monotonic() - start >= 0.45
    finally:
        await other.close()


async def test_work_that_can_wait_leaves_the_tokens_it_is_told_to_keep():
    clock = Clock()
    budget = EditBudget(per_minute=60, burst=4, clock=clock)
    assert [budget.try_acquire() for _ in range(2)] == [True, True]  # 2 left
    waiting = asyncio.create_task(budget.wait_for_spare(keep=2))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # 2 tokens, 2 to keep: nothing spare
    clock.now += 1.0  # one more token
    await asyncio.wait_for(waiting, 2)
    assert budget.report()["tokens"] == 3  # it only looked: the token is there for the edit that follows


async def test_on_replicas_work_that_can_wait_leaves_the_tokens_it_is_told_to_keep(any_store):
    other, (a, b) = await _replica_budgets(any_store, per_minute=0.001, burst=3)
    try:
        await asyncio.wait_for(a.wait_for_spare(keep=2), 2)  # 3 in the bucket: one spare beyond the 2 kept
        waiting = asyncio.create_task(b.wait_for_spare(keep=2))  # 2 left: none spare
        await asyncio.sleep(0.5)
        assert not waiting.done()
        waiting.cancel()
        for _ in range(2):
            await asyncio.wait_for(b.acquire(), 2)  # finals of new answers find the two kept
    finally:
        await a.drain()
        await b.drain()
        await other.close()
