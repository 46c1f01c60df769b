"""Local PPR (forward push) against power iteration and networkx: error within its reported bound, the bound
within damping × epsilon × volume, top-20 agreement, and the same GRAPH/HYBRID rankings on a knowledge graph."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from memserve.domain.extraction import ExtractionResult, Triple
from memserve.embed import make_embedder
from memserve.engine.graph_retrieval import (
    GraphParams,
    HybridParams,
    graph_retrieve,
    hybrid_retrieve,
)
from memserve.graph import KnowledgeGraph
from memserve.graph.ppr import (
    PPRMatrix,
    personalized_pagerank,
    personalized_pagerank_networkx,
)
from memserve.graph.ppr_push import push_ppr


def random_graph(n: int, avg_degree: float, seed: int, isolated: int = 0) -> sp.csr_matrix:
    """Weighted, symmetric, with a power-law-ish degree spread and ``isolated`` nodes without any edge."""
    rng = np.random.default_rng(seed)
    m = int(n * avg_degree / 2)
    live = n - isolated
    u = rng.integers(0, live, m)
    v = (rng.pareto(1.5, m) * 3).astype(np.int64) % live  # hubs at low ids
    keep = u != v
    w = rng.random(keep.sum()) + 0.1
    a = sp.coo_matrix((w, (u[keep], v[keep])), shape=(n, n)).tocsr()
    return (a + a.T).tocsr()


def seeds(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 100)
    nodes = rng.choice(n, k, replace=False)
    return nodes, rng.random(k) + 0.01


def dense_reset(n: int, nodes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    r = np.zeros(n)
    np.add.at(r, nodes, weights)
    return r


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("epsilon", [1e-4, 1e-6])
def test_push_error_is_within_its_bound_on_random_graphs(seed: int, epsilon: float) -> None:
    n, damping = 3000, 0.5
    a = random_graph(n, 6, seed, isolated=40)
    m = PPRMatrix.from_adjacency(a)
    nodes, weights = seeds(n, 8, seed)
    nodes[0] = n - 1  # one seed on an isolated node: its walker jumps back along the reset vector
    exact = personalized_pagerank(m, dense_reset(n, nodes, weights), damping, tol=1e-13)
    local = push_ppr(m, nodes, weights, damping, epsilon=epsilon)
    estimate = local.dense(n)
    assert len(set(local.nodes.tolist())) == len(local.nodes)
    assert np.all(estimate <= exact + 1e-12)  # push never overshoots
    err = np.abs(exact - estimate).sum()
    assert err == pytest.approx(local.l1_error, abs=1e-9)  # the reported error is the real one
    strength = np.asarray(a.sum(axis=1)).ravel()
    volume = np.where(strength > 0, strength, 1.0)[local.nodes].sum()
    assert local.l1_error <= damping * epsilon * volume + 1e-12  # the documented ACL bound


@pytest.mark.parametrize("seed", range(3))
def test_push_top20_matches_power_and_networkx(seed: int) -> None:
    n = 2000
    a = random_graph(n, 5, seed)
    nodes, weights = seeds(n, 5, seed)
    reset = dense_reset(n, nodes, weights)
    reference = personalized_pagerank_networkx(a, reset, 0.5)
    power = personalized_pagerank(PPRMatrix.from_adjacency(a), reset, 0.5)
    push = push_ppr(PPRMatrix.from_adjacency(a, dtype=np.float32), nodes, weights, 0.5, epsilon=1e-7).dense(n)
    assert np.abs(push - reference).sum() < 5e-3
    top = set(np.argsort(-reference)[:20].tolist())
    assert len(top & set(np.argsort(-push)[:20].tolist())) >= 19
    assert len(top & set(np.argsort(-power)[:20].tolist())) == 20


def test_push_touches_only_the_seed_neighbourhood() -> None:
    # Two components: mass seeded in one never reaches (or costs work in) the other.
    a = sp.block_diag([random_graph(500, 4, 1), random_graph(5000, 4, 2)]).tocsr()
    local = push_ppr(PPRMatrix.from_adjacency(a), np.array([3, 7]), np.array([1.0, 2.0]), epsilon=1e-6)
    assert local.nodes.max() < 500
    assert local.values.sum() + local.l1_error == pytest.approx(1.0)


def test_push_input_checks() -> None:
    m = PPRMatrix.from_adjacency(random_graph(10, 2, 0))
    with pytest.raises(ValueError, match="no positive mass"):
        push_ppr(m, np.array([1]), np.array([0.0]))
    with pytest.raises(ValueError, match="outside"):
        push_ppr(m, np.array([10]), np.array([1.0]))
    with pytest.raises(ValueError, match="epsilon"):
        push_ppr(m, np.array([1]), np.array([1.0]), epsilon=0.0)
    # NaN / negative weights are dropped and repeats summed, as the power path does
    out = push_ppr(m, np.array([1, 1, 2]), np.array([0.5, 0.5, np.nan]), epsilon=1e-9).dense(10)
    ref = personalized_pagerank(m, np.eye(10)[1], 0.5)
    assert np.abs(out - ref).sum() < 1e-6


# ----------------------------------------------------------------------------- on a knowledge graph

EMBED = make_embedder("hash:64")


def synthetic_kg(passages: int, seed: int) -> tuple[KnowledgeGraph, np.ndarray]:
    """Passages of 3 triples over a Zipf-ish entity vocabulary: hubs, bridges, and many specific phrases."""
    rng = np.random.default_rng(seed)
    vocab = [f"entity {i}" for i in range(passages * 2)]
    items = []
    for seq in range(passages):
        picks = (rng.zipf(1.6, 6) - 1) % len(vocab)
        local = rng.integers(0, len(vocab), 2)
        ents = [vocab[i] for i in list(picks) + list(local)]
        triples = tuple(Triple(ents[2 * j], f"rel {j}", ents[2 * j + 1]) for j in range(3))
        items.append((seq, ExtractionResult((), triples)))
    kg = KnowledgeGraph(64)
    kg.add_passages(items, EMBED.embed)
    return kg, rng.standard_normal((passages, 64)).astype(np.float32)


@pytest.mark.parametrize("seed", range(3))
def test_graph_and_hybrid_rankings_agree_between_push_and_power(seed: int) -> None:
    kg, pvecs = synthetic_kg(600, seed)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        q = rng.standard_normal(64).astype(np.float32)
        q /= np.linalg.norm(q)
        dense = dict(enumerate((pvecs @ q).tolist()))
        phrases = (f"entity {int(rng.integers(0, 50))}",)
        common: dict = {"top_k": 10, "query_entity_weight": 3.0}
        power = graph_retrieve(q, kg, dense, GraphParams(ppr_method="power", **common), query_phrases=phrases)
        push = graph_retrieve(q, kg, dense, GraphParams(ppr_method="push", ppr_epsilon=1e-7, **common),
                              query_phrases=phrases)
        assert power.mode == push.mode == "graph"
        assert [h.seq for h in push.hits] == [h.seq for h in power.hits]
        assert [h.score for h in push.hits] == pytest.approx([h.score for h in power.hits], rel=1e-3)
        hp = hybrid_retrieve(q, kg, dense, HybridParams(graph=GraphParams(ppr_method="power", **common)),
                             query_phrases=phrases)
        hq = hybrid_retrieve(q, kg, dense, HybridParams(graph=GraphParams(ppr_epsilon=1e-7, **common)),
                             query_phrases=phrases)
        assert [h.seq for h in hq.hits] == [h.seq for h in hp.hits]


def test_push_skips_passages_removed_since_the_installed_matrix() -> None:
    kg, pvecs = synthetic_kg(200, 7)
    assert kg.install_matrix(kg.build_matrix())
    q = pvecs[5] / np.linalg.norm(pvecs[5])
    dense = dict(enumerate((pvecs @ q).tolist()))
    before = graph_retrieve(q, kg, dense, GraphParams(top_k=5), query_phrases=("entity 0",))
    gone = before.hits[0].seq
    kg.remove_passages([gone])  # the installed matrix is now stale and still holds `gone`
    assert not kg.matrix_current()
    dense.pop(gone)  # the dense index has dropped it too; the stale matrix still holds it as a node
    assert gone in kg.matrix().passage_node
    for method in ("push", "power"):
        after = graph_retrieve(q, kg, dense, GraphParams(top_k=200, ppr_method=method), query_phrases=("entity 0",))
        assert len(after.hits) > 20 and gone not in {h.seq for h in after.hits}


def test_has_passages_matches_has_passage() -> None:
    kg, _ = synthetic_kg(50, 3)
    kg.remove_passages([3, 10, 49])
    seqs = np.arange(-2, 60)
    assert kg.has_passages(seqs).tolist() == [kg.has_passage(int(s)) for s in seqs]


def test_reused_buffers_give_the_same_answers_across_graphs_and_threads() -> None:
    import threading

    small = PPRMatrix.from_adjacency(random_graph(300, 4, 5))
    big = PPRMatrix.from_adjacency(random_graph(3000, 4, 6))
    cases = [(small, np.array([1, 2]), np.array([1.0, 1.0])), (big, np.array([7]), np.array([1.0])),
             (small, np.array([5]), np.array([1.0])), (big, np.array([9, 2999]), np.array([0.5, 2.0]))]
    fresh = [personalized_pagerank(m, dense_reset(m.n, s, w), 0.5, tol=1e-13) for m, s, w in cases]
    errors: list[str] = []

    def run() -> None:
        for _ in range(3):
            for (m, s, w), ref in zip(cases, fresh, strict=True):
                got = push_ppr(m, s, w, epsilon=1e-9).dense(m.n)
                if np.abs(got - ref).sum() > 1e-5:
                    errors.append("mismatch")

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run()
    assert not errors
