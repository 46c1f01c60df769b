"""A deterministic embedder for unit tests: no model, no torch, stable across runs and machines.

Texts are hashed into a bag of word and character-trigram features, so texts that share words get close
vectors: good enough for tests that check ranking plumbing, never for quality claims.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

from .base import normalize_rows
from .spans import TokenVectors

_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.name = f"hash-{dim}"

    def _features(self, text: str) -> list[str]:
        words = [w.lower() for w in _WORD.findall(text)]
        grams = ["g:" + w[i : i + 3] for w in words for i in range(max(1, len(w) - 2))]
        tagged = ["w:" + w for w in words]
        return tagged + tagged + grams  # words weigh double: whole-word overlap matters most

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self.dim] += 1.0 if (value >> 32) & 1 else -1.0
            if not out[row].any():
                out[row, 0] = 1.0
        return normalize_rows(out)

    def _word_id(self, word: str) -> int:
        return int.from_bytes(hashlib.blake2b(("t:" + word).encode(), digest_size=4).digest(), "little") >> 1

    def _tokens(self, text: str) -> list[str]:
        folded = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
        return [w.lower() for w in _WORD.findall(folded)]

    def embed_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        """``embed(texts)`` and, per text, one token per word (accents folded, lowercased), each token's vector
        being the word's own embedding: deterministic stand-ins for a model's contextual token vectors."""
        tokens = []
        for text in texts:
            words = self._tokens(text)
            vecs = self.embed(words) if words else np.zeros((0, self.dim), np.float32)
            tokens.append(TokenVectors(np.asarray([self._word_id(w) for w in words], np.int32),
                                       vecs.astype(np.float16)))
        return self.embed(texts), tokens

    def phrase_token_ids(self, phrases: list[str]) -> list[np.ndarray]:
        return [np.asarray([self._word_id(w) for w in self._tokens(p)], np.int32) for p in phrases]
