"""Knowledge search on PostgreSQL: BM25 in SQL scores as SQLite's FTS5 does, KNN keeps the scope filter
inside the query on both the exact and the HNSW path, and unready documents stay invisible."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')")

import bot.llm  # noqa: E402,F401  (import order the package expects)
from bot.store.records import NewChunk, NewDocument  # noqa: E402
from bot.store.postgres import PostgresStore, knowledge_search, knowledge_write  # noqa: E402
from bot.store.sqlite import SqliteStore  # noqa: E402

DIM = 8
# Words both stemmers (FTS5's porter, PostgreSQL's snowball) leave as they are, so both backends
# see the same terms and must give the same scores.
WORDS = "alpha beta gamma delta omega kappa sigma zeta theta lambda".split()


@pytest.fixture
async def store(pg_url):
    store = await PostgresStore.open(pg_url)
    yield store
    await store.close()


@pytest.fixture
def pool(store):
    return store.pool


def _corpus(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        words = rng.choice(WORDS, size=int(rng.integers(3, 30)), p=np.linspace(2, 0.2, len(WORDS)) / 11.0)
        out.append((f"doc {WORDS[i % len(WORDS)]}", " ".join(words)))
    return out


def _vec(rng, n=1):
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


async def _add(store, scope, title, texts, vectors, *, sha=None, batch_size=None):
    """A document through the store's own steps (as knowledge/ingest.py drives them)."""
    document_id = await store.knowledge_begin_document(NewDocument(
        scope=scope, title=title, mimetype="text/plain", kind="text", size_bytes=1, uploaded_by="U1",
        slack_file_id=None, permalink=None, embedding_model="m", embedding_dim=DIM))
    rows = [(NewChunk(ordinal=i, text=t), v) for i, (t, v) in enumerate(zip(texts, vectors))]
    while rows:
        written = await store.knowledge_write_chunks(document_id, rows[:batch_size or len(rows)])
        rows = rows[written:]
    replaced = await store.knowledge_publish_document(
        document_id, sha256=sha or hashlib.sha256(f"{scope}{title}{texts}".encode()).hexdigest(),
        chunk_count=len(texts))
    for old in replaced:
        await store.knowledge_purge_document(old)
    return document_id, replaced


async def test_bm25_scores_equal_sqlite_fts5_for_the_same_terms(store, pool):
    rng = np.random.default_rng(1)
    docs = _corpus(rng, 40)
    sqlite = SqliteStore(":memory:")
    pg_ids, lite_ids = [], []
    for title, text in docs:
        v = _vec(rng)
        document_id, _ = await _add(store, "workspace", title, [text], v, batch_size=1)
        async with pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT id FROM knowledge_chunks WHERE document_id = %s", (document_id,))).fetchone()
        pg_ids.append(row[0])
        doc, _ = await _add(sqlite, "workspace", title, [text], v)
        lite_ids.append((await sqlite.knowledge_document_chunks(doc))[0].id)
    to_doc_pg = dict(zip(pg_ids, range(len(docs))))
    to_doc_lite = dict(zip(lite_ids, range(len(docs))))
    for words, weights in ((["alpha"], (1, 1, 1)), (["omega", "zeta", "doc"], (3.0, 1.0, 1.0)),
                           (["lambda", "kappa", "theta"], (1, 1, 1)), (["nothing"], (1, 1, 1))):
        async with pool.connection() as conn:
            pg = await knowledge_search.bm25(conn, words, scopes=["workspace"], limit=20, weights=weights)
        lite = await sqlite.knowledge_bm25(" OR ".join(f'"{w}"' for w in words), scopes=["workspace"], limit=20,
                                     weights=weights)
        assert len(pg) == len(lite)
        got = {to_doc_pg[c]: s for c, s in pg}
        want = {to_doc_lite[c]: s for c, s in lite}
        assert got.keys() == want.keys()
        for doc in want:
            assert got[doc] == pytest.approx(want[doc], rel=1e-9), (words, doc)


async def test_bm25_statistics_are_the_scopes_own_and_filtered_in_the_query(store, pool):
    rng = np.random.default_rng(2)
    await _add(store, "channel:C1", "a", ["alpha beta", "beta gamma"], _vec(rng, 2))
    await _add(store, "channel:C2", "b", ["alpha alpha alpha"] * 5, _vec(rng, 5))
    async with pool.connection() as conn:
        hits = await knowledge_search.bm25(conn, ["alpha"], scopes=["channel:C1"], limit=10)
        both = await knowledge_search.bm25(conn, ["alpha"], scopes=["channel:C1", "channel:C2"], limit=10)
        scopes = dict(await (await conn.execute("SELECT id, scope FROM knowledge_chunks")).fetchall())
    assert len(hits) == 1 and scopes[hits[0][0]] == "channel:C1"
    # In C1 "alpha" is in 1 of 2 chunks: idf = ln(1.5 / 1.5) = 0 → the FTS5 floor 1e-6.
    assert hits[0][1] == pytest.approx(1e-6 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2 / 2)), rel=1e-9)
    assert {scopes[c] for c, _ in both} == {"channel:C1", "channel:C2"} and len(both) == 6


async def test_knn_exact_path_equals_numpy_and_keeps_to_the_scope(store, pool):
    rng = np.random.default_rng(3)
    a, b = _vec(rng, 30), _vec(rng, 30)
    await _add(store, "workspace", "a", [f"a{i}" for i in range(30)], a)
    await _add(store, "user:U1", "b", [f"b{i}" for i in range(30)], b)
    query = _vec(rng)[0]
    async with pool.connection() as conn:
        hits = await knowledge_search.knn(conn, "knowledge_vec_m_8", DIM, query, scopes=["user:U1"], k=5)
        texts = dict(await (await conn.execute("SELECT id, text FROM knowledge_chunks")).fetchall())
    expected = np.argsort(-(b @ query))[:5]
    assert [texts[c] for c, _ in hits] == [f"b{i}" for i in expected]
    assert [s for _, s in hits] == pytest.approx([float(b[i] @ query) for i in expected], abs=1e-5)


async def test_knn_hnsw_path_finds_k_rows_of_a_small_scope_in_a_large_table(store, pool):
    rng = np.random.default_rng(4)
    big = _vec(rng, 3000)
    small = _vec(rng, 40)
    await _add(store, "workspace", "big", [f"w{i}" for i in range(3000)], big, batch_size=1000)
    await _add(store, "channel:C9", "small", [f"s{i}" for i in range(40)], small)
    query = _vec(rng)[0]
    async with pool.connection() as conn:
        # At this size the planner would rather scan: take the other plans away, as at 100k rows
        # the costs do, so the HNSW index with its iterative scan must find the scope's 20 rows.
        await conn.execute("DROP INDEX knowledge_vec_m_8_scope")
        await conn.execute("SET enable_seqscan = off")
        args = {"q": query, "scopes": ["channel:C9"], "k": 20}
        plan = await (await conn.execute(
            "EXPLAIN " + knowledge_search.knn_sql("knowledge_vec_m_8", DIM, exact=False), args)).fetchall()
        hits = await knowledge_search.knn(conn, "knowledge_vec_m_8", DIM, query, scopes=["channel:C9"], k=20,
                                          exact_below=0)
        await conn.execute("RESET enable_seqscan")
        texts = dict(await (await conn.execute("SELECT id, text FROM knowledge_chunks")).fetchall())
    assert "knowledge_vec_m_8_hnsw" in " ".join(r[0] for r in plan)
    assert len(hits) == 20 and all(texts[c].startswith("s") for c, _ in hits)
    best = {f"s{i}" for i in np.argsort(-(small @ query))[:10]}
    assert len(best & {texts[c] for c, _ in hits[:10]}) >= 9


async def test_pending_documents_are_invisible_and_delete_removes_every_row(store, pool):
    rng = np.random.default_rng(5)
    # A writer that died after its first batch: a pending document whose lease is over.
    async with pool.connection() as conn:
        table = await knowledge_write.ensure_space(conn, "m", DIM)
        doc = (await (await conn.execute(
            "INSERT INTO knowledge_documents(scope, title, kind, sha256, size_bytes, uploaded_by, embedding_model,"
            " embedding_dim, created_at, status, lease_until) VALUES ('workspace', 't', 'text', 'x', 1, 'U1', 'm',"
            " 8, 0, 'pending', 0) RETURNING id")).fetchone())[0]
    await store.knowledge_write_chunks(doc, [(NewChunk(ordinal=0, text="alpha words"), _vec(rng)[0])])
    assert await store.knowledge_sweep() == 0  # its writer's lease is live: another replica's upload
    async with pool.connection() as conn:
        await conn.execute("UPDATE knowledge_documents SET lease_until = 0")
        assert await knowledge_search.bm25(conn, ["alpha"], scopes=["workspace"], limit=5) == []
        assert await knowledge_search.knn(conn, "knowledge_vec_m_8", DIM, _vec(rng)[0], scopes=["workspace"],
                                          k=5) == []
    assert await store.knowledge_sweep() == 1
    doc, _ = await _add(store, "workspace", "gone", ["beta words"], _vec(rng))
    again, replaced = await _add(store, "workspace", "gone", ["beta words"], _vec(rng),
                                 sha=hashlib.sha256(b"same").hexdigest())
    third, replaced = await _add(store, "workspace", "gone", ["beta words"], _vec(rng),
                                 sha=hashlib.sha256(b"same").hexdigest())
    assert replaced == [again]
    assert await store.knowledge_delete_document(doc) and await store.knowledge_delete_document(third)
    assert not await store.knowledge_delete_document(third)
    async with pool.connection() as conn:
        counts = await (await conn.execute(
            "SELECT (SELECT count(*) FROM knowledge_documents), (SELECT count(*) FROM knowledge_chunks),"
            " (SELECT count(*) FROM knowledge_postings), (SELECT count(*) FROM knowledge_vec_m_8),"
            " (SELECT coalesce(sum(chunks), 0) FROM knowledge_scope_stats)")).fetchone()
    assert counts == (0, 0, 0, 0, 0)
