"""Knowledge documents, their chunks, the FTS5 index and one sqlite-vec table per embedding space.

Every index is filtered by scope inside its own query: the vec0 tables have `scope` as a partition
key, the FTS5 table carries `scope` as an UNINDEXED column tested in the same SELECT.
Large scopes (>= KNN_MATRIX_MIN_ROWS chunks) are searched with an exact in-memory numpy scan
loaded from the vec0 table and invalidated by a per-scope version counter kept in SQLite (so a
`threadbot ingest` in another process is seen at the next search): float32 vec0 KNN costs
~40-60 ms at 100k rows on two cores, the numpy scan ~7-15 ms, with identical results.
Large scopes (>= BM25_INDEX_MIN_ROWS) are BM25-scored the same way, from an in-memory inverted
index (knowledge/bm25.py) built from FTS5's own tokens via fts5vocab, keyed by the same version:
FTS5 scores every row an OR query matches (~230 ms at 100k chunks), the index ~2-5 ms. Its scores
equal FTS5's bm25() when the scope is the whole table; otherwise they use the scope's own row count,
lengths and document frequencies where FTS5 uses the whole table's (a scope's ranking then depends
only on its own documents, not on what other scopes hold).
A document is written in short transactions (WRITE_BATCH chunks each) so the store lock is never held
for long: it is inserted as 'pending', its rows are added batch by batch, and one short transaction
makes it 'ready' (retiring a replaced copy). Documents not 'ready' are invisible: listing and chunk
lookups skip them, and a search over a scope holding any drops their chunks from its candidates
before taking the top k. Their rows are purged in batches too; a crashed writer's are swept the
next time a Store touches the knowledge base.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from bot.store.db import connect
from knowledge.bm25 import Bm25Index

log = logging.getLogger(__name__)

MIGRATIONS = [
    (
        "knowledge_001_init",
        """
        -- AUTOINCREMENT: a deleted document's id is never reused by the next upload.
        CREATE TABLE knowledge_documents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            scope TEXT NOT NULL,
            title TEXT NOT NULL,
            mimetype TEXT,
            kind TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            uploaded_by TEXT NOT NULL,
            slack_file_id TEXT,
            permalink TEXT,
            embedding_model TEXT NOT NULL,
            embedding_dim INTEGER NOT NULL,
            chunk_count INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            UNIQUE (scope, sha256)
        );
        CREATE INDEX knowledge_documents_by_scope ON knowledge_documents(scope, id);
        CREATE TABLE knowledge_chunks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            scope TEXT NOT NULL,
            section TEXT,
            page INTEGER,
            text TEXT NOT NULL
        );
        CREATE INDEX knowledge_chunks_by_document ON knowledge_chunks(document_id, ordinal);
        CREATE VIRTUAL TABLE knowledge_fts USING fts5(
            title, section, text, scope UNINDEXED, tokenize = 'porter unicode61 remove_diacritics 2'
        );
        CREATE TABLE knowledge_spaces (
            model TEXT NOT NULL,
            dim INTEGER NOT NULL,
            table_name TEXT NOT NULL UNIQUE,
            PRIMARY KEY (model, dim)
        );
        CREATE TABLE knowledge_scope_versions (
            scope TEXT PRIMARY KEY,
            version INTEGER NOT NULL
        );
        """,
    ),
    (
        "knowledge_002_status",
        """
        -- 'pending' while its rows are being written, 'deleting' while they are purged; only 'ready'
        -- documents are listed or searched. writer_pid tells a crashed writer's rows from a live one's.
        ALTER TABLE knowledge_documents ADD COLUMN status TEXT NOT NULL DEFAULT 'ready';
        ALTER TABLE knowledge_documents ADD COLUMN writer_pid INTEGER;
        CREATE INDEX knowledge_documents_unready ON knowledge_documents(scope) WHERE status != 'ready';
        """,
    ),
]

# A write transaction takes at most WRITE_BATCH chunks and stops inserting once it has run for
# WRITE_BATCH_SECONDS: a chunk costs ~0.1-0.4 ms (FTS5 tokens, a 384-float vector) and the COMMIT about
# as much again (FTS5 flushes its buffered terms then), so the store lock is held for a few tens of ms
# at a time and the event loop's own store calls slip in between batches.
# Purges delete WRITE_BATCH chunks per transaction (a delete costs about what an insert does).
WRITE_BATCH = 200
WRITE_BATCH_SECONDS = 0.012
# sqlite-vec refuses a KNN `k` above this; deeper candidate lists come from an exact numpy scan.
VEC0_MAX_K = 4096
# Documents this process is writing right now, as (database path, id): the start-up sweep of a
# second Store in the same process must not take them for a crashed writer's leftovers.
_IN_FLIGHT: set[tuple[str, int]] = set()

# Scopes with at least this many chunks are scanned from an in-memory matrix (10k rows: ~0.6 ms
# numpy vs ~7-11 ms vec0); smaller ones use the vec0 partition directly and cost no memory.
KNN_MATRIX_MIN_ROWS = 5_000
# Scopes with at least this many chunks are BM25-scored from an in-memory index (knowledge/bm25.py):
# FTS5 scores every row an OR query matches, ~25 ms at 10k rows and ~230 ms at 100k for a SciFact
# claim, the index ~1-3 ms. Smaller scopes query FTS5 directly and cost no memory.
BM25_INDEX_MIN_ROWS = 5_000
# knowledge_fts's tokenizer (the migration spells it out too); query words are tokenized with it.
FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"


@dataclass(frozen=True)
class KnowledgeDocument:
    id: int
    scope: str
    title: str
    mimetype: str | None
    kind: str
    sha256: str
    size_bytes: int
    uploaded_by: str
    slack_file_id: str | None
    permalink: str | None
    embedding_model: str
    embedding_dim: int
    chunk_count: int
    created_at: float


@dataclass(frozen=True)
class NewChunk:
    ordinal: int
    text: str
    section: str | None = None
    page: int | None = None


@dataclass(frozen=True)
class StoredChunk:
    id: int
    document_id: int
    ordinal: int
    section: str | None
    page: int | None
    text: str
    title: str
    scope: str
    permalink: str | None


_DOC_COLUMNS = (
    "id, scope, title, mimetype, kind, sha256, size_bytes, uploaded_by, slack_file_id, permalink,"
    " embedding_model, embedding_dim, chunk_count, created_at"
)


def vec_table_name(model: str, dim: int) -> str:
    return "knowledge_vec_" + re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_") + f"_{dim}"


class KnowledgeMixin:
    """Store methods for the knowledge base. Vectors cross this boundary as float32 numpy rows."""

    # --- writes ---------------------------------------------------------------------------

    def knowledge_add_document(
        self,
        *,
        scope: str,
        title: str,
        mimetype: str | None,
        kind: str,
        sha256: str,
        size_bytes: int,
        uploaded_by: str,
        slack_file_id: str | None,
        permalink: str | None,
        embedding_model: str,
        embedding_dim: int,
        chunks: Iterable[tuple[NewChunk, np.ndarray]],
        batch_size: int | None = None,
    ) -> tuple[int, list[int]]:
        """Store a document and all its chunks; returns (new id, replaced ids).

        The rows go in batches of `batch_size` (WRITE_BATCH) chunks, each its own short transaction,
        while the document is 'pending' and invisible; one last short transaction makes it 'ready' and
        retires a document with the same sha256 in the same scope (replaced, not duplicated), which
        stays searchable until then. Any failure purges what was written. `chunks` may be a
        generator (read from a spill file), so a large document never sits in memory whole; it is
        consumed outside the store lock.
        """
        self._knowledge_open()
        size = batch_size or WRITE_BATCH
        with self.transaction() as conn:  # type: ignore[attr-defined]
            table = self._vec_table(conn, embedding_model, embedding_dim)
            # A placeholder sha256 keeps UNIQUE(scope, sha256) free for the copy being replaced.
            document_id = conn.execute(
                "INSERT INTO knowledge_documents(scope, title, mimetype, kind, sha256, size_bytes, uploaded_by,"
                " slack_file_id, permalink, embedding_model, embedding_dim, created_at, status, writer_pid)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                (scope, title, mimetype, kind, f"pending:{uuid.uuid4().hex}", size_bytes, uploaded_by,
                 slack_file_id, permalink, embedding_model, embedding_dim, time.time(), os.getpid()),
            ).lastrowid
        key = (_db_key(self.path), document_id)  # type: ignore[attr-defined]
        _IN_FLIGHT.add(key)
        try:
            count = 0
            source = iter(chunks)
            rows: list[tuple[NewChunk, bytes]] = []
            exhausted = False
            while True:
                # Read (and check) the next chunks outside the lock; a short batch leaves the rest here.
                while not exhausted and len(rows) < size:
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                    else:
                        rows.append((item[0], _blob(item[1], embedding_dim)))
                if not rows:
                    break
                written = self._write_batch(document_id, table, scope, title, rows)
                count += written
                del rows[:written]
                time.sleep(0)  # let a thread waiting on the store lock take it before the next batch
            with self.transaction() as conn:  # type: ignore[attr-defined]
                replaced = [r[0] for r in conn.execute(
                    "SELECT id FROM knowledge_documents WHERE scope = ? AND sha256 = ? AND status = 'ready'",
                    (scope, sha256))]
                for old in replaced:
                    self._retire(conn, old)
                conn.execute(
                    "UPDATE knowledge_documents SET status = 'ready', sha256 = ?, chunk_count = ?, writer_pid = NULL"
                    " WHERE id = ?", (sha256, count, document_id),
                )
                self._bump(conn, scope)
        except BaseException:
            try:
                self._purge(document_id)
            except Exception:  # the sweep at the next start-up removes what is left
                log.exception("could not purge half-written knowledge document %s", document_id)
            raise
        finally:
            _IN_FLIGHT.discard(key)
        for old in replaced:
            self._purge(old)
        return document_id, replaced

    def knowledge_sweep(self) -> int:
        """Purge documents a crashed writer left 'pending' (or a purge left 'deleting'); returns how many.

        Runs once per Store on its first knowledge call; a document another live process (or this one)
        is still writing is left alone.
        """
        self.__dict__["_knowledge_swept"] = True
        with self.lock:  # type: ignore[attr-defined]
            rows = self.conn.execute(  # type: ignore[attr-defined]
                "SELECT id, status, writer_pid FROM knowledge_documents WHERE status != 'ready'").fetchall()
        db = _db_key(self.path)  # type: ignore[attr-defined]
        stale = [doc for doc, status, pid in rows if status != "pending" or not _writer_alive(db, doc, pid)]
        for doc in stale:
            self._purge(doc)
        if stale:
            log.warning("removed %d half-written knowledge document(s) left by an interrupted upload", len(stale))
        return len(stale)

    def knowledge_delete_document(self, document_id: int) -> bool:
        """Remove a document from every index (documents, chunks, FTS, vectors); False if absent.

        One short transaction hides it from every search; its rows then go in short batches.
        """
        self._knowledge_open()
        with self.transaction() as conn:  # type: ignore[attr-defined]
            if not self._retire(conn, document_id):
                return False
        self._purge(document_id)
        return True

    def knowledge_set_scope(self, document_id: int, scope: str) -> bool:
        """Move a document to another scope (e.g. an admin making it workspace-wide)."""
        with self.transaction() as conn:  # type: ignore[attr-defined]
            row = conn.execute(
                "SELECT scope, sha256, embedding_model, embedding_dim FROM knowledge_documents"
                " WHERE id = ? AND status = 'ready'", (document_id,),
            ).fetchone()
            if row is None:
                return False
            old_scope, sha256, model, dim = row
            if old_scope == scope:
                return True
            # The same content already in the target scope: keep one copy.
            for (dup,) in conn.execute(
                "SELECT id FROM knowledge_documents WHERE scope = ? AND sha256 = ? AND status = 'ready'",
                (scope, sha256),
            ).fetchall():
                self._delete_document(conn, dup)
            conn.execute("UPDATE knowledge_documents SET scope = ? WHERE id = ?", (scope, document_id))
            conn.execute("UPDATE knowledge_chunks SET scope = ? WHERE document_id = ?", (scope, document_id))
            ids = self._chunk_ids(conn, document_id)
            for chunk_id in ids:
                conn.execute("UPDATE knowledge_fts SET scope = ? WHERE rowid = ?", (scope, chunk_id))
            # A vec0 partition key cannot be updated in place: move each row.
            table = self._vec_table(conn, model, dim)
            for chunk_id in ids:
                blob = conn.execute(f"SELECT embedding FROM {table} WHERE chunk_id = ?", (chunk_id,)).fetchone()
                if blob is None:
                    continue
                conn.execute(f"DELETE FROM {table} WHERE chunk_id = ?", (chunk_id,))
                conn.execute(f"INSERT INTO {table}(chunk_id, scope, embedding) VALUES (?, ?, ?)",
                             (chunk_id, scope, blob[0]))
            self._bump(conn, old_scope)
            self._bump(conn, scope)
            return True

    def knowledge_replace_vectors(
        self, document_id: int, *, embedding_model: str, embedding_dim: int, vectors: dict[int, np.ndarray]
    ) -> None:
        """Move a document into another embedding space (re-embedding) in one transaction."""
        with self.transaction() as conn:  # type: ignore[attr-defined]
            row = conn.execute(
                "SELECT scope, embedding_model, embedding_dim FROM knowledge_documents WHERE id = ?",
                (document_id,),
            ).fetchone()
            if row is None:
                return
            scope, old_model, old_dim = row
            old_table = self._vec_table(conn, old_model, old_dim)
            new_table = self._vec_table(conn, embedding_model, embedding_dim)
            for chunk_id in self._chunk_ids(conn, document_id):
                conn.execute(f"DELETE FROM {old_table} WHERE chunk_id = ?", (chunk_id,))
                conn.execute(f"DELETE FROM {new_table} WHERE chunk_id = ?", (chunk_id,))
                conn.execute(f"INSERT INTO {new_table}(chunk_id, scope, embedding) VALUES (?, ?, ?)",
                             (chunk_id, scope, _blob(vectors[chunk_id], embedding_dim)))
            conn.execute(
                "UPDATE knowledge_documents SET embedding_model = ?, embedding_dim = ? WHERE id = ?",
                (embedding_model, embedding_dim, document_id),
            )
            self._bump(conn, scope)

    # --- reads ----------------------------------------------------------------------------

    def knowledge_document(self, document_id: int) -> KnowledgeDocument | None:
        """A ready document (None while it is still being written, or gone)."""
        self._knowledge_open()
        with self.lock:  # type: ignore[attr-defined]
            row = self.conn.execute(  # type: ignore[attr-defined]
                f"SELECT {_DOC_COLUMNS} FROM knowledge_documents WHERE id = ? AND status = 'ready'", (document_id,)
            ).fetchone()
        return KnowledgeDocument(*row) if row else None

    def knowledge_documents(self, scopes: list[str] | None = None) -> list[KnowledgeDocument]:
        """Documents in these scopes (all when None), newest first."""
        self._knowledge_open()
        sql = f"SELECT {_DOC_COLUMNS} FROM knowledge_documents WHERE status = 'ready'"
        params: list[object] = []
        if scopes is not None:
            sql += f" AND scope IN ({_marks(scopes)})"
            params = list(scopes)
        with self.lock:  # type: ignore[attr-defined]
            rows = self.conn.execute(sql + " ORDER BY id DESC", params).fetchall()  # type: ignore[attr-defined]
        return [KnowledgeDocument(*r) for r in rows]

    def knowledge_spaces_in_use(self) -> list[tuple[str, int, int]]:
        """(model, dim, documents) for every embedding space documents are stored in."""
        with self.lock:  # type: ignore[attr-defined]
            return [tuple(r) for r in self.conn.execute(  # type: ignore[attr-defined]
                "SELECT embedding_model, embedding_dim, count(*) FROM knowledge_documents"
                " WHERE status = 'ready' GROUP BY embedding_model, embedding_dim")]

    def knowledge_document_ids_outside(self, model: str, dim: int) -> list[int]:
        with self.lock:  # type: ignore[attr-defined]
            return [r[0] for r in self.conn.execute(  # type: ignore[attr-defined]
                "SELECT id FROM knowledge_documents WHERE NOT (embedding_model = ? AND embedding_dim = ?)"
                " AND status = 'ready' ORDER BY id", (model, dim))]

    def knowledge_chunks(self, chunk_ids: list[int]) -> dict[int, StoredChunk]:
        """Chunks of ready documents with their document's title, scope and permalink, keyed by chunk id."""
        if not chunk_ids:
            return {}
        with self.lock:  # type: ignore[attr-defined]
            rows = self.conn.execute(  # type: ignore[attr-defined]
                "SELECT c.id, c.document_id, c.ordinal, c.section, c.page, c.text, d.title, d.scope, d.permalink"
                " FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id"
                f" WHERE c.id IN ({_marks(chunk_ids)}) AND d.status = 'ready'", chunk_ids,
            ).fetchall()
        return {r[0]: StoredChunk(*r) for r in rows}

    def knowledge_document_chunks(self, document_id: int) -> list[StoredChunk]:
        with self.lock:  # type: ignore[attr-defined]
            ids = self._chunk_ids(self.conn, document_id)  # type: ignore[attr-defined]
        found = self.knowledge_chunks(ids)
        return [found[i] for i in ids if i in found]

    def knowledge_count_rows(self, document_id: int) -> dict[str, int]:
        """How many rows each index holds for a document (for checks and tests)."""
        with self.lock:  # type: ignore[attr-defined]
            conn = self.conn  # type: ignore[attr-defined]
            ids = self._chunk_ids(conn, document_id)
            counts = {
                "documents": conn.execute(
                    "SELECT count(*) FROM knowledge_documents WHERE id = ?", (document_id,)).fetchone()[0],
                "chunks": len(ids),
                "fts": 0,
                "vectors": 0,
            }
            tables = [r[0] for r in conn.execute("SELECT table_name FROM knowledge_spaces")]
            for chunk_id in ids:
                counts["fts"] += conn.execute(
                    "SELECT count(*) FROM knowledge_fts WHERE rowid = ?", (chunk_id,)).fetchone()[0]
                for table in tables:
                    counts["vectors"] += conn.execute(
                        f"SELECT count(*) FROM {table} WHERE chunk_id = ?", (chunk_id,)).fetchone()[0]
            return counts

    def knowledge_total_rows(self) -> dict[str, int]:
        """Row counts across the whole knowledge base (for checks that nothing was half-stored)."""
        self._knowledge_open()
        with self.lock:  # type: ignore[attr-defined]
            conn = self.conn  # type: ignore[attr-defined]
            counts = {
                "documents": conn.execute("SELECT count(*) FROM knowledge_documents").fetchone()[0],
                "chunks": conn.execute("SELECT count(*) FROM knowledge_chunks").fetchone()[0],
                "fts": conn.execute("SELECT count(*) FROM knowledge_fts").fetchone()[0],
                "vectors": 0,
            }
            for (table,) in conn.execute("SELECT table_name FROM knowledge_spaces").fetchall():
                counts["vectors"] += conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            return counts

    def knowledge_bm25(
        self, match: str, *, scopes: list[str], limit: int, weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ) -> list[tuple[int, float]]:
        """(chunk id, bm25 score; higher is better) for an FTS5 MATCH expression, filtered by scope.

        A large scope (>= BM25_INDEX_MIN_ROWS rows) is scored from its in-memory index when `match` is
        an OR of quoted single-term phrases (what knowledge.search.fts_query builds); other scopes, and
        any other expression, go to FTS5 with the scope tested in the same SELECT.
        """
        if not scopes or not match:
            return []
        self._knowledge_open()
        words = _or_phrases(match)
        unique = list(dict.fromkeys(scopes))
        indexes: dict[str, Bm25Index] = {}
        if words is not None:
            for scope in unique:
                index = self._scope_bm25(scope)
                if index is not None:
                    indexes[scope] = index
        hits: list[tuple[int, float]] = []
        with self.lock:  # type: ignore[attr-defined]
            conn = self.conn  # type: ignore[attr-defined]
            unready = self._unready_scopes(conn, unique)
            terms = self._fts_terms(conn, words or []) if indexes else None
            if terms is None:  # a word FTS5 splits into a phrase: let FTS5 match it
                indexes = {}
            direct = [scope for scope in unique if scope not in indexes]
            if direct:
                def from_fts5(n: int) -> list[tuple[int, float]]:
                    rows = conn.execute(
                        "SELECT rowid, bm25(knowledge_fts, ?, ?, ?, 0.0) AS rank FROM knowledge_fts"
                        f" WHERE knowledge_fts MATCH ? AND scope IN ({_marks(direct)}) ORDER BY rank LIMIT ?",
                        (*weights, match, *direct, n),
                    ).fetchall()
                    # FTS5's bm25() is negative (more negative = better); flip it so higher is better.
                    return [(r[0], -r[1]) for r in rows]

                hits.extend(self._ready_top(conn, from_fts5, limit) if unready.intersection(direct)
                            else from_fts5(limit))
        # Each index holds only its scope's rows, so the scope filter is part of the index lookup.
        for scope, index in indexes.items():
            def from_index(n: int, index: Bm25Index = index) -> list[tuple[int, float]]:
                return index.search(terms or [], weights=weights, limit=n)

            if scope in unready:
                with self.lock:  # type: ignore[attr-defined]
                    hits.extend(self._ready_top(self.conn, from_index, limit))  # type: ignore[attr-defined]
            else:
                hits.extend(from_index(limit))
        hits.sort(key=lambda h: (-h[1], h[0]))
        return hits[:limit]

    def knowledge_knn(
        self, vector: np.ndarray, *, model: str, dim: int, scopes: list[str], k: int
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the k nearest chunks over these scopes, exact, best first."""
        self._knowledge_open()
        with self.lock:  # type: ignore[attr-defined]
            conn = self.conn  # type: ignore[attr-defined]
            row = conn.execute(
                "SELECT table_name FROM knowledge_spaces WHERE model = ? AND dim = ?", (model, dim)
            ).fetchone()
            if row is None or not scopes:
                return []
            table = row[0]
            query = _blob(vector, dim)
            dense = np.asarray(vector, dtype=np.float32)
            hits: list[tuple[int, float]] = []
            unique = list(dict.fromkeys(scopes))
            unready = self._unready_scopes(conn, unique)
            for scope in unique:
                matrix = self._scope_matrix(conn, table, scope)

                def nearest(n: int, matrix=matrix, scope: str = scope) -> list[tuple[int, float]]:
                    if matrix is None and n > VEC0_MAX_K:
                        matrix = _load_vectors(conn, table, scope)
                    if matrix is not None:
                        return _top_k(*matrix, dense, n)
                    # The partition key keeps this KNN inside one scope's rows.
                    return [(r[0], 1.0 - r[1]) for r in conn.execute(
                        f"SELECT chunk_id, distance FROM {table} WHERE embedding MATCH ? AND k = ? AND scope = ?",
                        (query, n, scope),
                    )]

                hits.extend(self._ready_top(conn, nearest, k) if scope in unready else nearest(k))
        hits.sort(key=lambda h: -h[1])
        return hits[:k]

    # --- internals ------------------------------------------------------------------------

    def _knowledge_open(self) -> None:
        if not self.__dict__.get("_knowledge_swept"):
            self.knowledge_sweep()

    def _write_batch(self, document_id: int, table: str, scope: str, title: str,
                     rows: list[tuple[NewChunk, bytes]]) -> int:
        """Write the first of these rows in one transaction, stopping after WRITE_BATCH_SECONDS; returns
        how many were written (at least one)."""
        written = 0
        with self.transaction() as conn:  # type: ignore[attr-defined]
            deadline = time.perf_counter() + WRITE_BATCH_SECONDS  # from when the lock is ours
            for chunk, blob in rows:
                if written and time.perf_counter() >= deadline:
                    break
                written += 1
                chunk_id = conn.execute(
                    "INSERT INTO knowledge_chunks(document_id, ordinal, scope, section, page, text)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (document_id, chunk.ordinal, scope, chunk.section, chunk.page, chunk.text),
                ).lastrowid
                conn.execute(
                    "INSERT INTO knowledge_fts(rowid, title, section, text, scope) VALUES (?, ?, ?, ?, ?)",
                    (chunk_id, title, chunk.section or "", chunk.text, scope),
                )
                conn.execute(f"INSERT INTO {table}(chunk_id, scope, embedding) VALUES (?, ?, ?)",
                             (chunk_id, scope, blob))
        return written

    def _retire(self, conn, document_id: int) -> bool:
        """Hide a ready document from every search in the caller's transaction (its rows go in _purge)."""
        row = conn.execute(
            "SELECT scope FROM knowledge_documents WHERE id = ? AND status = 'ready'", (document_id,)
        ).fetchone()
        if row is None:
            return False
        conn.execute(
            "UPDATE knowledge_documents SET status = 'deleting', sha256 = ?, writer_pid = NULL WHERE id = ?",
            (f"deleting:{document_id}", document_id),
        )
        self._bump(conn, row[0])
        return True

    def _purge(self, document_id: int) -> None:
        """Delete a document's rows from every index, WRITE_BATCH chunks per transaction, then the
        document itself; the scope's version moves so no cache keeps its rows."""
        while True:
            with self.transaction() as conn:  # type: ignore[attr-defined]
                row = conn.execute("SELECT scope FROM knowledge_documents WHERE id = ?", (document_id,)).fetchone()
                if row is None:
                    return
                ids = [r[0] for r in conn.execute(
                    "SELECT id FROM knowledge_chunks WHERE document_id = ? LIMIT ?", (document_id, WRITE_BATCH))]
                if not ids:
                    conn.execute("DELETE FROM knowledge_documents WHERE id = ?", (document_id,))
                    self._bump(conn, row[0])
                    return
                conn.execute(f"DELETE FROM knowledge_fts WHERE rowid IN ({_marks(ids)})", ids)
                for (table,) in conn.execute("SELECT table_name FROM knowledge_spaces").fetchall():
                    conn.execute(f"DELETE FROM {table} WHERE chunk_id IN ({_marks(ids)})", ids)
                conn.execute(f"DELETE FROM knowledge_chunks WHERE id IN ({_marks(ids)})", ids)
            time.sleep(0)  # let a waiting thread take the lock between batches

    def _unready_scopes(self, conn, scopes: list[str]) -> set[str]:
        """Those of these scopes holding a document that is not ready (being written or purged)."""
        if not scopes:
            return set()
        return {r[0] for r in conn.execute(
            f"SELECT DISTINCT scope FROM knowledge_documents WHERE status != 'ready' AND scope IN ({_marks(scopes)})",
            scopes,
        )}

    def _ready_top(self, conn, fetch: Callable[[int], list[tuple[int, float]]], limit: int) -> list[tuple[int, float]]:
        """The best `limit` hits of ready documents: fetch(n) ranks n candidates, which may include
        a pending document's chunks, so ask for more until `limit` ready ones (or every candidate) are in."""
        n = max(limit, 1) * 2
        while True:
            got = fetch(n)
            ready = self._only_ready(conn, got)
            if len(ready) >= limit or len(got) < n:
                return ready[:limit]
            n *= 4

    def _only_ready(self, conn, hits: list[tuple[int, float]]) -> list[tuple[int, float]]:
        ids = [h[0] for h in hits]
        keep: set[int] = set()
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            keep.update(r[0] for r in conn.execute(
                "SELECT c.id FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id"
                f" WHERE c.id IN ({_marks(part)}) AND d.status = 'ready'", part))
        return [h for h in hits if h[0] in keep]

    def _vec_table(self, conn, model: str, dim: int) -> str:
        row = conn.execute(
            "SELECT table_name FROM knowledge_spaces WHERE model = ? AND dim = ?", (model, dim)
        ).fetchone()
        if row:
            return row[0]
        table = vec_table_name(model, dim)
        conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING vec0("
            f"chunk_id INTEGER PRIMARY KEY, scope TEXT PARTITION KEY, embedding float[{int(dim)}] distance_metric=cosine)"
        )
        conn.execute("INSERT INTO knowledge_spaces(model, dim, table_name) VALUES (?, ?, ?)", (model, dim, table))
        return table

    def _chunk_ids(self, conn, document_id: int) -> list[int]:
        return [r[0] for r in conn.execute(
            "SELECT id FROM knowledge_chunks WHERE document_id = ? ORDER BY ordinal", (document_id,))]

    def _delete_document(self, conn, document_id: int) -> bool:
        row = conn.execute(
            "SELECT scope FROM knowledge_documents WHERE id = ?", (document_id,)
        ).fetchone()
        if row is None:
            return False
        ids = self._chunk_ids(conn, document_id)
        tables = [r[0] for r in conn.execute("SELECT table_name FROM knowledge_spaces")]
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            conn.execute(f"DELETE FROM knowledge_fts WHERE rowid IN ({_marks(part)})", part)
            for table in tables:
                conn.execute(f"DELETE FROM {table} WHERE chunk_id IN ({_marks(part)})", part)
        conn.execute("DELETE FROM knowledge_chunks WHERE document_id = ?", (document_id,))
        conn.execute("DELETE FROM knowledge_documents WHERE id = ?", (document_id,))
        self._bump(conn, row[0])
        return True

    def _bump(self, conn, scope: str) -> None:
        conn.execute(
            "INSERT INTO knowledge_scope_versions(scope, version) VALUES (?, 1)"
            " ON CONFLICT(scope) DO UPDATE SET version = version + 1",
            (scope,),
        )

    def _scope_matrix(self, conn, table: str, scope: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The scope's vectors as an in-memory matrix when the scope is large, else None (use vec0)."""
        cache = self.__dict__.setdefault("_knowledge_matrices", {})
        row = conn.execute("SELECT version FROM knowledge_scope_versions WHERE scope = ?", (scope,)).fetchone()
        version = row[0] if row else 0
        cached = cache.get((table, scope))
        if cached is not None and cached[0] == version:
            return cached[1]
        count = conn.execute(
            "SELECT count(*) FROM knowledge_chunks WHERE scope = ?", (scope,)
        ).fetchone()[0]
        if count < KNN_MATRIX_MIN_ROWS:
            # Remember "small" for this version so the next search skips the count.
            cache[(table, scope)] = (version, None)
            return None
        ids, vectors = _load_vectors(conn, table, scope)
        cache[(table, scope)] = (version, (ids, vectors))
        return ids, vectors


    def _fts_terms(self, conn, words: list[str]) -> list[str] | None:
        """Each word as the FTS5 term the knowledge_fts tokenizer makes of it (one per word, words with
        no token dropped); None if a word splits into several tokens (a phrase needs FTS5's positions)."""
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

    def _scope_bm25(self, scope: str) -> Bm25Index | None:
        """The scope's in-memory BM25 index when the scope is large, else None (use FTS5).

        The index is rebuilt when the scope's version moves (~5 s at 100k chunks). The build reads
        through its own connection (one WAL snapshot), so it does not hold the store lock; a search
        arriving while another builds uses FTS5 rather than wait.
        """
        cache = self.__dict__.setdefault("_knowledge_bm25", {})
        building = self.__dict__.setdefault("_knowledge_bm25_building", threading.Lock())
        with self.lock:  # type: ignore[attr-defined]
            conn = self.conn  # type: ignore[attr-defined]
            row = conn.execute("SELECT version FROM knowledge_scope_versions WHERE scope = ?", (scope,)).fetchone()
            version = row[0] if row else 0
            cached = cache.get(scope)
            if cached is not None and cached[0] == version:
                return cached[1]
            count = conn.execute("SELECT count(*) FROM knowledge_chunks WHERE scope = ?", (scope,)).fetchone()[0]
            if count < BM25_INDEX_MIN_ROWS:
                # Remember "small" for this version so the next search skips the count.
                cache[scope] = (version, None)
                return None
        if not building.acquire(blocking=False):
            return None
        try:
            path = str(self.path)  # type: ignore[attr-defined]
            if path == ":memory:":  # no second connection can see it: build under the lock
                with self.lock:  # type: ignore[attr-defined]
                    version, index = _build_bm25(self.conn, scope)  # type: ignore[attr-defined]
            else:
                private = connect(path)
                try:
                    version, index = _build_bm25(private, scope)
                finally:
                    private.close()
            with self.lock:  # type: ignore[attr-defined]
                cache[scope] = (version, index)
            return index
        finally:
            building.release()


def _build_bm25(conn, scope: str) -> tuple[int, Bm25Index]:
    """(scope version, index) read in one transaction, so the index is exactly that version's rows."""
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.knowledge_fts_instances USING fts5vocab(main, knowledge_fts, instance)"
    )
    conn.execute("BEGIN")
    try:
        row = conn.execute("SELECT version FROM knowledge_scope_versions WHERE scope = ?", (scope,)).fetchone()
        version = row[0] if row else 0
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
    finally:
        conn.execute("COMMIT")
    counts = np.array([packed.count(",") + 1 for _, packed in rows], dtype=np.int64)
    codes = np.fromstring(",".join(packed for _, packed in rows), dtype=np.int64, sep=",") if rows else \
        np.zeros(0, dtype=np.int64)
    return version, Bm25Index.build(ids, [term for term, _ in rows], counts, codes)

def _load_vectors(conn, table: str, scope: str) -> tuple[np.ndarray, np.ndarray]:
    """Every vector of a scope in a vec0 table, as (chunk ids, float32 matrix)."""
    rows = conn.execute(f"SELECT chunk_id, embedding FROM {table} WHERE scope = ?", (scope,)).fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    # A fresh, aligned, writable array: BLAS takes its fast path on it.
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1).copy()
    return ids, vectors


def _db_key(path) -> str:
    return str(path) if str(path) == ":memory:" else os.path.realpath(path)


def _writer_alive(db: str, document_id: int, pid: int | None) -> bool:
    """Whether the process writing a pending document may still be at it (else it crashed)."""
    if pid is None:
        return False
    if pid == os.getpid():
        return (db, document_id) in _IN_FLIGHT
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _top_k(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    if len(ids) == 0:
        return []
    scores = vectors @ query
    k = min(k, len(ids))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top])]
    return [(int(ids[i]), float(scores[i])) for i in top]


def _blob(vector: np.ndarray, dim: int) -> bytes:
    array = np.asarray(vector, dtype=np.float32)
    if array.shape != (dim,):
        raise ValueError(f"expected a vector of {dim} floats, got shape {array.shape}")
    return array.tobytes()


def _or_phrases(match: str) -> list[str] | None:
    """The words of a `"w1" OR "w2" …` expression, or None for any other FTS5 syntax."""
    parts = match.split(" OR ")
    if all(len(p) >= 2 and p[0] == p[-1] == '"' and '"' not in p[1:-1] for p in parts):
        return [p[1:-1] for p in parts]
    return None


def _marks(values: list) -> str:
    return ",".join("?" * len(values))
