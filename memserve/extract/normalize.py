"""Phrase normalisation and triple hygiene, shared by every extractor and the graph.

Normalisation follows HippoRAG's rule (lowercase, every non-alphanumeric character becomes a space) with two
deliberate differences: accents are folded rather than deleted ("Émile" → "emile", where HippoRAG would give
" mile"), letters of other scripts are kept, and runs of spaces collapse to one so "New  York" == "New York".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from memserve.domain.extraction import Triple

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalize_phrase(s: str) -> str:
    decomposed = unicodedata.normalize("NFKD", s)
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", folded.lower()).strip()


def _as_text(part: Any) -> str | None:
    """A triple part as text, or None if it is not usable. Numbers are accepted because models often emit
    ``["X", "founded in", 1963]``; booleans, nulls and nested structures are not facts."""
    if isinstance(part, str):
        text = " ".join(part.split())
    elif isinstance(part, (int, float)) and not isinstance(part, bool):
        text = str(part)
    else:
        return None
    return text if normalize_phrase(text) else None


def clean_triples(raw: Iterable[Any]) -> tuple[tuple[Triple, ...], int]:
    """Keep well-formed [subject, predicate, object] triples; return them (deduplicated by normalised form,
    first surface form wins) and the number of malformed ones dropped (wrong arity, empty or non-text parts)."""
    kept: list[Triple] = []
    seen: set[tuple[str, str, str]] = set()
    dropped = 0
    for item in raw:
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            dropped += 1
            continue
        s, p, o = (_as_text(part) for part in item)
        if s is None or p is None or o is None:
            dropped += 1
            continue
        key = (normalize_phrase(s), normalize_phrase(p), normalize_phrase(o))
        if key in seen:
            continue
        seen.add(key)
        kept.append(Triple(s, p, o))
    return tuple(kept), dropped


def unique_phrases(phrases: Iterable[Any]) -> tuple[str, ...]:
    """Text phrases deduplicated by normalised form, order kept; non-text and empty ones skipped."""
    out: list[str] = []
    seen: set[str] = set()
    for phrase in phrases:
        text = _as_text(phrase)
        if text is None:
            continue
        key = normalize_phrase(text)
        if key not in seen:
            seen.add(key)
            out.append(text)
    return tuple(out)
