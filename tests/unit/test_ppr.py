from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from memserve.graph.ppr import PPRMatrix, personalized_pagerank, personalized_pagerank_networkx, to_igraph


def _random_graph(n: int, m: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, m)
    cols = rng.integers(0, n, m)
    keep = rows != cols
    w = rng.uniform(0.1, 3.0, keep.sum())
    a = sp.coo_matrix((w, (rows[keep], cols[keep])), shape=(n, n)).tocsr()
    a = a + a.T  # symmetric; some nodes stay isolated (dangling)
    return sp.csr_matrix(a)


@pytest.mark.parametrize("damping", [0.5, 0.85])
@pytest.mark.parametrize("seed", [0, 1])
def test_backends_agree_with_networkx(damping: float, seed: int) -> None:
    a = _random_graph(300, 700, seed)
    reset = np.zeros(300)
    rng = np.random.default_rng(seed + 10)
    reset[rng.choice(300, 6, replace=False)] = rng.uniform(0.1, 1.0, 6)
    reference = personalized_pagerank_networkx(a, reset, damping)
    csr = personalized_pagerank(PPRMatrix.from_adjacency(a), reset, damping)
    prpack = personalized_pagerank(to_igraph(a), reset, damping)
    single = personalized_pagerank(PPRMatrix.from_adjacency(a, dtype=np.float32), reset, damping)
    assert np.abs(csr - reference).sum() < 1e-4
    assert np.abs(single - reference).sum() < 1e-4  # the server's float32 path
    top = np.argsort(-reference)[:20]
    assert set(np.argsort(-single)[:20]) == set(top)
    assert np.abs(prpack - reference).sum() < 1e-4
    assert csr.sum() == pytest.approx(1.0)


def test_reset_on_isolated_node_keeps_mass_there() -> None:
    a = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=float))
    scores = personalized_pagerank(a, np.array([0.0, 0.0, 1.0]))
    assert scores == pytest.approx([0.0, 0.0, 1.0])


def test_rejects_empty_reset() -> None:
    with pytest.raises(ValueError):
        personalized_pagerank(sp.csr_matrix((2, 2)), np.zeros(2))
