"""Writing the knowledge base in PostgreSQL: documents, chunks, their postings and vectors, in short transactions.

A document is begun 'pending' (invisible to listing and search) with a writer's lease, its rows go
in batches of WRITE_BATCH chunks (the lease renewed with each), and one short transaction makes it
'ready', adds its rows to the scope's BM25 statistics and retires a copy with the same sha256.
A replica that dies mid-upload stops renewing: once the lease is over, any replica's sweep purges
the rows. Removal hides a document in one transaction, then deletes it (its rows cascade).
Every change to a scope's searchable rows moves its version (knowledge_scope_stats.version), which
invalidates the per-replica caches of knowledge/index.py on every replica.
"""
from __future__ import annotations

import re
import time
import uuid
import logging
from typing import TYPE_CHECKING, Sequence

import numpy as np

from bot.store.postgres.knowledge_search import column_type
from bot.store.records import NewChunk, NewDocument

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

WRITE_BATCH = 200
# A writer renews its lease with every batch; between batches it embeds the next ones (seconds,
# a minute on a slow embedder), so a lease outlives any live writer's pause.
LEASE_S = 600.0

# The postings of a batch of chunks: PostgreSQL tokenizes title, section and text (our text search
# configuration), counts each term's hits per column and each chunk's length.
_POSTINGS = """
WITH c AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(sections)s::text[], %(texts)s::text[]) AS c(id, section, text)
),
occ AS (
    SELECT c.id, l.lexeme, 0 AS col, cardinality(l.positions) AS n
    FROM c, unnest(to_tsvector('threadbot', %(title)s)) AS l
    UNION ALL
    SELECT c.id, l.lexeme, 1, cardinality(l.positions)
    FROM c, unnest(to_tsvector('threadbot', coalesce(c.section, ''))) AS l
    UNION ALL
    SELECT c.id, l.lexeme, 2, cardinality(l.positions) FROM c, unnest(to_tsvector('threadbot', c.text)) AS l
),
lens AS (SELECT id, sum(n)::int AS len FROM occ GROUP BY id),
upd AS (UPDATE knowledge_chunks k SET doc_len = lens.len FROM lens WHERE k.id = lens.id)
INSERT INTO knowledge_postings(scope, term, chunk_id, document_id, tf_title, tf_section, tf_text, doc_len)
SELECT %(scope)s, occ.lexeme, occ.id, %(document_id)s,
       coalesce(sum(n) FILTER (WHERE col = 0), 0), coalesce(sum(n) FILTER (WHERE col = 1), 0),
       coalesce(sum(n) FILTER (WHERE col = 2), 0), lens.len
FROM occ JOIN lens ON lens.id = occ.id
GROUP BY occ.id, occ.lexeme, lens.len
"""


def vec_table_name(model: str, dim: int) -> str:
    return "knowledge_vec_" + re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:40] + f"_{int(dim)}"


async def ensure_space(conn: "psycopg.AsyncConnection", model: str, dim: int) -> str:
    """The vector table of an embedding space, created (with its HNSW index) on first use."""
    cur = await conn.execute("SELECT table_name FROM knowledge_spaces WHERE model = %s AND dim = %s", (model, dim))
    row = await cur.fetchone()
    if row:
        return row[0]
    table = vec_table_name(model, dim)
    kind = column_type(dim)
    ops = "halfvec_cosine_ops" if kind.startswith("halfvec") else "vector_cosine_ops"
    async with conn.transaction():
        # Two replicas meeting a new space at once: one creates it, the other finds it.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        cur = await conn.execute("SELECT table_name FROM knowledge_spaces WHERE model = %s AND dim = %s",
                                 (model, dim))
        row = await cur.fetchone()
        if row:
            return row[0]
        await conn.execute(
            f"CREATE TABLE {table} (chunk_id bigint PRIMARY KEY REFERENCES knowledge_chunks(id) ON DELETE CASCADE,"
            f" document_id bigint NOT NULL, scope text NOT NULL, embedding {kind} NOT NULL)")
        await conn.execute(f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (embedding {ops})")
        await conn.execute(f"CREATE INDEX {table}_scope ON {table} (scope)")
        await conn.execute("INSERT INTO knowledge_spaces(model, dim, table_name) VALUES (%s, %s, %s)",
                           (model, dim, table))
    return table


class KnowledgeWrites:
    """Knowledge writes. Vectors cross this boundary as float32 numpy rows."""

    pool: "AsyncConnectionPool"
    _knowledge_swept: bool = False

    async def knowledge_begin_document(self, document: NewDocument, *, keep_id: int | None = None,
                                       created_at: float | None = None) -> int:
        """Insert a 'pending' document (invisible until published) with this writer's lease; returns its id.
        `keep_id` and `created_at` are for `threadbot db copy`, which keeps the source's ids and times."""
        await self._knowledge_open()
        d = document
        async with self.pool.connection() as conn:
            await ensure_space(conn, d.embedding_model, d.embedding_dim)
            # A placeholder sha256 keeps UNIQUE(scope, sha256) free for the copy being replaced.
            cur = await conn.execute(
                "INSERT INTO knowledge_documents(id, scope, title, mimetype, kind, sha256, size_bytes, uploaded_by,"
                " slack_file_id, permalink, embedding_model, embedding_dim, created_at, status, lease_until)"
                " OVERRIDING SYSTEM VALUE VALUES (coalesce(%s, nextval(pg_get_serial_sequence("
                "'knowledge_documents', 'id'))), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending', %s)"
                " RETURNING id",
                (keep_id, d.scope, d.title, d.mimetype, d.kind, f"pending:{uuid.uuid4().hex}", d.size_bytes,
                 d.uploaded_by, d.slack_file_id, d.permalink, d.embedding_model, d.embedding_dim,
                 time.time() if created_at is None else created_at, time.time() + LEASE_S))
            return (await cur.fetchone())[0]

    async def knowledge_write_chunks(self, document_id: int, rows: Sequence[tuple[NewChunk, np.ndarray]], *,
                                     keep_ids: Sequence[int] | None = None) -> int:
        """Write the first WRITE_BATCH of these rows (chunks, postings, vectors) in one transaction and
        renew the writer's lease; returns how many were written. `keep_ids` (one per row, for `threadbot
        db copy`) are the chunks' ids instead of new ones."""
        batch = list(rows[:WRITE_BATCH])
        ids_wanted = None if keep_ids is None else [int(i) for i in keep_ids[:WRITE_BATCH]]
        if ids_wanted is not None and len(ids_wanted) != len(batch):
            raise ValueError("keep_ids must give one id per row")
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT scope, title, embedding_model, embedding_dim FROM knowledge_documents"
                " WHERE id = %s AND status = 'pending'", (document_id,))
            scope, title, model, dim = await cur.fetchone()
            table = await ensure_space(conn, model, dim)
            vectors = [_vector(v, dim) for _, v in batch]  # a wrong shape fails before any write
            chunks = [c for c, _ in batch]
            async with conn.transaction():
                cur = await conn.execute(
                    "INSERT INTO knowledge_chunks(id, document_id, ordinal, scope, section, page, text)"
                    " OVERRIDING SYSTEM VALUE SELECT coalesce(i, nextval(pg_get_serial_sequence('knowledge_chunks',"
                    " 'id'))), %s, o, %s, s, p, t"
                    " FROM unnest(%s::bigint[], %s::int[], %s::text[], %s::int[], %s::text[]) AS u(i, o, s, p, t)"
                    " RETURNING id, ordinal",
                    (document_id, scope, ids_wanted or [None] * len(chunks), [c.ordinal for c in chunks],
                     [c.section for c in chunks], [c.page for c in chunks], [c.text for c in chunks]))
                by_ordinal = {r[1]: r[0] for r in await cur.fetchall()}
                ids = [by_ordinal[c.ordinal] for c in chunks]
                await conn.execute(_POSTINGS, {"ids": ids, "sections": [c.section for c in chunks],
                                               "texts": [c.text for c in chunks], "title": title, "scope": scope,
                                               "document_id": document_id})
                async with conn.cursor() as many:
                    await many.executemany(
                        f"INSERT INTO {table}(chunk_id, document_id, scope, embedding)"
                        f" VALUES (%s, %s, %s, %s::{column_type(dim)})",
                        [(chunk_id, document_id, scope, vector) for chunk_id, vector in zip(ids, vectors)])
                await conn.execute("UPDATE knowledge_documents SET lease_until = %s WHERE id = %s",
                                   (time.time() + LEASE_S, document_id))
        return len(ids)

    async def knowledge_publish_document(self, document_id: int, *, sha256: str, chunk_count: int) -> list[int]:
        """Make a pending document 'ready' and retire a ready one with the same content in its scope,
        in one short transaction; returns the retired ids, still to purge."""
        async with self.pool.connection() as conn, conn.transaction():
            (scope,) = await (await conn.execute(
                "SELECT scope FROM knowledge_documents WHERE id = %s", (document_id,))).fetchone()
            cur = await conn.execute(
                "SELECT id FROM knowledge_documents WHERE scope = %s AND sha256 = %s AND status = 'ready' FOR UPDATE",
                (scope, sha256))
            replaced = [r[0] for r in await cur.fetchall()]
            for old in replaced:
                await retire(conn, old)
            await conn.execute(
                "UPDATE knowledge_documents SET status = 'ready', sha256 = %s, chunk_count = %s, lease_until = NULL"
                " WHERE id = %s", (sha256, chunk_count, document_id))
            await _count_in_stats(conn, document_id, +1)
        return replaced

    async def knowledge_purge_document(self, document_id: int) -> None:
        """Delete a document and (by cascade) every row of it; the scope's version moves."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("DELETE FROM knowledge_documents WHERE id = %s RETURNING scope", (document_id,))
            row = await cur.fetchone()
            if row is not None:
                await _bump(conn, row[0])

    async def knowledge_sweep(self) -> int:
        """Purge documents whose writer's lease is over (a replica died mid-upload) or that a purge
        left 'deleting'; returns how many. Runs once per store on its first knowledge call."""
        self._knowledge_swept = True
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id FROM knowledge_documents WHERE (status = 'pending' AND lease_until < %s)"
                " OR status = 'deleting'", (time.time(),))
            stale = [r[0] for r in await cur.fetchall()]
        for doc in stale:
            await self.knowledge_purge_document(doc)
        if stale:
            log.warning("removed %d half-written knowledge document(s) left by an interrupted upload", len(stale))
        return len(stale)

    async def knowledge_delete_document(self, document_id: int) -> bool:
        """Remove a document from every index; False if it is not there (or not ready)."""
        await self._knowledge_open()
        async with self.pool.connection() as conn, conn.transaction():
            if not await retire(conn, document_id):
                return False
        await self.knowledge_purge_document(document_id)
        return True

    async def knowledge_set_scope(self, document_id: int, scope: str) -> bool:
        """Move a document to another scope (e.g. an admin making it workspace-wide), in one transaction."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT scope, sha256, embedding_model, embedding_dim FROM knowledge_documents"
                " WHERE id = %s AND status = 'ready' FOR UPDATE", (document_id,))
            row = await cur.fetchone()
            if row is None:
                return False
            old_scope, sha256, model, dim = row
            if old_scope == scope:
                return True
            # The same content already in the target scope: keep one copy.
            cur = await conn.execute(
                "SELECT id FROM knowledge_documents WHERE scope = %s AND sha256 = %s AND status = 'ready'",
                (scope, sha256))
            for (dup,) in await cur.fetchall():
                await retire(conn, dup)
                await conn.execute("DELETE FROM knowledge_documents WHERE id = %s", (dup,))
            await _count_in_stats(conn, document_id, -1)
            table = await ensure_space(conn, model, dim)
            for sql in ("UPDATE knowledge_documents SET scope = %s WHERE id = %s",
                        "UPDATE knowledge_chunks SET scope = %s WHERE document_id = %s",
                        "UPDATE knowledge_postings SET scope = %s WHERE document_id = %s",
                        f"UPDATE {table} SET scope = %s WHERE document_id = %s"):
                await conn.execute(sql, (scope, document_id))
            await _count_in_stats(conn, document_id, +1)
            return True

    async def knowledge_replace_vectors(self, document_id: int, *, embedding_model: str, embedding_dim: int,
                                        vectors: dict[int, np.ndarray]) -> None:
        """Move a document into another embedding space (re-embedding) in one transaction."""
        async with self.pool.connection() as conn:
            new_table = await ensure_space(conn, embedding_model, embedding_dim)
            async with conn.transaction():
                cur = await conn.execute(
                    "SELECT scope, embedding_model, embedding_dim FROM knowledge_documents WHERE id = %s FOR UPDATE",
                    (document_id,))
                row = await cur.fetchone()
                if row is None:
                    return
                scope, old_model, old_dim = row
                old_table = await ensure_space(conn, old_model, old_dim)
                await conn.execute(f"DELETE FROM {old_table} WHERE document_id = %s", (document_id,))
                await conn.execute(f"DELETE FROM {new_table} WHERE document_id = %s", (document_id,))
                cur = await conn.execute("SELECT id FROM knowledge_chunks WHERE document_id = %s", (document_id,))
                ids = [r[0] for r in await cur.fetchall()]
                async with conn.cursor() as many:
                    await many.executemany(
                        f"INSERT INTO {new_table}(chunk_id, document_id, scope, embedding)"
                        f" VALUES (%s, %s, %s, %s::{column_type(embedding_dim)})",
                        [(i, document_id, scope, _vector(vectors[i], embedding_dim)) for i in ids])
                await conn.execute("UPDATE knowledge_documents SET embedding_model = %s, embedding_dim = %s"
                                   " WHERE id = %s", (embedding_model, embedding_dim, document_id))
                await _bump(conn, scope)

    async def _knowledge_open(self) -> None:
        if not self._knowledge_swept:
            await self.knowledge_sweep()


def _vector(vector: np.ndarray, dim: int) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32)
    if array.shape != (dim,):
        raise ValueError(f"expected a vector of {dim} floats, got shape {array.shape}")
    return array


async def _bump(conn: "psycopg.AsyncConnection", scope: str) -> None:
    await conn.execute(
        "INSERT INTO knowledge_scope_stats AS s(scope, version) VALUES (%s, 1)"
        " ON CONFLICT (scope) DO UPDATE SET version = s.version + 1", (scope,))


async def _count_in_stats(conn: "psycopg.AsyncConnection", document_id: int, sign: int) -> None:
    """Add (+1) or remove (-1) a document's chunks to its scope's BM25 statistics; the version moves."""
    await conn.execute(
        "INSERT INTO knowledge_scope_stats AS s(scope, chunks, total_len, version)"
        " SELECT d.scope, %(sign)s * count(c.id), %(sign)s * coalesce(sum(c.doc_len), 0), 1"
        " FROM knowledge_documents d LEFT JOIN knowledge_chunks c ON c.document_id = d.id"
        " WHERE d.id = %(doc)s GROUP BY d.scope"
        " ON CONFLICT (scope) DO UPDATE SET chunks = s.chunks + excluded.chunks,"
        " total_len = s.total_len + excluded.total_len, version = s.version + 1",
        {"sign": sign, "doc": document_id})


async def retire(conn: "psycopg.AsyncConnection", document_id: int) -> bool:
    """Hide a ready document from every search, in the caller's transaction; False if not ready."""
    cur = await conn.execute(
        "UPDATE knowledge_documents SET status = 'deleting', sha256 = 'deleting:' || id, lease_until = NULL"
        " WHERE id = %s AND status = 'ready' RETURNING id", (document_id,))
    if await cur.fetchone() is None:
        return False
    await _count_in_stats(conn, document_id, -1)
    return True
