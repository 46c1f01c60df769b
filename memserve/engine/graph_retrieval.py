"""GRAPH retrieval (HippoRAG 2) and its HYBRID fusion with dense retrieval, as pure functions over a
``KnowledgeGraph`` and the dense scores the caller already has.

GRAPH: query → top facts (cosine against fact embeddings) → optional recognition filter (an LLM in HippoRAG 2; a
hook here) → the facts' subject and object phrases seed a Personalized PageRank, each weighted by fact score x
specificity (1 / passages containing the phrase) → every passage is also seeded with ``passage_weight`` x its
min-max normalised dense score → passages ranked by PPR mass. No seed at all → dense order, flagged.

HYBRID ("dense-anchored"): the first ``dense_anchor`` slots are the best dense passages, the rest follow the
GRAPH ranking. On MuSiQue (evals/graph_tuning.py) dense retrieval is the better judge of the single best passage
(the first hop usually shares words with the question) while GRAPH finds the bridge passages deeper down (R@5);
score interpolation and reciprocal-rank fusion both lost GRAPH's R@5 gain there (see the sweep in the eval).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from memserve.domain.graph import Fact
from memserve.domain.ranking import top_k
from memserve.graph.ids import phrase_id as make_phrase_id
from memserve.graph.kg import KnowledgeGraph
from memserve.graph.ppr import PPRMatrix, personalized_pagerank
from memserve.graph.ppr_push import push_ppr

from . import fusion


@dataclass(frozen=True)
class ScoredFact:
    fact_id: int
    subject: str
    predicate: str
    object: str
    score: float  # cosine between the query and the fact text


# Receives the candidate facts best first and returns the ones to keep (HippoRAG 2's LLM "recognition memory").
# The caller binds the query text into it (e.g. functools.partial); it must not add facts.
FactFilter = Callable[[Sequence[ScoredFact]], Sequence[ScoredFact]]


@dataclass(frozen=True)
class GraphParams:
    damping: float = 0.5
    fact_top_k: int = 5  # facts kept as seeds
    passage_weight: float = 0.05  # weight of dense scores in the reset vector, relative to phrase seeds
    top_k: int = 10
    # Phrase seed = fact score x specificity. A phrase reached by several top facts keeps its best score
    # (HippoRAG 2 keeps whichever fact came last, an accident of loop order).
    min_fact_score: float = 0.0  # facts below this cosine never seed
    # Exponent on the min-max normalised dense score in the reset vector: > 1 concentrates the dense prior on
    # the best dense passages instead of spreading it over the whole corpus.
    dense_power: float = 1.0
    # The dense score that normalises to 0 in the prior and in the anchor blend: the score at rank dense_pool,
    # when the dense scores handed in stop short of that rank (an HNSW pool). None: their lowest score.
    dense_floor: float | None = None
    # Per-query override: keep only synonymy edges at least this similar (None: the graph's own threshold).
    synonym_threshold: float | None = None
    # Phrases named in the query itself (entity spans found by the offline extractor) seed PPR directly with
    # this weight x specificity, beside the fact seeds. HippoRAG 1 seeded from query entities, HippoRAG 2 from
    # facts only; with a small embedder the fact search misses entities the question names verbatim.
    query_entity_weight: float = 3.0  # tuned on MuSiQue: 2-5 all help; 0 = plain HippoRAG 2
    # HippoRAG 2's 0.05 dense prior assumes entity-rich passages. When the graph can barely tell passages apart
    # (few specific phrases per passage, as in chat turns), the prior is raised towards 1 so the walk cannot
    # drown good dense hits: weight = pw + (1 - pw) * (1 - min(1, density / adaptive_density)).
    adaptive_passage_weight: bool = True
    adaptive_density: float = 4.0
    # "push": local PPR (forward push, graph/ppr_push.py), cost independent of the graph's size; "power": power
    # iteration over every node (the reference). ppr_epsilon: push threshold per unit of weighted degree (the
    # L1 error is at most damping x epsilon x volume of the touched nodes; see ppr_push.py).
    ppr_method: str = "push"
    ppr_epsilon: float = 1e-5


@dataclass(frozen=True)
class HybridParams:
    graph: GraphParams = field(default_factory=GraphParams)
    fusion: str = "anchor"  # "anchor" (dense top slots, then GRAPH) or "rrf" (weighted reciprocal-rank fusion)
    dense_anchor: int = 1  # "anchor": slots taken from the dense ranking before GRAPH fills the rest
    graph_weight: float = 0.5  # "rrf": weight of the GRAPH ranking (dense gets 1 - this)
    rrf_k: float = 60.0


@dataclass(frozen=True)
class GraphHit:
    seq: int
    score: float  # the ranking score: PPR mass (graph), fused rank value 1/rank (hybrid), cosine (fallback)
    facts: tuple[ScoredFact, ...]  # seed facts this passage supports or touches, best first
    seed_phrases: tuple[str, ...]  # seed phrases linked to this passage
    graph_score: float = 0.0  # the passage's PPR mass, whatever the mode (0 in the dense fallback)


@dataclass(frozen=True)
class GraphResult:
    hits: tuple[GraphHit, ...]
    mode: str  # "graph", "hybrid", or "dense_fallback" (no fact produced a seed)
    facts: tuple[ScoredFact, ...]  # the seed facts, best first
    seed_phrases: Mapping[str, float]  # phrase → reset weight
    timings_ms: Mapping[str, float]
    # How far the graph can tell passages apart, in [0, 1] (``graph_trust``): 1 on entity-rich documents, near 0
    # on chat turns. 1 when the adaptive prior is off (the graph is then taken as it is) and in the fallback.
    trust: float = 1.0


@dataclass(frozen=True)
class _Scores:
    passage: ScoreArrays  # passages the walk reached (power: every graph passage) and dense-only ones → score
    facts: tuple[ScoredFact, ...]
    seeds: dict[int, float]  # phrase id → reset weight
    timings_ms: dict[str, float]
    trust: float = 1.0


def graph_retrieve(
    query: np.ndarray,
    kg: KnowledgeGraph,
    dense_scores: Mapping[int, float],
    params: GraphParams = GraphParams(),
    *,
    fact_filter: FactFilter | None = None,
    query_phrases: Sequence[str] = (),
) -> GraphResult:
    """Rank passages by HippoRAG 2's seeded PPR. ``dense_scores``: seq → cosine for all passages or a top-N.
    ``query_phrases``: normalised phrases named in the query (see ``GraphParams.query_entity_weight``)."""
    start = time.perf_counter()
    scores = _graph_scores(query, kg, dense_scores, params, fact_filter, query_phrases)
    if scores is None:
        return _dense_fallback(kg, dense_scores, params.top_k, start)
    ranked = _top(scores.passage, params.top_k)
    hits = _explain(kg, ranked, scores)
    scores.timings_ms["total"] = (time.perf_counter() - start) * 1e3
    return GraphResult(hits, "graph", scores.facts, _seed_names(kg, scores.seeds), scores.timings_ms, scores.trust)


def hybrid_retrieve(
    query: np.ndarray,
    kg: KnowledgeGraph,
    dense_scores: Mapping[int, float],
    params: HybridParams = HybridParams(),
    *,
    fact_filter: FactFilter | None = None,
    query_phrases: Sequence[str] = (),
) -> GraphResult:
    """Fuse the GRAPH and DENSE rankings by rank, never by raw score: PPR mass and cosine live on unrelated
    scales, and PPR mass is heavy-tailed per query."""
    start = time.perf_counter()
    scores = _graph_scores(query, kg, dense_scores, params.graph, fact_filter, query_phrases)
    if scores is None:
        return _dense_fallback(kg, dense_scores, params.graph.top_k, start)
    fuse_start = time.perf_counter()
    if params.fusion == "anchor":
        ranked = anchor_fuse(scores.passage, dense_scores, params.dense_anchor, params.graph.top_k)
    elif params.fusion == "rrf":
        ranked = _top(rrf_fuse(scores.passage, dense_scores, params.graph_weight, params.rrf_k), params.graph.top_k)
    else:
        raise ValueError(f"unknown fusion {params.fusion!r}")
    scores.timings_ms["fuse"] = (time.perf_counter() - fuse_start) * 1e3
    hits = _explain(kg, ranked, scores)
    scores.timings_ms["total"] = (time.perf_counter() - start) * 1e3
    return GraphResult(hits, "hybrid", scores.facts, _seed_names(kg, scores.seeds), scores.timings_ms, scores.trust)


def fused_retrieve(
    query: np.ndarray,
    kg: KnowledgeGraph,
    dense_scores: Mapping[int, float],
    fused: Mapping[int, float],
    params: HybridParams = HybridParams(),
    *,
    fact_filter: FactFilter | None = None,
    query_phrases: Sequence[str] = (),
) -> GraphResult:
    """HYBRID with the fused channels (dense + BM25 + lifts, ``fused``): the walk is GRAPH's, seeded on
    ``dense_scores`` alone; its passage masses are then blended with ``fused`` by the graph's trust
    (fusion.after_graph), and the first ``dense_anchor`` slots go to the best of dense and fused blended the same
    way. At trust 1 this is exactly the dense-anchored HYBRID (``hybrid_retrieve``); near 0 (chat turns) it is
    the fused ranking."""
    start = time.perf_counter()
    scores = _graph_scores(query, kg, dense_scores, params.graph, fact_filter, query_phrases)
    if scores is None:
        return _dense_fallback(kg, dense_scores, params.graph.top_k, start)
    fuse_start = time.perf_counter()
    passage = ScoreArrays.of(scores.passage)
    blended = ScoreArrays(*fusion.after_graph(passage.seqs, passage.scores, fused, scores.trust))
    # The anchor slots blend dense and fused by the same trust: the best dense passage on documents (chosen on
    # MuSiQue splits over the best fused one, evals/hybrid_ab.py), the best fused turn on chats.
    dense = ScoreArrays.of(dense_scores)
    anchor = ScoreArrays(*fusion.after_graph(dense.seqs, dense.scores, fused, scores.trust,
                                             params.graph.dense_floor))
    ranked = anchor_fuse(blended, anchor, params.dense_anchor, params.graph.top_k)
    scores.timings_ms["fuse"] = (time.perf_counter() - fuse_start) * 1e3
    hits = _explain(kg, ranked, scores)
    scores.timings_ms["total"] = (time.perf_counter() - start) * 1e3
    return GraphResult(hits, "hybrid", scores.facts, _seed_names(kg, scores.seeds), scores.timings_ms, scores.trust)


def anchor_fuse(
    graph_scores: Mapping[int, float], dense_scores: Mapping[int, float], anchor: int, k: int
) -> list[tuple[int, float]]:
    """The ``anchor`` best dense passages, then GRAPH's order. Scores are fused ranks' reciprocals (1 / rank),
    so the list reads best first whatever its source."""
    order = [seq for seq, _ in _top(dense_scores, anchor)]
    taken = set(order)
    for seq, _ in _top(graph_scores, k + anchor):
        if len(order) >= k:
            break
        if seq not in taken:
            order.append(seq)
            taken.add(seq)
    return [(seq, 1.0 / rank) for rank, seq in enumerate(order[:k], start=1)]


def rrf_fuse(
    graph_scores: Mapping[int, float], dense_scores: Mapping[int, float], graph_weight: float, k: float
) -> ScoreArrays:
    """score(seq) = w / (k + rank_graph) + (1 - w) / (k + rank_dense); a list that lacks a seq contributes 0.
    Ranks are 1-based in (score descending, seq ascending) order; computed over arrays."""
    seq_parts, score_parts = [], []
    for weight, scores in ((graph_weight, graph_scores), (1.0 - graph_weight, dense_scores)):
        if weight <= 0 or not scores:
            continue
        arrays = ScoreArrays.of(scores)
        order = np.lexsort((arrays.seqs, -arrays.scores))
        seq_parts.append(arrays.seqs[order])
        score_parts.append(weight / (k + np.arange(1, len(order) + 1, dtype=np.float64)))
    if not seq_parts:
        return ScoreArrays(np.zeros(0, np.int64), np.zeros(0))
    seqs, contrib = np.concatenate(seq_parts), np.concatenate(score_parts)
    order = np.argsort(seqs, kind="stable")
    seqs, contrib = seqs[order], contrib[order]
    starts = np.flatnonzero(np.concatenate([[True], seqs[1:] != seqs[:-1]]))
    return ScoreArrays(seqs[starts], np.add.reduceat(contrib, starts))


# --------------------------------------------------------------------------------------------- internals


def _graph_scores(
    query: np.ndarray,
    kg: KnowledgeGraph,
    dense_scores: Mapping[int, float],
    params: GraphParams,
    fact_filter: FactFilter | None,
    query_phrases: Sequence[str] = (),
) -> _Scores | None:
    timings: dict[str, float] = {}
    t = time.perf_counter()
    candidates = candidate_facts(query, kg, params)
    timings["fact_search"] = (time.perf_counter() - t) * 1e3
    if fact_filter is not None and candidates:
        t = time.perf_counter()
        allowed = {f.fact_id for f in candidates}
        candidates = [f for f in fact_filter(candidates) if f.fact_id in allowed]
        timings["fact_filter"] = (time.perf_counter() - t) * 1e3

    t = time.perf_counter()
    seeds: dict[int, float] = {}
    for fact in candidates:
        stored = kg.facts.get(fact.fact_id)
        if stored is None:
            continue
        for phrase in (stored.subject_id, stored.object_id):
            weight = max(fact.score, 0.0) * kg.specificity(phrase)
            if weight > seeds.get(phrase, 0.0):
                seeds[phrase] = weight
    if params.query_entity_weight > 0:
        for text in query_phrases:
            pid = make_phrase_id(text)
            if pid in kg.phrases:
                weight = params.query_entity_weight * kg.specificity(pid)
                if weight > seeds.get(pid, 0.0):
                    seeds[pid] = weight
    if not seeds:
        return None
    # The installed matrix may be a change behind the graph (rebuilt off the write lock): a phrase it does not
    # know yet cannot seed the walk, and a passage it does not know is "outside", like one awaiting extraction.
    matrix = kg.matrix(params.synonym_threshold)
    phrase_ids = np.fromiter(seeds.keys(), np.int64, len(seeds))
    phrase_weights = np.fromiter(seeds.values(), np.float64, len(seeds))
    phrase_nodes, known = matrix.phrase_node.lookup(phrase_ids)
    if not known.any():
        return None
    seeds = {p: w for p, w, k in zip(phrase_ids.tolist(), phrase_weights.tolist(), known.tolist(), strict=True) if k}
    seed_nodes, seed_weights = [phrase_nodes[known]], [phrase_weights[known]]
    passage_weight = params.passage_weight
    trust = graph_trust(kg, params)
    passage_weight += (1.0 - passage_weight) * (1.0 - trust)
    offset = len(matrix.phrase_ids)
    stale = matrix.version != kg.version  # passages removed since the snapshot must not come back as hits
    outside_seqs = np.zeros(0, np.int64)
    outside_weights = np.zeros(0, np.float64)
    if dense_scores:
        seqs, prior = _dense_prior(dense_scores, params.dense_power, passage_weight, params.dense_floor)
        nodes, found = matrix.passage_node.lookup(seqs)
        if stale:
            found &= kg.has_passages(seqs)
        seed_nodes.append(nodes[found])
        seed_weights.append(prior[found])
        outside_seqs, outside_weights = seqs[~found], prior[~found]
    nodes_in, weights_in = np.concatenate(seed_nodes), np.concatenate(seed_weights)
    timings["seed"] = (time.perf_counter() - t) * 1e3

    t = time.perf_counter()
    graph_mass = float(weights_in.sum())
    total_reset = graph_mass + float(outside_weights.sum())
    passage_nodes, passage_values = _passage_ppr(matrix.ppr, nodes_in, weights_in, offset, params)
    seqs_out = matrix.passage_seqs[passage_nodes - offset]
    if stale:
        keep = kg.has_passages(seqs_out)
        seqs_out, passage_values = seqs_out[keep], passage_values[keep]
    # PPR returns a distribution over graph nodes; rescale to the full reset mass so an isolated, ungraphed
    # passage (which would keep (1 - damping) of its own reset share) lands on a comparable scale.
    passage = ScoreArrays(
        np.concatenate([seqs_out, outside_seqs]),
        np.concatenate([passage_values * (graph_mass / total_reset),
                        (1.0 - params.damping) * outside_weights / total_reset]),
    )
    timings["ppr"] = (time.perf_counter() - t) * 1e3
    return _Scores(passage, tuple(candidates), seeds, timings, trust)


def graph_trust(kg: KnowledgeGraph, params: GraphParams) -> float:
    """min(1, specific phrases per passage / ``adaptive_density``): what the adaptive prior raises the passage
    weight by, and what HYBRID weighs the graph's ranking by against the fused channels. 1 with the adaptive
    prior off."""
    if not params.adaptive_passage_weight:
        return 1.0
    return min(1.0, kg.specific_phrase_density() / params.adaptive_density)


def _passage_ppr(m: PPRMatrix, nodes: np.ndarray, weights: np.ndarray, offset: int,
                 params: GraphParams) -> tuple[np.ndarray, np.ndarray]:
    """(passage nodes, PPR mass) for the reset ``weights`` on ``nodes``. ``push`` returns only the passages the
    walk reached (the rest score 0); ``power`` every passage."""
    if params.ppr_method == "push":
        local = push_ppr(m, nodes, weights, params.damping, epsilon=params.ppr_epsilon)
        on_passage = local.nodes >= offset
        return local.nodes[on_passage], local.values[on_passage]
    if params.ppr_method != "power":
        raise ValueError(f"unknown ppr_method {params.ppr_method!r}")
    reset = np.zeros(m.n, np.float64)
    np.add.at(reset, nodes, weights)
    ppr = personalized_pagerank(m, reset, params.damping)
    return np.arange(offset, m.n, dtype=np.int64), ppr[offset:].astype(np.float64)


class ScoreArrays(Mapping[int, float]):
    """seq → score as two parallel arrays (each seq once). Ranking and fusion read the arrays; the Mapping
    view (``[]``, ``get``, iteration) answers by binary search over a sorted copy, built on first use, so no
    per-passage dict is ever made."""

    def __init__(self, seqs: np.ndarray, values: np.ndarray) -> None:
        self.seqs = np.asarray(seqs, np.int64)
        self.scores = np.asarray(values, np.float64)  # not "values": that would shadow Mapping.values()
        self._order: np.ndarray | None = None

    @classmethod
    def of(cls, scores: Mapping[int, float]) -> ScoreArrays:
        if isinstance(scores, ScoreArrays):
            return scores
        return cls(np.fromiter(scores.keys(), np.int64, len(scores)),
                   np.fromiter(scores.values(), np.float64, len(scores)))

    def _find(self, seq: object) -> int:
        if self._order is None:
            self._order = np.argsort(self.seqs, kind="stable")
        if not isinstance(seq, (int, np.integer)) or not len(self.seqs):
            return -1
        i = int(np.searchsorted(self.seqs, seq, sorter=self._order))
        if i < len(self.seqs) and self.seqs[self._order[i]] == seq:
            return int(self._order[i])
        return -1

    def __getitem__(self, seq: int) -> float:
        i = self._find(seq)
        if i < 0:
            raise KeyError(seq)
        return float(self.scores[i])

    def __contains__(self, seq: object) -> bool:
        return self._find(seq) >= 0

    def __iter__(self) -> Iterator[int]:
        return iter(self.seqs.tolist())

    def pick(self, seqs: list[int]) -> dict[int, float]:
        """seq → score for a few seqs (one vectorised pass, no sort of the whole array)."""
        if not seqs:
            return {}
        where = np.flatnonzero(np.isin(self.seqs, np.asarray(seqs, dtype=self.seqs.dtype)))
        return dict(zip(self.seqs[where].tolist(), self.scores[where].tolist(), strict=True))

    def __len__(self) -> int:
        return len(self.seqs)


_PassageScores = ScoreArrays  # the name the graph scores had before dense scores used the same class


def _dense_prior(dense_scores: Mapping[int, float], power: float, weight: float,
                 floor: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(seqs, reset weights): dense scores min-max normalised (down to ``floor`` if given) ** power x weight."""
    arrays = ScoreArrays.of(dense_scores)
    seqs = arrays.seqs
    normalised = fusion.normalise(arrays.scores, floor)
    if power != 1.0:
        normalised = np.power(normalised, power)
    return seqs, normalised * weight


def candidate_facts(query: np.ndarray, kg: KnowledgeGraph, params: GraphParams) -> list[ScoredFact]:
    """The query's top facts above ``min_fact_score``, best first: what a fact filter gets to judge."""
    return [_scored(kg, fact, score) for fact, score in kg.search_facts(query, params.fact_top_k)
            if score >= params.min_fact_score]


def _scored(kg: KnowledgeGraph, fact: Fact, score: float) -> ScoredFact:
    return ScoredFact(fact.fact_id, kg.phrases[fact.subject_id], fact.predicate, kg.phrases[fact.object_id], score)


def _top(scores: Mapping[int, float], k: int) -> list[tuple[int, float]]:
    """The k best (seq, score), best first, ties by seq ascending."""
    arrays = ScoreArrays.of(scores)
    seqs, values = top_k(arrays.seqs, arrays.scores, k)
    return list(zip(seqs.tolist(), values.tolist(), strict=True))


def _explain(kg: KnowledgeGraph, ranked: list[tuple[int, float]], scores: _Scores) -> tuple[GraphHit, ...]:
    hits = []
    passage = scores.passage
    ppr = passage.pick([seq for seq, _ in ranked]) if isinstance(passage, ScoreArrays) else passage
    # Each seed fact's ends and passages once per query, not once per hit (hub facts have large passage sets).
    fact_links = []
    for f in scores.facts:
        stored = kg.facts.get(f.fact_id)
        if stored is not None:
            fact_links.append((f, stored.subject_id, stored.object_id, kg.passages_of_fact(f.fact_id)))
    seed_names = {p: kg.phrases[p] for p in scores.seeds}
    for seq, score in ranked:
        phrases = kg.phrases_of_passage(seq)
        facts = tuple(f for f, subject, obj, seqs in fact_links
                      if seq in seqs or subject in phrases or obj in phrases)
        seeds = tuple(sorted(name for p, name in seed_names.items() if p in phrases))
        hits.append(GraphHit(seq, score, facts, seeds, float(ppr.get(seq, 0.0))))
    return tuple(hits)


def _seed_names(kg: KnowledgeGraph, seeds: Mapping[int, float]) -> dict[str, float]:
    return {kg.phrases[p]: w for p, w in sorted(seeds.items(), key=lambda item: -item[1])}


def _dense_fallback(
    kg: KnowledgeGraph, dense_scores: Mapping[int, float], top_k: int, start: float
) -> GraphResult:
    hits = tuple(GraphHit(seq, score, (), ()) for seq, score in _top(dense_scores, top_k))
    return GraphResult(hits, "dense_fallback", (), {}, {"total": (time.perf_counter() - start) * 1e3})
