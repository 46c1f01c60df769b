from __future__ import annotations

import numpy as np
import pytest

from memserve.domain.extraction import ExtractionResult, Triple
from memserve.embed import make_embedder
from memserve.engine.graph_retrieval import (
    GraphParams,
    HybridParams,
    ScoredFact,
    anchor_fuse,
    graph_retrieve,
    hybrid_retrieve,
)
from memserve.graph import KnowledgeGraph

EMBED = make_embedder("hash:64")

# A 2-hop question: the bridge passage (2) shares almost no words with the question; distractors share many.
PASSAGES = {
    1: ("Acme Corp was founded by Bob Jones in 1990.", [("Acme Corp", "founded by", "Bob Jones")]),
    2: ("Bob Jones grew up in Springfield.", [("Bob Jones", "grew up in", "Springfield")]),
    3: ("The founder of Zeta Inc was born where the founder of Omega Ltd was born.",
        [("Zeta Inc", "rivals", "Omega Ltd")]),
    4: ("Where was the founder of Beta Co born? Nobody knows where he was born.", [("Beta Co", "sells", "bicycles")]),
    5: ("Springfield is a town in Illinois.", [("Springfield", "located in", "Illinois")]),
    6: ("Where the founder was born matters less than Acme Corp's products.", [("Acme Corp", "makes", "products")]),
}
QUESTION = "Where was the founder of Acme Corp born?"


def _setup() -> tuple[KnowledgeGraph, np.ndarray, dict[int, float]]:
    kg = KnowledgeGraph(64)
    kg.add_passages([(s, ExtractionResult((), tuple(Triple(*t) for t in ts))) for s, (_, ts) in PASSAGES.items()],
                    EMBED.embed)
    q = EMBED.embed([QUESTION])[0]
    vecs = EMBED.embed([text for text, _ in PASSAGES.values()])
    dense = {s: float(v @ q) for s, v in zip(PASSAGES, vecs, strict=True)}
    return kg, q, dense


def _rank(seqs: list[int], seq: int) -> int:
    return seqs.index(seq) if seq in seqs else len(PASSAGES)


def test_graph_ranks_bridge_passage_above_dense() -> None:
    kg, q, dense = _setup()
    dense_order = [s for s, _ in sorted(dense.items(), key=lambda item: -item[1])]
    result = graph_retrieve(q, kg, dense, GraphParams(adaptive_passage_weight=False, top_k=6, fact_top_k=2))
    assert result.mode == "graph"
    graph_order = [h.seq for h in result.hits]
    assert _rank(graph_order, 2) < _rank(dense_order, 2)
    assert "bob jones" in result.seed_phrases
    bridge = next(h for h in result.hits if h.seq == 2)
    assert "bob jones" in bridge.seed_phrases and bridge.facts
    assert {"fact_search", "seed", "ppr", "total"} <= set(result.timings_ms)


def test_falls_back_to_dense_without_seeds() -> None:
    kg, q, dense = _setup()
    result = graph_retrieve(q, kg, dense, GraphParams(adaptive_passage_weight=False, top_k=3, min_fact_score=1.01))
    assert result.mode == "dense_fallback"
    assert [h.seq for h in result.hits] == [s for s, _ in sorted(dense.items(), key=lambda i: -i[1])[:3]]
    empty = KnowledgeGraph(64)
    assert graph_retrieve(q, empty, dense).mode == "dense_fallback"
    assert hybrid_retrieve(q, empty, dense).mode == "dense_fallback"


def test_fact_filter_hook_can_remove_every_seed() -> None:
    kg, q, dense = _setup()
    seen: list[ScoredFact] = []

    def reject_all(facts):
        seen.extend(facts)
        return []

    result = graph_retrieve(q, kg, dense, fact_filter=reject_all)
    assert seen and result.mode == "dense_fallback"


def test_hybrid_anchors_dense_top_then_graph() -> None:
    kg, q, dense = _setup()
    result = hybrid_retrieve(q, kg, dense, HybridParams(graph=GraphParams(adaptive_passage_weight=False, top_k=4), dense_anchor=1))
    assert result.mode == "hybrid"
    assert result.hits[0].seq == max(dense, key=dense.__getitem__)
    assert len({h.seq for h in result.hits}) == 4
    assert anchor_fuse({1: 0.9, 2: 0.5, 3: 0.1}, {3: 0.9, 1: 0.2}, 1, 3) == [(3, 1.0), (1, 0.5), (2, 1 / 3)]


def test_passages_outside_the_graph_still_rank() -> None:
    kg, q, dense = _setup()
    dense = {**dense, 99: max(dense.values()) + 0.1}  # embedded, not yet extracted
    result = graph_retrieve(q, kg, dense, GraphParams(adaptive_passage_weight=False, top_k=7))
    assert 99 in [h.seq for h in result.hits]


def test_phrases_named_in_the_query_seed_the_walk() -> None:
    kg, q, dense = _setup()
    # min_fact_score 1.1: no fact can seed, so only the phrase the query names verbatim can start the walk.
    params = GraphParams(adaptive_passage_weight=False, top_k=6, min_fact_score=1.1, query_entity_weight=3.0)
    without = graph_retrieve(q, kg, dense, GraphParams(adaptive_passage_weight=False, top_k=6, min_fact_score=1.1))
    assert without.mode == "dense_fallback"
    result = graph_retrieve(q, kg, dense, params, query_phrases=("springfield", "not in the graph"))
    assert result.mode == "graph" and set(result.seed_phrases) == {"springfield"}
    assert {h.seq for h in result.hits[:2]} == {2, 5}  # the two passages that mention Springfield
    off = graph_retrieve(q, kg, dense, GraphParams(adaptive_passage_weight=False, top_k=6, min_fact_score=1.1, query_entity_weight=0.0),
                         query_phrases=("springfield",))
    assert off.mode == "dense_fallback"


def test_passage_prior_rises_when_the_graph_cannot_tell_passages_apart() -> None:
    kg, q, _dense = _setup()
    rich = kg.specific_phrase_density()
    assert rich > 1.0  # every phrase of the toy graph is in at most 3 passages
    chatty = KnowledgeGraph(64)
    # Every turn mentions the same two speakers and nothing else specific: density 0.
    turns = [(s, ExtractionResult((), (Triple("Caroline", "talks to", "Melanie"),))) for s in range(1, 9)]
    chatty.add_passages(turns, EMBED.embed)
    assert chatty.specific_phrase_density() == 0.0
    scores = {s: 1.0 / s for s in range(1, 9)}  # dense order 1 > 2 > ... > 8
    adaptive = graph_retrieve(q, chatty, scores, GraphParams(top_k=8, query_entity_weight=3.0),
                              query_phrases=("caroline",))
    fixed = graph_retrieve(q, chatty, scores, GraphParams(top_k=8, query_entity_weight=3.0,
                                                         adaptive_passage_weight=False),
                           query_phrases=("caroline",))
    # With the raised prior the walk keeps the dense order among equally connected turns; both keep all turns.
    assert [h.seq for h in adaptive.hits] == list(range(1, 9))
    assert {h.seq for h in fixed.hits} == set(range(1, 9))


def test_passage_scores_behave_like_a_mapping():
    import numpy as np

    from memserve.engine.graph_retrieval import _PassageScores, _top

    scores = _PassageScores(np.array([5, 3, 9], dtype=np.int64), np.array([0.2, 0.7, 0.2]))
    assert dict(scores) == {5: 0.2, 3: 0.7, 9: 0.2} and sorted(scores.values()) == [0.2, 0.2, 0.7]
    assert _top(scores, 2) == [(3, 0.7), (5, 0.2)]  # ties by ascending seq


def test_array_top_k_equals_a_full_sort_with_ties() -> None:
    import numpy as np

    from memserve.engine.graph_retrieval import ScoreArrays, _top

    rng = np.random.default_rng(0)
    for _trial in range(50):
        n = int(rng.integers(1, 400))
        seqs = rng.permutation(10_000)[:n]
        values = rng.integers(0, 6, n) / 5.0  # many ties, also across the k-th boundary
        scores = dict(zip(seqs.tolist(), values.tolist(), strict=True))
        for k in (1, 5, n - 1, n, n + 3):
            expected = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
            assert _top(ScoreArrays(seqs, values), k) == expected
            assert _top(scores, k) == expected  # a plain dict goes through the same arrays


def test_rrf_fuse_equals_the_rank_formula() -> None:
    import numpy as np

    from memserve.engine.graph_retrieval import rrf_fuse

    rng = np.random.default_rng(1)
    graph = {int(s): float(v) for s, v in zip(rng.permutation(300)[:120], rng.integers(0, 9, 120), strict=True)}
    dense = {int(s): float(v) for s, v in zip(rng.permutation(300)[:200], rng.random(200), strict=True)}
    fused = rrf_fuse(graph, dense, 0.3, 5.0)
    expected: dict[int, float] = {}
    for weight, scores in ((0.3, graph), (0.7, dense)):
        for rank, (seq, _) in enumerate(sorted(scores.items(), key=lambda item: (-item[1], item[0])), start=1):
            expected[seq] = expected.get(seq, 0.0) + weight / (5.0 + rank)
    assert dict(fused) == pytest.approx(expected)
    assert fused.get(10_000) is None and len(fused) == len(expected)
