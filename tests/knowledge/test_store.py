"""Knowledge storage through the public ingest/search functions: scopes, replace, delete, re-embed,
bad files, and all-or-nothing writes. A small hashing embedder stands in for the model here (the
real model is exercised in test_knowledge_search.py)."""
from __future__ import annotations

import asyncio
import hashlib
import inspect
import re
import time
from pathlib import Path

import numpy as np
import pytest

import bot.store.sqlite.knowledge as store_knowledge
import knowledge.index as index_module
import knowledge.ingest as ingest_module
from bot.store import NewChunk, NewDocument, Store
from bot.store.sqlite import SqliteStore
from knowledge.errors import (
    DocumentNotFound,
    EmptyDocument,
    EncryptedPdf,
    FileTooLarge,
    KnowledgeError,
    MalformedFile,
    SuspiciousArchive,
    UnsupportedFileType,
    WrongContent,
)
from knowledge.documents import delete_document, list_documents, set_scope
from knowledge.index import index_for
from knowledge.ingest import EMBED_BATCH, Progress, ingest_bytes, ingest_path, reembed, store_document
from knowledge.scopes import scopes_for
from knowledge.search import fts_query, search
from tests.pg import sqlite_only
from tests.knowledge_files import make_docx_bomb, make_encrypted_pdf, make_pdf
from tests.store_rows import knowledge_count_rows, knowledge_total_rows


class HashEmbedder:
    """Bag of hashed words → unit vector: texts sharing words are near, others are not."""

    def __init__(self, model: str = "hash-a", dim: int = 64):
        self.model = model
        self.dim = dim
        self.window = 256
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        return out / norms


@pytest.fixture
def store(any_store: Store) -> Store:
    """Both backends (tests/pg.py): the knowledge pipeline must behave the same on each."""
    return any_store


async def add(store: Store, embedder, text: str, *, scope: str, filename: str = "doc.txt", **kwargs):
    return await ingest_bytes(
        store, embedder, data=text.encode(), filename=filename, mimetype=None, scope=scope,
        uploaded_by=kwargs.pop("uploaded_by", "U0"), **kwargs,
    )


EMPTY = {"documents": 0, "chunks": 0, "fts": 0, "vectors": 0}


async def test_scope_privacy_in_bm25_and_vector_search(store: Store) -> None:
    e = HashEmbedder()
    docs = {
        "user:UA": "alpha secret salary review for Ana",
        "user:UB": "bravo secret salary review for Bo",
        "channel:C1": "charlie channel one salary review notes",
        "channel:C2": "delta channel two salary review notes",
        "workspace": "echo workspace salary review policy",
    }
    ids = {scope: (await add(store, e, text, scope=scope, filename=f"{scope}.txt")).document_id for scope, text in docs.items()}

    async def visible(user: str, channel: str, mode: str) -> set[int]:
        hits = await search(store, e, "salary review", scopes=scopes_for(user_id=user, channel_id=channel), k=10, mode=mode)
        return {h.document_id for h in hits}

    for mode in ("bm25", "vector", "hybrid"):
        # A DM: workspace + the user's own uploads only.
        assert await visible("UA", "DA", mode) == {ids["workspace"], ids["user:UA"]}
        assert await visible("UB", "DB", mode) == {ids["workspace"], ids["user:UB"]}
        # A channel: workspace + that channel; nobody's private uploads, not even the asker's.
        assert await visible("UA", "C1", mode) == {ids["workspace"], ids["channel:C1"]}
        assert await visible("UB", "C2", mode) == {ids["workspace"], ids["channel:C2"]}
    assert {d.id for d in await list_documents(store, ["workspace", "user:UB"])} == {ids["workspace"], ids["user:UB"]}


async def test_knn_matrix_path_matches_vec0_and_sees_changes(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    e = HashEmbedder()
    for i in range(30):
        # Varied word counts give distinct similarities (no ties to break differently).
        text = " ".join(["topic1"] * (i % 7 + 1) + ["thing6"] * (i % 3) + [f"other{i}"] * (i % 4 + 1))
        await add(store, e, text, scope="workspace", filename=f"n{i}.txt")
    await add(store, e, "other scope note about topic1", scope="channel:C9", filename="c9.txt")
    query = e.embed(["topic1 thing6"])[0]
    via_vec0 = await index_for(store).knn(query, model=e.model, dim=e.dim, scopes=["workspace"], k=5)
    monkeypatch.setattr(index_module, "KNN_MATRIX_MIN_ROWS", 10)
    index_for(store).matrices.clear()
    via_matrix = await index_for(store).knn(query, model=e.model, dim=e.dim, scopes=["workspace"], k=5)
    assert len(set(round(score, 5) for _, score in via_vec0)) == 5
    assert [c for c, _ in via_matrix] == [c for c, _ in via_vec0]
    assert np.allclose([s for _, s in via_matrix], [s for _, s in via_vec0], atol=1e-5)
    # A delete bumps the scope's version: the cached matrix is reloaded, the chunk is gone.
    best_chunk = via_matrix[0][0]
    best_doc = (await store.knowledge_chunks([best_chunk]))[best_chunk].document_id
    await delete_document(store, best_doc)
    after = await index_for(store).knn(query, model=e.model, dim=e.dim, scopes=["workspace"], k=5)
    assert best_chunk not in [c for c, _ in after] and len(after) == 5


def _force_bm25_index(store: Store, monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    monkeypatch.setattr(index_module, "BM25_INDEX_MIN_ROWS", rows)
    index_for(store).bm25_indexes.clear()


def _bm25_index_used(store: Store, scope: str) -> bool:
    cached = index_for(store).bm25_indexes.get(scope)
    return cached is not None and cached[1] is not None


BM25_QUERIES = [
    "running runners",  # porter stems both to "run"/"runner": the index must use FTS5's own terms
    "Café budget REPORT",  # diacritics and case folded as unicode61 remove_diacritics 2 does
    "run running ran",  # "run" twice after stemming: FTS5 scores the phrase twice
    "quarterly planning",
    "zebra",  # in no row
    "deploy_script rollback",  # "deploy_script" is a two-token phrase: FTS5 must answer it
]


async def test_bm25_index_ranks_and_scores_like_fts5(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    e = HashEmbedder()
    for i in range(24):
        words = (["running"] * (i % 4) + ["runs"] * (i % 3) + ["budget"] * (i % 5) + ["rollback"] * (i % 2)
                 + [f"filler{j}" for j in range(i % 9)] + ["quarterly"] * (i % 6 == 0) + ["run"] * (i % 7 == 1))
        title = "cafe-report.md" if i % 5 == 0 else f"notes{i}.md"
        text = f"# Planning {i}\n\n## {'Runner' if i % 4 == 0 else 'Deploy script'}\n\n" + " ".join(words) + "\n"
        await add(store, e, text, scope="workspace", filename=title)
    queries = [fts_query(q) for q in BM25_QUERIES]
    weightings = [(1.0, 1.0, 1.0), (3.0, 0.5, 1.0)]
    # limit=100 holds every match, so no tie straddles the cut (both paths order ties by chunk id).
    expected = {(q, w): await index_for(store).bm25(q, scopes=["workspace"], limit=100, weights=w)
                for q in queries for w in weightings}
    assert not _bm25_index_used(store, "workspace")  # 24 rows: FTS5 answered
    _force_bm25_index(store, monkeypatch, 10)
    for (q, w), want in expected.items():
        got = await index_for(store).bm25(q, scopes=["workspace"], limit=100, weights=w)
        assert _bm25_index_used(store, "workspace")
        assert [c for c, _ in got] == [c for c, _ in want], q
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-9, abs=1e-12), q
        # A cut inside the matches keeps the best scores (which of several tied rows may differ).
        top = await index_for(store).bm25(q, scopes=["workspace"], limit=4, weights=w)
        assert [s for _, s in top] == pytest.approx([s for _, s in want[:4]], rel=1e-9, abs=1e-12), q
    assert len(expected[(fts_query("running runners"), (1.0, 1.0, 1.0))]) > 10
    assert expected[(fts_query("zebra"), (1.0, 1.0, 1.0))] == []
    assert len(expected[(fts_query("deploy_script rollback"), (1.0, 1.0, 1.0))]) > 10


async def test_bm25_index_keeps_scopes_apart_and_sees_changes(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    e = HashEmbedder()
    _force_bm25_index(store, monkeypatch, 5)
    for scope in ("workspace", "channel:C1"):
        for i in range(6):
            await add(store, e, f"{scope} handbook page {i} about vacation policy", scope=scope, filename=f"{scope}{i}.txt")
    await add(store, e, "vacation policy for user A", scope="user:UA", filename="ua.txt")  # small: FTS5

    async def scopes_of(scopes: list[str], query: str = "vacation policy") -> set[str]:
        hits = await index_for(store).bm25(fts_query(query), scopes=scopes, limit=50)
        return {(await store.knowledge_chunks([c]))[c].scope for c, _ in hits}

    assert await scopes_of(["workspace"]) == {"workspace"}
    assert await scopes_of(["channel:C1"]) == {"channel:C1"}
    assert await scopes_of(["workspace", "user:UA"]) == {"workspace", "user:UA"}
    assert _bm25_index_used(store, "workspace") and _bm25_index_used(store, "channel:C1")
    assert not _bm25_index_used(store, "user:UA")
    # An ingest bumps the scope's version: the next search rebuilds and finds the new word.
    assert await index_for(store).bm25(fts_query("sabbatical"), scopes=["workspace"], limit=5) == []
    doc = (await add(store, e, "sabbatical rules after five years", scope="workspace", filename="sab.txt")).document_id
    found = await index_for(store).bm25(fts_query("sabbaticals"), scopes=["workspace"], limit=5)
    assert [(await store.knowledge_chunks([c]))[c].document_id for c, _ in found] == [doc]
    assert await index_for(store).bm25(fts_query("sabbatical"), scopes=["channel:C1"], limit=5) == []
    # Moving it to another scope, then deleting it, takes it out of each index in turn.
    await set_scope(store, doc, "channel:C1")
    assert await index_for(store).bm25(fts_query("sabbatical"), scopes=["workspace"], limit=5) == []
    assert len(await index_for(store).bm25(fts_query("sabbatical"), scopes=["channel:C1"], limit=5)) == 1
    await delete_document(store, doc)
    assert await index_for(store).bm25(fts_query("sabbatical"), scopes=["channel:C1"], limit=5) == []
    assert _bm25_index_used(store, "channel:C1")


async def test_bm25_search_during_a_build_uses_fts5_and_memory_stores_build_in_place(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_only(store)
    e = HashEmbedder()
    _force_bm25_index(store, monkeypatch, 5)
    for i in range(8):
        await add(store, e, f"incident review {i} " + "pager " * (i + 1), scope="workspace", filename=f"r{i}.txt")
    query = fts_query("pager incident")
    # Another search is building the index: this one answers from FTS5 instead of waiting.
    async with index_for(store).bm25_building:
        meanwhile = await index_for(store).bm25(query, scopes=["workspace"], limit=5)
    assert not _bm25_index_used(store, "workspace")
    after = await index_for(store).bm25(query, scopes=["workspace"], limit=5)
    assert _bm25_index_used(store, "workspace")
    assert [c for c, _ in after] == [c for c, _ in meanwhile] and len(after) == 5
    assert [s for _, s in after] == pytest.approx([s for _, s in meanwhile], rel=1e-9)
    # An in-memory database has no second connection to build from: it builds on the store's own.
    mem = SqliteStore(":memory:")
    try:
        for i in range(8):
            await add(mem, e, f"incident review {i} " + "pager " * (i + 1), scope="workspace", filename=f"r{i}.txt")
        assert [c for c, _ in await index_for(mem).bm25(query, scopes=["workspace"], limit=5)] == [c for c, _ in after]
        assert _bm25_index_used(mem, "workspace")
    finally:
        await mem.close()


async def test_same_content_in_same_scope_replaces(store: Store) -> None:
    e = HashEmbedder()
    first = await add(store, e, "the wiki page", scope="channel:C1", filename="wiki.txt")
    again = await add(store, e, "the wiki page", scope="channel:C1", filename="wiki-copy.txt")
    assert not first.replaced and again.replaced
    assert [d.id for d in await list_documents(store, None)] == [again.document_id]
    assert knowledge_count_rows(store, first.document_id) == EMPTY
    other_scope = await add(store, e, "the wiki page", scope="channel:C2", filename="wiki.txt")
    assert not other_scope.replaced
    assert len(await list_documents(store, None)) == 2


async def test_delete_removes_document_from_every_index(store: Store) -> None:
    e = HashEmbedder()
    keep = await add(store, e, "keep this kiwi document", scope="workspace", filename="keep.txt")
    gone = await add(store, e, "remove this mango document " * 200, scope="workspace", filename="gone.txt")
    counts = knowledge_count_rows(store, gone.document_id)
    assert counts["documents"] == 1 and counts["chunks"] == counts["fts"] == counts["vectors"] == gone.chunks > 1
    removed = await delete_document(store, gone.document_id)
    assert removed.title == "gone.txt"
    assert knowledge_count_rows(store, gone.document_id) == EMPTY
    assert knowledge_total_rows(store) == {"documents": 1, "chunks": 1, "fts": 1, "vectors": 1}
    for mode in ("bm25", "vector"):
        assert {h.document_id for h in await search(store, e, "mango document", scopes=["workspace"], k=5, mode=mode)} == {keep.document_id}
    with pytest.raises(DocumentNotFound):
        await delete_document(store, gone.document_id)


async def test_set_scope_makes_a_private_document_workspace_wide(store: Store) -> None:
    e = HashEmbedder()
    doc = await add(store, e, "quarterly roadmap", scope="user:UA", filename="roadmap.txt")
    assert await search(store, e, "roadmap", scopes=scopes_for(user_id="UB", channel_id="DB"), mode="vector") == []
    moved = await set_scope(store, doc.document_id, "workspace")
    assert moved.scope == "workspace"
    for mode in ("bm25", "vector"):
        hits = await search(store, e, "roadmap", scopes=scopes_for(user_id="UB", channel_id="DB"), mode=mode)
        assert [(h.document_id, h.scope) for h in hits] == [(doc.document_id, "workspace")]
    with pytest.raises(KnowledgeError):
        await set_scope(store, doc.document_id, "everyone")


async def test_changing_the_embedder_re_embeds_instead_of_mixing_spaces(store: Store) -> None:
    old = HashEmbedder("hash-a", 64)
    doc = await add(store, old, "vector spaces must not mix " * 100, scope="workspace", filename="v.txt")
    new = HashEmbedder("hash-b", 32)
    assert await search(store, new, "vector spaces", scopes=["workspace"], mode="vector") == []
    assert await reembed(store, new) == 1
    stored = await store.knowledge_document(doc.document_id)
    assert (stored.embedding_model, stored.embedding_dim) == ("hash-b", 32)
    assert knowledge_count_rows(store, doc.document_id)["vectors"] == doc.chunks  # moved, not copied
    assert {h.document_id for h in await search(store, new, "vector spaces", scopes=["workspace"], mode="vector")} == {doc.document_id}
    assert await search(store, old, "vector spaces", scopes=["workspace"], mode="vector") == []
    assert await reembed(store, new) == 0


BAD_FILES = [
    ("report.pdf", "application/pdf",
     b"<!DOCTYPE html><html><head><title>Sign in - Google Accounts</title></head><body>Sign in</body></html>",
     WrongContent),
    ("photo.png", "image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", UnsupportedFileType),
    ("board.pdf", "application/pdf", make_encrypted_pdf(["numbers"]), EncryptedPdf),
    ("broken.pdf", "application/pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog", MalformedFile),
    ("bomb.docx", None, make_docx_bomb(), SuspiciousArchive),
    ("blank.txt", "text/plain", b"   \n\n  ", EmptyDocument),
]


@pytest.mark.parametrize("filename, mimetype, data, error", BAD_FILES, ids=[f[0] for f in BAD_FILES])
async def test_bad_files_raise_the_right_error_and_store_nothing(store: Store, filename, mimetype, data, error) -> None:
    with pytest.raises(error) as info:
        await ingest_bytes(store, HashEmbedder(), data=data, filename=filename, mimetype=mimetype, scope="workspace",
                     uploaded_by="U1")
    assert filename in info.value.user_message()
    assert knowledge_total_rows(store) == EMPTY


async def test_oversize_file_is_refused_before_parsing(store: Store) -> None:
    with pytest.raises(FileTooLarge) as info:
        await ingest_bytes(store, HashEmbedder(), data=b"x" * 3_000_000, filename="big.txt", mimetype=None,
                     scope="workspace", uploaded_by="U1", max_bytes=2 * 1_048_576)
    assert info.value.user_message() == "big.txt is 2.9 MB; the knowledge base accepts files up to 2 MB."
    assert knowledge_total_rows(store) == EMPTY


class FailingEmbedder(HashEmbedder):
    def __init__(self, *, fail_on_call: int, wrong_dim: bool = False):
        super().__init__()
        self.fail_on_call = fail_on_call
        self.wrong_dim = wrong_dim

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = super().embed(texts)
        if self.calls == self.fail_on_call:
            if self.wrong_dim:
                return vectors[:, :10]  # fails inside the write transaction
            raise RuntimeError("embedding service went away")
        return vectors


@pytest.mark.parametrize("wrong_dim", [False, True])
async def test_failure_mid_ingest_leaves_no_rows(store: Store, wrong_dim: bool) -> None:
    await add(store, HashEmbedder(), "an existing document", scope="workspace", filename="old.txt")
    before = knowledge_total_rows(store)
    text = "lots of words here " * 3000  # several embedding batches
    embedder = FailingEmbedder(fail_on_call=2, wrong_dim=wrong_dim)
    with pytest.raises((RuntimeError, ValueError)):
        await add(store, embedder, text, scope="workspace", filename="new.txt")
    assert embedder.calls == 2
    assert knowledge_total_rows(store) == before


async def test_progress_reports_reading_indexing_and_done(store: Store) -> None:
    events: list[Progress] = []
    result = await add(store, HashEmbedder(), "word " * 20000, scope="workspace", filename="long.txt",
                 progress=events.append)
    assert result.chunks > EMBED_BATCH
    assert events[0] == Progress("reading", "long.txt")
    indexing = [p for p in events if p.stage == "indexing"]
    assert indexing[0].done == 0 and indexing[-1].done == indexing[-1].total == result.chunks
    assert [p.done for p in indexing] == sorted(p.done for p in indexing)
    assert events[-1].stage == "done" and events[-1].total == result.chunks
    assert events[-1].text().startswith(f"Added long.txt: {result.chunks} chunks in ")


async def test_ingest_path_streams_text_and_matches_bytes_ingest(store: Store, tmp_path: Path) -> None:
    e = HashEmbedder()
    content = "".join(f"## Part {i}\nline about subject {i}\n\n" for i in range(300))
    path = tmp_path / "notes.md"
    path.write_text(content, encoding="utf-8")
    from_disk = await ingest_path(store, e, path, scope="workspace")
    assert from_disk.kind == "markdown" and from_disk.chunks == 300
    assert from_disk.sha256 == hashlib.sha256(content.encode()).hexdigest()
    from_bytes = await add(store, e, content, scope="workspace", filename="notes.md")
    assert from_bytes.replaced and from_bytes.chunks == from_disk.chunks
    hits = await search(store, e, "subject 42", scopes=["workspace"], k=1, mode="bm25")
    assert hits[0].section == "Part 42"


async def test_ingest_path_reads_pdf_pages(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "handbook.pdf"
    path.write_bytes(make_pdf(["Welcome", "Expenses are reimbursed monthly", "Travel policy"]))
    result = await ingest_path(store, HashEmbedder(), path, scope="workspace")
    hits = await search(store, HashEmbedder(), "reimbursed", scopes=["workspace"], k=1, mode="bm25")
    assert result.kind == "pdf" and hits[0].page == 2 and hits[0].location == "p. 2"


# --- batched writes: a large upload never holds the store for long ----------------------------------

async def new_chunks(embedder, texts: list[str], *, on_chunk=None):
    """(NewChunk, vector) pairs as ingest streams them; on_chunk(i) runs (and is awaited) before chunk i
    is yielded (between write batches), to look at the store mid-write."""
    vectors = embedder.embed(texts)
    for i, text in enumerate(texts):
        if on_chunk is not None:
            result = on_chunk(i)
            if inspect.isawaitable(result):
                await result
        yield NewChunk(ordinal=i, text=text), vectors[i]


@pytest.fixture
def whole_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write transaction takes a full WRITE_BATCH, whatever the time: batch ends fall on known chunks."""
    monkeypatch.setattr(store_knowledge, "WRITE_BATCH_SECONDS", 1e9)


async def add_chunks(store: Store, embedder, texts: list[str], *, scope: str = "workspace", sha256: str = "s1",
                     title: str = "big.txt", on_chunk=None) -> tuple[int, list[int]]:
    document = NewDocument(scope=scope, title=title, mimetype=None, kind="text", size_bytes=1, uploaded_by="U0",
                           slack_file_id=None, permalink=None, embedding_model=embedder.model,
                           embedding_dim=embedder.dim)
    return await store_document(store, document, sha256=sha256, chunks=new_chunks(embedder, texts, on_chunk=on_chunk))


async def test_large_write_lets_other_store_calls_through(store: Store) -> None:
    e = HashEmbedder()
    texts = [f"paragraph {i} about topic{i % 50} and detail{i % 7} with filler words" for i in range(6000)]
    waits: list[float] = []
    writing = asyncio.Event()
    done = asyncio.Event()

    async def claimer() -> None:
        # Every store call runs on the event loop: a call waits while the loop is busy with a write
        # batch, so the wait is measured from when the call was due until it was answered.
        await writing.wait()
        n = 0
        due = time.perf_counter()
        while not done.is_set():
            assert await store.claim_event(f"evt-{n}")
            waits.append(time.perf_counter() - due)
            n += 1
            due = time.perf_counter() + 0.002
            await asyncio.sleep(0.002)

    task = asyncio.create_task(claimer())
    started = time.perf_counter()
    try:
        document_id, _ = await add_chunks(store, e, texts, on_chunk=lambda i: i == 0 and writing.set())
    finally:
        write_s = time.perf_counter() - started
        done.set()
        await task
    assert knowledge_count_rows(store, document_id) == {"documents": 1, "chunks": 6000, "fts": 6000, "vectors": 6000}
    # The claimer ran throughout the write, and no call waited for more than a batch or so: with one
    # transaction every call made during the write would wait for the whole of it.
    assert len(waits) >= 10, (len(waits), write_s)
    assert max(waits) < write_s / 5, (max(waits), write_s)


async def test_pending_document_is_invisible_until_complete(
    store: Store, monkeypatch: pytest.MonkeyPatch, whole_batches: None
) -> None:
    e = HashEmbedder()
    ready = await add(store, e, "vacation policy overview", scope="workspace", filename="policy.txt")
    # The pending document matches the query better than the ready one, in every index.
    texts = [f"vacation policy vacation policy zebracorn {i}" for i in range(3 * ingest_module.WRITE_BATCH)]
    seen: list[dict] = []

    async def look(i: int) -> None:
        if i != 2 * ingest_module.WRITE_BATCH:  # two batches are written, the third not yet
            return
        assert knowledge_total_rows(store)["chunks"] == 1 + 2 * ingest_module.WRITE_BATCH
        # Deep candidate lists past sqlite-vec's k limit come from a numpy scan: take that path too.
        monkeypatch.setattr(store, "knn_max_k", 50)
        found = {}
        for path in ("sql", "memory"):
            if path == "memory":  # rebuild the in-memory caches now, pending rows and all
                monkeypatch.setattr(index_module, "KNN_MATRIX_MIN_ROWS", 10)
                monkeypatch.setattr(index_module, "BM25_INDEX_MIN_ROWS", 10)
                index_for(store).matrices.clear()
                index_for(store).bm25_indexes.clear()
            for mode in ("bm25", "vector", "hybrid"):
                hits = await search(store, e, "vacation policy zebracorn", scopes=["workspace"], k=3, mode=mode)
                found[(path, mode)] = [h.document_id for h in hits]
            found[(path, "knn")] = await index_for(store).knn(e.embed(["vacation policy zebracorn"])[0], model=e.model,
                                                       dim=e.dim, scopes=["workspace"], k=3)
            found[(path, "fts")] = await index_for(store).bm25(fts_query("zebracorn policy"), scopes=["workspace"], limit=3)
        assert _bm25_index_used(store, "workspace")
        found["listed"] = [d.id for d in await list_documents(store, None)]
        found["pending"] = await store.knowledge_document(ready.document_id + 1)
        seen.append(found)

    document_id, replaced = await add_chunks(store, e, texts, on_chunk=look)
    assert len(seen) == 1 and replaced == []
    found = seen[0]
    ready_chunk = (await store.knowledge_document_chunks(ready.document_id))[0].id
    for path in ("sql", "memory"):
        for mode in ("bm25", "vector", "hybrid"):
            assert found[(path, mode)] == [ready.document_id], (path, mode)
        assert [c for c, _ in found[(path, "knn")]] == [ready_chunk], path
        assert [c for c, _ in found[(path, "fts")]] == [ready_chunk], path
    assert found["listed"] == [ready.document_id] and found["pending"] is None
    # Complete: the new document is listed and outranks the old one everywhere.
    assert document_id == ready.document_id + 1
    assert [d.id for d in await list_documents(store, None)] == [document_id, ready.document_id]
    for mode in ("bm25", "vector", "hybrid"):
        hits = await search(store, e, "vacation policy zebracorn", scopes=["workspace"], k=3, mode=mode)
        assert [h.document_id for h in hits] == [document_id] * 3, mode


async def test_failure_mid_batched_write_leaves_nothing(store: Store, whole_batches: None) -> None:
    e = HashEmbedder()
    old = await add(store, e, "the original handbook text", scope="workspace", filename="handbook.txt")
    before = knowledge_total_rows(store)

    def explode(i: int) -> None:
        if i == 2 * ingest_module.WRITE_BATCH + 7:
            # Two batches are committed by now: they must be purged, not left behind.
            assert knowledge_total_rows(store)["chunks"] == before["chunks"] + 2 * ingest_module.WRITE_BATCH
            raise RuntimeError("disk went away")

    texts = [f"handbook revision line {i}" for i in range(5 * ingest_module.WRITE_BATCH)]
    with pytest.raises(RuntimeError, match="disk went away"):
        # The same sha256 as the existing document: a failed re-share must not touch it.
        await add_chunks(store, e, texts, sha256=old.sha256, on_chunk=explode)
    assert knowledge_total_rows(store) == before
    assert [d.id for d in await list_documents(store, None)] == [old.document_id]
    hits = await search(store, e, "original handbook", scopes=["workspace"], k=3, mode="hybrid")
    assert [h.document_id for h in hits] == [old.document_id]


CRASH_SCRIPT = """
import asyncio, os, sys
import numpy as np
import bot.store.sqlite.knowledge as store_knowledge
from bot.store import NewChunk, NewDocument
from bot.store.sqlite import SqliteStore
from knowledge.ingest import WRITE_BATCH, store_document

store_knowledge.WRITE_BATCH_SECONDS = 1e9  # whole batches: the crash falls after exactly three

def chunks():
    for i in range(10 * WRITE_BATCH):
        if i == 3 * WRITE_BATCH:
            os._exit(9)  # the process dies between two write batches
        yield NewChunk(ordinal=i, text=f"crash text {i}"), np.full(64, 0.125, dtype=np.float32)

document = NewDocument(scope="workspace", title="crash.txt", mimetype=None, kind="text", size_bytes=1,
                       uploaded_by="U0", slack_file_id=None, permalink=None, embedding_model="hash-a",
                       embedding_dim=64)
asyncio.run(store_document(SqliteStore(sys.argv[1]), document, sha256="c", chunks=chunks()))
"""


async def test_crashed_write_is_swept_at_next_open(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import subprocess
    import sys

    from bot.store.sqlite.db import connect

    path = tmp_path / "crash.db"
    first = SqliteStore(path)
    kept = await add(first, HashEmbedder(), "a document that stays", scope="workspace", filename="stays.txt")
    before = knowledge_total_rows(first)
    await first.close()
    run = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(path)], check=False, cwd=Path(__file__).parents[2],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 9, run.stderr
    raw = connect(path)
    try:
        left = raw.execute("SELECT count(*) FROM knowledge_chunks").fetchone()[0]
        status = raw.execute("SELECT status FROM knowledge_documents WHERE id != ?", (kept.document_id,)).fetchall()
    finally:
        raw.close()
    assert left == before["chunks"] + 3 * ingest_module.WRITE_BATCH and status == [("pending",)]
    with caplog.at_level("WARNING", logger="bot.store.sqlite.knowledge"):
        again = SqliteStore(path)
        try:
            assert [d.id for d in await list_documents(again, None)] == [kept.document_id]
            assert knowledge_total_rows(again) == before
        finally:
            await again.close()
    assert "removed 1 half-written knowledge document" in caplog.text


async def test_open_during_a_live_write_does_not_sweep_it(store: Store, whole_batches: None) -> None:
    sqlite_only(store)
    e = HashEmbedder()
    swept: list[int] = []

    async def open_another(i: int) -> None:
        if i == ingest_module.WRITE_BATCH + 1:
            other = SqliteStore(store.path)
            try:
                swept.append(await other.knowledge_sweep())
                assert knowledge_total_rows(other)["chunks"] == ingest_module.WRITE_BATCH
            finally:
                await other.close()

    document_id, _ = await add_chunks(store, e, [f"live text {i}" for i in range(500)], on_chunk=open_another)
    assert swept == [0]
    assert knowledge_count_rows(store, document_id)["chunks"] == 500


async def test_re_share_replaces_only_when_complete(store: Store, whole_batches: None) -> None:
    e = HashEmbedder()
    texts = [f"release notes line {i} mentions rollout" for i in range(3 * ingest_module.WRITE_BATCH)]
    old_id, _ = await add_chunks(store, e, texts, sha256="same", title="notes-v1.txt")
    old_rows = knowledge_count_rows(store, old_id)
    seen: list[tuple] = []

    async def look(i: int) -> None:
        if i == 2 * ingest_module.WRITE_BATCH:
            hits = await search(store, e, "release notes rollout", scopes=["workspace"], k=5, mode="hybrid")
            seen.append(([d.id for d in await list_documents(store, None)], {h.document_id for h in hits}, len(hits),
                         knowledge_count_rows(store, old_id)))

    new_id, replaced = await add_chunks(store, e, texts, sha256="same", title="notes-v2.txt", on_chunk=look)
    # Mid-write, only the old copy is listed and searched, all of it; afterwards only the new one.
    assert seen == [([old_id], {old_id}, 5, old_rows)]
    assert replaced == [old_id] and new_id != old_id
    assert [(d.id, d.title, d.sha256) for d in await list_documents(store, None)] == [(new_id, "notes-v2.txt", "same")]
    assert knowledge_count_rows(store, old_id) == EMPTY
    assert knowledge_total_rows(store) == {"documents": 1, "chunks": len(texts), "fts": len(texts),
                                            "vectors": len(texts)}
    hits = await search(store, e, "release notes rollout", scopes=["workspace"], k=5, mode="hybrid")
    assert {h.document_id for h in hits} == {new_id} and len(hits) == 5
