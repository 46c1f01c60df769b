"""Deterministic synthetic data for the speed benchmarks: chat turns (bench_ingest_query, bench_live), unique,
chat-like, and the same for a given seed on every machine; knowledge graphs as restore columns
(bench_graph_scale)."""

from __future__ import annotations

import random

import numpy as np

from memserve.domain.graph import GraphColumns

NAMES = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj",
         "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Uma", "Victor", "Wendy"]
PLACES = ["Paris", "Lisbon", "Osaka", "Nairobi", "Toronto", "Lima", "Oslo", "Hanoi", "Austin", "Cairo", "Dublin",
          "Seoul", "Krakow", "Denver", "Porto", "Quito"]
THINGS = ["a red bicycle", "the garden shed", "a sourdough starter", "the quarterly report", "a vintage camera",
          "the new laptop", "a chess set", "the kitchen sink", "a hiking trail map", "the piano lessons",
          "a jar of honey", "the car insurance", "a birthday cake", "the tax forms", "a pair of skis"]
TEMPLATES = [
    "{a} told {b} that {t} arrived in {p} last {d}.",
    "Yesterday {a} and {b} argued about {t} while waiting in {p}.",
    "{a} wants to sell {t} before moving to {p} in {m}.",
    "Reminder: {a} promised {b} to bring {t} to the meeting in {p} on {d}.",
    "{a} said the trip to {p} was cancelled because of {t}.",
    "In {m}, {a} borrowed {t} from {b} and still has not returned it.",
    "{a} asked whether {b} had ever been to {p}; {b} mentioned {t} instead.",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "March", "May", "July", "September", "November"]


def turn(rng: random.Random, a: str, b: str) -> str:
    """One turn between ``a`` and ``b`` (draws template, thing, place, day, month from ``rng`` in that order)."""
    return rng.choice(TEMPLATES).format(a=a, b=b, t=rng.choice(THINGS), p=rng.choice(PLACES), d=rng.choice(DAYS),
                                        m=rng.choice(MONTHS))


def clustered(n: int, dim: int, seed: int, clusters: int = 1000, spread: float = 0.35) -> np.ndarray:
    """Unit vectors around fixed cluster centres, as sentence embeddings are (the same centres for every seed:
    queries come from the data's distribution, as real queries do). Bounded temporaries at 1M rows."""
    centres = np.random.default_rng(12345).standard_normal((clusters, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = centres[rng.integers(0, clusters, m)] + spread * rng.standard_normal((m, dim)).astype(np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def graph_columns(phrases: int, dim: int, seed: int = 0,
                  clustered_passages: bool = False) -> tuple[GraphColumns, np.ndarray]:
    """A synthetic knowledge graph of about ``phrases`` phrases as restore columns, and passage vectors.

    Passage j introduces 3 new entities and mentions 2 shared ones drawn with density ~ x^-3/4 over the
    entity range (a few hubs that grow with the corpus, as "United States" does in Wikipedia), in 4 triples
    (new0–new1, new1–shared0, new2–shared1, new0–new2). ~0.3 synonymy candidates per phrase join random pairs
    with cosine in [0.8, 1). All vectors are random unit vectors (``clustered_passages``: the passage vectors are
``clustered``, as real passage embeddings are and as an HNSW index's cost depends on). Same arguments, same
graph."""
    rng = np.random.default_rng(seed)
    passages = max(1, phrases // 3)
    new = (np.arange(passages * 3, dtype=np.int64) % phrases).reshape(passages, 3)
    shared = (phrases * rng.random((passages, 2)) ** 4).astype(np.int64)
    ents = np.concatenate([new, shared], axis=1)  # (passages, 5) entity numbers
    subj = ents[:, [0, 1, 2, 0]].ravel()
    obj = ents[:, [1, 3, 4, 2]].ravel()
    phrase_id = np.arange(phrases, dtype=np.int64) * 7919 + 11  # any unique int64 keys do
    fact_count = len(subj)
    seqs = np.arange(1, passages + 1, dtype=np.int64)
    syn_n = int(0.3 * phrases)
    a, b = rng.integers(0, phrases, syn_n), rng.integers(0, phrases, syn_n)
    keep = a != b
    a, b = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
    pairs = np.unique(a * phrases + b)
    a, b = pairs // phrases, pairs % phrases

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    predicates = [f"rel {i % 50}" for i in range(fact_count)]
    columns = GraphColumns(
        phrase_ids=phrase_id, phrase_texts=[f"entity {i}" for i in range(phrases)], phrase_vectors=unit(phrases),
        fact_ids=np.arange(fact_count, dtype=np.int64) * 104729 + 7, fact_subjects=phrase_id[subj],
        fact_predicates=predicates, fact_objects=phrase_id[obj],
        fact_texts=[f"entity {s} {p} entity {o}" for s, p, o in zip(subj.tolist(), predicates, obj.tolist(), strict=True)],
        fact_vectors=unit(fact_count),
        passage_phrase_seqs=np.repeat(seqs, 5), passage_phrase_ids=phrase_id[ents.ravel()],
        passage_fact_seqs=np.repeat(seqs, 4), passage_fact_ids=np.arange(fact_count, dtype=np.int64) * 104729 + 7,
        synonym_a=phrase_id[a], synonym_b=phrase_id[b], synonym_similarity=0.8 + 0.2 * rng.random(len(a)),
        passages=seqs,
    )
    return columns, clustered(passages, dim, seed) if clustered_passages else unit(passages)
