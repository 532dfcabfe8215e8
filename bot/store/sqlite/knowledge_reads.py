"""Knowledge reads in SQLite: documents, chunks, vec0 KNN, FTS5 BM25, and what knowledge/index.py loads.

Ranked reads return candidates as SQL finds them (possibly chunks of a pending document);
knowledge/index.py drops those, and holds the in-memory matrix and BM25 caches for large scopes.
Whole-scope loads (every vector, every FTS5 term) read through a private connection in a worker
thread, one WAL snapshot, so neither the store's lock nor the event loop waits for them.
"""
from __future__ import annotations

import asyncio
from typing import Callable, TypeVar

import numpy as np

from bot.store.records import Hit, KnowledgeDocument, ScopePostings, ScopeVectors, StoredChunk
from bot.store.sqlite.db import Connection, connect
from bot.store.sqlite.knowledge import KnowledgeWrites, chunk_ids, marks

T = TypeVar("T")

# sqlite-vec refuses a KNN `k` above this.
VEC0_MAX_K = 4096
# knowledge_fts's tokenizer (the migration spells it out too); query words are tokenized with it.
FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"

_DOC_COLUMNS = (
    "id, scope, title, mimetype, kind, sha256, size_bytes, uploaded_by, slack_file_id, permalink,"
    " embedding_model, embedding_dim, chunk_count, created_at"
)


class KnowledgeReads(KnowledgeWrites):
    knn_max_k: int = VEC0_MAX_K
    vector_index: bool = False

    async def knowledge_document(self, document_id: int) -> KnowledgeDocument | None:
        """A ready document (None while it is still being written, or gone)."""
        await self._knowledge_open()
        row = self.row(f"SELECT {_DOC_COLUMNS} FROM knowledge_documents WHERE id = ? AND status = 'ready'",
                       (document_id,))
        return KnowledgeDocument(*row) if row else None

    async def knowledge_documents(self, scopes: list[str] | None = None) -> list[KnowledgeDocument]:
        """Documents in these scopes (all when None), newest first."""
        await self._knowledge_open()
        sql = f"SELECT {_DOC_COLUMNS} FROM knowledge_documents WHERE status = 'ready'"
        params: list[object] = []
        if scopes is not None:
            sql += f" AND scope IN ({marks(scopes)})"
            params = list(scopes)
        return [KnowledgeDocument(*r) for r in self.rows(sql + " ORDER BY id DESC", params)]

    async def knowledge_document_ids_outside(self, model: str, dim: int) -> list[int]:
        return [r[0] for r in self.rows(
            "SELECT id FROM knowledge_documents WHERE NOT (embedding_model = ? AND embedding_dim = ?)"
            " AND status = 'ready' ORDER BY id", (model, dim))]

    async def knowledge_chunks(self, chunk_ids: list[int]) -> dict[int, StoredChunk]:
        """Chunks of ready documents with their document's title, scope and permalink, keyed by chunk id."""
        if not chunk_ids:
            return {}
        rows = self.rows(
            "SELECT c.id, c.document_id, c.ordinal, c.section, c.page, c.text, d.title, d.scope, d.permalink"
            " FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id"
            f" WHERE c.id IN ({marks(chunk_ids)}) AND d.status = 'ready'", chunk_ids,
        )
        return {r[0]: StoredChunk(*r) for r in rows}

    async def knowledge_document_chunks(self, document_id: int) -> list[StoredChunk]:
        with self.lock:
            ids = chunk_ids(self.conn, document_id)
        found = await self.knowledge_chunks(ids)
        return [found[i] for i in ids if i in found]

    # --- ranked candidates ----------------------------------------------------------------

    async def knowledge_knn(self, vector: np.ndarray, *, model: str, dim: int, scope: str, k: int) -> list[Hit]:
        """(chunk id, cosine similarity) of the k nearest chunks in one vec0 partition, exact, best first."""
        await self._knowledge_open()
        table = self._space(model, dim)
        if table is None:
            return []
        query = np.asarray(vector, dtype=np.float32).tobytes()
        # The partition key keeps this KNN inside one scope's rows.
        return [(r[0], 1.0 - r[1]) for r in self.rows(
            f"SELECT chunk_id, distance FROM {table} WHERE embedding MATCH ? AND k = ? AND scope = ?",
            (query, min(k, self.knn_max_k), scope))]

    async def knowledge_bm25(self, match: str, *, scopes: list[str], limit: int,
                             weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> list[Hit]:
        """(chunk id, bm25 score; higher is better) for an FTS5 MATCH expression, with the scope tested
        in the same SELECT."""
        if not scopes or not match:
            return []
        await self._knowledge_open()
        rows = self.rows(
            "SELECT rowid, bm25(knowledge_fts, ?, ?, ?, 0.0) AS rank FROM knowledge_fts"
            f" WHERE knowledge_fts MATCH ? AND scope IN ({marks(scopes)}) ORDER BY rank LIMIT ?",
            (*weights, match, *scopes, limit),
        )
        # FTS5's bm25() is negative (more negative = better); flip it so higher is better.
        return [(r[0], -r[1]) for r in rows]

    async def knowledge_query_terms(self, words: list[str]) -> list[str] | None:
        """Each word as the FTS5 term the knowledge_fts tokenizer makes of it (one per word, words with
        no token dropped); None if a word splits into several tokens (a phrase needs FTS5's positions)."""
        with self.lock:
            conn = self.conn
            conn.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.knowledge_query_words USING fts5("
                f"word, tokenize = '{FTS_TOKENIZE}')"
            )
            conn.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.knowledge_query_terms"
                " USING fts5vocab(temp, knowledge_query_words, instance)"
            )
            conn.execute("DELETE FROM temp.knowledge_query_words")
            conn.executemany("INSERT INTO temp.knowledge_query_words(rowid, word) VALUES (?, ?)",
                             list(enumerate(words)))
            tokens: dict[int, list[str]] = {}
            for doc, term in conn.execute("SELECT doc, term FROM temp.knowledge_query_terms"):
                tokens.setdefault(doc, []).append(term)
            conn.execute("DELETE FROM temp.knowledge_query_words")
        if any(len(t) > 1 for t in tokens.values()):
            return None
        return [tokens[i][0] for i in range(len(words)) if i in tokens]

    async def knowledge_unready_scopes(self, scopes: list[str]) -> set[str]:
        """Those of these scopes holding a document that is not ready (being written or purged)."""
        if not scopes:
            return set()
        return {r[0] for r in self.rows(
            f"SELECT DISTINCT scope FROM knowledge_documents WHERE status != 'ready' AND scope IN ({marks(scopes)})",
            scopes)}

    async def knowledge_ready_chunks(self, chunk_ids: list[int]) -> set[int]:
        keep: set[int] = set()
        for start in range(0, len(chunk_ids), 500):
            part = chunk_ids[start:start + 500]
            keep.update(r[0] for r in self.rows(
                "SELECT c.id FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id"
                f" WHERE c.id IN ({marks(part)}) AND d.status = 'ready'", part))
        return keep

    # --- whole-scope state for knowledge/index.py -----------------------------------------

    async def knowledge_scope_version(self, scope: str) -> int:
        return self._locked(_version, scope)

    async def knowledge_scope_size(self, scope: str) -> int:
        return self.row("SELECT count(*) FROM knowledge_chunks WHERE scope = ?", (scope,))[0]

    async def knowledge_scope_vectors(self, *, model: str, dim: int, scope: str) -> ScopeVectors:
        table = self._space(model, dim)
        if table is None:
            return ScopeVectors(0, np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32))
        return await self._snapshot(lambda conn: _load_vectors(conn, table, scope))

    async def knowledge_scope_postings(self, scope: str) -> ScopePostings:
        return await self._snapshot(lambda conn: _load_postings(conn, scope))

    # --- internals ------------------------------------------------------------------------

    def _space(self, model: str, dim: int) -> str | None:
        row = self.row("SELECT table_name FROM knowledge_spaces WHERE model = ? AND dim = ?", (model, dim))
        return row[0] if row else None

    def _locked(self, read: Callable[[Connection, str], T], scope: str) -> T:
        with self.lock:
            return read(self.conn, scope)

    async def _snapshot(self, read: Callable[[Connection], T]) -> T:
        """Run a long read in one transaction on a private connection in a worker thread; an in-memory
        database has no second connection, so it reads on the store's own (briefly holding the loop)."""
        if str(self.path) == ":memory:":
            with self.lock:
                return _in_transaction(self.conn, read)

        def private() -> T:
            conn = connect(self.path)
            try:
                return _in_transaction(conn, read)
            finally:
                conn.close()

        return await asyncio.to_thread(private)


def _in_transaction(conn: Connection, read: Callable[[Connection], T]) -> T:
    conn.execute("BEGIN")
    try:
        return read(conn)
    finally:
        conn.execute("COMMIT")


def _version(conn: Connection, scope: str) -> int:
    row = conn.execute("SELECT version FROM knowledge_scope_versions WHERE scope = ?", (scope,)).fetchone()
    return row[0] if row else 0


def _load_vectors(conn: Connection, table: str, scope: str) -> ScopeVectors:
    """Every vector of a scope in a vec0 table, as (chunk ids, float32 matrix)."""
    version = _version(conn, scope)
    rows = conn.execute(f"SELECT chunk_id, embedding FROM {table} WHERE scope = ?", (scope,)).fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    # A fresh, aligned, writable array: BLAS takes its fast path on it.
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1).copy()
    return ScopeVectors(version, ids, vectors)


def _load_postings(conn: Connection, scope: str) -> ScopePostings:
    """The scope's FTS5 rows and every term occurrence, from FTS5's own tokens (fts5vocab)."""
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.knowledge_fts_instances USING fts5vocab(main, knowledge_fts, instance)"
    )
    version = _version(conn, scope)
    # FTS5's own scope column: the rows its query would filter to.
    ids = np.array([r[0] for r in conn.execute(
        "SELECT rowid FROM knowledge_fts WHERE scope = ? ORDER BY rowid", (scope,))], dtype=np.int64)
    # One row per term (fts5vocab yields instances in term order, so no sort), its occurrences
    # packed as "rowid*4+column,…" and parsed in C below: a Python tuple per token occurrence would
    # take ~10 s at 100k chunks.
    rows = conn.execute(
        "SELECT term, group_concat(doc * 4 + CASE col WHEN 'title' THEN 0 WHEN 'section' THEN 1 ELSE 2 END)"
        " FROM temp.knowledge_fts_instances GROUP BY term"
    ).fetchall()
    counts = np.array([packed.count(",") + 1 for _, packed in rows], dtype=np.int64)
    codes = np.fromstring(",".join(packed for _, packed in rows), dtype=np.int64, sep=",") if rows else \
        np.zeros(0, dtype=np.int64)
    return ScopePostings(version, ids, [term for term, _ in rows], counts, codes)
