"""The embedding boundary: text in, L2-normalised float32 vectors out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-norm float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return an array of shape (len(texts), dim), float32, each row unit-norm."""
        ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def cost_bounded_stop(sorted_lengths: np.ndarray, start: int, count: int, budget: int, max_count: int) -> int:
    """End of the run of texts from ``start`` in ``sorted_lengths`` (ascending): ``count`` texts, then more (up to
    ``max_count``) while texts x longest text stays within ``budget``. The padded size of an encoder call is its
    text count times its longest text, so a run of short texts (graph phrases, facts) holds many more of them
    for the same forward-pass cost, and stops paying one call's fixed overhead per ``count`` strings."""
    total = len(sorted_lengths)
    stop = min(start + count, total)
    limit = min(start + max_count, total)
    if stop >= limit:
        return stop
    sizes = np.arange(stop - start + 1, limit - start + 1) * np.maximum(1, sorted_lengths[stop:limit])
    over = np.flatnonzero(sizes > budget)
    return stop + (int(over[0]) if len(over) else limit - stop)
