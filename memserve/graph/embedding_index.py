"""Exact inner-product index over phrase or fact embeddings, keyed by stable int64 ids (FAISS flat + id map).

Kept private to the graph: phrases and facts number in the tens of thousands per namespace, where exact search is
both fast and deterministic — and determinism is what makes an incremental graph equal a from-scratch one.
"""

from __future__ import annotations

import faiss
import numpy as np
import numpy.typing as npt

IdArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


class EmbeddingIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: IdArray, vecs: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        if vecs.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vecs.shape}")
        self._index.add_with_ids(vecs, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: IdArray) -> None:
        # One pass over the flat index per call: callers batch their removals.
        if len(ids):
            self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    def vectors(self, ids: IdArray) -> FloatArray:
        if len(ids) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int) -> tuple[FloatArray, IdArray]:
        """Top-k ids and scores for one query vector, best first, never padded."""
        k = min(k, len(self))
        if k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        scores, ids = self._index.search(np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1), k)
        keep = ids[0] != -1  # FAISS pads with -1; our hashed ids may be any other negative number
        return scores[0][keep], ids[0][keep]

    def range_pairs(self, ids: IdArray, vecs: np.ndarray, radius: float) -> tuple[IdArray, IdArray]:
        """(query id, hit id) pairs with inner product above ``radius`` (self-pairs dropped)."""
        if len(ids) == 0 or len(self) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        lims, _, hits = self._index.range_search(np.ascontiguousarray(vecs, dtype=np.float32), float(radius))
        queries = np.repeat(np.asarray(ids, dtype=np.int64), np.diff(lims).astype(np.int64))
        keep = queries != hits
        return queries[keep], hits[keep].astype(np.int64)
