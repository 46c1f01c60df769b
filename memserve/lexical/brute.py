"""Reference BM25: recomputes every statistic and scores every document at each query. Slow and obviously
right; the contract test holds InvertedBM25 to it."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Sequence

import numpy as np

from .base import LexicalDoc
from .context import ContextDocs


class BruteForceBM25:
    def __init__(self, *, k1: float = 1.2, b: float = 0.5, with_previous: bool = True) -> None:
        self.k1, self.b = k1, b
        self._docs = ContextDocs(with_previous)

    def add(self, docs: Iterable[LexicalDoc]) -> None:
        self._docs.add(docs)

    def remove(self, seqs: Iterable[int]) -> None:
        self._docs.remove(seqs)

    def __len__(self) -> int:
        return len(self._docs.docs)

    def __contains__(self, seq: object) -> bool:
        return seq in self._docs.docs

    def search(self, query_tokens: Sequence[str], k: int,
               allowed: Collection[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        seqs = sorted(self._docs.docs)
        if not seqs or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0)
        tfs = {s: Counter(self._docs.composed(s)) for s in seqs}
        n = len(seqs)
        avg = sum(sum(t.values()) for t in tfs.values()) / n or 1.0
        scored = []
        for s in seqs:
            if allowed is not None and s not in allowed:
                continue
            tf, dl = tfs[s], sum(tfs[s].values())
            score = 0.0
            for term in set(query_tokens):
                f = tf.get(term, 0)
                if not f:
                    continue
                df = sum(1 for t in tfs.values() if term in t)
                idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
                score += idf * f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * dl / avg))
            if score > 0:
                scored.append((-score, s))
        scored.sort()
        top = scored[:k]
        return (np.array([s for _, s in top], dtype=np.int64), np.array([-x for x, _ in top], dtype=np.float64))
