"""HEMA age-weighted pruning: forget stale, unused, unimportant episodes first.

Retention score of an episode at time ``now`` (higher = keep)::

    ref          = max(event_time or create_time, last_access)       # last time it mattered
    age_days     = max(0, now - ref) in days
    freshness    = 0.5 ** (age_days / half_life_days)                 # 1 when new, 0.5 after one half-life
    use_days     = max(0, now - last_access) in days                  # (no access: the use term is 0)
    use          = log1p(access_count) * 0.5 ** (use_days / access_half_life_days)
    score        = age_weight * freshness + importance_weight * clamp(importance, 0, 1) + access_weight * use
    pinned       -> score = +inf, never selected

Why this shape: freshness is HEMA's exponential age decay, measured from the last time an episode was written
about *or retrieved*, so a memory the agent keeps using does not age. ``log1p`` makes the first retrievals
count most (10 hits are not 10x one hit), and that bonus itself decays so an old burst of use does not protect
an episode forever. Importance is additive, a floor: an episode of importance 1 never scores below
``importance_weight`` (0.5 by default), so with ``min_score`` below that it is removed only for space.
With the defaults a fresh, never-used episode of the default importance (0.5) scores 1.25, and 0.75 after 30
days unused.

``select_for_pruning`` removes the lowest scores first (ties: older seq first) until the namespace is within
``max_episodes`` and ``max_bytes`` (pinned episodes count towards both but are never removed, so the limits may
stay exceeded), plus every unpinned episode whose score is below ``min_score``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from memserve.domain.clock import as_utc
from memserve.domain.hema import PruneCandidate, PruneDecision
from memserve.errors import InvalidArgument

REASON_OVER_MAX_EPISODES = "over_max_episodes"
REASON_OVER_MAX_BYTES = "over_max_bytes"
REASON_BELOW_MIN_SCORE = "below_min_score"

_SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class RetentionWeights:
    half_life_days: float = 30.0
    access_half_life_days: float = 30.0
    age_weight: float = 1.0
    importance_weight: float = 0.5
    access_weight: float = 0.25

    def __post_init__(self) -> None:
        if self.half_life_days <= 0 or self.access_half_life_days <= 0:
            raise InvalidArgument("half-lives must be positive", field="half_life_days")
        if min(self.age_weight, self.importance_weight, self.access_weight) < 0:
            raise InvalidArgument("retention weights must not be negative", field="weights")


@dataclass(frozen=True)
class PrunePolicy:
    """Limits for one namespace; ``None`` means no limit of that kind."""

    max_episodes: int | None = None
    max_bytes: int | None = None
    min_score: float | None = None

    def __post_init__(self) -> None:
        if self.max_episodes is not None and self.max_episodes < 0:
            raise InvalidArgument("max_episodes must not be negative", field="max_episodes")
        if self.max_bytes is not None and self.max_bytes < 0:
            raise InvalidArgument("max_bytes must not be negative", field="max_bytes")
        if self.min_score is not None and math.isnan(self.min_score):
            raise InvalidArgument("min_score must be a number", field="min_score")


def retention_score(candidate: PruneCandidate, now: datetime, weights: RetentionWeights = RetentionWeights()) -> float:
    """The score in the module docstring; ``inf`` for pinned episodes."""
    if candidate.pinned:
        return math.inf
    now = as_utc(now)
    written = as_utc(candidate.event_time if candidate.event_time is not None else candidate.create_time)
    last_access = as_utc(candidate.last_access) if candidate.last_access is not None else None
    reference = max(written, last_access) if last_access is not None else written

    freshness = _half_life_decay(_days_between(reference, now), weights.half_life_days)
    use = 0.0
    if last_access is not None and candidate.access_count > 0:
        use = math.log1p(candidate.access_count) * _half_life_decay(
            _days_between(last_access, now), weights.access_half_life_days
        )
    importance = min(1.0, max(0.0, candidate.importance)) if not math.isnan(candidate.importance) else 0.0
    return weights.age_weight * freshness + weights.importance_weight * importance + weights.access_weight * use


def select_for_pruning(
    candidates: Iterable[PruneCandidate],
    policy: PrunePolicy,
    now: datetime,
    weights: RetentionWeights = RetentionWeights(),
) -> list[PruneDecision]:
    """The episodes to remove, in removal order (lowest score first). Pure: nothing is deleted here.

    A removed episode's reason is the first that applies when it is reached: ``below_min_score``, then
    ``over_max_episodes`` (the count is still above the limit), then ``over_max_bytes``.
    """
    pool = list(candidates)
    remaining_count = len(pool)
    remaining_bytes = sum(max(0, c.text_bytes) for c in pool)
    scored = sorted(
        ((retention_score(c, now, weights), c) for c in pool if not c.pinned),
        key=lambda item: (item[0], item[1].seq),  # ties: the older write goes first
    )

    decisions: list[PruneDecision] = []
    for score, cand in scored:
        if policy.min_score is not None and score < policy.min_score:
            reason = REASON_BELOW_MIN_SCORE
        elif policy.max_episodes is not None and remaining_count > policy.max_episodes:
            reason = REASON_OVER_MAX_EPISODES
        elif policy.max_bytes is not None and remaining_bytes > policy.max_bytes:
            reason = REASON_OVER_MAX_BYTES
        else:
            break  # scores only rise from here and every limit is met
        decisions.append(PruneDecision(seq=cand.seq, id=cand.id, score=score, reason=reason))
        remaining_count -= 1
        remaining_bytes -= max(0, cand.text_bytes)
    return decisions


def _days_between(earlier: datetime, later: datetime) -> float:
    # Timestamps in the future (clock skew, event_time set ahead) count as brand new, not as negative age.
    return max(0.0, (later - earlier).total_seconds() / _SECONDS_PER_DAY)


def _half_life_decay(days: float, half_life_days: float) -> float:
    return 0.5 ** (days / half_life_days)
