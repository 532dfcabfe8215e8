"""An in-memory BM25 index of one scope's FTS5 rows, scoring exactly as FTS5's bm25() does."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# FTS5's bm25() constants (sqlite/ext/fts5/fts5_aux.c).
K1 = 1.2
B = 0.75
COLUMNS = ("title", "section", "text")  # the indexed columns of knowledge_fts, in order


@dataclass(frozen=True)
class Bm25Index:
    """Postings of every term in one scope: for term slot s, rows[offsets[s]:offsets[s+1]] are the rows
    holding it and tf[...] its hits per column. Built from FTS5's own tokens (fts5vocab), so stemming and
    tokenizing match the FTS5 table exactly; statistics (row count, average length, document
    frequency) are the scope's own."""

    ids: np.ndarray  # chunk id (FTS5 rowid) of each row, ascending
    norm: np.ndarray  # k1 * (1 - b + b * length / avgdl) per row
    terms: dict[str, int]
    offsets: np.ndarray
    rows: np.ndarray
    tf: np.ndarray  # (postings, 3) hits in title, section, text

    @classmethod
    def build(cls, ids: np.ndarray, terms: list[str], counts: np.ndarray, codes: np.ndarray) -> Bm25Index:
        """From FTS5 instances: term i owns the next counts[i] codes, each `rowid * 4 + column`, one per
        token occurrence, ascending within a term (fts5vocab's order). Rows not in `ids` (other scopes)
        are dropped."""
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        term_of = np.repeat(np.arange(len(terms), dtype=np.int64), counts)
        rowid = codes >> 2
        col = codes & 3
        # Row of each rowid through a dense table (-1: another scope's row).
        lookup = np.full(int(max(ids.max(initial=0), rowid.max(initial=0))) + 1, -1, dtype=np.int64)
        lookup[ids] = np.arange(n)
        row = lookup[rowid]
        keep = row >= 0
        term_of, row, col = term_of[keep], row[keep], col[keep]
        lengths = np.bincount(row, minlength=n).astype(np.float64)
        # Occurrences arrive grouped by (term, row, column): run lengths are the per-column hits.
        key = (term_of * max(n, 1) + row) * 4 + col
        if len(key) > 1 and bool((key[1:] < key[:-1]).any()):  # not in fts5vocab's usual order
            order = np.argsort(key, kind="stable")
            key, row, col = key[order], row[order], col[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, dtype=np.int64)
        hits = np.diff(np.r_[starts, len(key)])
        pair = key[starts] >> 2
        first = np.r_[True, pair[1:] != pair[:-1]] if len(pair) else np.zeros(0, dtype=bool)
        posting_of = np.cumsum(first) - 1
        postings = int(first.sum())
        tf = np.zeros((postings, len(COLUMNS)), dtype=np.uint8 if (hits.max(initial=0) <= 255) else np.uint16)
        tf[posting_of, col[starts]] = hits
        pair = pair[first]
        posting_term = pair // max(n, 1)
        per_term = np.bincount(posting_term, minlength=len(terms))
        offsets = np.r_[0, np.cumsum(per_term)].astype(np.int64)
        avgdl = lengths.sum() / n if n else 1.0
        norm = K1 * (1.0 - B + B * lengths / (avgdl or 1.0))
        slots = {term: i for i, term in enumerate(terms) if per_term[i]}
        return cls(ids=ids, norm=norm, terms=slots, offsets=offsets,
                   rows=(pair % max(n, 1)).astype(np.int32), tf=tf)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays (the term dictionary adds ~100 bytes a term)."""
        return self.ids.nbytes + self.norm.nbytes + self.offsets.nbytes + self.rows.nbytes + self.tf.nbytes

    def search(
        self, phrases: list[str], *, weights: tuple[float, float, float], limit: int
    ) -> list[tuple[int, float]]:
        """(chunk id, score; higher is better) of the rows holding any of these terms, best first.

        `phrases` are single FTS5 terms, one per phrase of an OR query; a repeated term counts once
        per phrase, as in FTS5. Score: sum over phrases of idf * f * (k1 + 1) / (f + k1 * (1 - b + b *
        len / avgdl)), f the column-weighted hits, idf = log((N - n + 0.5) / (n + 0.5)) floored at 1e-6.
        """
        n = len(self.ids)
        if not n or limit <= 0:
            return []
        w = np.asarray(weights, dtype=np.float64)
        scores = np.zeros(n)
        matched = np.zeros(n, dtype=bool)
        for term in phrases:
            slot = self.terms.get(term)
            if slot is None:
                continue  # in no row: it adds nothing to any score
            start, end = self.offsets[slot], self.offsets[slot + 1]
            rows = self.rows[start:end]
            freq = self.tf[start:end] @ w
            idf = math.log((n - (end - start) + 0.5) / ((end - start) + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            scores[rows] += idf * (freq * (K1 + 1.0)) / (freq + self.norm[rows])
            matched[rows] = True
        found = np.flatnonzero(matched)
        if len(found) > limit:
            found = found[np.argpartition(-scores[found], limit - 1)[:limit]]
        # Best first; ties in rowid order, as FTS5's ORDER BY rank leaves them.
        found = found[np.lexsort((self.ids[found], -scores[found]))]
        return [(int(self.ids[i]), float(scores[i])) for i in found]
