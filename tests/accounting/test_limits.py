"""Per-user rpm and daily budgets, workspace daily budget: atomic under concurrency, friendly refusals."""
from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from bot.config import Settings
from bot.errors import LimitExceeded
from bot.accounting.limits import check_and_reserve, format_duration
from bot.store import UsageRow
from bot.store.sqlite import SqliteStore
from bot.store import Store
from tests.store_rows import requests_since

NOW = datetime(2026, 11, 26, 20, 48, 0, tzinfo=timezone.utc)


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(tmp_path / "t.db")
    yield s
    await s.close()


async def spend(store: Store, user: str, cost: str, at: datetime, team: str = "T1") -> None:
    await store.record_usage(UsageRow(team, user, "C1", None, "mention", "claude-sonnet-4-6", 10, 10, 0, 0,
                                Decimal(cost), 100, "end_turn", created_at=at.timestamp()))


async def test_rpm_admits_n_then_says_when_to_retry(store):
    cfg = settings(THREADBOT_USER_RPM=3)
    for offset in (0, 5, 10):
        await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW + timedelta(seconds=offset))
    with pytest.raises(LimitExceeded) as info:
        await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW + timedelta(seconds=18))
    assert info.value.user_message() == (
        "You've reached your limit of 3 requests per minute — try again in 42 seconds.")
    assert info.value.resets_at == NOW + timedelta(seconds=60)
    # Another user is not affected.
    await check_and_reserve(store, user_id="U2", team_id="T1", settings=cfg, now=NOW + timedelta(seconds=21))
    # Once the first request leaves the 60 s window one slot frees up, and only one.
    await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW + timedelta(seconds=61))
    with pytest.raises(LimitExceeded, match="try again in 4 seconds"):
        await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW + timedelta(seconds=61))


async def test_rpm_singular_wording(store):
    cfg = settings(THREADBOT_USER_RPM=1)
    await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW)
    with pytest.raises(LimitExceeded) as info:
        await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW + timedelta(seconds=59, milliseconds=200))
    assert info.value.user_message() == "You've reached your limit of 1 request per minute — try again in 1 second."


async def test_rpm_exact_under_thread_concurrency_across_connections(tmp_path):
    """40 simultaneous requests from one user through 4 separate connections (like 4 processes)."""
    stores = [SqliteStore(tmp_path / "t.db") for _ in range(4)]
    cfg = settings(THREADBOT_USER_RPM=10)
    admitted, refused = [], []
    barrier = threading.Barrier(40)

    def one(i: int) -> None:  # each thread its own event loop, as each process would have
        barrier.wait()
        try:
            asyncio.run(check_and_reserve(stores[i % 4], user_id="U1", team_id="T1", settings=cfg, now=NOW))
            admitted.append(i)
        except LimitExceeded:
            refused.append(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(admitted), len(refused)) == (10, 30)
    assert requests_since(stores[0], user_id="U1", since=NOW.timestamp() - 60) == 10
    for s in stores:
        await s.close()


async def test_rpm_exact_under_asyncio_tasks(store):
    cfg = settings(THREADBOT_USER_RPM=7)

    async def one() -> bool:
        try:
            await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW)
            return True
        except LimitExceeded:
            return False

    results = await asyncio.gather(*(one() for _ in range(50)))
    assert results.count(True) == 7


async def test_daily_budget_the_crossing_call_completes_later_ones_refused(store):
    cfg = settings(THREADBOT_USER_DAILY_USD="1", THREADBOT_USER_RPM=1000)
    morning = NOW.replace(hour=8)
    await spend(store, "U1", "0.6", morning)
    await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW)  # 0.60 < 1.00
    await spend(store, "U1", "0.6", NOW)  # that call crossed the budget: 1.20
    with pytest.raises(LimitExceeded) as info:
        await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW)
    assert info.value.user_message() == (
        "You've reached your daily budget of $1.00 — it resets at 00:00 UTC (in 3 h 12 min).")
    assert info.value.resets_at == datetime(2026, 11, 27, tzinfo=timezone.utc)
    # Other users still fine; the next UTC day the user is admitted again.
    await check_and_reserve(store, user_id="U2", team_id="T1", settings=cfg, now=NOW)
    await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=datetime(2026, 11, 27, 0, 0, 1, tzinfo=timezone.utc))


async def test_spend_exactly_at_the_budget_is_refused_and_yesterday_does_not_count(store):
    cfg = settings(THREADBOT_USER_DAILY_USD="0.30", THREADBOT_USER_RPM=1000)
    await spend(store, "U1", "5", NOW - timedelta(days=1))
    await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW)
    for _ in range(3):
        await spend(store, "U1", "0.1", NOW)  # exactly 0.30 (no float drift in the SQL sum)
    with pytest.raises(LimitExceeded, match=r"daily budget of \$0.30"):
        await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW)


async def test_workspace_budget_counts_everyone_in_the_team(store):
    cfg = settings(THREADBOT_DAILY_USD="2", THREADBOT_USER_DAILY_USD="5", THREADBOT_USER_RPM=1000)
    await spend(store, "U1", "1.5", NOW)
    await spend(store, "U2", "0.5", NOW)
    await spend(store, "U9", "50", NOW, team="T_OTHER")
    with pytest.raises(LimitExceeded) as info:
        await check_and_reserve(store, user_id="U3", team_id="T1", settings=cfg, now=NOW.replace(hour=23, minute=59, second=30))
    assert info.value.user_message() == (
        "The workspace has reached its daily budget of $2.00 — it resets at 00:00 UTC (in 30 seconds).")
    await check_and_reserve(store, user_id="U3", team_id="T2", settings=cfg, now=NOW)


async def test_refused_requests_do_not_use_up_the_rate_limit(store):
    cfg = settings(THREADBOT_USER_RPM=2, THREADBOT_USER_DAILY_USD="1")
    await spend(store, "U1", "1", NOW)
    for _ in range(5):
        with pytest.raises(LimitExceeded):
            await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW)
    assert requests_since(store, user_id="U1", since=0) == 0


async def test_zero_budget_means_no_limit(store):
    cfg = settings(THREADBOT_USER_DAILY_USD="0", THREADBOT_DAILY_USD="0", THREADBOT_USER_RPM=1000)
    await spend(store, "U1", "100", NOW)
    await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW)


async def test_naive_now_is_utc(store):
    cfg = settings(THREADBOT_USER_DAILY_USD="1", THREADBOT_USER_RPM=1000)
    await spend(store, "U1", "1", NOW)
    with pytest.raises(LimitExceeded, match=r"in 3 h 12 min"):
        await check_and_reserve(store, user_id="U1", team_id="T1", settings=cfg, now=NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    "seconds, text",
    [(0.2, "1 second"), (42, "42 seconds"), (60, "1 min"), (61, "2 min"), (3600, "1 h"), (11_520, "3 h 12 min"),
     (86_400, "24 h")],
)
def test_format_duration(seconds, text):
    assert format_duration(timedelta(seconds=seconds)) == text
