"""Knowledge search in PostgreSQL: BM25 computed in SQL from the postings table, and pgvector KNN, each
filtered by scope (and by document status) inside its one query.

BM25 is FTS5's formula (knowledge/bm25.py spells it out): per query term, idf = ln((N - n + 0.5) /
(n + 0.5)) floored at 1e-6, times f (k1 + 1) / (f + k1 (1 - b + b len / avgdl)), f the column-
weighted hits. N and avgdl are the scope's own (knowledge_scope_stats, ready documents), n the
term's document frequency in the scope, counted in the same query from the postings index.
Vectors: a scope with fewer than EXACT_BELOW chunks is scanned exactly (its rows come from the
scope index; the HNSW graph would have to visit the whole table to find them); larger scopes use
the HNSW index with pgvector's iterative scan, which keeps walking the graph until `k` rows of the
wanted scopes are found, re-sorted by exact distance.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import psycopg

K1 = 1.2
B = 0.75
# Below this many chunks in the searched scopes the scan is exact: ~10 ms at 10k 384-dim rows.
EXACT_BELOW = 10_000
# The HNSW candidate list per search (pgvector's default 40 is below the fusion depth of 100).
EF_SEARCH = 200

# The terms of the query words as the index made them (PostgreSQL's parser and our dictionary),
# each counted once per word that yields it, as FTS5 counts a term once per phrase of an OR query.
_QUERY_TERMS = """
    SELECT l.lexeme AS term, count(*) AS times
    FROM unnest(%(words)s::text[]) AS w(word), unnest(to_tsvector('threadbot', w.word)) AS l
    GROUP BY l.lexeme
"""

_BM25 = f"""
WITH q AS ({_QUERY_TERMS}),
s AS (
    SELECT scope, chunks::float8 AS n, total_len::float8 / greatest(chunks, 1) AS avgdl
    FROM knowledge_scope_stats WHERE scope = ANY(%(scopes)s) AND chunks > 0
),
p AS MATERIALIZED (
    SELECT p.scope, p.term, p.chunk_id, p.doc_len,
           p.tf_title * %(w_title)s::float8 + p.tf_section * %(w_section)s::float8 + p.tf_text * %(w_text)s::float8 AS f
    FROM knowledge_postings p JOIN q ON q.term = p.term
    WHERE p.scope = ANY(%(scopes)s)
      AND p.document_id NOT IN (
          SELECT id FROM knowledge_documents WHERE status <> 'ready' AND scope = ANY(%(scopes)s))
),
-- One weight per (scope, term): idf times the term's count in the query, with the scope's avgdl.
w AS MATERIALIZED (
    SELECT df.scope, df.term, q.times * greatest(ln((s.n - df.n + 0.5) / (df.n + 0.5)), 1e-6) AS weight,
           s.avgdl
    FROM (SELECT scope, term, count(*)::float8 AS n FROM p GROUP BY scope, term) AS df
    JOIN q ON q.term = df.term JOIN s ON s.scope = df.scope
)
SELECT p.chunk_id,
       sum(w.weight * (p.f * {K1 + 1.0}::float8) / (p.f + {K1}::float8 * ({1.0 - B}::float8 + {B}::float8 * p.doc_len / w.avgdl))) AS score
FROM p JOIN w ON w.scope = p.scope AND w.term = p.term
GROUP BY p.chunk_id
ORDER BY score DESC, p.chunk_id
LIMIT %(limit)s
"""


async def bm25(conn: "psycopg.AsyncConnection", words: list[str], *, scopes: list[str], limit: int,
               weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> list[tuple[int, float]]:
    """(chunk id, BM25 score; higher is better) of ready chunks holding any of these words, best first."""
    if not words or not scopes or limit <= 0:
        return []
    cur = await conn.execute(_BM25, {
        "words": list(words), "scopes": list(dict.fromkeys(scopes)), "limit": limit,
        "w_title": float(weights[0]), "w_section": float(weights[1]), "w_text": float(weights[2]),
    })
    return [(int(r[0]), float(r[1])) for r in await cur.fetchall()]


def column_type(dim: int) -> str:
    """pgvector's type for a space: `vector` indexes up to 2,000 dimensions, `halfvec` up to 4,000."""
    if dim <= 2000:
        return f"vector({int(dim)})"
    if dim <= 4000:
        return f"halfvec({int(dim)})"
    raise ValueError(f"pgvector cannot index {dim}-dimensional vectors (at most 4,000)")


async def knn(conn: "psycopg.AsyncConnection", table: str, dim: int, vector: np.ndarray, *,
              scopes: list[str], k: int, exact_below: int | None = None) -> list[tuple[int, float]]:
    """(chunk id, cosine similarity) of the k nearest ready chunks in these scopes, best first; exact
    below `exact_below` chunks in the scopes (EXACT_BELOW, read at call time, when not given)."""
    if not scopes or k <= 0:
        return []
    scopes = list(dict.fromkeys(scopes))
    query = np.asarray(vector, dtype=np.float32)
    if query.shape != (dim,):
        raise ValueError(f"expected a vector of {dim} floats, got shape {query.shape}")
    cur = await conn.execute(
        "SELECT coalesce(sum(chunks), 0) FROM knowledge_scope_stats WHERE scope = ANY(%s)", (scopes,))
    rows_in_scopes = (await cur.fetchone())[0]
    sql = knn_sql(table, dim, exact=rows_in_scopes < (EXACT_BELOW if exact_below is None else exact_below))
    cur = await conn.execute(sql, {"q": query, "scopes": scopes, "k": k})
    return [(int(r[0]), float(r[1])) for r in await cur.fetchall()]


def knn_sql(table: str, dim: int, *, exact: bool) -> str:
    """The KNN query over one vector table; parameters q (the vector), scopes and k."""
    # `+ 0` keeps the planner off the HNSW index: exact distances over the scope's own rows.
    order = "(v.embedding <=> q.v) + 0" if exact else "v.embedding <=> q.v"
    return f"""
        WITH q AS (SELECT %(q)s::{column_type(dim)} AS v),
        hits AS MATERIALIZED (
            SELECT v.chunk_id, v.embedding <=> q.v AS distance FROM {table} v, q
            WHERE v.scope = ANY(%(scopes)s)
              AND v.document_id NOT IN (
                  SELECT id FROM knowledge_documents WHERE status <> 'ready' AND scope = ANY(%(scopes)s))
            ORDER BY {order} LIMIT %(k)s
        )
        SELECT chunk_id, 1.0 - distance FROM hits ORDER BY distance, chunk_id
    """


async def configure_search(conn: "psycopg.AsyncConnection") -> None:
    """Per-connection pgvector settings: a candidate list deep enough for the fusion, and iterative
    scans so a scope filter never returns fewer than k rows while matching rows remain."""
    await conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
    await conn.execute("SET hnsw.iterative_scan = relaxed_order")
