"""Knowledge search latency at 10k and 100k chunks in one scope, against a numpy brute-force scan of
the same vectors measured in the same run.

    .venv/bin/python bench/knowledge_search.py [--sizes 10000 100000] [--queries 200]

Synthetic data: clustered unit vectors (384-dim, like MiniLM) and Zipf-distributed words, stored
through the real Store; queries go through the real search code with a precomputed query vector
(query embedding time is reported separately). Reference: numpy `X @ q` + argpartition, the exact
floor; target p50 < 20 ms at 100k. Scopes of >= 5,000 chunks are BM25-scored from an in-memory
index (bot/store/knowledge.py BM25_INDEX_MIN_ROWS); plain FTS5 is timed alongside for comparison.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import knowledge.index as knowledge_index  # noqa: E402
from bot.store import NewChunk, NewDocument  # noqa: E402
from bot.store.sqlite import SqliteStore  # noqa: E402
from bot.store.sqlite.knowledge import vec_table_name  # noqa: E402
from knowledge.index import index_for  # noqa: E402
from knowledge.ingest import store_document  # noqa: E402
from knowledge.search import DEFAULT_FUSION, fts_query, rrf  # noqa: E402

DIM = 384
SCOPE = "workspace"
MODEL = "synthetic"


class FixedEmbedder:
    """Returns the query vector set by the benchmark (so timings exclude the model)."""

    model = MODEL
    dim = DIM
    window = 256

    def __init__(self) -> None:
        self.next: np.ndarray | None = None

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.next[None, :]  # type: ignore[index]


def synthetic(n: int, rng: np.random.Generator, data: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """Clustered unit vectors; texts mixed from real SciFact sentences and real SciFact claims as
    queries when the data set is there (so FTS5 sees English term statistics), else Zipf words."""
    centers = rng.normal(size=(max(n // 200, 10), DIM)).astype(np.float32)
    vectors = centers[rng.integers(0, len(centers), n)] + 0.6 * rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    if (data / "corpus.jsonl").exists():
        sentences = [s.strip() + "." for line in (data / "corpus.jsonl").open()
                     for s in json.loads(line)["text"].split(". ") if len(s) > 20]
        picks = rng.integers(0, len(sentences), size=(n, 5))
        texts = [" ".join(sentences[i] for i in row) for row in picks]
        queries = [json.loads(line)["text"] for line in (data / "queries.jsonl").open()]
        return vectors, texts, queries
    vocab = [f"w{i}" for i in range(20_000)]
    ranks = np.minimum(rng.zipf(1.3, size=(n, 60)), len(vocab)) - 1
    texts = [" ".join(vocab[r] for r in row) for row in ranks]
    query_words = [" ".join(vocab[r] for r in row) for row in np.minimum(rng.zipf(1.5, size=(500, 4)), 5000) - 1]
    return vectors, texts, query_words


async def build(path: Path, vectors: np.ndarray, texts: list[str], per_doc: int = 1000) -> tuple[SqliteStore, float]:
    store = SqliteStore(path)
    return store, await fill(store, vectors, texts, per_doc)


async def fill(store, vectors: np.ndarray, texts: list[str], per_doc: int = 1000) -> float:
    """Store the chunks as documents of `per_doc` chunks each, in either backend; seconds it took."""
    started = time.perf_counter()
    for start in range(0, len(texts), per_doc):
        rows = range(start, min(start + per_doc, len(texts)))
        document = NewDocument(scope=SCOPE, title=f"doc{start // per_doc}.txt", mimetype="text/plain", kind="text",
                               size_bytes=0, uploaded_by="bench", slack_file_id=None, permalink=None,
                               embedding_model=MODEL, embedding_dim=DIM)
        await store_document(store, document, sha256=hashlib.sha256(str(start).encode()).hexdigest(),
                             chunks=((NewChunk(ordinal=i - start, text=texts[i]), vectors[i]) for i in rows))
    return time.perf_counter() - started


async def timed(fn, args_list) -> np.ndarray:
    """Milliseconds per call; a coroutine is awaited (the store's calls and the index's are)."""
    times = []
    for args in args_list:
        t = time.perf_counter()
        result = fn(*args)
        if asyncio.iscoroutine(result):
            await result
        times.append((time.perf_counter() - t) * 1000)
    return np.array(times)


def pct(times: np.ndarray) -> str:
    return f"p50 {np.percentile(times, 50):6.2f} ms  p95 {np.percentile(times, 95):6.2f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    k = 5
    for n in args.sizes:
        vectors, texts, query_words = synthetic(n, rng, args.data)
        queries = vectors[rng.integers(0, n, args.queries)] + 0.3 * rng.normal(size=(args.queries, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        with tempfile.TemporaryDirectory() as tmp:
            store, build_s = await build(Path(tmp) / "bench.db", vectors, texts)
            print(f"\n{n:,} chunks in one scope (stored in {build_s:.1f} s, {n / build_s:,.0f} chunks/s)")

            def brute(q):
                scores = vectors @ q
                top = np.argpartition(-scores, k)[:k]
                return top[np.argsort(-scores[top])]

            table = vec_table_name(MODEL, DIM)
            index = index_for(store)

            def vec0(q):
                return store.conn.execute(
                    f"SELECT chunk_id, distance FROM {table} WHERE embedding MATCH ? AND k = ? AND scope = ?",
                    (q.tobytes(), k, SCOPE)).fetchall()

            async def knn(q):
                return await index.knn(q, model=MODEL, dim=DIM, scopes=[SCOPE], k=k)

            embedder = FixedEmbedder()

            async def hybrid(q, words):
                embedder.next = q
                lexical = await index.bm25(fts_query(words), scopes=[SCOPE], limit=DEFAULT_FUSION.candidates)
                semantic = await index.knn(q, model=MODEL, dim=DIM, scopes=[SCOPE], k=DEFAULT_FUSION.candidates)
                return rrf([(semantic, 1.0), (lexical, 1.0)])[:k]

            async def bm25(words):
                return await index.bm25(fts_query(words), scopes=[SCOPE], limit=DEFAULT_FUSION.candidates)

            qargs = [(q,) for q in queries]
            brute_t = await timed(brute, qargs)
            vec0_t = await timed(vec0, qargs[:50])
            cold = time.perf_counter()
            await knn(queries[0])
            cold_ms = (time.perf_counter() - cold) * 1000
            knn_t = await timed(knn, qargs)
            cold = time.perf_counter()
            await bm25(query_words[0])
            bm25_cold_ms = (time.perf_counter() - cold) * 1000
            cached = index.bm25_indexes.get(SCOPE)
            bm25_index = cached[1] if cached else None
            bm25_t = await timed(bm25, [(w,) for w in query_words[:args.queries]])
            hybrid_t = await timed(hybrid, list(zip(queries, query_words)))
            # Exactness of the store's KNN against brute force.
            recall = np.mean([
                len({c - 1 for c, _ in await knn(q)} & set(brute(q).tolist())) / k for q in queries[:50]
            ])
            path = "numpy matrix" if n >= knowledge_index.KNN_MATRIX_MIN_ROWS else "vec0 partition"
            ref = np.percentile(brute_t, 50)
            print(f"  numpy brute force (reference)     {pct(brute_t)}")
            print(f"  vec0 float32 KNN, partition key   {pct(vec0_t)}   ratio {np.percentile(vec0_t, 50) / ref:5.2f}x")
            print(f"  ScopeIndex.knn ({path:<14})    {pct(knn_t)}   ratio {np.percentile(knn_t, 50) / ref:5.2f}x"
                  f"   recall@5 {recall:.3f}   first call {cold_ms:.0f} ms")
            if bm25_index is not None:
                term_bytes = sum(sys.getsizeof(t) + 100 for t in bm25_index.terms)  # str + dict slot, roughly
                print(f"  BM25 top-{DEFAULT_FUSION.candidates} (in-memory index)      {pct(bm25_t)}   ratio "
                      f"{np.percentile(bm25_t, 50) / ref:5.2f}x   first call (build) {bm25_cold_ms:.0f} ms, "
                      f"{(bm25_index.nbytes + term_bytes) / 1e6:.0f} MB ({len(bm25_index.terms):,} terms, "
                      f"{len(bm25_index.rows):,} postings)")
            else:
                print(f"  FTS5 bm25 top-{DEFAULT_FUSION.candidates}                   {pct(bm25_t)}")
            fts_t = await timed(lambda words: store.conn.execute(
                "SELECT rowid, bm25(knowledge_fts) AS rank FROM knowledge_fts WHERE knowledge_fts MATCH ?"
                " AND scope = ? ORDER BY rank LIMIT ?", (fts_query(words), SCOPE, DEFAULT_FUSION.candidates)).fetchall(),
                [(w,) for w in query_words[:50]])
            print(f"  FTS5 bm25 top-{DEFAULT_FUSION.candidates} (SQL, for comparison)  {pct(fts_t)}")
            print(f"  hybrid (knn + bm25 + RRF)         {pct(hybrid_t)}   ratio {np.percentile(hybrid_t, 50) / ref:5.2f}x"
                  f"   target p50 < 20 ms: {'met' if np.percentile(hybrid_t, 50) < 20 else 'missed'}")
            await store.close()
    try:
        from knowledge.embed import LocalEmbedder

        local = LocalEmbedder()
        local.embed(["warm up"])
        embed_t = await timed(lambda t: local.embed([t]), [(f"how do I file expense report number {i}?",) for i in range(30)])
        print(f"\nquery embedding, local all-MiniLM-L6-v2: {pct(embed_t)} (add to the search figures above)")
    except Exception as exc:  # the model is optional for this benchmark
        print(f"\nquery embedding not measured: {exc}")


if __name__ == "__main__":
    asyncio.run(main())
