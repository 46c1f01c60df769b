"""Normalised-score fusion of retrieval channels (pure functions).

Each channel's scores are min-max normalised over the candidates it returned, weighted and summed; a candidate
a channel did not return gets 0 from it. Chosen over RRF by measurement on LoCoMo dev: RRF (k=60) reached R@10
58.0 against 67.8 for normalised scores with the same two channels (docs/CONVERSATION.md), because RRF throws
away how far ahead a strong lexical match is.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

import numpy as np


class Channel(NamedTuple):
    seqs: np.ndarray
    scores: np.ndarray
    weight: float
    # The score that normalises to 0 (None: the lowest returned). The dense channel's is the score at rank
    # dense_pool when its index returned fewer candidates (HNSW), so its scale does not depend on the pool.
    floor: float | None = None


def normalise(scores: np.ndarray, floor: float | None = None) -> np.ndarray:
    """Min-max to [0, 1]; with ``floor``, (score - floor) / (max - floor) clipped at 0 instead (the lowest score
    when the floor is not below the best)."""
    if scores.size == 0:
        return scores.astype(np.float64)
    hi = float(scores.max())
    lo = float(scores.min()) if floor is None or hi - floor <= 1e-12 else float(floor)
    if hi - lo <= 1e-12:
        return np.ones_like(scores, dtype=np.float64)
    return np.maximum(scores.astype(np.float64) - lo, 0.0) / (hi - lo)


def fuse(channels: Sequence[Channel | tuple[np.ndarray, np.ndarray, float]]) -> dict[int, float]:
    """channels: ``Channel`` or (seqs, scores, weight). Returns seq -> fused score."""
    out: dict[int, float] = {}
    for channel in channels:
        seqs, scores, weight, floor = Channel(*channel)
        if weight == 0 or seqs.size == 0:
            continue
        for seq, value in zip(seqs.tolist(), (normalise(scores, floor) * weight).tolist(), strict=True):
            out[seq] = out.get(seq, 0.0) + value
    return out


def boost(fused: Mapping[int, float], favoured: Collection[int], weight: float) -> dict[int, float]:
    """Lift the favoured candidates by ``weight`` times the spread of the fused scores (scale-free, so the same
    weight means the same thing whatever channels were fused)."""
    if not fused or not favoured or weight == 0:
        return dict(fused)
    values = list(fused.values())
    spread = (max(values) - min(values)) or 1.0
    return {seq: score + (weight * spread if seq in favoured else 0.0) for seq, score in fused.items()}


def hybrid(channels: Sequence[Channel | tuple[np.ndarray, np.ndarray, float]],
           lifts: Sequence[tuple[Collection[int], float]] = ()) -> dict[int, float]:
    """The HYBRID score: fused channels, then each (favoured seqs, weight) lift in turn (speaker, time)."""
    fused = fuse(channels)
    for favoured, weight in lifts:
        fused = boost(fused, favoured, weight)
    return fused


def ranked(scores: Mapping[int, float], k: int) -> list[tuple[int, float]]:
    """Best first; ties by seq, so equal scores rank deterministically."""
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]



def after_graph(graph_seqs: np.ndarray, graph_scores: np.ndarray, fused: Mapping[int, float],
                trust: float, graph_floor: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """HYBRID's score once the graph has ranked: trust x norm(graph) + (1 - trust) x norm(fused), over the union
    of both candidate sets (a candidate one side lacks gets 0 from it). Returns (seqs, scores), each seq once.
    ``graph_*``: PPR mass of the graph stage, which was seeded on the dense scores alone; ``fused``: the dense +
    BM25 + lifts score (``hybrid``). ``graph_floor``: ``normalise``'s floor for the first side (the dense one,
    when this blends the anchor slots).

    The graph is never seeded with the fused scores: on MuSiQue that moved PPR's reset mass onto passages that
    share words with the question but not its entities, and cost HYBRID 1.8 points of R@2 (docs/CONVERSATION.md).
    ``trust`` (graph_retrieval.graph_trust) is 1 on entity-rich documents, so HYBRID keeps the graph's order
    there, and near 0 on chat turns, where the fused channels rank."""
    trust = min(1.0, max(0.0, trust))
    fused_seqs = np.fromiter(fused.keys(), np.int64, len(fused))
    fused_scores = np.fromiter(fused.values(), np.float64, len(fused))
    seqs = np.concatenate([np.asarray(graph_seqs, np.int64), fused_seqs])
    parts = [normalise(np.asarray(graph_scores, np.float64), graph_floor) * trust,
             normalise(fused_scores) * (1.0 - trust)]
    values = np.concatenate(parts)
    if trust >= 1.0:  # the fused side weighs nothing: its candidates are not the graph's to rank
        seqs, values = seqs[: len(graph_seqs)], values[: len(graph_seqs)]
    unique, inverse = np.unique(seqs, return_inverse=True)
    total = np.zeros(len(unique), np.float64)
    np.add.at(total, inverse, values)
    return unique, total
