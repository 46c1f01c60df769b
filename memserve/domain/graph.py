"""The knowledge graph's records, as the store persists them and the graph package builds from them.

``GraphDelta`` is what one ``add_passages`` / ``remove_passages`` call changed: the unit the store persists in one
transaction. A delta is applied as "delete the removed rows, then insert the added rows", so the same id may
appear in both lists (a passage re-sent with new content) without any primary-key gymnastics. ``GraphColumns``
and ``PersistedGraph`` are a persisted graph as the store reads it back; ``memserve.graph.restore_graph`` builds
the in-memory graph from them.
"""

from __future__ import annotations

from collections.abc import Sequence
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


@dataclass(frozen=True)
class GraphColumns:
    """A persisted graph as columns (the start-up path): ids int64 arrays, texts lists, vectors (n, dim)."""

    phrase_ids: np.ndarray
    phrase_texts: Sequence[str]
    phrase_vectors: np.ndarray
    fact_ids: np.ndarray
    fact_subjects: np.ndarray
    fact_predicates: Sequence[str]
    fact_objects: np.ndarray
    fact_texts: Sequence[str]
    fact_vectors: np.ndarray
    passage_phrase_seqs: np.ndarray  # (seq, phrase_id) rows
    passage_phrase_ids: np.ndarray
    passage_fact_seqs: np.ndarray  # (seq, fact_id) rows
    passage_fact_ids: np.ndarray
    synonym_a: np.ndarray  # candidate pairs, a < b
    synonym_b: np.ndarray
    synonym_similarity: np.ndarray
    passages: np.ndarray  # every passage, including ones without any phrase


@dataclass(frozen=True)
class PersistedGraph:
    """A namespace's graph as the store reads it back: its columns and its trained IVF quantizers, each
    (blob, count when trained) from ``TrainedIVF`` or None when none was saved."""

    columns: GraphColumns
    fact_ivf: tuple[bytes, int] | None = None
    phrase_ivf: tuple[bytes, int] | None = None
