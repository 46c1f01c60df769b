"""Incremental in-memory BM25 (inverted index). Adding or removing an episode touches only its own postings and
those of the turn after it (whose document includes it); corpus statistics (N, average length, document
frequencies) are kept as running totals, so scores equal a from-scratch BM25 over the live documents.

Chosen over bm25s/tantivy/DuckDB FTS: bm25s and DuckDB FTS rebuild the whole index on every change, tantivy
adds a native dependency and commit latency; per-namespace chat memories are small enough that Python postings
score a query in well under a millisecond (measured in evals/conversation_recall.py, stage ``lexical``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Sequence

import numpy as np

from .base import LexicalDoc
from .context import ContextDocs


class InvertedBM25:
    def __init__(self, *, k1: float = 1.2, b: float = 0.5, with_previous: bool = True) -> None:
        self.k1, self.b = k1, b
        self._docs = ContextDocs(with_previous)
        self._postings: dict[str, dict[int, int]] = {}
        self._length: dict[int, int] = {}
        self._terms: dict[int, tuple[str, ...]] = {}
        self._total = 0

    def __len__(self) -> int:
        return len(self._length)

    def __contains__(self, seq: object) -> bool:
        return seq in self._length

    def _unindex(self, seq: int) -> None:
        length = self._length.pop(seq, None)
        if length is None:
            return
        self._total -= length
        for term in list(self._terms.pop(seq)):
            plist = self._postings[term]
            del plist[seq]
            if not plist:
                del self._postings[term]

    def _index(self, seq: int) -> None:
        tf = Counter(self._docs.composed(seq))
        self._terms[seq] = tuple(tf)
        for term, f in tf.items():
            self._postings.setdefault(term, {})[seq] = f
        n = sum(tf.values())
        self._length[seq] = n
        self._total += n

    def add(self, docs: Iterable[LexicalDoc]) -> None:
        for seq in sorted(self._docs.add(docs)):
            self._unindex(seq)
            self._index(seq)

    def remove(self, seqs: Iterable[int]) -> None:
        removed, changed = self._docs.remove(seqs)
        for seq in removed | changed:
            self._unindex(seq)
        for seq in sorted(changed):
            self._index(seq)

    def search(self, query_tokens: Sequence[str], k: int,
               allowed: Collection[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        n = len(self._length)
        if not n or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0)
        avg = self._total / n or 1.0
        k1, b = self.k1, self.b
        scores: dict[int, float] = {}
        for term in set(query_tokens):
            plist = self._postings.get(term)
            if not plist:
                continue
            df = len(plist)
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            length = self._length
            for seq, f in plist.items():
                if allowed is not None and seq not in allowed:
                    continue
                norm = k1 * (1 - b + b * length[seq] / avg)
                scores[seq] = scores.get(seq, 0.0) + idf * f * (k1 + 1) / (f + norm)
        if not scores:
            return np.zeros(0, np.int64), np.zeros(0)
        seqs = np.fromiter(scores.keys(), dtype=np.int64, count=len(scores))
        vals = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
        order = np.lexsort((seqs, -vals))[:k]
        return seqs[order], vals[order]
