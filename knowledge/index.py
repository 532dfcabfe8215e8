"""Ranked candidates per scope: the store's own KNN and BM25 for small scopes, in-memory caches for large ones.

Large scopes (>= KNN_MATRIX_MIN_ROWS chunks) are searched with an exact numpy scan of a matrix loaded
from the store; float32 vec0 KNN costs ~40-60 ms at 100k rows on two cores, the scan ~7-15 ms, with
identical results. Large scopes (>= BM25_INDEX_MIN_ROWS) are BM25-scored from an in-memory inverted
index (knowledge/bm25.py) built from the store's own terms: FTS5 scores every row an OR query matches
(~230 ms at 100k chunks), the index ~2-5 ms. Its scores equal FTS5's bm25() when the scope is the
whole table; otherwise they use the scope's own statistics (a scope's ranking then depends only on
its own documents). Both caches are keyed by the scope's version, which the store moves on every
change (so a `threadbot ingest` in another process is seen at the next search).
The numpy work runs in worker threads; every store call is awaited on the event loop.
Candidates of documents not ready yet (being written or purged) are dropped before the top k.
"""
from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import numpy as np

from bot.store import Store
from bot.store.records import Hit
from knowledge.bm25 import Bm25Index

# Scopes with at least this many chunks are scanned from an in-memory matrix (10k rows: ~0.6 ms
# numpy vs ~7-11 ms vec0); smaller ones use the store's KNN directly and cost no memory.
KNN_MATRIX_MIN_ROWS = 5_000
# Scopes with at least this many chunks are BM25-scored from an in-memory index: FTS5 costs ~25 ms at
# 10k rows and ~230 ms at 100k for a SciFact claim, the index ~1-3 ms. Smaller scopes ask the store.
BM25_INDEX_MIN_ROWS = 5_000

Fetch = Callable[[int], Awaitable[list[Hit]]]


@dataclass
class ScopeIndex:
    """The caches for one store. `bm25_building` is held while an index is built: a search arriving
    meanwhile asks the store instead of waiting (a build takes ~5 s at 100k chunks)."""

    store: Store
    matrices: dict[tuple[str, int, str], tuple[int, tuple[np.ndarray, np.ndarray] | None]] = field(default_factory=dict)
    bm25_indexes: dict[str, tuple[int, Bm25Index | None]] = field(default_factory=dict)
    bm25_building: asyncio.Lock = field(default_factory=asyncio.Lock)
    matrix_loading: asyncio.Lock = field(default_factory=asyncio.Lock)

    def clear(self) -> None:
        self.matrices.clear()
        self.bm25_indexes.clear()

    async def knn(self, vector: np.ndarray, *, model: str, dim: int, scopes: list[str], k: int) -> list[Hit]:
        """(chunk id, cosine similarity) of the k nearest ready chunks over these scopes, exact, best first."""
        if not scopes:
            return []
        dense = np.asarray(vector, dtype=np.float32)
        unique = list(dict.fromkeys(scopes))
        unready = await self.store.knowledge_unready_scopes(unique)
        hits: list[Hit] = []
        for scope in unique:
            matrix = await self._matrix(model, dim, scope)

            async def nearest(n: int, matrix=matrix, scope: str = scope) -> list[Hit]:
                if matrix is None and n > self.store.knn_max_k:
                    loaded = await self.store.knowledge_scope_vectors(model=model, dim=dim, scope=scope)
                    matrix = (loaded.ids, loaded.vectors)
                if matrix is not None:
                    return await asyncio.to_thread(top_k, *matrix, dense, n)
                return await self.store.knowledge_knn(dense, model=model, dim=dim, scope=scope, k=n)

            hits.extend(await self._ready_top(nearest, k) if scope in unready else await nearest(k))
        hits.sort(key=lambda h: -h[1])
        return hits[:k]

    async def bm25(self, match: str, *, scopes: list[str], limit: int,
                   weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> list[Hit]:
        """(chunk id, bm25 score; higher is better) of ready chunks for an FTS5-style MATCH expression.

        A large scope is scored from its in-memory index when `match` is an OR of quoted single-term
        phrases (what knowledge.search.fts_query builds); other scopes, and any other expression, go to
        the store with the scope filter inside its query.
        """
        if not scopes or not match:
            return []
        words = or_phrases(match)
        unique = list(dict.fromkeys(scopes))
        indexes: dict[str, Bm25Index] = {}
        if words is not None:
            for scope in unique:
                index = await self._bm25_index(scope)
                if index is not None:
                    indexes[scope] = index
        terms = await self.store.knowledge_query_terms(words or []) if indexes else None
        if terms is None:  # a word the tokenizer splits into a phrase: let the store match it
            indexes = {}
        unready = await self.store.knowledge_unready_scopes(unique)
        hits: list[Hit] = []
        direct = [scope for scope in unique if scope not in indexes]
        if direct:
            async def from_store(n: int) -> list[Hit]:
                return await self.store.knowledge_bm25(match, scopes=direct, limit=n, weights=weights)

            hits.extend(await self._ready_top(from_store, limit) if unready.intersection(direct)
                        else await from_store(limit))
        # Each index holds only its scope's rows, so the scope filter is part of the index lookup.
        for scope, index in indexes.items():
            async def from_index(n: int, index: Bm25Index = index) -> list[Hit]:
                return await asyncio.to_thread(index.search, terms or [], weights=weights, limit=n)

            hits.extend(await self._ready_top(from_index, limit) if scope in unready else await from_index(limit))
        hits.sort(key=lambda h: (-h[1], h[0]))
        return hits[:limit]

    async def _ready_top(self, fetch: Fetch, limit: int) -> list[Hit]:
        """The best `limit` hits of ready documents: fetch(n) ranks n candidates, which may include a
        pending document's chunks, so ask for more until `limit` ready ones (or every candidate) are in."""
        n = max(limit, 1) * 2
        while True:
            got = await fetch(n)
            keep = await self.store.knowledge_ready_chunks([h[0] for h in got])
            ready = [h for h in got if h[0] in keep]
            if len(ready) >= limit or len(got) < n:
                return ready[:limit]
            n *= 4

    async def _matrix(self, model: str, dim: int, scope: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The scope's vectors as an in-memory matrix when the scope is large, else None (ask the store)."""
        if self.store.vector_index:  # the database's own ANN index serves every scope size
            return None
        key = (model, dim, scope)
        version = await self.store.knowledge_scope_version(scope)
        cached = self.matrices.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        if await self.store.knowledge_scope_size(scope) < KNN_MATRIX_MIN_ROWS:
            # Remember "small" for this version so the next search skips the count.
            self.matrices[key] = (version, None)
            return None
        async with self.matrix_loading:  # one load at a time; a search that waited finds it cached
            cached = self.matrices.get(key)
            if cached is not None and cached[0] == version and cached[1] is not None:
                return cached[1]
            loaded = await self.store.knowledge_scope_vectors(model=model, dim=dim, scope=scope)
            self.matrices[key] = (loaded.version, (loaded.ids, loaded.vectors))
            return loaded.ids, loaded.vectors

    async def _bm25_index(self, scope: str) -> Bm25Index | None:
        """The scope's in-memory BM25 index when the scope is large, else None (ask the store)."""
        version = await self.store.knowledge_scope_version(scope)
        cached = self.bm25_indexes.get(scope)
        if cached is not None and cached[0] == version:
            return cached[1]
        if await self.store.knowledge_scope_size(scope) < BM25_INDEX_MIN_ROWS:
            self.bm25_indexes[scope] = (version, None)
            return None
        if self.bm25_building.locked():
            return None
        async with self.bm25_building:
            postings = await self.store.knowledge_scope_postings(scope)
            index = await asyncio.to_thread(Bm25Index.build, postings.ids, postings.terms, postings.counts,
                                            postings.codes)
            self.bm25_indexes[scope] = (postings.version, index)
            return index


_INDEXES: "weakref.WeakKeyDictionary[Store, ScopeIndex]" = weakref.WeakKeyDictionary()


def index_for(store: Store) -> ScopeIndex:
    """The one ScopeIndex of this store object (its caches live as long as the store)."""
    index = _INDEXES.get(store)
    if index is None:
        index = _INDEXES[store] = ScopeIndex(store)
    return index


def top_k(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int) -> list[Hit]:
    if len(ids) == 0:
        return []
    scores = vectors @ query
    k = min(k, len(ids))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top])]
    return [(int(ids[i]), float(scores[i])) for i in top]


def or_phrases(match: str) -> list[str] | None:
    """The words of a `"w1" OR "w2" …` expression, or None for any other FTS5 syntax."""
    parts = match.split(" OR ")
    if all(len(p) >= 2 and p[0] == p[-1] == '"' and '"' not in p[1:-1] for p in parts):
        return [p[1:-1] for p in parts]
    return None
