"""What one ``add_passages`` / ``remove_passages`` call changed: the unit the store persists in one transaction.

A delta is applied as "delete the removed rows, then insert the added rows", so the same id may appear in both
lists (a passage re-sent with new content) without any primary-key gymnastics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Fact:
    """A deduplicated (subject, predicate, object) triple over phrase nodes."""

    fact_id: int
    subject_id: int
    predicate: str
    object_id: int
    text: str  # "subject predicate object": what is embedded for query → fact matching


@dataclass
class GraphDelta:
    removed_passages: list[int] = field(default_factory=list)
    removed_phrases: list[int] = field(default_factory=list)
    removed_facts: list[int] = field(default_factory=list)
    added_passages: list[int] = field(default_factory=list)  # every passage added, even one with no phrase
    added_phrases: list[tuple[int, str]] = field(default_factory=list)
    added_phrase_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    added_facts: list[Fact] = field(default_factory=list)
    added_fact_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    added_passage_phrases: list[tuple[int, int]] = field(default_factory=list)  # (seq, phrase_id)
    added_passage_facts: list[tuple[int, int]] = field(default_factory=list)  # (seq, fact_id)
    added_synonyms: list[tuple[int, int, float]] = field(default_factory=list)  # (phrase a < phrase b, cosine)
