"""The vectorised matrix build, the installed-matrix contract, and queries against a matrix a change behind."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from memserve.domain.extraction import ExtractionResult
from memserve.engine.graph_retrieval import GraphParams, graph_retrieve
from memserve.graph import KnowledgeGraph
from memserve.graph.matrix import GraphMatrix, assemble
from memserve.graph.ppr import PPRMatrix
from tests.unit.test_graph_kg import CORPUS, EMBED, build, er


def _reference_matrix(kg: KnowledgeGraph, min_synonym_similarity: float | None = None) -> tuple:
    """The pre-vectorisation build: one COO from ``edges()`` (the slow, obviously correct form)."""
    phrase_ids = np.array(sorted(kg.phrases), dtype=np.int64)
    passage_seqs = np.array(sorted(kg.passages), dtype=np.int64)
    node = {("phrase", int(p)): i for i, p in enumerate(phrase_ids)}
    node.update({("passage", int(s)): len(phrase_ids) + j for j, s in enumerate(passage_seqs)})
    edges = list(kg.edges(min_synonym_similarity))
    r = np.array([node[e.u] for e in edges], dtype=np.int64)
    c = np.array([node[e.v] for e in edges], dtype=np.int64)
    w = np.array([e.weight for e in edges], dtype=np.float64)
    n = len(node)
    adjacency = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([r, c]), np.concatenate([c, r]))),
                              shape=(n, n)).tocsr()
    return phrase_ids, passage_seqs, PPRMatrix.from_adjacency(adjacency, dtype=np.float32), len(edges)


def assert_matches_reference(kg: KnowledgeGraph, threshold: float | None = None) -> None:
    m = kg.build_matrix() if threshold is None else kg.build_matrix().with_min_synonym_similarity(threshold)
    phrase_ids, passage_seqs, ref, count = _reference_matrix(kg, threshold)
    np.testing.assert_array_equal(m.phrase_ids, phrase_ids)
    np.testing.assert_array_equal(m.passage_seqs, passage_seqs)
    assert (m.ppr.adjacency != ref.adjacency).nnz == 0
    np.testing.assert_array_equal(m.ppr.inv_strength, ref.inv_strength)
    assert m.edge_count == count
    if threshold is None:
        assert kg.edge_count == count
        assert m.version == kg.version


def _density(kg: KnowledgeGraph, k: int) -> float:
    if not kg.passages:
        return 0.0
    return sum(len(kg.passages_of_phrase(p)) for p in kg.phrases if len(kg.passages_of_phrase(p)) <= k) / len(
        kg.passages)


def _random_items(rng: np.random.Generator, seqs: range, vocab: int) -> list[tuple[int, ExtractionResult]]:
    names = [f"entity number {i}" for i in range(vocab)]
    items = []
    for seq in seqs:
        n = int(rng.integers(0, 4))
        triples = [(names[rng.integers(vocab)], f"rel {rng.integers(3)}", names[rng.integers(vocab)])
                   for _ in range(n)]
        items.append((seq, er(*triples)))
    return items


def _near_embed(texts: list[str]) -> np.ndarray:
    """Vectors with many close pairs (phrases share a cluster by their number mod 7), so the cap bites."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(7, 64))
    out = []
    for t in texts:
        digits = "".join(ch for ch in t if ch.isdigit()) or "0"
        local = np.random.default_rng(abs(hash(t)) % 2**32)
        v = centres[int(digits) % 7] + 0.25 * local.normal(size=64)
        out.append(v / np.linalg.norm(v))
    return np.asarray(out, np.float32)


def test_build_matrix_equals_reference_through_adds_replaces_and_deletes() -> None:
    kg = KnowledgeGraph(64, synonym_threshold=0.5, max_synonyms=1)
    items = list(CORPUS.items())
    for seq, result in items:
        kg.add_passages([(seq, result)], EMBED.embed)
        assert_matches_reference(kg)
    kg.add_passages([(4, er(("Germany", "member of", "European Union")))], EMBED.embed)
    assert_matches_reference(kg)
    kg.remove_passages([2, 3])
    assert_matches_reference(kg)
    assert_matches_reference(kg, threshold=0.7)


@pytest.mark.parametrize("max_synonyms", [1, 3, 100])
def test_synonym_cap_maintained_incrementally_equals_reference(max_synonyms: int) -> None:
    rng = np.random.default_rng(max_synonyms)
    kg = KnowledgeGraph(64, synonym_threshold=0.6, max_synonyms=max_synonyms)
    for start in range(0, 120, 20):
        kg.add_passages(_random_items(rng, range(start, start + 20), 60), _near_embed)
        kg.remove_passages(rng.choice(start + 20, 5, replace=False).tolist())
        assert_matches_reference(kg)
        assert_matches_reference(kg, threshold=0.8)
        for k in (1, 3):
            assert kg.specific_phrase_density(k) == pytest.approx(_density(kg, k))
    assert len(kg.build_matrix().synonym_u) > 10  # the test exercised the cap


def test_matrix_serves_the_installed_snapshot_without_building(monkeypatch: pytest.MonkeyPatch) -> None:
    kg = build(list(CORPUS.items()))
    m = kg.build_matrix()
    assert kg.install_matrix(m)
    kg.add_passages([(7, er(("Carol White", "lives in", "Berlin")))], EMBED.embed)
    assert not kg.install_matrix(m)  # stale now

    def no_build(self: KnowledgeGraph) -> None:
        raise AssertionError("a query built the matrix")

    monkeypatch.setattr(KnowledgeGraph, "build_matrix", no_build)
    assert kg.matrix() is m  # one change behind, not rebuilt
    assert kg.matrix(0.9) is kg.matrix(0.9)  # threshold variant derived from the installed one, cached
    assert kg.edge_count == len(list(kg.edges()))
    assert kg.specific_phrase_density() == pytest.approx(_density(kg, 3))
    assert not kg.matrix_current()


def test_uninstalled_graph_builds_lazily_and_follows_changes() -> None:
    kg = build([(1, CORPUS[1])])
    first = kg.matrix()
    kg.add_passages([(2, CORPUS[2])], EMBED.embed)
    assert kg.matrix() is not first and kg.matrix().version == kg.version


def test_query_against_a_matrix_one_change_behind() -> None:
    kg = build(list(CORPUS.items()))
    assert kg.install_matrix(kg.build_matrix())
    before = {int(s) for s in kg.matrix().passage_seqs}
    # New phrases (not in the matrix) and a removed passage (still in it).
    kg.add_passages([(7, er(("Carol White", "born in", "Paris"), ("Carol White", "lives in", "Berlin")))],
                    EMBED.embed)
    kg.remove_passages([3])
    q = EMBED.embed(["carol white born in paris"])[0]
    dense = {s: 0.5 for s in kg.passages}
    params = GraphParams(top_k=10, fact_top_k=5, adaptive_passage_weight=False)
    result = graph_retrieve(q, kg, dense, params, query_phrases=("carol white", "berlin"))
    seqs = [h.seq for h in result.hits]
    assert result.mode == "graph"
    assert 3 not in seqs  # removed since the snapshot: never a hit
    assert 7 in seqs  # unknown to the snapshot: scored as outside
    assert set(seqs) <= (before - {3}) | {7}
    assert "carol white" not in result.seed_phrases and "berlin" not in result.seed_phrases

    # Only unknown phrases seed: the query falls back to dense order instead of failing.
    only_new = graph_retrieve(q, kg, dense, GraphParams(fact_top_k=0), query_phrases=("carol white",))
    assert only_new.mode == "dense_fallback"

    # Once the worker installs the new snapshot the same query sees everything.
    assert kg.install_matrix(kg.build_matrix())
    fresh = graph_retrieve(q, kg, dense, params, query_phrases=("carol white",))
    assert "carol white" in fresh.seed_phrases and fresh.hits[0].seq == 7


def _assemble(fact_weight: list[float], synonyms: list[tuple[int, int, float]]) -> GraphMatrix:

    ids = np.arange(4, dtype=np.int64)
    return assemble(
        version=1, phrase_ids=ids, passage_seqs=np.array([7], np.int64),
        fact_a=np.array([0, 1]), fact_b=np.array([1, 2]), fact_weight=np.asarray(fact_weight),
        passage_edge_seq=np.array([7, 7]), passage_edge_phrase=np.array([0, 3]),
        synonym_a=np.array([s[0] for s in synonyms], np.int64), synonym_b=np.array([s[1] for s in synonyms], np.int64),
        synonym_weight=np.array([s[2] for s in synonyms], np.float64),
    )


@pytest.mark.parametrize("fact_weight", [[3.0, 1.0], [2.5, 1.0]])
def test_threshold_override_without_a_second_matrix_copy_is_exact(fact_weight: list[float]) -> None:
    # (0, 1) carries a fact edge and a synonymy edge on one pair (summed in the float32 adjacency).
    full = _assemble(fact_weight, [(0, 1, 0.8123456789), (0, 2, 0.9), (2, 3, 0.61)])
    variant = full.with_min_synonym_similarity(0.85)
    want = _assemble(fact_weight, [(0, 2, 0.9)])
    assert (full.without_synonyms is None) == (fact_weight == [3.0, 1.0])  # integer weights: derived, not kept
    assert (variant.ppr.adjacency != want.ppr.adjacency).nnz == 0
    assert variant.ppr.adjacency.nnz == want.ppr.adjacency.nnz  # the dropped synonym-only entries are gone
    np.testing.assert_array_equal(variant.ppr.inv_strength, want.ppr.inv_strength)
    assert variant.edge_count == want.edge_count
    again = variant.with_min_synonym_similarity(0.95)  # a variant of a variant
    assert (again.ppr.adjacency != _assemble(fact_weight, []).ppr.adjacency).nnz == 0
