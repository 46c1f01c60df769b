"""Lexical retrieval: BM25 over episode text (plus the turn before it in the same session).

``LexicalIndex`` is the backend contract; ``InvertedBM25`` the incremental in-memory implementation the server
uses; ``BruteForceBM25`` the reference it is contract-tested against. Both are derived from DuckDB and rebuilt
from it (engine/lexical_registry.py), like the FAISS indexes.
"""

from .base import LexicalDoc, LexicalIndex
from .bm25 import InvertedBM25
from .brute import BruteForceBM25
from .tokenize import tokenize

__all__ = ["BruteForceBM25", "InvertedBM25", "LexicalDoc", "LexicalIndex", "make_lexical_index", "tokenize"]


def make_lexical_index(kind: str = "inverted", *, k1: float = 1.2, b: float = 0.5,
                       with_previous: bool = True) -> LexicalIndex:
    if kind == "inverted":
        return InvertedBM25(k1=k1, b=b, with_previous=with_previous)
    if kind == "brute":
        return BruteForceBM25(k1=k1, b=b, with_previous=with_previous)
    raise ValueError(f"unknown lexical index kind {kind!r} (inverted or brute)")
