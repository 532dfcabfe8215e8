"""Durable turns on both backends: recorded with their event claim, progress kept, done ones pruned,
the open turns of an owner that is gone adopted once — also by two replicas racing for them."""
from __future__ import annotations

import asyncio

from bot.store import NewTurn
from tests.store.test_backends import second


def question(ts: str, text: str = "hello?") -> NewTurn:
    return NewTurn(kind="answer", team_id="T1", channel_id="C1", thread_ts=ts, ts=ts, user_id="U1",
                   surface="mention", text=text, details={"files": []})


async def test_a_turn_is_recorded_with_its_event_claim_and_a_retry_records_nothing(any_store):
    store = any_store
    turn_id = await store.claim_turn("event:Ev1", "msg:C1:1.0", turn=question("1.0"), owner="p1")
    assert turn_id is not None
    assert await store.claim_turn("event:Ev1", turn=question("1.0"), owner="p1") is None
    assert await store.claim_turn("event:Ev2", "msg:C1:1.0", turn=question("1.0"), owner="p1") is None
    assert await store.claim_event("event:Ev2") is True  # the refused claim wrote no key
    assert [t.id for t in await store.adopt_turns("p2", everyone_else_gone=True)] == [turn_id]  # one turn


async def test_only_the_turns_of_an_owner_that_is_gone_are_adopted(any_store):
    store = any_store
    await store.renew_owner("alive", lease_s=30)
    await store.renew_owner("dead", lease_s=-1)  # its lease ran out
    alive = await store.claim_turn("msg:C1:1.0", turn=question("1.0"), owner="alive")
    dead = await store.claim_turn("msg:C1:2.0", turn=question("2.0", "where?"), owner="dead")
    await store.turn_shown(dead, reply_ts="2.5", shown_text="_Thinking…_", streaming=False)
    await store.turn_question_saved(dead, conversation_id=7, question_id=11)
    await store.turn_details(dead, surface="assistant", details={"viewing_channel_id": "C9"})
    await store.renew_owner("me", lease_s=30)
    adopted = await store.adopt_turns("me")
    assert [t.id for t in adopted] == [dead]
    turn = adopted[0]
    assert (turn.text, turn.reply_ts, turn.shown_text, turn.streaming, turn.conversation_id, turn.question_id,
            turn.surface, turn.details) == ("where?", "2.5", "_Thinking…_", False, 7, 11, "assistant",
                                            {"files": [], "viewing_channel_id": "C9"})
    assert await store.adopt_turns("someone else") == []  # "me" holds a lease now
    await store.release_owner("me")  # a clean stop: whatever it still holds is an orphan at once
    assert [t.id for t in await store.adopt_turns("someone else")] == [dead]
    # A single-process start takes every other owner's open turns, the live-looking one too.
    assert [t.id for t in await store.adopt_turns("restart", everyone_else_gone=True)] == [alive, dead]


async def test_two_replicas_adopting_at_once_each_take_a_turn_once(any_store):
    store = any_store
    other = await second(store)
    try:
        ids = [await store.claim_turn(f"msg:C1:{i}.0", turn=question(f"{i}.0"), owner="dead") for i in range(20)]
        await store.renew_owner("a", lease_s=30)
        await other.renew_owner("b", lease_s=30)
        first, later = await asyncio.gather(store.adopt_turns("a"), other.adopt_turns("b"))
        taken = [t.id for t in first] + [t.id for t in later]
        assert sorted(taken) == ids  # every turn adopted, none twice
    finally:
        await other.close()


async def test_streaming_sticks_and_done_turns_are_neither_adopted_nor_kept(any_store):
    store = any_store
    turn_id = await store.claim_turn("msg:C1:1.0", turn=question("1.0"), owner="p1")
    kept = await store.claim_turn("msg:C1:2.0", turn=question("2.0"), owner="p1")
    await store.turn_shown(turn_id, reply_ts="1.5", shown_text="Half an ans", streaming=True)
    await store.turn_shown(turn_id, reply_ts="1.5", shown_text="Half an answer", streaming=False)
    [turn, _] = await store.adopt_turns("p2", everyone_else_gone=True)
    assert turn.streaming and turn.shown_text == "Half an answer"
    assert await store.finish_turn(turn_id, outcome="closed") is True
    assert await store.finish_turn(turn_id, outcome="answered") is False  # closed once, by one caller
    assert await store.turn_outcome(turn_id) == "closed"
    assert await store.turn_outcome(kept) is None
    assert [t.id for t in await store.adopt_turns("p3", everyone_else_gone=True)] == [kept]
    assert await store.prune_turns(older_than_s=3600) == 0  # done only just now
    assert await store.prune_turns(older_than_s=-60) == 1  # the open one is kept whatever its age
    assert await store.turn_outcome(turn_id) is None and [t.id for t in await store.adopt_turns(
        "p4", everyone_else_gone=True)] == [kept]


async def test_a_renewed_lease_keeps_an_owners_turns_and_a_lapsed_one_gives_them_up(any_store):
    store = any_store
    other = await second(store)  # the replica that renews, on its own connection
    try:
        await other.renew_owner("b", lease_s=-1)  # lapsed (a stall), then renewed in time: still alive
        await other.renew_owner("b", lease_s=30)
        turn_id = await other.claim_turn("msg:C1:1.0", turn=question("1.0"), owner="b")
        await store.renew_owner("a", lease_s=30)
        assert await store.adopt_turns("a") == []
        await other.renew_owner("b", lease_s=-1)  # its renewals stopped: the lease ran out
        assert [t.id for t in await store.adopt_turns("a")] == [turn_id]
        assert await other.adopt_turns("b") == []  # "a" renewed its lease: b cannot take it back
    finally:
        await other.close()
