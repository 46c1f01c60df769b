from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest

from memserve.domain.clock import FakeClock
from memserve.engine.pruning import (
    PruneCandidate,
    PrunePolicy,
    RetentionWeights,
    retention_score,
    select_for_pruning,
)
from memserve.errors import InvalidArgument

CLOCK = FakeClock()
NOW = CLOCK.now()


def cand(seq: int, *, age_days: float = 0.0, **kw) -> PruneCandidate:
    return PruneCandidate(seq=seq, id=f"e{seq}", create_time=NOW - timedelta(days=age_days), **kw)


def test_score_arithmetic():
    # Fresh, default importance, never accessed: 1 * 1 + 0.5 * 0.5 + 0 = 1.25.
    assert retention_score(cand(1), NOW) == pytest.approx(1.25)
    # One half-life old: 0.5 + 0.25.
    assert retention_score(cand(1, age_days=30), NOW) == pytest.approx(0.75)
    # 60 days old, importance 1, accessed 3 times 15 days ago:
    # age is measured from the last access (15 days): 0.5**0.5; use = log1p(3) * 0.5**0.5.
    c = cand(1, age_days=60, importance=1.0, access_count=3, last_access=NOW - timedelta(days=15))
    expected = 0.5**0.5 + 0.5 * 1.0 + 0.25 * math.log1p(3) * 0.5**0.5
    assert retention_score(c, NOW) == pytest.approx(expected)


def test_event_time_wins_over_create_time_and_future_is_fresh():
    c = cand(1, age_days=0, event_time=NOW - timedelta(days=30), importance=0.0)
    assert retention_score(c, NOW) == pytest.approx(0.5)
    future = cand(2, event_time=NOW + timedelta(days=5), importance=0.0)
    assert retention_score(future, NOW) == pytest.approx(1.0)


def test_custom_half_life_and_clamped_importance():
    w = RetentionWeights(half_life_days=10, importance_weight=1.0)
    assert retention_score(cand(1, age_days=20, importance=7.0), NOW, w) == pytest.approx(0.25 + 1.0)
    assert retention_score(cand(1, age_days=20, importance=-3.0), NOW, w) == pytest.approx(0.25)


def test_score_decays_as_the_clock_moves():
    clock = FakeClock()
    c = PruneCandidate(seq=1, id="a", create_time=clock.now(), importance=0.0)
    first = retention_score(c, clock.now())
    clock.advance(days=30)
    assert retention_score(c, clock.now()) == pytest.approx(first / 2)


def test_pinned_is_infinite_and_never_selected():
    pinned = cand(1, age_days=10_000, importance=0.0, pinned=True, text_bytes=10_000)
    others = [cand(i, age_days=i, text_bytes=10) for i in range(2, 6)]
    assert retention_score(pinned, NOW) == math.inf
    decisions = select_for_pruning([pinned, *others], PrunePolicy(max_episodes=0, max_bytes=0, min_score=10.0), NOW)
    assert [d.seq for d in decisions] == [5, 4, 3, 2]
    assert all(d.seq != 1 for d in decisions)


def test_max_episodes_removes_lowest_scores_first():
    eps = [cand(i, age_days=d) for i, d in [(1, 5), (2, 100), (3, 1), (4, 50)]]
    decisions = select_for_pruning(eps, PrunePolicy(max_episodes=2), NOW)
    assert [(d.seq, d.reason) for d in decisions] == [(2, "over_max_episodes"), (4, "over_max_episodes")]
    assert decisions[0].score < decisions[1].score


def test_max_bytes_and_reason_precedence():
    eps = [
        cand(1, age_days=400, text_bytes=100),  # stale: below min score
        cand(2, age_days=60, text_bytes=100),
        cand(3, age_days=30, text_bytes=100),
        cand(4, age_days=0, text_bytes=100),
    ]
    policy = PrunePolicy(max_episodes=3, max_bytes=150, min_score=0.3)
    decisions = select_for_pruning(eps, policy, NOW)
    assert [(d.seq, d.reason) for d in decisions] == [
        (1, "below_min_score"),
        (2, "over_max_bytes"),  # 3 left: count is fine, 300 bytes is not
        (3, "over_max_bytes"),
    ]


def test_nothing_to_do_within_limits():
    eps = [cand(i) for i in range(1, 4)]
    assert select_for_pruning(eps, PrunePolicy(max_episodes=3, max_bytes=None, min_score=0.1), NOW) == []
    assert select_for_pruning([], PrunePolicy(max_episodes=0), NOW) == []


def test_ties_break_by_older_seq_and_result_is_order_independent():
    eps = [cand(i, age_days=10) for i in (9, 3, 7, 5)]
    decisions = select_for_pruning(eps, PrunePolicy(max_episodes=1), NOW)
    assert [d.seq for d in decisions] == [3, 5, 7]
    rng = random.Random(3)
    pool = [cand(i, age_days=rng.choice([1, 2, 3]), importance=rng.choice([0.0, 0.5])) for i in range(1, 60)]
    baseline = select_for_pruning(pool, PrunePolicy(max_episodes=20), NOW)
    for _ in range(20):
        rng.shuffle(pool)
        assert select_for_pruning(pool, PrunePolicy(max_episodes=20), NOW) == baseline


def test_access_protects_an_episode():
    unused = cand(1, age_days=40)
    used = cand(2, age_days=40, access_count=5, last_access=NOW - timedelta(days=1))
    decisions = select_for_pruning([used, unused], PrunePolicy(max_episodes=1), NOW)
    assert [d.seq for d in decisions] == [1]


def test_invalid_policy():
    with pytest.raises(InvalidArgument):
        PrunePolicy(max_episodes=-1)
    with pytest.raises(InvalidArgument):
        PrunePolicy(min_score=float("nan"))
    with pytest.raises(InvalidArgument):
        RetentionWeights(half_life_days=0)
