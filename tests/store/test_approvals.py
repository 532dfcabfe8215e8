"""Approval decisions on both backends, two store handles on one database standing for two replicas:
the click recorded by one is read by the other, only the asking user decides, the first decision stands."""
from __future__ import annotations

import asyncio

from bot.store.records import ApprovalResult
from tests.store.test_backends import second


async def test_a_click_on_one_replica_is_the_decision_the_other_reads(any_store):
    other = await second(any_store)
    try:
        await any_store.open_approval("a1", user_id="U1")
        assert await other.approval_decision("a1") is None
        # Another user's click, on either replica: refused, with who may decide.
        assert await other.decide_approval("a1", user_id="U2", decision="approved") == ApprovalResult("not_yours", "U1")
        assert await any_store.approval_decision("a1") is None
        assert await other.decide_approval("a1", user_id="U1", decision="denied") == ApprovalResult("decided", "U1")
        assert await any_store.approval_decision("a1") == "denied"
        # Decided: a second click, and the waiter's timeout, change nothing.
        assert await any_store.decide_approval("a1", user_id="U1", decision="approved") == ApprovalResult("gone", "U1")
        assert await any_store.close_approval("a1", decision="timeout") == "denied"
        assert await other.decide_approval("nope", user_id="U1", decision="approved") == ApprovalResult("gone", None)
    finally:
        await other.close()


async def test_the_timeout_and_a_late_click_race_and_one_decision_stands(any_store):
    other = await second(any_store)
    try:
        for n in range(10):
            approval_id = f"race{n}"
            await any_store.open_approval(approval_id, user_id="U1")
            closed, clicked = await asyncio.gather(
                any_store.close_approval(approval_id, decision="timeout"),
                other.decide_approval(approval_id, user_id="U1", decision="approved"))
            # The click counts exactly when it came first, and then the waiter sees it.
            assert (clicked.result == "decided") == (closed == "approved")
            assert closed in ("approved", "timeout") and await other.approval_decision(approval_id) == closed
    finally:
        await other.close()
