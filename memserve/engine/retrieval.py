"""The query path: embed → dense candidates → (graph: facts → seeds → PPR → fusion) → fetch → context.

Validation and the namespace check happen in the engine; this module only ranks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime

import numpy as np

from ..config import Settings
from ..embed import EncoderScheduler
from ..store import episodes_repo
from ..store.db import Database
from ..types import FactOut, Hit, QueryIn, QueryMode, QueryResult
from ..vector.base import Hits
from . import fusion
from .graph_retrieval import GraphParams, ScoreArrays
from .graph_service import GraphService
from .hema import Hema
from .index_registry import IndexRegistry, single_query_threads
from .lexical_registry import LexicalRegistry
from .query_hints import named_speaker
from .time_hints import time_window

Lap = Callable[[str, float], float]  # query()'s stopwatch: records a stage's milliseconds, returns "now"

# BM25 candidates that HYBRID fuses. The dense candidates are the dense_pool setting (HippoRAG 2 seeds every
# passage; past a few thousand the prior's tail weighs nothing next to the phrase seeds).
LEXICAL_POOL = 5000
# Index kinds whose search cost grows with k (a beam as wide as the pool), unlike an exact scan.
_BEAM_KINDS = frozenset({"hnsw"})


def dense_pool_size(settings: Settings, index_kind: str) -> int:
    """The dense candidates the graph modes and HYBRID take from an index of this kind: ``dense_pool`` from an
    exact scan, no more than ``dense_pool_hnsw`` from a beam (HNSW), whose search costs in proportion to it."""
    if index_kind in _BEAM_KINDS:
        return min(settings.dense_pool_hnsw, settings.dense_pool)
    return settings.dense_pool


class Retriever:
    def __init__(self, settings: Settings, db: Database, embedder: EncoderScheduler, indexes: IndexRegistry,
                 graph: GraphService, hema: Hema, lexical: LexicalRegistry, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.clock = clock
        self.lexical = lexical
        self.db = db
        self.embedder = embedder
        self.indexes = indexes
        self.graph = graph
        self.hema = hema

    def query(self, q: QueryIn) -> QueryResult:
        """Run a validated query on an existing namespace."""
        t_start = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(name: str, since: float) -> float:
            now = time.perf_counter()
            timings[name] = round((now - since) * 1000.0, 3)
            return now

        t = time.perf_counter()
        allowed = None
        if not q.filter.empty:
            allowed = episodes_repo.filter_seqs(self.db.reader(), q.namespace, q.filter)
            t = lap("filter", t)
        mode = q.mode or QueryMode(self.settings.default_query_mode)
        if mode == QueryMode.LEXICAL:
            return self._lexical_only(q, allowed, timings, lap, t, t_start)
        qvec = self.embedder.embed_query(q.text)  # ahead of any queued write or graph encode
        t = lap("embed", t)
        s = self.settings
        fusing = mode == QueryMode.HYBRID and (s.lexical_weight > 0 or s.speaker_boost > 0 or s.time_boost > 0)
        use_graph = mode != QueryMode.DENSE and self.graph.has_graph(q.namespace)
        with self.indexes.reading(q.namespace) as index:
            # The graph modes seed every passage with its dense score (HippoRAG 2), and fusion normalises dense
            # scores over the namespace: take a wide dense pool.
            wide = use_graph or fusing
            pool = dense_pool_size(s, index.kind)
            k = q.top_k if not wide else min(len(index), max(q.top_k, pool)) or 1
            with single_query_threads():
                dense = index.search(qvec, k, allowed=allowed)[0]
                # A beam index returns fewer than dense_pool candidates: the score at rank dense_pool (estimated)
                # stays the prior's zero, so the pool's size decides who is seeded, not how much each weighs.
                floor = None
                if wide and len(dense.ids) == k < min(len(index), s.dense_pool):
                    floor = index.score_at_rank(qvec, s.dense_pool, allowed)
        t = lap("dense", t)
        dense_scores = ScoreArrays(dense.ids, dense.scores)  # arrays, not a per-passage dict
        cosines: dict[int, float] = {}  # hits beyond the dense pool (graph or lexical): from stored embeddings
        # HYBRID: dense + BM25 + the speaker and time lifts, fused. With a graph, the graph stage is seeded on the
        # dense scores alone (as GRAPH mode is), and the fused scores come in after it (fusion.after_graph).
        prior: Mapping[int, float] = dense_scores
        lexical_scores: dict[int, float] = {}
        if fusing:
            prior, lexical_scores = self._fuse(q, allowed, dense, floor, lap, t)
            t = time.perf_counter()
        # (seq, ranking score, graph score, facts, phrases)
        ranked: list[tuple[int, float, float, tuple[FactOut, ...], tuple[str, ...]]] = []
        effective = QueryMode.HYBRID if fusing else QueryMode.DENSE
        graph_ran = False
        if use_graph:
            g = q.graph
            params = GraphParams(
                damping=s.ppr_damping if g.damping is None else g.damping,
                fact_top_k=s.fact_top_k if g.fact_top_k is None else g.fact_top_k,
                passage_weight=s.passage_weight if g.passage_weight is None else g.passage_weight,
                synonym_threshold=g.synonym_threshold, query_entity_weight=s.query_entity_weight,
                adaptive_passage_weight=s.adaptive_passage_weight, ppr_method=s.ppr_method,
                ppr_epsilon=s.ppr_epsilon, dense_floor=floor,
                top_k=q.top_k if allowed is None else q.top_k * 10 + 100)
            with single_query_threads():
                # Seeded on the dense scores, never on the fused prior; HYBRID blends the fused scores in after
                # the walk (fusion.after_graph).
                result = self.graph.retrieve(q.namespace, q.text, qvec, dense_scores, mode, params,
                                             fused=prior if fusing else None)
            for name, ms in result.timings_ms.items():
                timings[f"graph_{name}"] = round(ms, 3)
            if result.mode != "dense_fallback":
                effective = mode
                graph_ran = True
                # The filter's seqs may be most of the namespace: test only the hits against them, in arrays.
                seqs = np.fromiter((h.seq for h in result.hits), np.int64, len(result.hits))
                keep = np.ones(len(seqs), bool) if allowed is None else np.isin(seqs, allowed)
                for h, kept in zip(result.hits, keep.tolist(), strict=True):
                    if kept:
                        facts = tuple(FactOut(f.subject, f.predicate, f.object, f.score) for f in h.facts)
                        ranked.append((h.seq, h.score, h.graph_score, facts, tuple(h.seed_phrases)))
            t = lap("graph", t)
        if fusing and not graph_ran:
            ranked = [(seq, score, 0.0, (), ()) for seq, score in fusion.ranked(prior, q.top_k)]
        seen = {seq for seq, *_ in ranked}
        for seq, score in zip(dense.ids.tolist(), dense.scores.tolist(), strict=True):  # dense fills whatever is left
            if len(ranked) >= q.top_k:
                break
            if seq not in seen:
                ranked.append((seq, score, 0.0, (), ()))
        ranked = ranked[: q.top_k]
        outside = [r[0] for r in ranked if r[0] not in dense_scores]
        if outside:  # graph hits beyond the dense pool: their cosine from the stored embeddings
            flat = np.asarray(qvec, dtype=np.float32).reshape(-1)
            for seq, vector in episodes_repo.embeddings_of(self.db.reader(), q.namespace, outside).items():
                cosines[seq] = float(vector @ flat)
        found = episodes_repo.get_by_seqs(self.db.reader(), q.namespace, [r[0] for r in ranked])
        t = lap("fetch", t)
        out: list[Hit] = []
        for seq, score, graph_score, facts, phrases in ranked:
            episode = found.get(seq)
            if episode is None:  # deleted between the search and the fetch
                continue
            # score: what the ranking used (cosine, PPR mass, or HYBRID's fused 1/rank); dense_score: the
            # cosine, in every mode; graph_score: the PPR mass (0 in dense mode).
            out.append(Hit(episode=episode, score=float(score), rank=len(out) + 1,
                           dense_score=float(cosines.get(seq, dense_scores.get(seq, 0.0))),
                           graph_score=float(graph_score), facts=facts, phrases=phrases,
                           lexical_score=float(lexical_scores.get(seq, 0.0))))
        return self._finish(q, out, effective, timings, lap, t, t_start)

    def _finish(self, q: QueryIn, out: list[Hit], effective: QueryMode, timings: dict[str, float], lap: Lap, t: float,
                t_start: float) -> QueryResult:
        self.hema.record_accesses(q.namespace, [h.episode.seq for h in out])
        context, tokens = self.hema.context(q.namespace, q.summary_session_id, out, q.token_budget)
        t = lap("context", t)
        lap("total", t_start)
        return QueryResult(hits=out, timings_ms=timings, mode=effective, context=context,
                           context_tokens=tokens)

    def _speaker_seqs(self, q: QueryIn) -> set[int]:
        speaker = q.speaker or named_speaker(q.text, self.lexical.speakers(q.namespace))
        return self.lexical.speaker_seqs(q.namespace, speaker) if speaker else set()

    def _fuse(self, q: QueryIn, allowed: np.ndarray | None, dense: Hits, floor: float | None, lap: Lap,
              t: float) -> tuple[dict[int, float], dict[int, float]]:
        """Normalised dense + weighted normalised BM25, then the speaker and time lifts (engine/fusion.py).
        Returns the fused scores and the BM25 scores, by seq."""
        s = self.settings
        keep = None if allowed is None else set(allowed.tolist())
        lex_seqs, lex_scores = self.lexical.search(q.namespace, q.text, LEXICAL_POOL, keep)
        t = lap("lexical", t)
        channels = [fusion.Channel(dense.ids, dense.scores.astype(np.float64), 1.0, floor),
                    fusion.Channel(lex_seqs, lex_scores, s.lexical_weight)]
        lifts: list[tuple[Collection[int], float]] = []
        if s.speaker_boost > 0:
            lifts.append((self._speaker_seqs(q), s.speaker_boost))
        if s.time_boost > 0:
            window = time_window(q.text, q.now or self.clock())
            if window is not None:
                lifts.append((self.lexical.seqs_in_window(q.namespace, *window), s.time_boost))
        fused = fusion.hybrid(channels, lifts)
        lap("fuse", t)
        return fused, dict(zip(lex_seqs.tolist(), lex_scores.tolist(), strict=True))

    def _lexical_only(self, q: QueryIn, allowed: np.ndarray | None, timings: dict[str, float], lap: Lap, t: float,
                      t_start: float) -> QueryResult:
        keep = None if allowed is None else set(allowed.tolist())
        seqs, scores = self.lexical.search(q.namespace, q.text, q.top_k, keep)
        t = lap("lexical", t)
        found = episodes_repo.get_by_seqs(self.db.reader(), q.namespace, seqs.tolist())
        t = lap("fetch", t)
        out: list[Hit] = []
        for seq, score in zip(seqs.tolist(), scores.tolist(), strict=True):
            episode = found.get(seq)
            if episode is not None:
                out.append(Hit(episode=episode, score=float(score), rank=len(out) + 1, lexical_score=float(score)))
        return self._finish(q, out, QueryMode.LEXICAL, timings, lap, t, t_start)
