"""The graph's PPR view: an immutable snapshot assembled from edge arrays in a few vectorised NumPy/scipy steps.

Node order is phrases (sorted id) then passages (sorted seq). The synonymy edges are kept beside the rest of the
adjacency so a per-query ``synonym_threshold`` override only filters one array and adds two sparse matrices.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .ppr import PPRMatrix

IntArray = npt.NDArray[np.int64]


class NodeIndex(Mapping[int, int]):
    """id → node for a sorted id array (binary search; no per-node dict to build)."""

    def __init__(self, ids: IntArray, offset: int = 0) -> None:
        self._ids = ids
        self._offset = offset

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids.tolist())

    def __getitem__(self, key: object) -> int:
        if isinstance(key, (int, np.integer)):
            i = int(np.searchsorted(self._ids, key))
            if i < len(self._ids) and self._ids[i] == key:
                return self._offset + i
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def lookup(self, ids: np.ndarray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """Nodes of many ids at once and which of them are present (absent ones get node -1)."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self._ids, ids)
        found = pos < len(self._ids)
        found[found] = self._ids[pos[found]] == ids[found]
        return np.where(found, pos + self._offset, -1), found


@dataclass(frozen=True, eq=False)
class GraphMatrix:
    """A snapshot of the graph for PPR, taken at graph ``version``."""

    ppr: PPRMatrix
    phrase_ids: IntArray  # node i for i < len(phrase_ids)
    passage_seqs: IntArray  # node len(phrase_ids) + j
    phrase_node: NodeIndex
    passage_node: NodeIndex
    version: int
    edge_count: int  # as many as KnowledgeGraph.edges() yields (a fact and a synonymy edge on one pair: 2)
    # For threshold overrides: the adjacency without synonymy (float64) only where it cannot be derived exactly
    # from ``ppr.adjacency`` (non-integer fact weights; see ``_without_synonyms``), else None: no second copy of
    # the matrix (~12 bytes per stored entry) is kept. And the synonymy edges (node indices).
    without_synonyms: sp.csr_matrix | None
    synonym_u: IntArray
    synonym_v: IntArray
    synonym_weight: npt.NDArray[np.float64]

    def _without_synonyms(self) -> sp.csr_matrix:
        """The adjacency without synonymy edges, exactly. Fact and passage weights are integer counts and a
        synonymy weight is a cosine in (0, 1], so an entry is float32(count + cosine) (or float32(cosine)):
        subtracting the cosine and rounding recovers the count exactly (0 where only a synonymy edge was)."""
        if self.without_synonyms is not None:
            return self.without_synonyms
        rest = sp.csr_matrix(self.ppr.adjacency, dtype=np.float64) - _symmetric(
            self.synonym_u, self.synonym_v, self.synonym_weight, self.ppr.n)
        rest.data = np.rint(rest.data)
        rest.eliminate_zeros()
        return rest

    def with_min_synonym_similarity(self, threshold: float) -> GraphMatrix:
        """The same snapshot keeping only synonymy edges with similarity >= ``threshold``."""
        keep = self.synonym_weight >= threshold
        u, v, w = self.synonym_u[keep], self.synonym_v[keep], self.synonym_weight[keep]
        adjacency = self._without_synonyms() + _symmetric(u, v, w, self.ppr.n)
        return GraphMatrix(
            PPRMatrix.from_adjacency(adjacency, dtype=np.float32), self.phrase_ids, self.passage_seqs,
            self.phrase_node, self.passage_node, self.version, self.edge_count - int((~keep).sum()),
            self.without_synonyms, u, v, w,
        )


def _symmetric(u: IntArray, v: IntArray, w: np.ndarray, n: int) -> sp.csr_matrix:
    return sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([u, v]), np.concatenate([v, u]))),
                         shape=(n, n)).tocsr()


def assemble(
    *,
    version: int,
    phrase_ids: IntArray,
    passage_seqs: IntArray,
    fact_a: IntArray,
    fact_b: IntArray,
    fact_weight: np.ndarray,
    passage_edge_seq: IntArray,
    passage_edge_phrase: IntArray,
    synonym_a: IntArray,
    synonym_b: IntArray,
    synonym_weight: np.ndarray,
) -> GraphMatrix:
    """Build the snapshot from edge arrays keyed by phrase id / seq. ``phrase_ids`` and ``passage_seqs`` must be
    sorted and unique; fact pairs and synonymy pairs unique (a fact and a synonymy edge on one pair are summed)."""
    offset = len(phrase_ids)
    n = offset + len(passage_seqs)
    phrase_node = NodeIndex(phrase_ids)
    passage_node = NodeIndex(passage_seqs, offset)

    def nodes(index: NodeIndex, ids: IntArray) -> IntArray:
        out, found = index.lookup(ids)
        if not found.all():
            raise ValueError("an edge names a node the graph does not have")
        return out

    fu, fv = nodes(phrase_node, fact_a), nodes(phrase_node, fact_b)
    pu, pv = nodes(passage_node, passage_edge_seq), nodes(phrase_node, passage_edge_phrase)
    su, sv = nodes(phrase_node, synonym_a), nodes(phrase_node, synonym_b)
    rest = _symmetric(np.concatenate([fu, pu]), np.concatenate([fv, pv]),
                      np.concatenate([np.asarray(fact_weight, np.float64), np.ones(len(pu))]), n)
    sw = np.asarray(synonym_weight, np.float64)
    adjacency = rest + _symmetric(su, sv, sw, n)
    fw = np.asarray(fact_weight, np.float64)
    exact = bool(np.all(fw == np.rint(fw)) and (len(fw) == 0 or fw.max() < 2**22)
                 and np.all((sw > 0) & (sw <= 1)))
    return GraphMatrix(
        PPRMatrix.from_adjacency(adjacency, dtype=np.float32), phrase_ids, passage_seqs, phrase_node,
        passage_node, version, len(fu) + len(pu) + len(su), None if exact else rest, su, sv, sw,
    )
