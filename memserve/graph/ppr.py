"""Personalized PageRank over an undirected, weighted graph: one pure function, three interchangeable backends,
plus a local solver (``push_ppr``, ppr_push.py) that the server uses by default.

- ``PPRMatrix`` (scipy CSR power iteration) is the reference the local solver is held to: it is ~4x faster than igraph's prpack at 100k
  nodes (FIELD-NOTES) and lets the knowledge graph keep its adjacency in plain arrays instead of rebuilding an igraph on
  every edge addition.
- ``igraph.Graph`` goes through prpack, the solver HippoRAG uses.
- ``personalized_pagerank_networkx`` is the slow reference the tests compare both against.

All three share one convention, igraph's and networkx's: the walk restarts according to the (normalised) reset
vector, and a walker stuck on a node with no edges also jumps according to the reset vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PPRMatrix:
    """A symmetric weighted adjacency prepared for power iteration (strengths computed once, not per query)."""

    adjacency: sp.csr_matrix
    inv_strength: FloatArray  # 1 / weighted degree, 0 for isolated nodes
    dangling: npt.NDArray[np.bool_]

    @classmethod
    def from_adjacency(cls, adjacency: sp.spmatrix, dtype: type = np.float64) -> PPRMatrix:
        """``dtype=np.float32`` halves the memory traffic of each iteration (the server's choice: ranking needs
        no more precision); float64 is the default for the reference comparisons."""
        csr = sp.csr_matrix(adjacency, dtype=np.float64)
        strength = np.asarray(csr.sum(axis=1)).ravel()
        dangling = strength <= 0
        inv = np.zeros_like(strength)
        inv[~dangling] = 1.0 / strength[~dangling]
        return cls(csr.astype(dtype), inv.astype(dtype), dangling)

    @property
    def n(self) -> int:
        return int(self.adjacency.shape[0])


def _normalised_reset(reset: np.ndarray, n: int) -> FloatArray:
    r = np.asarray(reset, dtype=np.float64).ravel()
    if r.shape[0] != n:
        raise ValueError(f"reset has {r.shape[0]} entries for a graph of {n} nodes")
    # HippoRAG zeroes NaN / negative weights rather than failing the query; so do we.
    r = np.where(np.isfinite(r) & (r > 0), r, 0.0)
    total = r.sum()
    if total <= 0:
        raise ValueError("reset vector has no positive mass")
    return r / total


def _power_iteration(m: PPRMatrix, r: FloatArray, damping: float, tol: float, max_iter: int) -> FloatArray:
    if m.adjacency.dtype == np.float32:
        r = r.astype(np.float32)
        tol = max(tol, 1e-6)  # below float32's resolution over tens of thousands of nodes the loop never stops
    p = r.copy()
    for _ in range(max_iter):
        # Undirected: P^T p = A (p / strength) because A is symmetric.
        spread = m.adjacency @ (p * m.inv_strength)
        nxt = damping * (spread + p[m.dangling].sum() * r) + (1.0 - damping) * r
        if np.abs(nxt - p).sum() < tol:
            return nxt
        p = nxt
    return p


def personalized_pagerank(
    graph_or_csr: object,
    reset: np.ndarray,
    damping: float = 0.5,
    *,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> FloatArray:
    """Stationary distribution (sums to 1) of a walk that follows edges with probability ``damping`` and
    restarts at ``reset`` (any non-negative weights; normalised here) otherwise.

    ``graph_or_csr``: a ``PPRMatrix``, a scipy sparse symmetric adjacency, or an ``igraph.Graph`` whose edges
    carry a ``weight`` attribute (solved by prpack).
    """
    if not 0.0 <= damping < 1.0:
        raise ValueError("damping must be in [0, 1)")
    if isinstance(graph_or_csr, PPRMatrix):
        m = graph_or_csr
    elif sp.issparse(graph_or_csr):
        m = PPRMatrix.from_adjacency(graph_or_csr)
    else:
        return _igraph_ppr(graph_or_csr, reset, damping)
    r = _normalised_reset(reset, m.n)
    return _power_iteration(m, r, damping, tol, max_iter)


def _igraph_ppr(graph: object, reset: np.ndarray, damping: float) -> FloatArray:
    import igraph

    if not isinstance(graph, igraph.Graph):
        raise TypeError(f"expected PPRMatrix, scipy sparse matrix or igraph.Graph, got {type(graph).__name__}")
    r = _normalised_reset(reset, graph.vcount())
    weights = "weight" if "weight" in graph.es.attributes() else None
    scores = graph.personalized_pagerank(
        directed=False, damping=damping, reset=r.tolist(), weights=weights, implementation="prpack"
    )
    return np.asarray(scores, dtype=np.float64)


def to_igraph(adjacency: sp.spmatrix) -> object:
    """One igraph built in a single ``add_edges`` call (igraph rebuilds its indexes per call)."""
    import igraph

    upper = sp.triu(sp.coo_matrix(adjacency), k=0)
    g = igraph.Graph(n=adjacency.shape[0], directed=False)
    g.add_edges(list(zip(upper.row.tolist(), upper.col.tolist(), strict=True)), attributes={"weight": upper.data.tolist()})
    return g


def personalized_pagerank_networkx(adjacency: sp.spmatrix, reset: np.ndarray, damping: float = 0.5) -> FloatArray:
    """Reference implementation. networkx's ``tol`` is multiplied by N internally, so it is divided here."""
    import networkx as nx

    n = adjacency.shape[0]
    g = nx.from_scipy_sparse_array(sp.csr_matrix(adjacency), create_using=nx.Graph, edge_attribute="weight")
    r = _normalised_reset(reset, n)
    personalization = {i: float(r[i]) for i in range(n) if r[i] > 0}
    scores = nx.pagerank(
        g, alpha=damping, personalization=personalization, weight="weight", tol=1e-12 / max(n, 1), max_iter=10_000
    )
    return np.array([scores[i] for i in range(n)], dtype=np.float64)
