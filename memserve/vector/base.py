"""The narrow interface the engine codes against: one ``VectorIndex`` per namespace.

Conventions shared by every implementation:

- vectors are float32, L2-normalised, of dimension ``dim``; scores are inner products (cosine similarity);
- ids are int64 (the episode's internal ``seq``); adding an id that is already present *replaces* its vector
  (an upsert: re-embedding with a new model must take effect, and an idempotent re-send changes nothing);
- ``search`` returns one ``Hits`` per query row, sorted by descending score, holding only live ids and never
  padded: a row has fewer than ``k`` entries when fewer live (and allowed) ids exist;
- ``save`` is atomic (temporary file, then ``os.replace``) and never uses pickle.

Indexes are derived data (DuckDB is the source of truth): a file that fails its consistency checks on load
raises ``IndexFileError`` and the caller rebuilds the index from the store.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

IdArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


class Hits(NamedTuple):
    """Results for one query row: parallel arrays, best first, length <= k."""

    scores: FloatArray
    ids: IdArray


class IndexFileError(ValueError):
    """A saved index is unreadable or inconsistent with its side files; rebuild it from the store."""


@runtime_checkable
class VectorIndex(Protocol):
    @property
    def dim(self) -> int: ...

    @property
    def kind(self) -> str:
        """Which structure answers searches now, e.g. "exact-numpy", "flat", "hnsw"."""
        ...

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        """Insert or replace (upsert) ``vectors[i]`` under ``ids[i]``; ids must be unique within one call."""
        ...

    def remove(self, ids: IdArray) -> int:
        """Delete ids; unknown ids are ignored. Returns how many were actually removed."""
        ...

    def search(self, query: FloatArray, k: int, allowed: IdArray | None = None) -> list[Hits]:
        """Top-``k`` by inner product for each row of ``query`` ((d,) counts as one row).

        ``allowed`` restricts results to those ids (unknown or removed ones are ignored); an empty array
        allows nothing.
        """
        ...

    def score_at_rank(self, query: FloatArray, rank: int, allowed: IdArray | None = None) -> float | None:
        """For one query vector, the score of the ``rank``-th best live (and allowed) id, or the lowest score
        when fewer ids are live. Exact where a search scans everything; estimated from a uniform sample of the
        stored vectors where a search is a beam (HNSW), which would have to be ``rank`` wide to see that far.
        None when no id is live and allowed. The graph modes use it as the zero of their dense prior."""
        ...

    def ids(self) -> IdArray:
        """Live ids, ascending."""
        ...

    def __len__(self) -> int: ...

    def nbytes(self) -> int:
        """Estimate of the in-memory (and, roughly, on-disk) size."""
        ...

    def save(self, path: Path) -> None: ...

    def clone(self) -> VectorIndex:
        """An independent copy (later adds and removes on either do not affect the other): the registry
        snapshots a clone, so the slow write and fsync happen outside the namespace's lock."""
        ...


# -- validation shared by implementations: one place for the error messages the engine will surface --


def check_ids(ids: npt.ArrayLike) -> IdArray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be a 1-D array, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def check_vectors(vectors: npt.ArrayLike, dim: int, n: int) -> FloatArray:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"vectors must have shape (n, {dim}) for this index of dim {dim}, got {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"got {n} ids but {arr.shape[0]} vectors")
    return np.ascontiguousarray(arr)


def check_new_ids(ids: IdArray) -> None:
    if np.unique(ids).size != ids.size:
        raise ValueError("ids must be unique within one add() call")


def check_query(query: npt.ArrayLike, dim: int, k: int) -> FloatArray:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    arr = np.asarray(query, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        shape = np.shape(query)
        raise ValueError(f"query must have shape ({dim},) or (m, {dim}) for this index of dim {dim}, got {shape}")
    return np.ascontiguousarray(arr)


def check_rank(query: npt.ArrayLike, dim: int, rank: int) -> FloatArray:
    """One query row for ``score_at_rank``."""
    queries = check_query(query, dim, rank)
    if queries.shape[0] != 1:
        raise ValueError(f"score_at_rank takes one query vector, got {queries.shape[0]}")
    return queries[0]


def score_at_rank_of(scores: npt.NDArray[np.float32], rank: int, population: int) -> float | None:
    """The score at ``rank`` among ``population`` ids, read from ``scores``: all of them (exact) or a uniform
    sample (the rank scaled to the sample, so the estimate's own rank lands within a few percent of ``rank``
    once a few dozen sampled scores lie above it)."""
    m = int(scores.size)
    if m == 0:
        return None
    position = min(m, max(1, round(min(rank, population) * m / max(population, m)))) - 1
    return float(-np.partition(-scores, position)[position])


def empty_hits(m: int) -> list[Hits]:
    return [Hits(np.empty(0, np.float32), np.empty(0, np.int64)) for _ in range(m)]


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s directory; on success it replaces ``path`` in one step."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through an open file object (np.save and friends add no suffix to file objects)."""
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
