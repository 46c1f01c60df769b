"""Undirected phrase–phrase edges in growable NumPy columns, so a matrix build reads them with one mask.

Each edge (a < b) has a weight and a reference count; it exists while the count is positive. Edges bulk-loaded
at start-up (``load``) stay in their sorted slots and are found by binary search, so a restored graph holds no
per-edge Python objects (a dict entry with a tuple key is ~200 bytes per edge); only edges added since get a
dict entry. Freed slots of added edges are reused, so the columns stay as long as the largest edge set seen; a
loaded edge that dies keeps its slot (and is revived there if its pair comes back).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Key = tuple[int, int]


class EdgeTable:
    def __init__(self) -> None:
        self._slot: dict[Key, int] = {}  # edges added after load()
        self._free: list[int] = []
        self._size = 0  # high-water mark of used slots
        self._base = 0  # slots [0, _base) came from load(), sorted by (a, b)
        self._base_live = 0
        self._a = np.zeros(0, np.int64)
        self._b = np.zeros(0, np.int64)
        self._w = np.zeros(0, np.float64)
        self._refs = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self._slot) + self._base_live

    def _base_slot(self, key: Key) -> int:
        """The loaded slot holding ``key`` (live or dead), or -1."""
        if not self._base:
            return -1
        a = self._a[: self._base]
        lo, hi = int(np.searchsorted(a, key[0], "left")), int(np.searchsorted(a, key[0], "right"))
        if lo == hi:
            return -1
        j = lo + int(np.searchsorted(self._b[lo:hi], key[1]))
        return j if j < hi and self._b[j] == key[1] else -1

    def _live_slot(self, key: Key) -> int:
        slot = self._slot.get(key)
        if slot is not None:
            return slot
        j = self._base_slot(key)
        return j if j >= 0 and self._refs[j] > 0 else -1

    def __contains__(self, key: Key) -> bool:
        return self._live_slot(key) >= 0

    def weight(self, key: Key) -> float:
        slot = self._live_slot(key)
        if slot < 0:
            raise KeyError(key)
        return float(self._w[slot])

    def _grow(self, need: int) -> None:
        cap = max(16, 2 * len(self._a), need)
        for name in ("_a", "_b", "_w", "_refs"):
            old = getattr(self, name)
            new = np.zeros(cap, old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def update(self, key: Key, *, refs: int, weight_delta: float = 0.0, weight: float | None = None) -> None:
        """Add ``refs`` references (negative to drop) and ``weight_delta`` to the weight (or set ``weight``)."""
        slot = self._live_slot(key)
        if slot < 0:
            if refs <= 0:
                raise KeyError(key)
            slot = self._base_slot(key)
            if slot >= 0:  # a loaded edge coming back: same key, same sorted slot
                self._base_live += 1
            else:
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
            self._w[slot], self._refs[slot] = 0.0, 0
            if slot < self._base:
                self._base_live -= 1
            else:
                del self._slot[key]
                self._free.append(slot)

    def load(self, a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], w: np.ndarray, refs: np.ndarray) -> None:
        """Bulk fill an empty table (start-up path): keys must be unique, refs positive."""
        if len(self):
            raise ValueError("load() needs an empty table")
        order = np.lexsort((np.asarray(b), np.asarray(a)))
        self._a, self._b = np.array(a, np.int64)[order], np.array(b, np.int64)[order]
        self._w, self._refs = np.array(w, np.float64)[order], np.array(refs, np.int64)[order]
        if len(order) and (self._refs <= 0).any():
            raise ValueError("load() needs positive refs")
        self._size = self._base = self._base_live = len(order)
        self._slot, self._free = {}, []

    def arrays(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Live edges as fresh (a, b, weight) arrays, in slot order (a pure read)."""
        live = self._refs[: self._size] > 0
        return self._a[: self._size][live], self._b[: self._size][live], self._w[: self._size][live]
