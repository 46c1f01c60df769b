"""One tokenizer for documents and queries: lower-cased alphanumeric runs, English stop words dropped, a light
plural/possessive strip so "concerts" matches "concert"."""

from __future__ import annotations

import re

_WORD = re.compile(r"[0-9a-z]+")
STOP_WORDS = frozenset([
    "a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "for", "is", "are", "was", "were", "be",
    "been", "being", "do", "did", "does", "done", "what", "when", "where", "who", "whom", "how", "which", "why",
    "i", "you", "he", "she", "it", "we", "they", "my", "your", "his", "her", "their", "our", "its", "me", "him",
    "them", "us", "this", "that", "these", "those", "with", "as", "by", "from", "about", "has", "have", "had",
    "not", "no", "so", "if", "s", "t", "than", "then", "there", "here", "just", "also", "very", "can", "could",
    "would", "should", "will", "shall", "may", "might", "must", "am", "into", "out", "up", "down", "over", "again",
    "any", "all", "some", "such", "only", "own", "same", "too"
])


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]
