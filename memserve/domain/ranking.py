"""The order every ranked list shares: best score first, ties by seq ascending, so equal scores rank the same
on every run. One implementation for the graph stages (engine/graph_retrieval.py) and BM25 (lexical/bm25.py)."""

from __future__ import annotations

import numpy as np


def top_k(seqs: np.ndarray, values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (seqs, values), in that order: what a full ``lexsort`` would give, but only the candidates at or
    above the k-th value are sorted (every tie at the cut competes, so it breaks by seq exactly as a full sort)."""
    n = len(seqs)
    if k <= 0 or n == 0:
        return seqs[:0], values[:0]
    if k < n:
        kth = np.partition(values, n - k)[n - k]  # the k-th largest value
        pick = np.flatnonzero(values >= kth)
        seqs, values = seqs[pick], values[pick]
    order = np.lexsort((seqs, -values))[:k]
    return seqs[order], values[order]
