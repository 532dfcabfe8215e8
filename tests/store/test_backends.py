"""The store's contract on both backends (SQLite and PostgreSQL): each test runs on each, so they cannot drift.
Two store objects on one database stand for two replicas (or two processes on one SQLite file)."""
from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from bot.messages import Message
from bot.store import UsageRow
from bot.store.sqlite import SqliteStore


async def second(store):
    """Another store on the same database: a second replica."""
    if isinstance(store, SqliteStore):
        return SqliteStore(store.path)
    from bot.store.postgres import PostgresStore

    return await PostgresStore.open(store.url)


def usage(user: str, cost: str, *, team: str = "T1", model: str = "m1", at: float | None = None) -> UsageRow:
    return UsageRow(team_id=team, user_id=user, channel_id="C1", thread_ts="1.0", surface="mention", model=model,
                    input_tokens=10, output_tokens=5, cache_creation_input_tokens=1, cache_read_input_tokens=2,
                    cost_usd=Decimal(cost), latency_ms=7, stop_reason="end_turn", created_at=at)


async def test_an_event_claimed_by_one_replica_is_refused_to_the_other(any_store):
    other = await second(any_store)
    try:
        results = await asyncio.gather(*(s.claim_event("event:Ev1", "msg:C1:1.0")
                                         for s in [any_store, other] * 5))
        assert sorted(results) == [False] * 9 + [True]
        assert await other.claim_event("msg:C1:1.0") is False
        assert await other.claim_event("event:Ev2", "msg:C1:1.0") is False
        assert await any_store.claim_event("event:Ev2") is True  # a refused claim kept none of its keys
    finally:
        await other.close()


async def test_history_round_trips_in_order_and_conversations_are_per_thread(any_store):
    ids = await asyncio.gather(*(any_store.conversation_id(team_id="T1", channel_id="C1", thread_ts="1.0",
                                                           user_id="U1") for _ in range(5)))
    assert len(set(ids)) == 1
    other = await any_store.conversation_id(team_id="T1", channel_id="C1", thread_ts="2.0", user_id="U1")
    assert other != ids[0]
    assert await any_store.last_role(ids[0]) is None
    turn = [Message.from_json({"role": "user", "content": [{"type": "text", "text": "hi ünïcode 🎉"}]}),
            Message.from_json({"role": "assistant", "content": [
                {"type": "tool_use", "id": "tu1", "name": "get_weather", "input": {"city": "Oslo", "z": 1, "a": 2}}]}),
            Message.from_json({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "tu1", "content": "sunny"}]})]
    written = await any_store.append_messages(ids[0], turn, token_counts=[3, 4, 5], user_id="U1", slack_ts="1.0")
    history = await any_store.history(ids[0])
    assert [h.id for h in history] == written and written == sorted(written)
    assert [h.message.to_json() for h in history] == [m.to_json() for m in turn]
    # Key order survives (prompt caching compares request prefixes byte for byte).
    assert list(history[1].message.to_json()["content"][0]["input"]) == ["city", "z", "a"]
    assert [h.token_count for h in history] == [3, 4, 5]
    assert await any_store.last_role(ids[0]) == "user"
    assert await any_store.history(other) == []


async def test_usage_totals_and_groups_are_exact(any_store):
    day = 86400.0 * 20000
    for user, cost, model, at in (("U1", "0.000000000001", "m1", day + 5), ("U1", "0.1", "m2", day + 10),
                                  ("U2", "0.25", "m1", day + 86400 + 1)):
        await any_store.record_usage(usage(user, cost, model=model, at=at))
    total = await any_store.usage_totals(since=day)
    assert (total.calls, total.input_tokens, total.total_tokens) == (3, 30, 54)
    assert total.cost_usd == Decimal("0.350000000001")
    assert (await any_store.usage_totals(since=day, user_id="U1")).cost_usd == Decimal("0.100000000001")
    by_user = await any_store.usage_grouped("user_id", since=day)
    assert [(k, t.calls, t.cost_usd) for k, t in by_user] == [("U2", 1, Decimal("0.25")),
                                                               ("U1", 2, Decimal("0.100000000001"))]
    by_day = await any_store.usage_grouped("day", since=day)
    assert [(k, t.calls) for k, t in by_day] == [(20000, 2), (20001, 1)]
    assert [k for k, _ in await any_store.usage_grouped("model", since=day, limit=1)] == ["m1"]
    with pytest.raises(ValueError):
        await any_store.usage_grouped("channel_id", since=day)


async def test_rpm_holds_across_replicas_admitting_at_once(any_store):
    other = await second(any_store)
    now = time.time()
    try:
        results = await asyncio.gather(*(
            s.admit_request(user_id="U1", team_id="T1", now=now, rpm=5, day_start=now - 10,
                            user_daily_usd=None, daily_usd=None) for s in [any_store, other] * 10))
        admitted = [r for r in results if r.admitted]
        assert len(admitted) == 5 and len({r.request_id for r in admitted}) == 5
        refused = [r for r in results if not r.admitted]
        assert {r.refused_by for r in refused} == {"rpm"}
        assert all(r.retry_at == pytest.approx(now + 60) for r in refused)
    finally:
        await other.close()


async def test_daily_budgets_refuse_once_spent(any_store):
    now = time.time()
    args = dict(team_id="T1", now=now, rpm=None, day_start=now - 100)
    await any_store.record_usage(usage("U1", "1.50", at=now - 50))
    refused = await any_store.admit_request(user_id="U1", user_daily_usd=Decimal("1.5"), daily_usd=None, **args)
    assert (refused.admitted, refused.refused_by, refused.spent_usd) == (False, "user_daily", Decimal("1.5"))
    assert (await any_store.admit_request(user_id="U2", user_daily_usd=Decimal("1.5"), daily_usd=None,
                                          **args)).admitted
    team = await any_store.admit_request(user_id="U2", user_daily_usd=None, daily_usd=Decimal("1.0"), **args)
    assert (team.admitted, team.refused_by) == (False, "daily")


async def test_feedback_votes_replace_and_count(any_store):
    vote = dict(team_id="T1", channel_id="C1", message_ts="5.0", user_id="U1")
    assert await any_store.record_feedback(vote="up", model="m1", **vote) is True
    assert await any_store.record_feedback(vote="down", **vote) is False
    assert await any_store.record_feedback(vote="up", **{**vote, "user_id": "U2"}) is True
    assert await any_store.feedback_counts(since=0) == (1, 1)
    assert await any_store.feedback_counts(since=0, user_id="U1") == (0, 1)
    with pytest.raises(ValueError):
        await any_store.record_feedback(vote="meh", **vote)


async def test_assistant_threads_and_one_title_across_replicas(any_store):
    other = await second(any_store)
    try:
        await any_store.record_assistant_thread(channel_id="D1", thread_ts="1.0", user_id="U1")
        await other.record_assistant_thread(channel_id="D1", thread_ts="1.0", context_channel_id="C9",
                                            context_team_id="T1")
        thread = await any_store.assistant_thread("D1", "1.0")
        assert (thread.user_id, thread.context_channel_id, thread.context_team_id) == ("U1", "C9", "T1")
        assert await any_store.assistant_thread("D1", "2.0") is None
        claims = await asyncio.gather(*(s.claim_assistant_title("D1", "3.0") for s in [any_store, other] * 4))
        assert sorted(claims) == [False] * 7 + [True]
    finally:
        await other.close()


async def test_turns_of_a_thread_run_one_at_a_time_in_message_order_across_replicas(any_store):
    if isinstance(any_store, SqliteStore):
        pytest.skip("one process owns a SQLite file: the conversation core's per-thread lock orders its turns")
    other = await second(any_store)
    ran: list[str] = []
    running = 0

    async def turn(store, ts: str, delay: float) -> None:
        nonlocal running
        await asyncio.sleep(delay)
        async with store.thread_turn("C1", "1.0", ts):
            running += 1
            assert running == 1
            ran.append(ts)
            await asyncio.sleep(0.05)
            running -= 1

    try:
        # Later messages arrive first on the other replica while the first turn runs.
        await asyncio.gather(turn(any_store, "1.1", 0), turn(other, "1.4", 0.02), turn(other, "1.2", 0.03),
                             turn(any_store, "1.3", 0.04))
        assert ran == ["1.1", "1.2", "1.3", "1.4"]
    finally:
        await other.close()


async def test_a_dead_replicas_thread_lock_and_waiters_do_not_block(any_store):
    if isinstance(any_store, SqliteStore):
        pytest.skip("one process owns a SQLite file")
    import psycopg

    dead = await second(any_store)
    entered = asyncio.Event()

    async def hold_forever() -> None:
        async with dead.thread_turn("C1", "9.0", "9.1"):
            entered.set()
            await asyncio.sleep(3600)

    holder = asyncio.create_task(hold_forever())
    await entered.wait()
    # The replica dies: its connections go, the task never finishes its cleanup.
    async with await psycopg.AsyncConnection.connect(any_store.url, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                            " AND application_name = '' AND backend_type = 'client backend'"
                            " AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')")
        await admin.execute("UPDATE thread_waiters SET alive_until = alive_until - 3600")  # no renewal since
    started = time.monotonic()
    async with any_store.thread_turn("C1", "9.0", "9.2"):
        pass
    assert time.monotonic() - started < 5
    holder.cancel()


async def test_blobs_are_kept_once_under_their_address_for_every_replica(any_store):
    import hashlib

    other = await second(any_store)
    try:
        data = bytes(range(256)) * 4  # every byte value, NUL included
        sha = hashlib.sha256(data).hexdigest()
        await asyncio.gather(any_store.put_blob(sha, "image/png", data), other.put_blob(sha, "image/png", data))
        assert await other.get_blobs([sha, "0" * 64]) == {sha: data}
        assert await any_store.get_blobs([]) == {}
    finally:
        await other.close()


async def test_an_edit_bucket_is_one_bucket_for_every_replica(any_store):
    other = await second(any_store)
    try:
        # per_s is tiny: nothing refills during the test, so the counts are exact.
        limits = {"per_s": 1e-6, "burst": 5.0}
        takes = await asyncio.gather(*(s.take_edit_tokens("chat.update", keep=0, **limits)
                                       for s in [any_store, other] * 6))
        assert sum(t for t, _ in takes) == 5  # a new bucket starts full, and the replicas share it
        taken, wait = await other.take_edit_tokens("chat.update", keep=0, **limits)
        assert taken == 0 and wait > 1000  # the next token is 1/per_s away
        assert (await any_store.take_edit_tokens("chat.appendStream", keep=3, most=5, **limits))[0] == 2
        await any_store.give_edit_tokens("chat.update", 2, burst=5.0)
        assert (await other.take_edit_tokens("chat.update", keep=1, most=5, **limits))[0] == 1  # keep is left
        await other.pause_edit_tokens("chat.update", 30)
        await any_store.give_edit_tokens("chat.update", 3, burst=5.0)  # nothing goes into a paused bucket
        taken, wait = await any_store.take_edit_tokens("chat.update", keep=0, per_s=1000.0, burst=5.0)
        assert taken == 0 and 29 < wait <= 30.01  # paused for everyone, however fast it refills
    finally:
        await other.close()
