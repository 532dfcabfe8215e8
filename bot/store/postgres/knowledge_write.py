"""Writing the knowledge base in PostgreSQL: documents, chunks, their postings and vectors, in short transactions.

A document is inserted 'pending' (invisible to listing and search) with a writer's lease, its rows go
in batches of WRITE_BATCH chunks (the lease renewed with each), and one short transaction makes it
'ready', adds its rows to the scope's BM25 statistics and retires a copy with the same sha256.
A replica that dies mid-upload stops renewing: once the lease is over, any replica's sweep purges
the rows. Removal hides a document in one transaction, then deletes it (rows cascade).
"""
from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING, Iterable

import numpy as np

from bot.store.postgres.knowledge_search import column_type

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

WRITE_BATCH = 200
# A writer renews its lease with every batch; a batch takes well under a second.
LEASE_S = 120.0

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


async def add_document(pool: "AsyncConnectionPool", *, scope: str, title: str, mimetype: str | None, kind: str,
                       sha256: str, size_bytes: int, uploaded_by: str, slack_file_id: str | None,
                       permalink: str | None, embedding_model: str, embedding_dim: int,
                       chunks: Iterable[tuple[object, np.ndarray]],
                       batch_size: int | None = None) -> tuple[int, list[int]]:
    """Store a document and its chunks (NewChunk, vector); returns (new id, replaced ids)."""
    size = batch_size or WRITE_BATCH
    async with pool.connection() as conn:
        table = await ensure_space(conn, embedding_model, embedding_dim)
        cur = await conn.execute(
            "INSERT INTO knowledge_documents(scope, title, mimetype, kind, sha256, size_bytes, uploaded_by,"
            " slack_file_id, permalink, embedding_model, embedding_dim, created_at, status, lease_until)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending', %s) RETURNING id",
            (scope, title, mimetype, kind, f"pending:{uuid.uuid4().hex}", size_bytes, uploaded_by, slack_file_id,
             permalink, embedding_model, embedding_dim, time.time(), time.time() + LEASE_S))
        document_id = (await cur.fetchone())[0]
    try:
        count = 0
        batch: list[tuple[object, np.ndarray]] = []
        for item in chunks:
            batch.append(item)
            if len(batch) >= size:
                count += await _write_batch(pool, document_id, table, scope, title, embedding_dim, batch)
                batch = []
        if batch:
            count += await _write_batch(pool, document_id, table, scope, title, embedding_dim, batch)
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT id FROM knowledge_documents WHERE scope = %s AND sha256 = %s AND status = 'ready' FOR UPDATE",
                (scope, sha256))
            replaced = [r[0] for r in await cur.fetchall()]
            for old in replaced:
                await retire(conn, old)
            await conn.execute(
                "UPDATE knowledge_documents SET status = 'ready', sha256 = %s, chunk_count = %s, lease_until = NULL"
                " WHERE id = %s", (sha256, count, document_id))
            await _count_in_stats(conn, document_id, +1)
    except BaseException:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM knowledge_documents WHERE id = %s", (document_id,))
        raise
    if replaced:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM knowledge_documents WHERE id = ANY(%s)", (replaced,))
    return document_id, replaced


async def _write_batch(pool: "AsyncConnectionPool", document_id: int, table: str, scope: str, title: str,
                       dim: int, batch: list[tuple[object, np.ndarray]]) -> int:
    vectors = []
    for _, vector in batch:
        array = np.asarray(vector, dtype=np.float32)
        if array.shape != (dim,):
            raise ValueError(f"expected a vector of {dim} floats, got shape {array.shape}")
        vectors.append(array)
    chunks = [c for c, _ in batch]
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO knowledge_chunks(document_id, ordinal, scope, section, page, text)"
            " SELECT %s, o, %s, s, p, t FROM unnest(%s::int[], %s::text[], %s::int[], %s::text[]) AS u(o, s, p, t)"
            " RETURNING id, ordinal",
            (document_id, scope, [c.ordinal for c in chunks], [c.section for c in chunks],
             [c.page for c in chunks], [c.text for c in chunks]))
        by_ordinal = {r[1]: r[0] for r in await cur.fetchall()}
        ids = [by_ordinal[c.ordinal] for c in chunks]
        await conn.execute(_POSTINGS, {"ids": ids, "sections": [c.section for c in chunks],
                                       "texts": [c.text for c in chunks], "title": title, "scope": scope,
                                       "document_id": document_id})
        cast = column_type(dim)
        async with conn.cursor() as cur:
            await cur.executemany(
                f"INSERT INTO {table}(chunk_id, document_id, scope, embedding) VALUES (%s, %s, %s, %s::{cast})",
                [(chunk_id, document_id, scope, vector) for chunk_id, vector in zip(ids, vectors)])
        await conn.execute("UPDATE knowledge_documents SET lease_until = %s WHERE id = %s",
                           (time.time() + LEASE_S, document_id))
    return len(ids)


async def _count_in_stats(conn: "psycopg.AsyncConnection", document_id: int, sign: int) -> None:
    """Add (+1) or remove (-1) a document's chunks to its scope's BM25 statistics."""
    await conn.execute(
        "INSERT INTO knowledge_scope_stats AS s(scope, chunks, total_len)"
        " SELECT scope, %(sign)s * count(*), %(sign)s * coalesce(sum(doc_len), 0) FROM knowledge_chunks"
        " WHERE document_id = %(doc)s GROUP BY scope"
        " ON CONFLICT (scope) DO UPDATE SET chunks = s.chunks + excluded.chunks,"
        " total_len = s.total_len + excluded.total_len",
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


async def delete_document(pool: "AsyncConnectionPool", document_id: int) -> bool:
    """Remove a document from every index; False if it was not there (or not ready)."""
    async with pool.connection() as conn:
        async with conn.transaction():
            if not await retire(conn, document_id):
                return False
        await conn.execute("DELETE FROM knowledge_documents WHERE id = %s", (document_id,))
    return True


async def sweep(pool: "AsyncConnectionPool", *, now: float | None = None) -> int:
    """Purge documents whose writer's lease is over (a dead replica's upload) or a purge left behind."""
    now = time.time() if now is None else now
    async with pool.connection() as conn:
        cur = await conn.execute(
            "DELETE FROM knowledge_documents WHERE (status = 'pending' AND lease_until < %s)"
            " OR status = 'deleting' RETURNING id", (now,))
        return len(await cur.fetchall())
