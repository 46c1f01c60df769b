"""Undirected phrase–phrase edges in growable NumPy columns, so a matrix build reads them with one mask.

Each edge (a < b) has a weight and a reference count; it exists while the count is positive. Freed slots are
reused, so the columns stay as long as the largest edge set seen, not the number of edges ever added.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Key = tuple[int, int]


class EdgeTable:
    def __init__(self) -> None:
        self._slot: dict[Key, int] = {}
        self._free: list[int] = []
        self._size = 0  # high-water mark of used slots
        self._a = np.zeros(0, np.int64)
        self._b = np.zeros(0, np.int64)
        self._w = np.zeros(0, np.float64)
        self._refs = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, key: Key) -> bool:
        return key in self._slot

    def weight(self, key: Key) -> float:
        return float(self._w[self._slot[key]])

    def _grow(self, need: int) -> None:
        cap = max(16, 2 * len(self._a), need)
        for name in ("_a", "_b", "_w", "_refs"):
            old = getattr(self, name)
            new = np.zeros(cap, old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def update(self, key: Key, *, refs: int, weight_delta: float = 0.0, weight: float | None = None) -> None:
        """Add ``refs`` references (negative to drop) and ``weight_delta`` to the weight (or set ``weight``)."""
        slot = self._slot.get(key)
        if slot is None:
            if refs <= 0:
                raise KeyError(key)
            if self._free:
                slot = self._free.pop()
            else:
                if self._size >= len(self._a):
                    self._grow(self._size + 1)
                slot = self._size
                self._size += 1
            self._slot[key] = slot
            self._a[slot], self._b[slot], self._w[slot], self._refs[slot] = key[0], key[1], 0.0, 0
        self._refs[slot] += refs
        if weight is not None:
            self._w[slot] = weight
        self._w[slot] += weight_delta
        if self._refs[slot] <= 0:
            del self._slot[key]
            self._free.append(slot)
            self._w[slot], self._refs[slot] = 0.0, 0

    def load(self, a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], w: np.ndarray, refs: np.ndarray) -> None:
        """Bulk fill an empty table (start-up path): keys must be unique, refs positive."""
        if self._slot:
            raise ValueError("load() needs an empty table")
        n = len(a)
        self._a, self._b = np.array(a, np.int64), np.array(b, np.int64)
        self._w, self._refs = np.array(w, np.float64), np.array(refs, np.int64)
        self._size = n
        self._slot = dict(zip(zip(self._a.tolist(), self._b.tolist()), range(n)))

    def arrays(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Live edges as fresh (a, b, weight) arrays, in slot order (a pure read)."""
        live = self._refs[: self._size] > 0
        return self._a[: self._size][live], self._b[: self._size][live], self._w[: self._size][live]
