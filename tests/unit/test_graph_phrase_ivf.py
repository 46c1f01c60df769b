"""Synonym search of new phrases past ``phrase_index_exact_max``: an IVF range search (embedding_index.py, the
same machinery as the fact index), trained off the lock, swapped in, persisted and restored without k-means."""

from __future__ import annotations

from types import SimpleNamespace

import duckdb
import faiss
import numpy as np
import pytest

from memserve.extract.normalize import normalize_phrase
from memserve.graph import KnowledgeGraph, restore_graph
from memserve.graph.embedding_index import IVFJob
from memserve.store import graph_repo
from tests.unit.test_graph_repo import conn  # noqa: F401 - the fixture: an in-memory database with the graph tables

DIM = 64
THRESHOLD = 0.8


class ClusteredPhrases:
    """Phrases "phrase N" with unit vectors around random cluster centres; the per-point spread is drawn so
    that pairs inside a cluster straddle the synonym threshold (cosine ~0.65-0.92)."""

    def __init__(self, clusters: int, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        centres = self._rng.standard_normal((clusters, DIM)).astype(np.float32)
        self._centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.vectors: dict[str, np.ndarray] = {}
        self._next = 0

    def draw(self, n: int, *, near: list[str] | None = None, spread: tuple[float, float] = (0.3, 0.7)) -> list[str]:
        """``n`` new phrases, around random centres or (``near``) around those phrases' vectors."""
        base = (np.stack([self.vectors[normalize_phrase(t)] for t in near]) if near is not None
                else self._centres[self._rng.integers(0, len(self._centres), n)])
        sigma = self._rng.uniform(*spread, (n, 1)).astype(np.float32)
        v = base + sigma * self._rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        texts = [f"phrase {self._next + i:07d}" for i in range(n)]
        self._next += n
        for t, x in zip(texts, v, strict=True):
            self.vectors[normalize_phrase(t)] = x
        return texts

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts]) if texts else np.zeros((0, DIM), np.float32)


_seqs = iter(range(1, 10**9))


def passages(texts: list[str], per: int = 50) -> list[tuple[int, SimpleNamespace]]:
    return [(next(_seqs), SimpleNamespace(entities=texts[i:i + per], triples=())) for i in range(0, len(texts), per)]


def graph(**opts: object) -> KnowledgeGraph:
    return KnowledgeGraph(DIM, synonym_threshold=THRESHOLD, link_entities=True, **opts)  # type: ignore[arg-type]


def pairs(added: list[tuple[int, int, float]]) -> set[tuple[int, int]]:
    return {(a, b) for a, b, _ in added}


def add(kg: KnowledgeGraph, texts: list[str], space: ClusteredPhrases) -> set[tuple[int, int]]:
    found: set[tuple[int, int]] = set()
    for item in passages(texts):
        found |= pairs(kg.add_passages([item], space.embed).added_synonyms)
    return found


def train(kg: KnowledgeGraph) -> None:
    assert kg.ivf_due() == ["phrase"]
    job = kg.ivf_job("phrase")
    assert job is not None
    assert kg.install_ivf("phrase", job.run())


def test_approximate_synonym_search_recall_against_exact_on_20k_clustered_phrases() -> None:
    space = ClusteredPhrases(clusters=2500)
    base = space.draw(20_000)
    exact = graph()
    approx = graph(phrase_index_exact_max=10_000, train_phrase_ivf_inline=False)
    for kg in (exact, approx):
        kg.add_passages(passages(base, per=1000), space.embed)
    assert next(approx.synonym_candidates(), None) and not approx.search_approximate("phrase")  # not inline
    assert sorted(exact.synonym_candidates()) == sorted(approx.synonym_candidates())  # exact below: identical
    train(approx)
    assert approx.search_approximate("phrase") and not approx.ivf_due()
    assert not exact.ivf_due() and not exact.search_approximate("phrase")

    new = space.draw(2_000)
    faiss.cvar.indexIVF_stats.reset()
    want = add(exact, new, space)
    stats = faiss.cvar.indexIVF_stats
    assert stats.nq == 0  # the exact graph never touched an IVF
    got = add(approx, new, space)
    assert len(want) > 3_000  # plenty of pairs above the threshold, and also pairs missed below it
    recall = len(got & want) / len(want)
    print(f"recall {recall:.4f} of {len(want)} pairs; {stats.ndis / max(stats.nq, 1):.0f} distances per new phrase")
    assert recall >= 0.95, recall
    assert got <= want  # every approximate pair is a true one (decided by the float64 check)
    # Sublinear: each new phrase compared with a fraction of the 22k phrases, not all of them.
    assert stats.nq == len(new) and stats.ndis / stats.nq < 0.5 * len(approx.phrases)
    np.testing.assert_array_equal(approx._phrase_index._ivf.ntotal, len(approx.phrases))


def test_adds_and_removes_during_training_are_not_lost() -> None:
    space = ClusteredPhrases(clusters=300, seed=1)
    kg = graph(phrase_index_exact_max=1_000, train_phrase_ivf_inline=False)
    reference = graph()
    base = passages(space.draw(3_000))
    for g in (kg, reference):
        g.add_passages(base, space.embed)
    job = kg.ivf_job("phrase")
    assert job is not None
    # While k-means runs (no lock in the server), writes go on and search exactly.
    during = space.draw(500)
    assert add(kg, during, space) == add(reference, during, space)
    gone = base[:4]  # their phrases die with them
    dead = {normalize_phrase(t) for _, r in gone for t in r.entities}
    for g in (kg, reference):
        g.remove_passages([seq for seq, _ in gone])
    trained = job.run()
    assert kg.install_ivf("phrase", trained) and kg.search_approximate("phrase")
    assert kg._phrase_index._ivf.ntotal == len(kg.phrases) == 3_500 - len(dead)
    # Near-duplicates of the phrases added during training find them through the IVF, and no dead phrase
    # comes back.
    twins = space.draw(200, near=during[:200], spread=(0.05, 0.1))
    found = add(kg, twins, space)
    assert found == add(reference, twins, space)
    ids = {kg.phrases[a] for pair in found for a in pair} | {kg.phrases[b] for _, b in found}
    assert {normalize_phrase(t) for t in during[:200]} <= ids
    assert not ids & dead


def test_persisted_phrase_ivf_is_used_after_restart_without_retraining(conn: duckdb.DuckDBPyConnection,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    space = ClusteredPhrases(clusters=300, seed=2)
    opts = {"phrase_index_exact_max": 1_000, "train_phrase_ivf_inline": False}
    kg = graph(**opts)
    graph_repo.save_delta(conn, "ns", kg.add_passages(passages(space.draw(3_000)), space.embed))
    job = kg.ivf_job("phrase")
    assert job is not None
    trained = job.run()
    assert kg.install_ivf("phrase", trained)
    graph_repo.save_ivf(conn, "ns", "phrase", trained.blob, trained.built_at)
    assert graph_repo.load_ivf(conn, "ns", "fact") is None  # kinds are kept apart

    def no_kmeans(self: IVFJob) -> None:
        raise AssertionError("start-up trained k-means")

    monkeypatch.setattr(IVFJob, "run", no_kmeans)
    loaded = restore_graph(DIM, graph_repo.load_graph_rows(conn, "ns", DIM), synonym_threshold=THRESHOLD,
                           link_entities=True, **opts)
    assert loaded.search_approximate("phrase") and loaded.ivf_due() == []
    assert loaded._phrase_index._ivf.nlist == kg._phrase_index._ivf.nlist
    # Same centroids, same lists: the restored graph finds exactly what the trained one finds.
    new = space.draw(300)
    assert add(loaded, new, space) == add(kg, new, space)
    # A restart without the row (or with an unusable one) searches exactly and asks for training.
    graph_repo.save_ivf(conn, "ns", "phrase", b"not a faiss index", 3_000)
    rows = graph_repo.load_graph_rows(conn, "ns", DIM)
    assert restore_graph(DIM, rows, link_entities=True, **opts).ivf_due() == ["phrase"]
    graph_repo.delete_namespace_graph(conn, "ns")
    assert graph_repo.load_ivf(conn, "ns", "phrase") is None
    with pytest.raises(ValueError, match="kind"):
        graph_repo.load_ivf(conn, "ns", "passage")
