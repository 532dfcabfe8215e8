"""Recorded channel threads: messages upserted once, only for threads the bot is part of, marks move forward."""
from __future__ import annotations

import pytest

from bot.store import Store, ThreadMessage

CH, T = "C0GENERAL", "1700000000.000100"


def m(i: int, text: str = "", user: str = "U0ALICE", **kw) -> ThreadMessage:
    return ThreadMessage(ts=f"17000000{i:02d}.000100", user_id=user, text=text or f"m{i}", **kw)


@pytest.fixture
def store(any_store):
    """Both backends (tests/pg.py)."""
    return any_store


async def test_only_threads_the_bot_is_part_of_are_recorded(store: Store) -> None:
    assert not await store.record_thread_messages(CH, T, [m(1)])
    assert await store.thread_messages(CH, T) == []
    await store.mark_thread(CH, T)
    assert await store.record_thread_messages(CH, T, [m(2), m(1), m(2, "m2 again")])
    assert [x.text for x in await store.thread_messages(CH, T)] == ["m1", "m2 again"]
    state = await store.slack_thread(CH, T)
    assert state is not None and state.synced_ts is None and not state.answered


async def test_edits_deletions_files_and_the_newest_limit(store: Store) -> None:
    await store.mark_thread(CH, T)
    await store.record_thread_messages(CH, T, [m(i) for i in range(1, 11)] + [m(11, "log", file_names=("a.log",))])
    assert await store.update_thread_message(CH, ThreadMessage(ts=m(3).ts, user_id="U0ALICE", text="edited"))
    assert await store.delete_thread_message(CH, m(4).ts)
    assert not await store.delete_thread_message(CH, "1600000000.000001")
    rows = await store.thread_messages(CH, T, after_ts=m(2).ts, limit=5)
    assert [x.text for x in rows] == ["m7", "m8", "m9", "m10", "log"] and rows[-1].file_names == ("a.log",)
    rows = await store.thread_messages(CH, T, after_ts=m(2).ts)
    assert [x.text for x in rows][:2] == ["edited", "m5"]


async def test_marks_only_move_forward(store: Store) -> None:
    await store.mark_thread(CH, T, synced_ts=m(5).ts, seen_ts=m(4).ts)
    await store.mark_thread(CH, T, synced_ts=m(3).ts, seen_ts=m(2).ts, answered=True)
    state = await store.slack_thread(CH, T)
    assert (state.synced_ts, state.seen_ts, state.answered) == (m(5).ts, m(4).ts, True)
    await store.mark_thread(CH, T)  # answered stays
    await store.record_thread_messages(CH, T, [m(7), m(6)], advance_synced=True)
    assert (await store.slack_thread(CH, T)).synced_ts == m(7).ts
    await store.record_thread_messages(CH, T, [m(1)], synced_ts=m(2).ts)
    state = await store.slack_thread(CH, T)
    assert state.synced_ts == m(7).ts and state.answered


async def test_shown_messages_are_not_given_again(store: Store) -> None:
    await store.mark_thread(CH, T)
    await store.record_thread_messages(CH, T, [m(1), m(2)])
    await store.mark_thread(CH, T, shown_ts=[m(1).ts, m(3).ts])  # m3 (the question) not recorded yet
    await store.record_thread_messages(CH, T, [m(3, "the question"), m(4)])
    assert [x.text for x in await store.thread_messages(CH, T)] == ["m2", "m4"]


async def test_a_recorded_count_comes_back_and_an_edit_replaces_it(store: Store) -> None:
    await store.mark_thread(CH, T)
    await store.record_thread_messages(CH, T, [m(1, "hello there", tokens=2), m(2)])
    assert [x.tokens for x in await store.thread_messages(CH, T)] == [2, None]
    await store.update_thread_message(CH, m(1, "hello there, all of you", tokens=6))
    assert [x.tokens for x in await store.thread_messages(CH, T)] == [6, None]


async def test_threads_answered_before_thread_records_become_follow_up_threads(tmp_path) -> None:
    import sqlite_utils

    from bot.store.sqlite import MIGRATIONS, SqliteStore
    from bot.store.sqlite.db import connect, migrate

    path = tmp_path / "old.db"
    db = sqlite_utils.Database(connect(path))
    migrate(db, [mig for mig in MIGRATIONS if not mig[0].startswith("threads_")])  # an older build's schema
    # Its data: a channel thread answered, a DM answered, a channel thread not answered (yet).
    for cid, channel in ((1, CH), (2, "D0ALICE"), (3, "C0OTHER")):
        db.execute("INSERT INTO conversations(id, team_id, channel_id, thread_ts, user_id, created_at)"
                   " VALUES (?, 'T', ?, ?, 'U0ALICE', 0)", [cid, channel, T])
        db.execute("INSERT INTO messages(conversation_id, role, content_json, slack_ts, created_at)"
                   " VALUES (?, 'user', '[]', ?, 0)", [cid, f"17000000{50 + cid}.000100"])
        if cid != 3:
            db.execute("INSERT INTO messages(conversation_id, role, content_json, created_at)"
                       " VALUES (?, 'assistant', '[]', 0)", [cid])
    db.conn.close()

    store = SqliteStore(path)  # start-up migrates
    try:
        state = await store.slack_thread(CH, T)
        assert state is not None and state.answered and state.synced_ts is None and state.seen_ts is None
        assert await store.slack_thread("D0ALICE", T) is None and await store.slack_thread("C0OTHER", T) is None
        # The question already in the history is not shown again when the catch-up records it.
        await store.record_thread_messages(CH, T, [m(51, "q"), m(52, "said later", user="U0BOB")])
        assert [x.text for x in await store.thread_messages(CH, T)] == ["said later"]
    finally:
        await store.close()
