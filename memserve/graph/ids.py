"""Stable int64 ids for phrases and facts: a hash of their normalised text, so persistence and re-ingest agree."""

from __future__ import annotations

import hashlib

_SEP = "\x1f"  # unit separator: cannot occur in a normalised phrase


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def phrase_id(text: str) -> int:
    return _hash64("p" + _SEP + text)


def fact_id(subject: str, predicate: str, obj: str) -> int:
    return _hash64(_SEP.join(("f", subject, predicate, obj)))
