"""Bookkeeping between external ids and the positions ("slots") of vectors inside a FAISS index.

FAISS stores vectors by insertion position. HNSW cannot delete, so a deleted vector keeps its slot (a
tombstone) and a re-added id gets a new slot: one id may own several slots, only the newest of them alive.
Selecting by slot rather than by id is what lets tombstones and re-adds coexist.

Lookups use a sorted array of live ids rather than a dict: O(n) memcpy per batch, but ~16 bytes per vector
instead of ~100 for a dict of Python ints.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from memserve.vector.base import IdArray

BoolArray = npt.NDArray[np.bool_]


class Slots:
    def __init__(self, labels: IdArray | None = None, alive: BoolArray | None = None) -> None:
        self.labels: IdArray = np.empty(0, np.int64) if labels is None else labels  # slot -> id
        self.alive: BoolArray = np.ones(self.labels.size, bool) if alive is None else alive
        self._reindex()

    def _reindex(self) -> None:
        live_slots = np.flatnonzero(self.alive)
        order = np.argsort(self.labels[live_slots], kind="stable")
        self._live_ids: IdArray = self.labels[live_slots][order]
        self._live_slots: IdArray = live_slots[order].astype(np.int64)
        if np.any(self._live_ids[1:] == self._live_ids[:-1]):
            raise ValueError("an id is alive in two slots")

    @property
    def total(self) -> int:
        return int(self.labels.size)

    @property
    def n_live(self) -> int:
        return int(self._live_ids.size)

    @property
    def n_dead(self) -> int:
        return self.total - self.n_live

    def live_ids(self) -> IdArray:
        return self._live_ids.copy()

    def find(self, ids: IdArray) -> tuple[BoolArray, IdArray]:
        """For each id: whether it is alive, and its slot (meaningless where not alive)."""
        if self._live_ids.size == 0:
            return np.zeros(ids.size, bool), np.zeros(ids.size, np.int64)
        pos = np.minimum(np.searchsorted(self._live_ids, ids), self._live_ids.size - 1)
        return self._live_ids[pos] == ids, self._live_slots[pos]

    def append(self, ids: IdArray) -> None:
        """Record ids (already absent from the live set) stored at the next slots."""
        first = self.total
        self.labels = np.concatenate([self.labels, ids])
        self.alive = np.concatenate([self.alive, np.ones(ids.size, bool)])
        new_slots = np.arange(first, first + ids.size, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        at = np.searchsorted(self._live_ids, ids[order])
        self._live_ids = np.insert(self._live_ids, at, ids[order])
        self._live_slots = np.insert(self._live_slots, at, new_slots[order])

    def kill(self, ids: IdArray) -> IdArray:
        """Mark live ids dead; returns the slots they occupied (unknown ids ignored)."""
        uniq = np.unique(ids)
        found, slots = self.find(uniq)
        self.alive[slots[found]] = False
        at = np.searchsorted(self._live_ids, uniq[found])
        self._live_ids = np.delete(self._live_ids, at)
        self._live_slots = np.delete(self._live_slots, at)
        return slots[found]

    def compacted(self) -> Slots:
        """The table after dropping dead slots (survivors keep their order)."""
        return Slots(self.labels[self.alive].copy())

