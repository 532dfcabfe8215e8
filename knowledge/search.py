"""Hybrid knowledge search: vector KNN and BM25, both filtered by scope (knowledge/index.py), then fused."""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from knowledge.errors import EmbedderUnavailable
from knowledge.index import index_for

if TYPE_CHECKING:
    from bot.store import Store
    from knowledge.embed import Embedder

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "bm25", "vector"]

@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: int
    title: str
    section: str | None
    page: int | None
    text: str
    score: float
    permalink: str | None
    scope: str

    @property
    def location(self) -> str:
        """Where in the document: "p. 3", a section heading, or ""."""
        if self.page is not None:
            return f"p. {self.page}"
        return self.section or ""

    def snippet(self, max_chars: int) -> str:
        """The text on one line, cut to `max_chars` with an ellipsis."""
        flat = " ".join(self.text.split())
        return flat if len(flat) <= max_chars else flat[:max_chars - 1] + "…"


@dataclass(frozen=True)
class FusionParams:
    """How the two rankings are combined.

    Shipped: reciprocal rank fusion, k=60, equal weights — it needs no score calibration, so it holds
    up on corpora unlike the benchmark. SciFact test nDCG@10 (bench/scifact.py): BM25 0.691,
    vector 0.669, this hybrid 0.725; the best train-tuned setting (weighted sum of min-max scores,
    vector 0.8, title column x3) reaches 0.730, too small a gain to bake in a corpus-specific tuning
    (e.g. a x3 title weight would make a filename match dominate every chunk of that file).
    """

    method: Literal["rrf", "weighted"] = "rrf"
    rrf_k: float = 60.0
    vector_weight: float = 1.0
    bm25_weight: float = 1.0
    candidates: int = 100  # taken from each ranking before fusing
    bm25_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # title, section, text columns


DEFAULT_FUSION = FusionParams()


_WORD = re.compile(r"\w+", re.UNICODE)


# Function words match most chunks: they add nothing to BM25's ranking but make FTS5 score every
# matching row (a large part of search latency on a big scope).
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves
""".split())


def fts_query(text: str) -> str:
    """An FTS5 MATCH expression OR-ing the query's words, each quoted (user text is never syntax).

    Stopwords are dropped unless the query has nothing else.
    """
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
    content = [w for w in words if w not in STOPWORDS]
    return " OR ".join(f'"{w}"' for w in (content or words))


async def search(
    store: "Store",
    embedder: "Embedder",
    query: str,
    *,
    scopes: list[str],
    k: int = 5,
    mode: Mode = "hybrid",
    fusion: FusionParams = DEFAULT_FUSION,
) -> list[SearchHit]:
    """The top-k chunks for a query in these scopes, best first; embedding the query runs in a thread."""
    if not query.strip() or not scopes or k <= 0:
        return []
    ranked = await fused_scores(store, embedder, query, scopes=scopes, k=k, mode=mode, fusion=fusion)
    top = ranked[:k]
    chunks = await store.knowledge_chunks([chunk_id for chunk_id, _ in top])
    hits = []
    for chunk_id, score in top:
        chunk = chunks.get(chunk_id)
        if chunk is None:  # deleted between the two reads
            continue
        hits.append(SearchHit(
            chunk_id=chunk_id, document_id=chunk.document_id, title=chunk.title, section=chunk.section,
            page=chunk.page, text=chunk.text, score=score, permalink=chunk.permalink, scope=chunk.scope,
        ))
    return hits


async def fused_scores(
    store: "Store",
    embedder: "Embedder",
    query: str,
    *,
    scopes: list[str],
    k: int,
    mode: Mode = "hybrid",
    fusion: FusionParams = DEFAULT_FUSION,
) -> list[tuple[int, float]]:
    """(chunk id, score) best first, without loading chunk texts (the benchmark's entry point)."""
    depth = max(fusion.candidates, k)
    index = index_for(store)
    lexical: list[tuple[int, float]] = []
    semantic: list[tuple[int, float]] = []
    if mode in ("hybrid", "bm25"):
        lexical = await index.bm25(fts_query(query), scopes=scopes, limit=depth, weights=fusion.bm25_weights)
    if mode in ("hybrid", "vector"):
        try:
            vector = (await asyncio.to_thread(embedder.embed, [query]))[0]
        except EmbedderUnavailable:
            if mode == "vector":
                raise
            # Keyword results beat no results while the embeddings service is down.
            log.warning("query embedding failed; answering from BM25 only", exc_info=True)
            return lexical
        semantic = await index.knn(vector, model=embedder.model, dim=embedder.dim, scopes=scopes, k=depth)
    if mode == "bm25":
        return lexical
    if mode == "vector":
        return semantic
    return fuse(semantic, lexical, fusion)


def fuse(semantic: list[tuple[int, float]], lexical: list[tuple[int, float]], fusion: FusionParams) -> list[tuple[int, float]]:
    """Combine the vector and BM25 rankings as `fusion` says."""
    if fusion.method == "weighted":
        return weighted_sum([(semantic, fusion.vector_weight), (lexical, fusion.bm25_weight)])
    return rrf([(semantic, fusion.vector_weight), (lexical, fusion.bm25_weight)], k=fusion.rrf_k)


def weighted_sum(rankings: list[tuple[list[tuple[int, float]], float]]) -> list[tuple[int, float]]:
    """Sum of weight x min-max-normalised score; an id missing from a ranking gets 0 from it."""
    scores: dict[int, float] = {}
    for ranking, weight in rankings:
        if not ranking:
            continue
        values = [score for _, score in ranking]
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        for item, score in ranking:
            scores[item] = scores.get(item, 0.0) + weight * (score - low) / span
    return sorted(scores.items(), key=lambda kv: -kv[1])


def rrf(rankings: list[tuple[list[tuple[int, float]], float]], *, k: float = 60.0) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion: sum of weight / (k + rank) over the rankings an id appears in."""
    scores: dict[int, float] = {}
    for ranking, weight in rankings:
        for rank, (item, _) in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])
