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


def test_boost_lifts_favoured_by_a_fraction_of_the_spread():
    out = fusion.boost({1: 1.0, 2: 0.9, 3: 0.0}, {2}, 0.2)
    assert out == pytest.approx({1: 1.0, 2: 1.1, 3: 0.0})
    assert fusion.boost({1: 1.0}, set(), 0.2) == {1: 1.0}


def test_ties_rank_by_seq():
    assert fusion.ranked({9: 1.0, 3: 1.0, 5: 2.0}, 3) == [(5, 2.0), (3, 1.0), (9, 1.0)]
