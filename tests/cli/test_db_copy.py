"""`threadbot db copy --to postgresql://…`: everything an SQLite bot holds arrives in PostgreSQL, and a second run adds nothing."""
from __future__ import annotations

import asyncio
import hashlib
from decimal import Decimal

import numpy as np
import pytest

from bot.cli import main
from bot.messages import Message
from bot.store import NewChunk, NewDocument, ThreadMessage, UsageRow
from bot.store.sqlite import SqliteStore

DIM = 8


async def copy_cli(url: str, path) -> int:
    """The command as a user runs it (its own event loop, so off this test's)."""
    return await asyncio.to_thread(main, ["db", "copy", "--to", url, "--from", str(path)])


async def fill(store: SqliteStore) -> dict[int, np.ndarray]:
    """One of everything; returns the knowledge vectors by chunk ordinal."""
    conv = await store.conversation_id(team_id="T1", channel_id="C1", thread_ts="1700000000.000100", user_id="U1")
    await store.append_messages(conv, [
        Message.from_json({"role": "user", "content": [{"type": "text", "text": "hi ünïcode 🎉"}]}),
        Message.from_json({"role": "assistant", "content": [
            {"type": "tool_use", "id": "tu1", "name": "get_weather", "input": {"z": 1, "a": 2}}]})],
        token_counts=[3, None], user_id="U1", slack_ts="1700000000.000100")
    await store.claim_event("event:Ev1")
    await store.record_usage(UsageRow(team_id="T1", user_id="U1", channel_id="C1", thread_ts="1.0", surface="mention",
                                      model="m1", input_tokens=10, output_tokens=5, cache_creation_input_tokens=1,
                                      cache_read_input_tokens=2, cost_usd=Decimal("0.000000000001"), latency_ms=7,
                                      stop_reason="end_turn", created_at=1_700_000_000.5))
    await store.admit_request(user_id="U1", team_id="T1", now=1_700_000_001.0, rpm=5, day_start=1_699_920_000.0,
                              user_daily_usd=None, daily_usd=None)
    await store.record_feedback(team_id="T1", channel_id="C1", message_ts="1700000000.000200", user_id="U2",
                                vote="down", model="m1", now=1_700_000_002.0)
    await store.record_assistant_thread(channel_id="D1", thread_ts="2.0", user_id="U1", context_channel_id="C1")
    assert await store.claim_assistant_title("D1", "2.0")
    await store.mark_thread("C1", "1700000000.000100", seen_ts="1700000000.000300", answered=True,
                            shown_ts=["1700000000.000300"])
    await store.record_thread_messages("C1", "1700000000.000100", [
        ThreadMessage(ts="1700000000.000200", user_id="U2", text="a log", file_names=("x.log",))])
    await store.put_blob(hashlib.sha256(b"\x00png").hexdigest(), "image/png", b"\x00png")
    await store.change_channel_settings("C1", team_id="T1", user_id="UADMIN", changes={"prompt": "Be brief."},
                                        now=1_700_000_003.0)
    rng = np.random.default_rng(7)
    vectors = {i: rng.standard_normal(DIM).astype(np.float32) for i in range(3)}
    doc = await store.knowledge_begin_document(NewDocument(
        scope="workspace", title="Runbook", mimetype="text/markdown", kind="markdown", size_bytes=99,
        uploaded_by="U1", slack_file_id=None, permalink=None, embedding_model="test-embed", embedding_dim=DIM))
    rows = [(NewChunk(ordinal=i, text=f"restart the frobnicator step {i}", section="Ops"), vectors[i])
            for i in range(3)]
    while rows:
        rows = rows[await store.knowledge_write_chunks(doc, rows):]
    await store.knowledge_publish_document(doc, sha256="ab" * 32, chunk_count=3)
    return vectors


async def test_a_copy_carries_everything_and_a_second_run_adds_nothing(tmp_path, pg_url, capsys):
    from bot.store.postgres import PostgresStore

    path = tmp_path / "bot.db"
    source = SqliteStore(path)
    vectors = await fill(source)
    await source.close()

    assert await copy_cli(pg_url, path) == 0
    first = capsys.readouterr()
    assert "conversations 1" in first.out and "knowledge_documents 1" in first.out and "messages 2" in first.out
    assert pg_url.split("@")[0].split(":")[-1] not in first.out + first.err  # the password is never shown
    assert await copy_cli(pg_url, path) == 0
    assert "nothing new (already copied)" in capsys.readouterr().out

    target = await PostgresStore.open(pg_url)
    try:
        conv = await target.conversation_id(team_id="T1", channel_id="C1", thread_ts="1700000000.000100",
                                            user_id="U1")
        history = await target.history(conv)
        assert [h.message.to_json()["content"] for h in history] == [
            [{"type": "text", "text": "hi ünïcode 🎉"}],
            [{"type": "tool_use", "id": "tu1", "name": "get_weather", "input": {"z": 1, "a": 2}}]]
        assert list(history[1].message.to_json()["content"][0]["input"]) == ["z", "a"]  # bytes as written
        assert [h.token_count for h in history] == [3, None]
        # New rows continue after the copied ids.
        newer = await target.conversation_id(team_id="T1", channel_id="C2", thread_ts="9.0", user_id="U1")
        assert newer > conv
        assert not await target.claim_event("event:Ev1")
        totals = await target.usage_totals(since=1_699_999_999.0)
        assert (totals.calls, totals.cost_usd, totals.total_tokens) == (1, Decimal("0.000000000001"), 18)
        refused = await target.admit_request(user_id="U1", team_id="T1", now=1_700_000_002.0, rpm=1,
                                             day_start=1_699_920_000.0, user_daily_usd=None, daily_usd=None)
        assert not refused.admitted and refused.refused_by == "rpm"  # the copied request counts in the window
        assert await target.feedback_counts(since=1_700_000_000.0) == (0, 1)
        assert (await target.assistant_thread("D1", "2.0")).context_channel_id == "C1"
        assert not await target.claim_assistant_title("D1", "2.0")  # already titled
        state = await target.slack_thread("C1", "1700000000.000100")
        assert state.answered and state.seen_ts == "1700000000.000300"
        [log] = await target.thread_messages("C1", "1700000000.000100")
        assert (log.text, log.file_names) == ("a log", ("x.log",))
        assert await target.get_blobs([hashlib.sha256(b"\x00png").hexdigest()]) != {}
        assert (await target.channel_settings("C1")).prompt == "Be brief."
        [change] = await target.channel_setting_changes("C1")
        assert (change.field, change.new, change.user_id) == ("prompt", "Be brief.", "UADMIN")
        await target.change_channel_settings("C1", team_id="T1", user_id="UADMIN", changes={"prompt": None})
        assert len(await target.channel_setting_changes("C1")) == 2  # new changes continue after the copied ids

        [doc] = await target.knowledge_documents()
        assert (doc.title, doc.sha256, doc.chunk_count, doc.embedding_model) == ("Runbook", "ab" * 32, 3, "test-embed")
        chunks = await target.knowledge_document_chunks(doc.id)
        found = await target.knowledge_knn(vectors[1], model="test-embed", dim=DIM, scope="workspace", k=3)
        assert found[0][0] == chunks[1].id and found[0][1] == pytest.approx(1.0, abs=1e-5)
        terms = await target.knowledge_query_terms(["frobnicator"])
        assert {h[0] for h in await target.knowledge_bm25(f'"{terms[0]}"', scopes=["workspace"], limit=5)} == {
            c.id for c in chunks}
    finally:
        await target.close()


async def test_a_target_holding_another_bots_history_is_refused(tmp_path, pg_url, capsys):
    from bot.store.postgres import PostgresStore

    path = tmp_path / "bot.db"
    source = SqliteStore(path)
    await fill(source)
    await source.close()
    target = await PostgresStore.open(pg_url)
    try:
        await target.conversation_id(team_id="T9", channel_id="C9", thread_ts="5.0", user_id="U9")
    finally:
        await target.close()
    assert await copy_cli(pg_url, path) == 2
    assert "not from this SQLite file" in capsys.readouterr().err


def test_bad_inputs_are_named(tmp_path, capsys):
    assert main(["db", "copy", "--to", "postgresql://u:p@127.0.0.1:1/x", "--from", str(tmp_path / "none.db")]) == 2
    assert "no SQLite database at" in capsys.readouterr().err
    SqliteStore(tmp_path / "bot.db")
    assert main(["db", "copy", "--to", "mysql://x", "--from", str(tmp_path / "bot.db")]) == 2
    assert "PostgreSQL URL" in capsys.readouterr().err


async def add_document(store, title: str, n: int, rng) -> int:
    doc = await store.knowledge_begin_document(NewDocument(
        scope="workspace", title=title, mimetype="text/plain", kind="text", size_bytes=10, uploaded_by="U1",
        slack_file_id=None, permalink=None, embedding_model="test-embed", embedding_dim=DIM))
    rows = [(NewChunk(ordinal=i, text=f"{title} line {i}"), rng.standard_normal(DIM).astype(np.float32))
            for i in range(n)]
    while rows:
        rows = rows[await store.knowledge_write_chunks(doc, rows):]
    await store.knowledge_publish_document(doc, sha256=hashlib.sha256(title.encode()).hexdigest(), chunk_count=n)
    return doc


async def test_knowledge_keeps_its_ids_and_times_and_an_interrupted_copy_resumes(tmp_path, pg_url, capsys):
    from bot.store.postgres import PostgresStore

    path = tmp_path / "bot.db"
    source = SqliteStore(path)
    rng = np.random.default_rng(3)
    gone = await add_document(source, "Old notes", 2, rng)
    kept = [await add_document(source, "Runbook", 3, rng), await add_document(source, "Handbook", 2, rng)]
    assert await source.knowledge_delete_document(gone)  # the source's ids have a gap
    before = {d.id: d for d in await source.knowledge_documents()}
    chunks = {d: await source.knowledge_document_chunks(d) for d in kept}
    space = await source.knowledge_scope_vectors(model="test-embed", dim=DIM, scope="workspace")
    await source.close()

    # An earlier copy was killed while writing the Runbook: its half-written rows are under that id.
    target = await PostgresStore.open(pg_url)
    try:
        half = await target.knowledge_begin_document(NewDocument(
            scope="workspace", title="Runbook", mimetype="text/plain", kind="text", size_bytes=10, uploaded_by="U1",
            slack_file_id=None, permalink=None, embedding_model="test-embed", embedding_dim=DIM), keep_id=kept[0])
        assert half == kept[0]
    finally:
        await target.close()

    assert await copy_cli(pg_url, path) == 0
    assert "knowledge_documents 2" in capsys.readouterr().out
    assert await copy_cli(pg_url, path) == 0
    assert "nothing new (already copied)" in capsys.readouterr().out

    target = await PostgresStore.open(pg_url)
    try:
        after = {d.id: d for d in await target.knowledge_documents()}
        assert sorted(after) == sorted(kept)
        for doc_id in kept:
            assert (after[doc_id].title, after[doc_id].created_at, after[doc_id].sha256) == (
                before[doc_id].title, before[doc_id].created_at, before[doc_id].sha256)
            copied = await target.knowledge_document_chunks(doc_id)
            assert [(c.id, c.ordinal, c.text) for c in copied] == [(c.id, c.ordinal, c.text) for c in chunks[doc_id]]
        # A copied chunk's vector is found under its own id.
        row = space.ids.tolist().index(chunks[kept[1]][1].id)
        [(found, similarity)] = await target.knowledge_knn(space.vectors[row], model="test-embed", dim=DIM,
                                                           scope="workspace", k=1)
        assert found == chunks[kept[1]][1].id and similarity == pytest.approx(1.0, abs=1e-5)
        # New uploads continue after the copied ids.
        newer = await add_document(target, "Fresh", 1, rng)
        assert newer > max(kept)
        [fresh] = await target.knowledge_document_chunks(newer)
        assert fresh.id > max(c.id for doc in chunks.values() for c in doc)
    finally:
        await target.close()


async def test_a_target_holding_another_knowledge_document_under_a_copied_id_is_refused(tmp_path, pg_url, capsys):
    from bot.store.postgres import PostgresStore

    path = tmp_path / "bot.db"
    source = SqliteStore(path)
    rng = np.random.default_rng(5)
    await add_document(source, "Runbook", 2, rng)
    await source.close()
    target = await PostgresStore.open(pg_url)
    try:
        await add_document(target, "Someone else's", 1, rng)  # id 1 too, other content
    finally:
        await target.close()
    assert await copy_cli(pg_url, path) == 2
    assert "knowledge document 1 is not this SQLite file's 'Runbook'" in capsys.readouterr().err
