from __future__ import annotations

import numpy as np
import pytest

from memserve.engine import fusion


def test_normalised_fusion_weights_each_channel_over_its_own_range():
    dense = (np.array([1, 2, 3]), np.array([0.9, 0.5, 0.1]), 1.0)
    lexical = (np.array([3, 2]), np.array([12.0, 2.0]), 0.8)
    fused = fusion.fuse([dense, lexical])
    assert fused == pytest.approx({1: 1.0, 2: 0.5, 3: 0.8})
    assert fusion.ranked(fused, 2) == [(1, 1.0), (3, pytest.approx(0.8))]


def test_a_flat_channel_counts_fully_and_a_zero_weight_not_at_all():
    assert fusion.fuse([(np.array([4, 5]), np.array([3.0, 3.0]), 0.5)]) == {4: 0.5, 5: 0.5}
    assert fusion.fuse([(np.array([4]), np.array([3.0]), 0.0)]) == {}


def test_a_floor_is_the_score_that_normalises_to_zero():
    scores = np.array([0.9, 0.5, 0.3])
    assert fusion.normalise(scores, 0.1) == pytest.approx([1.0, 0.5, 0.25])  # not 1, 1/3, 0
    assert fusion.normalise(scores, 0.7) == pytest.approx([1.0, 0.0, 0.0])  # an estimate above some: clipped
    assert fusion.normalise(scores, 0.9) == pytest.approx([1.0, 1 / 3, 0.0])  # not below the best: ignored
    assert fusion.normalise(scores, None) == pytest.approx([1.0, 1 / 3, 0.0])
    dense = fusion.Channel(np.array([1, 2, 3]), scores, 1.0, floor=0.1)
    assert fusion.fuse([dense]) == pytest.approx({1: 1.0, 2: 0.5, 3: 0.25})
    _, values = fusion.after_graph(np.array([1, 2, 3]), scores, {}, 1.0, graph_floor=0.1)
    assert values.tolist() == pytest.approx([1.0, 0.5, 0.25])


def test_boost_lifts_favoured_by_a_fraction_of_the_spread():
    out = fusion.boost({1: 1.0, 2: 0.9, 3: 0.0}, {2}, 0.2)
    assert out == pytest.approx({1: 1.0, 2: 1.1, 3: 0.0})
    assert fusion.boost({1: 1.0}, set(), 0.2) == {1: 1.0}


def test_ties_rank_by_seq():
    assert fusion.ranked({9: 1.0, 3: 1.0, 5: 2.0}, 3) == [(5, 2.0), (3, 1.0), (9, 1.0)]



def _after(graph: dict[int, float], fused: dict[int, float], trust: float) -> dict[int, float]:
    seqs, values = fusion.after_graph(np.array(list(graph)), np.array(list(graph.values())), fused, trust)
    return dict(zip(seqs.tolist(), values.tolist(), strict=True))


def test_after_graph_keeps_the_graph_order_at_trust_1_and_the_fused_order_at_0():
    graph = {1: 0.30, 2: 0.20, 3: 0.10}  # PPR masses of the graph stage (seeded on dense)
    fused = {3: 2.0, 4: 1.5, 1: 0.5, 2: 0.0}  # dense + BM25 + lifts: puts 3, then a non-graph passage 4 first
    assert [s for s, _ in fusion.ranked(_after(graph, fused, 1.0), 4)] == [1, 2, 3]  # 4 is not the graph's
    assert [s for s, _ in fusion.ranked(_after(graph, fused, 0.0), 4)] == [3, 4, 1, 2]
    half = _after(graph, fused, 0.5)  # each side min-max normalised over its own candidates
    assert half == pytest.approx({1: 0.5 + 0.125, 2: 0.25, 3: 0.5, 4: 0.375})
    assert _after(graph, fused, 7.0) == _after(graph, fused, 1.0)  # clamped to [0, 1]
