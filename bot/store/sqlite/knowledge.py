"""Knowledge documents and their chunks in SQLite: the tables, and every write in short transactions.

Each chunk lives in three places: knowledge_chunks (text), knowledge_fts (FTS5, `scope` an UNINDEXED
column) and one sqlite-vec table per embedding space (`scope` its partition key), so every index is
filtered by scope inside its own query. A document is inserted 'pending', its rows added batch by
batch (each batch its own short transaction), and one short transaction makes it 'ready' (retiring a
replaced copy); knowledge/ingest.py drives those steps. Documents not 'ready' are invisible. Their
rows are purged in batches too; a crashed writer's are swept the next time a store touches the
knowledge base. Every change moves the scope's version, which knowledge/index.py's caches key on.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import uuid
from typing import Any, Sequence

import numpy as np

from bot.store.records import NewChunk, NewDocument
from bot.store.sqlite.base import SqliteBase
from bot.store.sqlite.db import Connection

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
# as much again (FTS5 flushes its buffered terms then), so the event loop is held for a few tens of ms
# at a time and its other store calls slip in between batches.
# Purges delete WRITE_BATCH chunks per transaction (a delete costs about what an insert does).
WRITE_BATCH = 200
WRITE_BATCH_SECONDS = 0.012
# Documents this process is writing right now, as (database path, id): the start-up sweep of a
# second store in the same process must not take them for a crashed writer's leftovers.
_IN_FLIGHT: set[tuple[str, int]] = set()


def vec_table_name(model: str, dim: int) -> str:
    return "knowledge_vec_" + re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_") + f"_{dim}"


class KnowledgeWrites(SqliteBase):
    """Knowledge writes. Vectors cross this boundary as float32 numpy rows."""

    _knowledge_swept: bool = False

    async def knowledge_begin_document(self, document: NewDocument) -> int:
        """Insert a 'pending' document (invisible until published); returns its id."""
        await self._knowledge_open()
        d = document
        with self.transaction() as conn:
            self._vec_table(conn, d.embedding_model, d.embedding_dim)
            # A placeholder sha256 keeps UNIQUE(scope, sha256) free for the copy being replaced.
            document_id = conn.execute(
                "INSERT INTO knowledge_documents(scope, title, mimetype, kind, sha256, size_bytes, uploaded_by,"
                " slack_file_id, permalink, embedding_model, embedding_dim, created_at, status, writer_pid)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                (d.scope, d.title, d.mimetype, d.kind, f"pending:{uuid.uuid4().hex}", d.size_bytes, d.uploaded_by,
                 d.slack_file_id, d.permalink, d.embedding_model, d.embedding_dim, time.time(), os.getpid()),
            ).lastrowid
        _IN_FLIGHT.add((_db_key(self.path), document_id))
        return document_id

    async def knowledge_write_chunks(self, document_id: int, rows: Sequence[tuple[NewChunk, np.ndarray]]) -> int:
        """Write the first of these rows in one transaction, stopping after WRITE_BATCH rows or
        WRITE_BATCH_SECONDS; returns how many were written (at least one)."""
        with self.transaction() as conn:
            scope, title, model, dim = conn.execute(
                "SELECT scope, title, embedding_model, embedding_dim FROM knowledge_documents"
                " WHERE id = ? AND status = 'pending'", (document_id,)).fetchone()
            table = self._vec_table(conn, model, dim)
            blobs = [_blob(vector, dim) for _, vector in rows[:WRITE_BATCH]]  # a wrong shape fails first
            deadline = time.perf_counter() + WRITE_BATCH_SECONDS  # from when the lock is ours
            written = 0
            for (chunk, _), blob in zip(rows, blobs):
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

    async def knowledge_publish_document(self, document_id: int, *, sha256: str, chunk_count: int) -> list[int]:
        """Make a pending document 'ready' and retire a ready one with the same content in its scope
        (replaced, not duplicated), in one short transaction; returns the retired ids, still to purge."""
        with self.transaction() as conn:
            (scope,) = conn.execute("SELECT scope FROM knowledge_documents WHERE id = ?", (document_id,)).fetchone()
            replaced = [r[0] for r in conn.execute(
                "SELECT id FROM knowledge_documents WHERE scope = ? AND sha256 = ? AND status = 'ready'",
                (scope, sha256))]
            for old in replaced:
                self._retire(conn, old)
            conn.execute(
                "UPDATE knowledge_documents SET status = 'ready', sha256 = ?, chunk_count = ?, writer_pid = NULL"
                " WHERE id = ?", (sha256, chunk_count, document_id),
            )
            self._bump(conn, scope)
        _IN_FLIGHT.discard((_db_key(self.path), document_id))
        return replaced

    async def knowledge_purge_document(self, document_id: int) -> None:
        """Delete a document's rows from every index, WRITE_BATCH chunks per transaction, then the
        document itself; the scope's version moves so no cache keeps its rows."""
        try:
            while True:
                with self.transaction() as conn:
                    row = conn.execute("SELECT scope FROM knowledge_documents WHERE id = ?",
                                       (document_id,)).fetchone()
                    if row is None:
                        return
                    ids = [r[0] for r in conn.execute(
                        "SELECT id FROM knowledge_chunks WHERE document_id = ? LIMIT ?", (document_id, WRITE_BATCH))]
                    if not ids:
                        conn.execute("DELETE FROM knowledge_documents WHERE id = ?", (document_id,))
                        self._bump(conn, row[0])
                        return
                    conn.execute(f"DELETE FROM knowledge_fts WHERE rowid IN ({marks(ids)})", ids)
                    for (table,) in conn.execute("SELECT table_name FROM knowledge_spaces").fetchall():
                        conn.execute(f"DELETE FROM {table} WHERE chunk_id IN ({marks(ids)})", ids)
                    conn.execute(f"DELETE FROM knowledge_chunks WHERE id IN ({marks(ids)})", ids)
                await asyncio.sleep(0)  # the loop's other work runs between batches
        finally:
            _IN_FLIGHT.discard((_db_key(self.path), document_id))

    async def knowledge_sweep(self) -> int:
        """Purge documents a crashed writer left 'pending' (or a purge left 'deleting'); returns how many.

        Runs once per store on its first knowledge call; a document another live process (or this one)
        is still writing is left alone.
        """
        self._knowledge_swept = True
        rows = self.rows("SELECT id, status, writer_pid FROM knowledge_documents WHERE status != 'ready'")
        db = _db_key(self.path)
        stale = [doc for doc, status, pid in rows if status != "pending" or not _writer_alive(db, doc, pid)]
        for doc in stale:
            await self.knowledge_purge_document(doc)
        if stale:
            log.warning("removed %d half-written knowledge document(s) left by an interrupted upload", len(stale))
        return len(stale)

    async def knowledge_delete_document(self, document_id: int) -> bool:
        """Remove a document from every index (documents, chunks, FTS, vectors); False if absent.

        One short transaction hides it from every search; its rows then go in short batches.
        """
        await self._knowledge_open()
        with self.transaction() as conn:
            if not self._retire(conn, document_id):
                return False
        await self.knowledge_purge_document(document_id)
        return True

    async def knowledge_set_scope(self, document_id: int, scope: str) -> bool:
        """Move a document to another scope (e.g. an admin making it workspace-wide)."""
        with self.transaction() as conn:
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
            ids = chunk_ids(conn, document_id)
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

    async def knowledge_replace_vectors(
        self, document_id: int, *, embedding_model: str, embedding_dim: int, vectors: dict[int, np.ndarray]
    ) -> None:
        """Move a document into another embedding space (re-embedding) in one transaction."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT scope, embedding_model, embedding_dim FROM knowledge_documents WHERE id = ?",
                (document_id,),
            ).fetchone()
            if row is None:
                return
            scope, old_model, old_dim = row
            old_table = self._vec_table(conn, old_model, old_dim)
            new_table = self._vec_table(conn, embedding_model, embedding_dim)
            for chunk_id in chunk_ids(conn, document_id):
                conn.execute(f"DELETE FROM {old_table} WHERE chunk_id = ?", (chunk_id,))
                conn.execute(f"DELETE FROM {new_table} WHERE chunk_id = ?", (chunk_id,))
                conn.execute(f"INSERT INTO {new_table}(chunk_id, scope, embedding) VALUES (?, ?, ?)",
                             (chunk_id, scope, _blob(vectors[chunk_id], embedding_dim)))
            conn.execute(
                "UPDATE knowledge_documents SET embedding_model = ?, embedding_dim = ? WHERE id = ?",
                (embedding_model, embedding_dim, document_id),
            )
            self._bump(conn, scope)

    # --- internals ------------------------------------------------------------------------

    async def _knowledge_open(self) -> None:
        if not self._knowledge_swept:
            await self.knowledge_sweep()

    def _retire(self, conn: Connection, document_id: int) -> bool:
        """Hide a ready document from every search in the caller's transaction (its rows go in a purge)."""
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

    def _vec_table(self, conn: Connection, model: str, dim: int) -> str:
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

    def _delete_document(self, conn: Connection, document_id: int) -> bool:
        row = conn.execute("SELECT scope FROM knowledge_documents WHERE id = ?", (document_id,)).fetchone()
        if row is None:
            return False
        ids = chunk_ids(conn, document_id)
        tables = [r[0] for r in conn.execute("SELECT table_name FROM knowledge_spaces")]
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            conn.execute(f"DELETE FROM knowledge_fts WHERE rowid IN ({marks(part)})", part)
            for table in tables:
                conn.execute(f"DELETE FROM {table} WHERE chunk_id IN ({marks(part)})", part)
        conn.execute("DELETE FROM knowledge_chunks WHERE document_id = ?", (document_id,))
        conn.execute("DELETE FROM knowledge_documents WHERE id = ?", (document_id,))
        self._bump(conn, row[0])
        return True

    def _bump(self, conn: Connection, scope: str) -> None:
        conn.execute(
            "INSERT INTO knowledge_scope_versions(scope, version) VALUES (?, 1)"
            " ON CONFLICT(scope) DO UPDATE SET version = version + 1",
            (scope,),
        )


def chunk_ids(conn: Connection, document_id: int) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT id FROM knowledge_chunks WHERE document_id = ? ORDER BY ordinal", (document_id,))]


def marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _blob(vector: np.ndarray, dim: int) -> bytes:
    array = np.asarray(vector, dtype=np.float32)
    if array.shape != (dim,):
        raise ValueError(f"expected a vector of {dim} floats, got shape {array.shape}")
    return array.tobytes()


def _db_key(path: Any) -> str:
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
