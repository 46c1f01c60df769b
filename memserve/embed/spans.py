"""Phrase vectors pooled from a passage's own forward pass ("spans"), instead of encoding each phrase again.

A passage's forward pass already gives one contextual vector per token; the mean of the tokens of a phrase that
occurs in the passage is a vector for that phrase, at no encoder cost. Graph ingest encodes every new phrase
and fact of a passage besides the passage itself, ~2.5x the passage's tokens on 2WikiMultihopQA (README, "Graph
ingest vs raw encode"), so with facts composed from their phrases (graph/kg.py, ``fact_vectors="compose"``)
and phrases pooled here, only predicates are left to encode.

Tokens are matched on *content* tokens only (the embedder says which token ids carry letters or digits), since
the graph's phrases are normalised (punctuation became spaces): "Polish-Russian War" in a passage is the
tokens polish - russian war, the phrase "polish russian war" is polish russian war; both match on
polish russian war. A phrase whose tokens do not occur in order in its passage gets no span vector (the caller
encodes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .base import Embedder


@dataclass(frozen=True)
class TokenVectors:
    """A text's content tokens (ids, in order) and their contextual vectors (float16, one row per id)."""

    ids: np.ndarray  # int32, shape (n,)
    vectors: np.ndarray  # float16, shape (n, dim)

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes + self.vectors.nbytes)


@runtime_checkable
class TokenEmbedder(Embedder, Protocol):
    """An embedder that can also return each text's token vectors from the same forward pass."""

    def embed_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        """``embed(texts)`` and, per text, its content tokens' vectors (``TokenVectors``)."""
        ...

    def phrase_token_ids(self, phrases: list[str]) -> list[np.ndarray]:
        """Per phrase, the ids of its content tokens (int32), as ``embed_with_tokens`` would number them."""
        ...


def supports_tokens(embedder: object) -> bool:
    return isinstance(embedder, TokenEmbedder)


def find_span(haystack: np.ndarray, needle: np.ndarray) -> int:
    """Start of the first occurrence of ``needle`` in ``haystack`` (both 1-d int arrays), or -1."""
    n = len(needle)
    if n == 0 or n > len(haystack):
        return -1
    starts = np.flatnonzero(haystack[: len(haystack) - n + 1] == needle[0])
    for s in starts.tolist():
        if np.array_equal(haystack[s : s + n], needle):
            return s
    return -1


def span_vector(tokens: TokenVectors, phrase_ids: np.ndarray) -> np.ndarray | None:
    """Unit-norm mean of the token vectors of the first occurrence of ``phrase_ids`` in ``tokens`` (float32), or
    None when the phrase does not occur (or its vectors sum to zero)."""
    start = find_span(tokens.ids, np.asarray(phrase_ids, np.int32))
    if start < 0:
        return None
    mean = tokens.vectors[start : start + len(phrase_ids)].astype(np.float32).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else None
