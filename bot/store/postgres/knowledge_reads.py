"""Knowledge reads on PostgreSQL: documents and chunks, the two searches, and whole-scope state for
knowledge/index.py.

Vector search stays in the database on every scope size (`vector_index`: exact for small scopes,
HNSW with iterative scans for large ones), so no replica holds a scope's matrix. BM25 is SQL over
the postings for small scopes; for large ones knowledge/index.py builds the same in-memory index it
builds on SQLite, from these postings (knowledge_scope_postings), keyed by the scope's version:
SQL BM25 touches every posting of the query's terms (~25 ms at 11k chunks, ten times that at 100k),
the in-memory index ~2-5 ms. Both score with the scope's own statistics.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from bot.store.postgres import knowledge_search
from bot.store.postgres.knowledge_write import KnowledgeWrites
from bot.store.records import Hit, KnowledgeDocument, ScopePostings, ScopeVectors, StoredChunk

if TYPE_CHECKING:
    import psycopg

_DOC_COLUMNS = (
    "id, scope, title, mimetype, kind, sha256, size_bytes, uploaded_by, slack_file_id, permalink,"
    " embedding_model, embedding_dim, chunk_count, created_at"
)
_CHUNK = ("SELECT c.id, c.document_id, c.ordinal, c.section, c.page, c.text, d.title, d.scope, d.permalink"
          " FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id")
_QUOTED = re.compile(r'"([^"]*)"')
_WORD = re.compile(r"\w+", re.UNICODE)


class KnowledgeReads(KnowledgeWrites):
    # Any k: beyond ef_search the iterative scan keeps walking the graph.
    knn_max_k: int = 10_000
    vector_index: bool = True

    async def knowledge_document(self, document_id: int) -> KnowledgeDocument | None:
        await self._knowledge_open()
        row = await self._one(f"SELECT {_DOC_COLUMNS} FROM knowledge_documents WHERE id = %s AND status = 'ready'",
                              (document_id,))
        return KnowledgeDocument(*row) if row else None

    async def knowledge_documents(self, scopes: list[str] | None = None) -> list[KnowledgeDocument]:
        """Documents in these scopes (all when None), newest first."""
        await self._knowledge_open()
        sql = f"SELECT {_DOC_COLUMNS} FROM knowledge_documents WHERE status = 'ready'"
        params: list[object] = []
        if scopes is not None:
            sql += " AND scope = ANY(%s)"
            params.append(list(scopes))
        return [KnowledgeDocument(*r) for r in await self._all(sql + " ORDER BY id DESC", params)]

    async def knowledge_document_ids_outside(self, model: str, dim: int) -> list[int]:
        return [r[0] for r in await self._all(
            "SELECT id FROM knowledge_documents WHERE NOT (embedding_model = %s AND embedding_dim = %s)"
            " AND status = 'ready' ORDER BY id", (model, dim))]

    async def knowledge_chunks(self, chunk_ids: list[int]) -> dict[int, StoredChunk]:
        if not chunk_ids:
            return {}
        rows = await self._all(_CHUNK + " WHERE c.id = ANY(%s) AND d.status = 'ready'", (list(chunk_ids),))
        return {r[0]: StoredChunk(*r) for r in rows}

    async def knowledge_document_chunks(self, document_id: int) -> list[StoredChunk]:
        rows = await self._all(_CHUNK + " WHERE c.document_id = %s AND d.status = 'ready' ORDER BY c.ordinal",
                               (document_id,))
        return [StoredChunk(*r) for r in rows]

    async def knowledge_knn(self, vector: np.ndarray, *, model: str, dim: int, scope: str, k: int) -> list[Hit]:
        """(chunk id, cosine similarity) of the k nearest ready chunks in one scope, best first."""
        await self._knowledge_open()
        table = await self._space(model, dim)
        if table is None:
            return []
        async with self.pool.connection() as conn:
            return await knowledge_search.knn(conn, table, dim, vector, scopes=[scope], k=min(k, self.knn_max_k))

    async def knowledge_bm25(self, match: str, *, scopes: list[str], limit: int,
                             weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> list[Hit]:
        """BM25 of ready chunks for an OR of quoted words (any other expression: its words), in SQL."""
        if not scopes or not match:
            return []
        await self._knowledge_open()
        words = _QUOTED.findall(match) or _WORD.findall(match)
        async with self.pool.connection() as conn:
            return await knowledge_search.bm25(conn, words, scopes=scopes, limit=limit, weights=weights)

    async def knowledge_query_terms(self, words: list[str]) -> list[str] | None:
        """Each word as the postings' term (PostgreSQL's parser and our dictionary); None if a word
        becomes several terms."""
        if not words:
            return []
        rows = await self._all(
            "SELECT w.i, l.lexeme FROM unnest(%s::text[]) WITH ORDINALITY AS w(word, i),"
            " unnest(to_tsvector('threadbot', w.word)) AS l ORDER BY w.i", (list(words),))
        terms: dict[int, list[str]] = {}
        for i, lexeme in rows:
            terms.setdefault(i, []).append(lexeme)
        if any(len(t) > 1 for t in terms.values()):
            return None
        return [terms[i][0] for i in range(1, len(words) + 1) if i in terms]

    async def knowledge_unready_scopes(self, scopes: list[str]) -> set[str]:
        if not scopes:
            return set()
        return {r[0] for r in await self._all(
            "SELECT DISTINCT scope FROM knowledge_documents WHERE status <> 'ready' AND scope = ANY(%s)",
            (list(scopes),))}

    async def knowledge_ready_chunks(self, chunk_ids: list[int]) -> set[int]:
        if not chunk_ids:
            return set()
        return {r[0] for r in await self._all(
            "SELECT c.id FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id"
            " WHERE c.id = ANY(%s) AND d.status = 'ready'", (list(chunk_ids),))}

    # --- whole-scope state for knowledge/index.py -----------------------------------------

    async def knowledge_scope_version(self, scope: str) -> int:
        row = await self._one("SELECT version FROM knowledge_scope_stats WHERE scope = %s", (scope,))
        return row[0] if row else 0

    async def knowledge_scope_size(self, scope: str) -> int:
        return (await self._one("SELECT count(*) FROM knowledge_chunks WHERE scope = %s", (scope,)))[0]

    async def knowledge_scope_vectors(self, *, model: str, dim: int, scope: str) -> ScopeVectors:
        table = await self._space(model, dim)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            version = await _version(conn, scope)
            if table is None:
                return ScopeVectors(version, np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32))
            cur = await conn.execute(f"SELECT chunk_id, embedding FROM {table} WHERE scope = %s ORDER BY chunk_id",
                                     (scope,))
            rows = await cur.fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.stack([np.asarray(r[1].to_numpy() if hasattr(r[1], "to_numpy") else r[1], dtype=np.float32)
                            for r in rows]) if rows else np.zeros((0, dim), dtype=np.float32)
        return ScopeVectors(version, ids, vectors)

    async def knowledge_scope_postings(self, scope: str) -> ScopePostings:
        """The scope's postings in knowledge/bm25.py's form: per term, one code per token occurrence."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            version = await _version(conn, scope)
            cur = await conn.execute("SELECT id FROM knowledge_chunks WHERE scope = %s ORDER BY id", (scope,))
            ids = np.array([r[0] for r in await cur.fetchall()], dtype=np.int64)
            cur = await conn.execute(
                "SELECT term, chunk_id, tf_title, tf_section, tf_text FROM knowledge_postings WHERE scope = %s"
                " ORDER BY term, chunk_id", (scope,))
            rows = await cur.fetchall()
        if not rows:
            return ScopePostings(version, ids, [], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        terms_col = [r[0] for r in rows]
        table = np.array([r[1:] for r in rows], dtype=np.int64)
        chunk = table[:, 0]
        tf = table[:, 1:]
        # Each posting's three columns as codes chunk*4+column, each repeated by its hits.
        codes = np.repeat((chunk[:, None] * 4 + np.arange(3)[None, :]).ravel(), tf.ravel())
        starts = [0] + [i for i in range(1, len(terms_col)) if terms_col[i] != terms_col[i - 1]]
        terms = [terms_col[i] for i in starts]
        per_posting = tf.sum(axis=1)
        counts = np.add.reduceat(per_posting, starts).astype(np.int64)
        return ScopePostings(version, ids, terms, counts, codes)

    # --- internals ------------------------------------------------------------------------

    async def _space(self, model: str, dim: int) -> str | None:
        row = await self._one("SELECT table_name FROM knowledge_spaces WHERE model = %s AND dim = %s", (model, dim))
        return row[0] if row else None

    async def _one(self, sql: str, params=()):
        async with self.pool.connection() as conn:
            return await (await conn.execute(sql, params)).fetchone()

    async def _all(self, sql: str, params=()):
        async with self.pool.connection() as conn:
            return await (await conn.execute(sql, params)).fetchall()


async def _version(conn: "psycopg.AsyncConnection", scope: str) -> int:
    row = await (await conn.execute("SELECT version FROM knowledge_scope_stats WHERE scope = %s", (scope,))).fetchone()
    return row[0] if row else 0
