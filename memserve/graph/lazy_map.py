"""A dict restored from sorted columns whose values are built on first access.

Start-up hands the graph whole columns; building hundreds of thousands of Python sets and dicts up front would
be most of the load time, and most of them are never touched before the next restart. A key's value is made
from its column slice the first time it is read, then lives in an ordinary dict like any key added later.
Reads from several threads may build the same value twice; both copies are equal and one is kept, which is
safe because writers (the only ones that mutate values) never run beside readers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import TypeVar

import numpy as np

V = TypeVar("V")


class LazyMap(MutableMapping[int, V]):
    def __init__(self, keys: np.ndarray, make: Callable[[int], V]) -> None:
        """``keys``: sorted, unique int64; ``make(i)`` builds the value of ``keys[i]``."""
        self._keys = np.asarray(keys, dtype=np.int64)
        self._make = make
        self._cache: dict[int, V] = {}
        self._gone: set[int] = set()  # base keys deleted
        self._shadowed = 0  # base keys present in _cache
        self._lock = threading.Lock()  # concurrent readers materialising keys must not lose a count

    def _base(self, key: object) -> int:
        if not isinstance(key, (int, np.integer)) or not len(self._keys):
            return -1
        i = int(np.searchsorted(self._keys, key))
        return i if i < len(self._keys) and self._keys[i] == key else -1

    def __getitem__(self, key: int) -> V:
        value = self._cache.get(key)
        if value is not None:
            return value
        i = self._base(key)
        if i < 0 or key in self._gone:
            raise KeyError(key)
        value = self._make(i)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = value
                self._shadowed += 1
            return self._cache[key]

    def __contains__(self, key: object) -> bool:
        return key in self._cache or (self._base(key) >= 0 and key not in self._gone)

    def __setitem__(self, key: int, value: V) -> None:
        if key not in self._cache and self._base(key) >= 0:
            self._gone.discard(key)
            self._shadowed += 1
        self._cache[key] = value

    def __delitem__(self, key: int) -> None:
        base = self._base(key) >= 0
        if key in self._cache:
            del self._cache[key]
            if base:
                self._shadowed -= 1
                self._gone.add(key)
        elif base and key not in self._gone:
            self._gone.add(key)
        else:
            raise KeyError(key)

    def __len__(self) -> int:
        return len(self._cache) + len(self._keys) - len(self._gone) - self._shadowed

    def key_array(self) -> np.ndarray:
        """Every key as an int64 array (unordered), without a Python loop over the loaded keys."""
        cached = np.fromiter(self._cache.keys(), np.int64, len(self._cache))
        base = self._keys
        if self._shadowed or self._gone:
            drop = np.concatenate([cached, np.fromiter(self._gone, np.int64, len(self._gone))])
            base = base[~np.isin(base, drop)]
        return np.concatenate([cached, base])

    def __iter__(self) -> Iterator[int]:
        yield from list(self._cache)
        cache, gone = self._cache, self._gone
        for key in self._keys.tolist():
            if key not in cache and key not in gone:
                yield key
