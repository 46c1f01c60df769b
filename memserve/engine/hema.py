"""HEMA inside the server: the compact-memory worker, access statistics, context packing and pruning.

- Summaries are folded by a background worker, strictly in seq order per (namespace, session) and for the
  namespace as a whole; writes never wait for them. After a crash the worker resumes from each summary's
  last folded seq (``hema_repo.pending_summaries``).
- Retrieval counts accesses through a queue flushed in batches by a second worker, off the query path.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb

from ..config import Settings
from ..errors import InvalidArgument
from ..llm import LLMClient
from ..store import hema_repo
from ..store.db import Database
from .background import Worker
from .context import ContextHit, TokenCounter, build_context, load_token_counter
from .pruning import PruneDecision, PrunePolicy, RetentionWeights, select_for_pruning
from .summary import ExtractiveSummariser, LLMSummariser, SegmentSummary, Summariser, fold

log = logging.getLogger(__name__)

_FOLD_BATCH = 500


@dataclass(frozen=True)
class SummaryView:
    summary: str
    update_time: datetime | None
    episode_count: int
    segments: list[SegmentSummary]
    segments_summary: str
    backlog: int


class Hema:
    def __init__(self, settings: Settings, db: Database, clock: Callable[[], datetime],
                 llm: LLMClient | None = None) -> None:
        self._settings = settings
        self._db = db
        self._clock = clock
        self.summariser: Summariser | None
        if settings.summarizer == "none":
            self.summariser = None
        elif llm is not None and settings.summarizer in ("llm", "auto"):  # "llm" without one: _validate refuses it
            self.summariser = LLMSummariser(llm, fallback=ExtractiveSummariser())
        else:
            self.summariser = ExtractiveSummariser()
        self.counter: TokenCounter = load_token_counter()
        self.weights = RetentionWeights(half_life_days=settings.prune_half_life_days,
                                        access_half_life_days=settings.prune_half_life_days)
        self._summary_worker = Worker("summary", self._fold_some, threads=settings.background_threads)
        self._accesses: queue.SimpleQueue = queue.SimpleQueue()
        self._access_lock = threading.Lock()

    def start(self) -> None:
        if self.summariser is None:
            return
        self._summary_worker.start()
        for key in hema_repo.pending_summaries(self._db.reader()):
            self._summary_worker.kick(key)

    def stop(self, timeout: float = 10.0) -> None:
        self._summary_worker.stop(timeout)
        self.flush_accesses()

    # -- compact memory ----------------------------------------------------------------------------------
    def episodes_written(self, namespace: str, session_ids: set[str]) -> None:
        if self.summariser is None:
            return
        self._summary_worker.kick((namespace, ""))
        for sid in session_ids:
            if sid:
                self._summary_worker.kick((namespace, sid))

    def _fold_some(self, key: tuple[str, str]) -> bool:
        namespace, session_id = key
        if self.summariser is None:  # the worker starts only with a summariser
            return False
        cur = self._db.reader()
        state = hema_repo.load_summary_state(cur, namespace, session_id)
        batch = hema_repo.load_unfolded_episodes(cur, namespace, session_id, state.last_seq, limit=_FOLD_BATCH)
        if not batch:
            return False
        segments = hema_repo.load_segments(cur, namespace, session_id)
        result = fold(state, batch, self.summariser, now=self._clock(), segment_size=self._settings.summary_segment_size,
                      segments=segments)
        with self._db.transaction() as tx:
            # The namespace may have been deleted while we folded: then drop the result.
            if tx.execute("SELECT 1 FROM namespaces WHERE name = ?", [namespace]).fetchone() is None:
                return False
            hema_repo.save_fold_result(tx, result)
        return len(batch) == _FOLD_BATCH

    def failed_count(self) -> int:
        """Summary jobs (namespace or session) that gave up after their retries (metrics)."""
        return len(self._summary_worker.failed())

    def summary(self, namespace: str, session_id: str) -> SummaryView:
        cur = self._db.reader()
        state = hema_repo.load_summary_state(cur, namespace, session_id)
        return SummaryView(summary=state.text, update_time=state.update_time, episode_count=state.episode_count,
                           segments=hema_repo.load_segments(cur, namespace, session_id),
                           segments_summary=state.segments_summary,
                           backlog=hema_repo.count_backlog(cur, namespace, session_id, state.last_seq))

    def summary_text(self, namespace: str, session_id: str) -> str:
        return hema_repo.load_summary_state(self._db.reader(), namespace, session_id).text

    # -- context -----------------------------------------------------------------------------------------
    def context(self, namespace: str, session_id: str, hits: Sequence, budget: int) -> tuple[str, int]:
        ctx_hits = [ContextHit(rank=h.rank, text=h.episode.text, speaker=h.episode.speaker,
                               session_id=h.episode.session_id, event_time=h.episode.event_time,
                               facts=tuple((f.subject, f.predicate, f.object) for f in h.facts)) for h in hits]
        return build_context(self.summary_text(namespace, session_id), ctx_hits,
                             budget or self._settings.token_budget, self.counter)

    # -- access statistics -------------------------------------------------------------------------------
    def record_accesses(self, namespace: str, seqs: Sequence[int]) -> None:
        """Called on the query path: only enqueues."""
        if seqs:
            self._accesses.put((namespace, list(seqs), self._clock()))

    def flush_accesses(self) -> int:
        """Write queued access counts in one transaction; returns how many hits were recorded."""
        with self._access_lock:
            grouped: dict[str, list[int]] = defaultdict(list)
            latest: dict[str, datetime] = {}
            n = 0
            while True:
                try:
                    namespace, seqs, when = self._accesses.get_nowait()
                except queue.Empty:
                    break
                grouped[namespace].extend(seqs)
                latest[namespace] = max(latest.get(namespace, when), when)
                n += len(seqs)
            if grouped:
                with self._db.transaction() as tx:
                    for namespace, seqs in grouped.items():
                        hema_repo.record_accesses(tx, namespace, seqs, latest[namespace])
            return n

    # -- pruning -----------------------------------------------------------------------------------------
    def policy(self, max_episodes: int, max_bytes: int, min_score: float | None) -> PrunePolicy:
        s = self._settings
        if max_episodes < 0:
            raise InvalidArgument(f"max_episodes must be >= 0, got {max_episodes}", field="max_episodes")
        if max_bytes < 0:
            raise InvalidArgument(f"max_bytes must be >= 0, got {max_bytes}", field="max_bytes")
        if min_score is None and s.prune_min_score >= 0:
            min_score = s.prune_min_score
        return PrunePolicy(max_episodes=(max_episodes or s.prune_max_episodes) or None,
                           max_bytes=(max_bytes or s.prune_max_bytes) or None, min_score=min_score)

    def select(self, namespace: str, policy: PrunePolicy) -> list[PruneDecision]:
        self.flush_accesses()  # decide on up-to-date access statistics
        candidates = hema_repo.load_prune_candidates(self._db.reader(), namespace)
        return select_for_pruning(candidates, policy, self._clock(), self.weights)

    def forget(self, tx: duckdb.DuckDBPyConnection, namespace: str, decisions: Sequence[PruneDecision]) -> None:
        hema_repo.write_prune_log(tx, namespace, decisions, self._clock())
        hema_repo.forget_episodes(tx, namespace, [d.seq for d in decisions])
