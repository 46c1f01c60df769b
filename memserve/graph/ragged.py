"""int key → sorted int64 array, stored as columns (no Python object per key).

The graph keeps, per passage, the sorted ids of its phrases and of its facts. A dict of small ndarrays costs
~180 bytes of Python objects per passage before a single id; here the bulk lives in three arrays (sorted keys,
offsets into one value array, and a liveness mask), ~17 bytes per key plus 8 per value. Writes go to a small
overlay dict, merged into the columns when it outgrows a fraction of them (amortised O(1) copies per key), so the
overlay never holds more than ``max(min_overlay, live / overlay_fraction)`` keys.

Reads return views into the value column; callers must not write into them. Writers (set, pop, compaction) need
the owner's exclusive lock; reads may run together (the graph's concurrency contract).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
_EMPTY: IntArray = np.zeros(0, np.int64)


class RaggedTable:
    def __init__(self, *, min_overlay: int = 1024, overlay_fraction: int = 8) -> None:
        if min_overlay < 0 or overlay_fraction < 1:
            raise ValueError("min_overlay must be >= 0 and overlay_fraction >= 1")
        self._min_overlay = min_overlay
        self._fraction = overlay_fraction
        self._keys: IntArray = _EMPTY  # sorted, unique
        self._offsets: IntArray = np.zeros(1, np.int64)  # values of _keys[i]: _values[_offsets[i]:_offsets[i+1]]
        self._values: IntArray = _EMPTY
        self._alive = np.zeros(0, bool)
        self._dead = 0
        self._overlay: dict[int, IntArray] = {}  # keys set since the last compaction (never also alive in base)

    @classmethod
    def from_rows(cls, keys: np.ndarray, values: np.ndarray, all_keys: np.ndarray | None = None,
                  **options: int) -> RaggedTable:
        """From (key, value) rows sorted by key then value; ``all_keys`` adds keys with no rows (empty arrays)."""
        table = cls(**options)
        table._load(np.asarray(keys, np.int64), np.asarray(values, np.int64), all_keys)
        return table

    def _load(self, keys: IntArray, values: IntArray, all_keys: np.ndarray | None) -> None:
        uniq = np.unique(keys) if all_keys is None else np.unique(np.concatenate([keys, np.asarray(all_keys,
                                                                                                   np.int64)]))
        ends = np.searchsorted(keys, uniq, "right")
        self._keys = uniq
        self._offsets = np.concatenate([[0], ends]).astype(np.int64)
        self._values = np.ascontiguousarray(values)
        self._alive = np.ones(len(uniq), bool)
        self._dead = 0
        self._overlay = {}

    # -- reading -----------------------------------------------------------------------------------------------

    def _base(self, key: int) -> int:
        i = int(np.searchsorted(self._keys, key))
        return i if i < len(self._keys) and self._keys[i] == key and self._alive[i] else -1

    def __len__(self) -> int:
        return len(self._keys) - self._dead + len(self._overlay)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (int, np.integer)):
            return False
        return int(key) in self._overlay or self._base(int(key)) >= 0

    def get(self, key: int, default: IntArray = _EMPTY) -> IntArray:
        value = self._overlay.get(key)
        if value is not None:
            return value
        i = self._base(key)
        return self._values[self._offsets[i]:self._offsets[i + 1]] if i >= 0 else default

    def __getitem__(self, key: int) -> IntArray:
        value = self.get(key, _EMPTY)
        if value is _EMPTY and key not in self:
            raise KeyError(key)
        return value

    def key_array(self) -> IntArray:
        """Every key, sorted."""
        overlay = np.fromiter(self._overlay.keys(), np.int64, len(self._overlay))
        return np.sort(np.concatenate([self._keys[self._alive] if self._dead else self._keys, overlay]))

    def __iter__(self) -> Iterator[int]:
        return iter(self.key_array().tolist())

    def rows(self) -> tuple[IntArray, IntArray]:
        """Every (key, value) pair as two arrays, sorted by key then value (vectorised; no loop over keys)."""
        lengths = np.diff(self._offsets)
        keys = np.repeat(self._keys, lengths)
        values = self._values
        if self._dead:
            keep = np.repeat(self._alive, lengths)
            keys, values = keys[keep], values[keep]
        if self._overlay:
            okeys = np.fromiter(self._overlay.keys(), np.int64, len(self._overlay))
            arrays = list(self._overlay.values())
            olen = np.fromiter((len(a) for a in arrays), np.int64, len(arrays))
            keys = np.concatenate([keys, np.repeat(okeys, olen)])
            values = np.concatenate([values, *arrays])
            order = np.lexsort((values, keys))
            keys, values = keys[order], values[order]
        return keys, values

    def total_values(self) -> int:
        return int(np.diff(self._offsets)[self._alive].sum()) + sum(len(a) for a in self._overlay.values())

    def nbytes(self) -> int:
        """Bytes in the columns (the overlay's arrays counted by their data only)."""
        return (self._keys.nbytes + self._offsets.nbytes + self._values.nbytes + self._alive.nbytes
                + sum(a.nbytes for a in self._overlay.values()))

    # -- writing (exclusive lock) ------------------------------------------------------------------------------

    def __setitem__(self, key: int, values: np.ndarray) -> None:
        """Set ``key``'s values (sorted, unique int64; copied)."""
        key = int(key)
        self._kill(key)
        self._overlay[key] = np.array(values, dtype=np.int64).ravel()
        self._maybe_compact()

    def pop(self, key: int, default: IntArray = _EMPTY) -> IntArray:
        key = int(key)
        value = self._overlay.pop(key, None)
        if value is not None:
            return value
        i = self._base(key)
        if i < 0:
            return default
        out = self._values[self._offsets[i]:self._offsets[i + 1]]
        self._alive[i] = False
        self._dead += 1
        self._maybe_compact()
        return out

    def _kill(self, key: int) -> None:
        i = self._base(key)
        if i >= 0:
            self._alive[i] = False
            self._dead += 1

    def _maybe_compact(self) -> None:
        live = len(self)
        if len(self._overlay) + self._dead > max(self._min_overlay, live // self._fraction):
            self.compact()

    def compact(self) -> None:
        """Merge the overlay into the columns and drop dead keys (keys with empty values are kept)."""
        keys, values = self.rows()
        all_keys = self.key_array()
        self._load(keys, values, all_keys)
