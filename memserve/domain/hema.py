"""HEMA's records: compact-memory state and pruning's view of an episode (store/hema_repo.py persists them).

The logic that produces them lives in ``memserve.engine.summary`` (folding) and ``memserve.engine.pruning``
(retention scores); these are plain values so the store can read and write them without importing the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class SegmentSummary:
    """A closed segment: ``idx`` counts from 0; ``first_seq``..``last_seq`` is inclusive."""

    namespace: str
    session_id: str
    idx: int
    first_seq: int
    last_seq: int
    text: str
    update_time: datetime


@dataclass(frozen=True)
class SummaryState:
    """Everything needed to resume folding after a restart, for one (namespace, session_id).

    ``open_*`` describe the segment being filled: its first seq, how many episodes it has, and snapshots of
    the rolling summary taken every ``notes_every`` episodes, which become the material of its segment summary
    when it closes (kept here, not re-read from episodes, so a segment can close after a restart).
    """

    namespace: str
    session_id: str = ""
    text: str = ""
    episode_count: int = 0
    last_seq: int = 0
    segments_summary: str = ""
    segment_count: int = 0
    open_first_seq: int | None = None
    open_count: int = 0
    open_notes: tuple[str, ...] = field(default=())
    update_time: datetime | None = None


@dataclass(frozen=True)
class FoldResult:
    state: SummaryState
    # Segments closed by this fold, oldest first. Saving them again is harmless (same key, same content).
    closed_segments: tuple[SegmentSummary, ...]


@dataclass(frozen=True)
class PruneCandidate:
    """One episode as pruning sees it (``hema_repo.load_prune_candidates`` builds these)."""

    seq: int
    id: str
    create_time: datetime
    event_time: datetime | None = None
    importance: float = 0.5
    pinned: bool = False
    text_bytes: int = 0
    access_count: int = 0
    last_access: datetime | None = None


@dataclass(frozen=True)
class PruneDecision:
    seq: int
    id: str
    score: float
    reason: str
