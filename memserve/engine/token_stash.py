"""Token vectors of freshly written episodes, kept in memory until the graph worker pools phrase vectors from them.

The write path encodes an episode's text once (its dense vector); with ``graph_vectors = "spans"`` the same
forward pass also yields its token vectors (embed/spans.py), which the graph worker needs moments later to give
the episode's new phrases a vector without encoding them. This is the hand-over: bounded by bytes (oldest entry
out first), each entry taken once, and checked against the episode's text when taken, so an entry that outlived
a rolled-back write (whose seq another episode may later get) is never applied to the wrong text. Anything
missing (evicted, server restarted, written before the setting was on) only costs the worker an encode.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence

from ..embed.spans import TokenVectors


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", errors="surrogatepass"), digest_size=16).digest()


class TokenStash:
    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int], tuple[bytes, TokenVectors]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.evicted = 0  # entries dropped for room before the worker took them
        self.taken = 0  # entries handed to the worker (text matched)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def put(self, namespace: str, items: Iterable[tuple[int, str, TokenVectors]]) -> None:
        """Keep (seq, text, tokens) rows; the oldest entries make room. An entry larger than the whole budget is
        not kept."""
        with self._lock:
            for seq, text, tokens in items:
                size = tokens.nbytes
                if size > self.max_bytes:
                    continue
                self._drop((namespace, seq))
                self._items[(namespace, seq)] = (_digest(text), tokens)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, (_, old) = self._items.popitem(last=False)
                    self._bytes -= old.nbytes
                    self.evicted += 1

    def take(self, namespace: str, texts: Mapping[int, str]) -> dict[int, TokenVectors]:
        """Remove and return the entries of ``texts`` (seq → the episode's text) whose stored text matches."""
        out: dict[int, TokenVectors] = {}
        with self._lock:
            for seq, text in texts.items():
                entry = self._drop((namespace, seq))
                if entry is not None and entry[0] == _digest(text):
                    out[seq] = entry[1]
            self.taken += len(out)
        return out

    def forget(self, namespace: str, seqs: Sequence[int] | None = None) -> None:
        """Drop entries of deleted episodes (``seqs``) or of a whole namespace (None)."""
        with self._lock:
            keys = ([k for k in self._items if k[0] == namespace] if seqs is None
                    else [(namespace, int(s)) for s in seqs])
            for key in keys:
                self._drop(key)

    def _drop(self, key: tuple[str, int]) -> tuple[bytes, TokenVectors] | None:
        entry = self._items.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1].nbytes
        return entry
