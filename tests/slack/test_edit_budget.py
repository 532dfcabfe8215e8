"""The shared chat.update budget: burst, refill, finals first, 429 pauses everyone."""
from __future__ import annotations

import asyncio

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
