"""Local Personalized PageRank: Andersen–Chung–Lang forward push, vectorised over whole frontiers.

Power iteration (ppr.py) touches every node ~14 times per query, so its cost grows with the graph. Forward push
only touches nodes the walk actually reaches with noticeable mass: it keeps an estimate ``p`` and a residual
``r`` (initially the reset vector) with the invariant

    exact PPR(reset) = p + PPR(r)        (PPR is linear in the reset vector)

and repeatedly *pushes* a node u whose residual is large relative to its weighted degree (``r[u] >= epsilon ×
strength[u]``): ``(1 - damping) × r[u]`` moves into ``p[u]``, ``damping × r[u]`` spreads over u's neighbours in
proportion to edge weight (a node with no edges sends it back along the reset vector, as in ppr.py), and
``r[u] = 0``. Pushes commute in the invariant, so a whole frontier is pushed at once with a few array
operations over its CSR rows (no per-node Python loop); the loop runs ~log(epsilon)/log(damping) rounds.

Error bound. ``PPR(r) >= (1 - damping) × r`` element-wise and ``PPR(r)`` sums to ``|r|_1``, so the returned
estimate ``p + (1 - damping) × r`` satisfies, element-wise, ``estimate <= exact`` and

    |exact - estimate|_1 = damping × |r|_1 <= damping × epsilon × vol(touched nodes),

which ``LocalPPR.l1_error`` reports exactly (the bound is computed, not assumed). The work is at most
``1 / (epsilon × (1 - damping))`` edge visits (ACL), independent of the graph's size.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .ppr import PPRMatrix

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LocalPPR:
    """A sparse PPR estimate: ``values[i]`` for ``nodes[i]`` (each node once, unsorted); every other node 0."""

    nodes: IntArray
    values: FloatArray
    l1_error: float  # |exact - estimate|_1, exactly (see the module docstring)
    pushes: int  # node pushes performed (work done, for benchmarks)
    rounds: int

    def dense(self, n: int) -> FloatArray:
        out = np.zeros(n, np.float64)
        out[self.nodes] = self.values
        return out


_scratch = threading.local()


def _take_buffers(n: int) -> tuple[FloatArray, FloatArray, IntArray]:
    """This thread's estimate, residual (all zero) and stamp (any content) arrays of at least ``n`` entries:
    a query touches a few thousand entries, so allocating and zeroing n of them each time would dominate.
    Held by the caller until ``_give_back`` (an exception on the way drops them instead)."""
    buf = getattr(_scratch, "buf", None)
    _scratch.buf = None
    if buf is None or len(buf[0]) < n:
        buf = (np.zeros(n, np.float64), np.zeros(n, np.float64), np.empty(n, np.int64))
    return buf


def _distinct(nodes: IntArray, stamp: IntArray) -> IntArray:
    """``nodes`` without repeats, in O(len) with a scratch array (np.unique sorts; this does not)."""
    positions = np.arange(len(nodes))
    stamp[nodes] = positions  # for repeated nodes the last write wins
    return nodes[stamp[nodes] == positions]


def push_ppr(
    m: PPRMatrix,
    seed_nodes: np.ndarray,
    seed_weights: np.ndarray,
    damping: float = 0.5,
    *,
    epsilon: float = 1e-5,
    max_rounds: int = 10_000,
) -> LocalPPR:
    """PPR restarting at ``seed_nodes`` (weights normalised here; NaN / negative ones dropped, repeats summed)
    to within ``epsilon`` per unit of weighted degree. Returns the touched nodes only."""
    if not 0.0 <= damping < 1.0:
        raise ValueError("damping must be in [0, 1)")
    if not epsilon > 0:
        raise ValueError("epsilon must be positive")
    n = m.n
    seeds = np.asarray(seed_nodes, dtype=np.int64).ravel()
    w = np.asarray(seed_weights, dtype=np.float64).ravel()
    if seeds.shape != w.shape:
        raise ValueError("seed_nodes and seed_weights differ in length")
    if len(seeds) and (seeds.min() < 0 or seeds.max() >= n):
        raise ValueError(f"a seed node is outside the graph of {n} nodes")
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    total = w.sum()
    if total <= 0:
        raise ValueError("reset vector has no positive mass")
    alpha = 1.0 - damping
    buffers = _take_buffers(n)
    p, r, stamp = buffers[0][:n], buffers[1][:n], buffers[2][:n]
    np.add.at(r, seeds, w / total)
    seeds = _distinct(seeds, stamp)
    reset = r[seeds].copy()  # the normalised reset vector on its support (dangling nodes jump along it)
    indptr, indices, data = m.adjacency.indptr, m.adjacency.indices, m.adjacency.data
    inv, dangling = m.inv_strength, m.dangling
    touched = [seeds]
    candidates = seeds
    pushes = rounds = 0
    while len(candidates) and rounds < max_rounds:
        mass = r[candidates]
        # push when r >= epsilon × strength; a node without edges counts as strength 1
        ratio = np.where(dangling[candidates], mass, mass * inv[candidates])
        frontier = candidates[ratio >= epsilon]
        if not len(frontier):
            break
        rounds += 1
        pushes += len(frontier)
        mass = r[frontier]
        r[frontier] = 0.0
        p[frontier] += alpha * mass
        starts = indptr[frontier].astype(np.int64)
        lengths = indptr[frontier + 1].astype(np.int64) - starts
        count = int(lengths.sum())
        nxt: list[IntArray] = []
        if count:
            # positions of all the frontier's CSR entries: starts repeated, plus 0..len-1 within each row
            first = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
            entries = first + np.arange(count)
            targets = indices[entries].astype(np.int64)
            share = np.repeat(damping * mass * inv[frontier], lengths)
            np.add.at(r, targets, data[entries] * share)
            nxt.append(targets)
        lost = dangling[frontier]
        if lost.any():
            r[seeds] += damping * float(mass[lost].sum()) * reset
            nxt.append(seeds)
        candidates = _distinct(np.concatenate(nxt), stamp) if len(nxt) > 1 else (
            _distinct(nxt[0], stamp) if nxt else frontier[:0])
        touched.append(candidates)
    nodes = _distinct(np.concatenate(touched), stamp)
    residual = r[nodes]
    values = p[nodes] + alpha * residual
    p[nodes] = 0.0  # every non-zero entry is a touched node: the buffers are clean again
    r[nodes] = 0.0
    _scratch.buf = buffers
    return LocalPPR(nodes, values, float(damping * residual.sum()), pushes, rounds)
