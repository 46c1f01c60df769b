"""The lexical backend contract."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class LexicalDoc:
    """One episode as the lexical channel sees it: its own tokens and its session (the turn before it in the same
    session is folded into its document, so a question can match the turn it follows up on)."""

    seq: int
    session_id: str
    tokens: tuple[str, ...]


class LexicalIndex(Protocol):
    """BM25 over episodes. Adds are idempotent by seq; ``remove`` of an unknown seq is a no-op."""

    def add(self, docs: Iterable[LexicalDoc]) -> None: ...

    def remove(self, seqs: Iterable[int]) -> None: ...

    def search(self, query_tokens: Sequence[str], k: int,
               allowed: Collection[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(seqs int64, scores float64), best first, only documents scoring above 0."""
        ...

    def __len__(self) -> int: ...

    def __contains__(self, seq: object) -> bool: ...
