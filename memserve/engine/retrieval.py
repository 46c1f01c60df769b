"""The query path: embed → dense candidates → (graph: facts → seeds → PPR → fusion) → fetch → context.

Validation and the namespace check happen in the engine; this module only ranks.
"""

from __future__ import annotations

import time

import numpy as np

from ..config import Settings
from ..embed import EncoderScheduler
from ..store import episodes_repo
from ..store.db import Database
from ..types import FactOut, Hit, QueryIn, QueryMode, QueryResult
from .graph_retrieval import GraphParams
from .graph_service import GraphService
from .hema import Hema
from .index_registry import IndexRegistry, single_query_threads

# Dense candidates that seed PPR in the graph modes (HippoRAG 2 seeds every passage; past this many the
# prior's tail weighs nothing next to the phrase seeds).
DENSE_POOL = 5000


class Retriever:
    def __init__(self, settings: Settings, db: Database, embedder: EncoderScheduler, indexes: IndexRegistry,
                 graph: GraphService, hema: Hema) -> None:
        self.settings = settings
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
        qvec = self.embedder.embed_query(q.text)  # ahead of any queued write or graph encode
        t = lap("embed", t)
        allowed = None
        if not q.filter.empty:
            allowed = episodes_repo.filter_seqs(self.db.reader(), q.namespace, q.filter)
            t = lap("filter", t)
        mode = q.mode or QueryMode(self.settings.default_query_mode)
        use_graph = mode != QueryMode.DENSE and self.graph.has_graph(q.namespace)
        with self.indexes.reading(q.namespace) as index:
            # The graph modes seed every passage with its dense score (HippoRAG 2): take a wide dense pool.
            k = q.top_k if not use_graph else min(len(index), max(q.top_k, DENSE_POOL)) or 1
            with single_query_threads():
                dense = index.search(qvec, k, allowed=allowed)[0]
        t = lap("dense", t)
        dense_scores = dict(zip(dense.ids.tolist(), dense.scores.tolist()))
        # (seq, ranking score, graph score, facts, phrases)
        ranked: list[tuple[int, float, float, tuple[FactOut, ...], tuple[str, ...]]] = []
        effective = QueryMode.DENSE
        if use_graph:
            g = q.graph
            s = self.settings
            params = GraphParams(
                damping=s.ppr_damping if g.damping is None else g.damping,
                fact_top_k=s.fact_top_k if g.fact_top_k is None else g.fact_top_k,
                passage_weight=s.passage_weight if g.passage_weight is None else g.passage_weight,
                synonym_threshold=g.synonym_threshold, query_entity_weight=s.query_entity_weight,
                adaptive_passage_weight=s.adaptive_passage_weight,
                top_k=q.top_k if allowed is None else q.top_k * 10 + 100)
            with single_query_threads():
                result = self.graph.retrieve(q.namespace, q.text, qvec, dense_scores, mode, params)
            for name, ms in result.timings_ms.items():
                timings[f"graph_{name}"] = round(ms, 3)
            if result.mode != "dense_fallback":
                effective = mode
                keep = None if allowed is None else set(allowed.tolist())
                for h in result.hits:
                    if keep is None or h.seq in keep:
                        facts = tuple(FactOut(f.subject, f.predicate, f.object, f.score) for f in h.facts)
                        ranked.append((h.seq, h.score, h.graph_score, facts, tuple(h.seed_phrases)))
            t = lap("graph", t)
        seen = {seq for seq, *_ in ranked}
        for seq, score in zip(dense.ids.tolist(), dense.scores.tolist()):  # dense fills whatever is left
            if len(ranked) >= q.top_k:
                break
            if seq not in seen:
                ranked.append((seq, score, 0.0, (), ()))
        ranked = ranked[: q.top_k]
        outside = [r[0] for r in ranked if r[0] not in dense_scores]
        if outside:  # graph hits beyond the dense pool: their cosine from the stored embeddings
            flat = np.asarray(qvec, dtype=np.float32).reshape(-1)
            for seq, vector in episodes_repo.embeddings_of(self.db.reader(), q.namespace, outside).items():
                dense_scores[seq] = float(vector @ flat)
        found = episodes_repo.get_by_seqs(self.db.reader(), q.namespace, [r[0] for r in ranked])
        t = lap("fetch", t)
        out = []
        for seq, score, graph_score, facts, phrases in ranked:
            episode = found.get(seq)
            if episode is None:  # deleted between the search and the fetch
                continue
            # score: what the ranking used (cosine, PPR mass, or HYBRID's fused 1/rank); dense_score: the
            # cosine, in every mode; graph_score: the PPR mass (0 in dense mode).
            out.append(Hit(episode=episode, score=float(score), rank=len(out) + 1,
                           dense_score=float(dense_scores.get(seq, 0.0)), graph_score=float(graph_score),
                           facts=facts, phrases=phrases))
        self.hema.record_accesses(q.namespace, [h.episode.seq for h in out])
        context, tokens = self.hema.context(q.namespace, q.summary_session_id, out, q.token_budget)
        t = lap("context", t)
        lap("total", t_start)
        return QueryResult(hits=out, timings_ms=timings, mode=effective, context=context,
                           context_tokens=tokens)
