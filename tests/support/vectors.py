"""Embedding-like test vectors shared by the vector-index tests."""

from __future__ import annotations

import numpy as np


def clustered(n: int, dim: int, seed: int, clusters: int = 100) -> np.ndarray:
    """Embedding-like data: points around cluster centres, not uniform noise (which is unrealistically hard)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
