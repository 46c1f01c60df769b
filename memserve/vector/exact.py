"""Brute-force NumPy index: the reference every other implementation is tested against.

Everything is O(n) and obviously correct on purpose; it is also a fine choice for tiny namespaces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from memserve.vector.base import (
    FloatArray,
    Hits,
    IdArray,
    IndexFileError,
    check_ids,
    check_new_ids,
    check_query,
    check_rank,
    check_vectors,
    empty_hits,
    score_at_rank_of,
    write_atomically,
)


class ExactIndex:
    kind = "exact-numpy"

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self._dim = dim
        self._ids: IdArray = np.empty(0, np.int64)
        self._vectors: FloatArray = np.empty((0, dim), np.float32)

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return int(self._ids.size)

    def ids(self) -> IdArray:
        return np.sort(self._ids)

    def nbytes(self) -> int:
        return int(self._ids.nbytes + self._vectors.nbytes)

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        id_arr = check_ids(ids)
        vecs = check_vectors(vectors, self._dim, id_arr.size)
        check_new_ids(id_arr)
        keep = ~np.isin(self._ids, id_arr)
        self._ids = np.concatenate([self._ids[keep], id_arr])
        self._vectors = np.concatenate([self._vectors[keep], vecs])

    def remove(self, ids: npt.ArrayLike) -> int:
        gone = np.isin(self._ids, check_ids(ids))
        self._ids = self._ids[~gone]
        self._vectors = self._vectors[~gone]
        return int(gone.sum())

    def search(self, query: npt.ArrayLike, k: int, allowed: npt.ArrayLike | None = None) -> list[Hits]:
        queries = check_query(query, self._dim, k)
        ids, vectors = self._ids, self._vectors
        if allowed is not None:
            mask = np.isin(ids, check_ids(allowed))
            ids, vectors = ids[mask], vectors[mask]
        if ids.size == 0:
            return empty_hits(queries.shape[0])
        scores = queries @ vectors.T
        hits = []
        for row in scores:
            # Ties broken by ascending id so the reference is deterministic.
            order = np.lexsort((ids, -row))[:k]
            hits.append(Hits(row[order].astype(np.float32), ids[order]))
        return hits

    def score_at_rank(self, query: npt.ArrayLike, rank: int, allowed: npt.ArrayLike | None = None) -> float | None:
        q = check_rank(query, self._dim, rank)
        vectors = self._vectors if allowed is None else self._vectors[np.isin(self._ids, check_ids(allowed))]
        return score_at_rank_of(vectors @ q, rank, len(vectors))

    def clone(self) -> ExactIndex:
        # add() and remove() always build new arrays, never write into these: sharing them is a copy.
        twin = ExactIndex(self._dim)
        twin._ids, twin._vectors = self._ids, self._vectors
        return twin

    def save(self, path: Path) -> None:
        write_atomically(Path(path), lambda fh: np.savez(fh, ids=self._ids, vectors=self._vectors))

    @classmethod
    def load(cls, path: Path) -> ExactIndex:
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                ids, vectors = data["ids"], data["vectors"]
        except (OSError, KeyError, ValueError) as exc:
            raise IndexFileError(f"cannot read exact index {path}: {exc}") from exc
        if vectors.ndim != 2 or ids.shape != (vectors.shape[0],):
            raise IndexFileError(f"exact index {path}: ids {ids.shape} do not match vectors {vectors.shape}")
        index = cls(int(vectors.shape[1]))
        index._ids = ids.astype(np.int64)
        index._vectors = vectors.astype(np.float32)
        return index
