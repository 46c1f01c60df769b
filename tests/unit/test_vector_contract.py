"""Contract every VectorIndex implementation must honour, run over all of them against the same data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from memserve.vector import ExactIndex, Hits, VectorIndex, load_index, make_index

DIM = 16
N = 300

# FAISS kinds get a small exact_filter_max so `allowed` exercises both the exact and the IDSelector paths.
IMPLEMENTATIONS: dict[str, Callable[[], VectorIndex]] = {
    "exact": lambda: make_index("exact", DIM),
    "flat": lambda: make_index("flat", DIM, exact_filter_max=20),
    "hnsw": lambda: make_index("hnsw", DIM, exact_filter_max=20),
    "auto-migrating": lambda: make_index("auto", DIM, hnsw_threshold=100, exact_filter_max=20),
}


def unit_vectors(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def index(request: pytest.FixtureRequest) -> VectorIndex:
    return IMPLEMENTATIONS[request.param]()


@pytest.fixture
def data() -> np.ndarray:
    return unit_vectors(N, seed=1)


@pytest.fixture
def filled(index: VectorIndex, data: np.ndarray) -> VectorIndex:
    index.add(np.arange(N, dtype=np.int64) * 10, data)  # ids are not positions
    return index


def reference(vectors: np.ndarray, ids: np.ndarray) -> ExactIndex:
    ref = ExactIndex(DIM)
    ref.add(ids, vectors)
    return ref


def assert_same(got: list[Hits], want: list[Hits]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.ids, w.ids)
        np.testing.assert_allclose(g.scores, w.scores, atol=1e-5)


def test_is_a_vector_index(filled: VectorIndex) -> None:
    assert isinstance(filled, VectorIndex)
    assert filled.dim == DIM and len(filled) == N
    assert filled.kind in {"exact-numpy", "flat", "hnsw"}
    assert filled.nbytes() >= N * DIM * 4
    np.testing.assert_array_equal(filled.ids(), np.arange(N) * 10)


def test_auto_migrates_past_threshold(filled: VectorIndex, request: pytest.FixtureRequest) -> None:
    if "auto" in request.node.callspec.id:
        assert filled.kind == "hnsw"


def test_search_matches_brute_force(filled: VectorIndex, data: np.ndarray) -> None:
    queries = unit_vectors(20, seed=2)
    got = filled.search(queries, 10)
    want = reference(data, np.arange(N) * 10).search(queries, 10)
    assert_same(got, want)  # 300 vectors: HNSW with efSearch 64 is exact here
    for hits in got:
        assert hits.ids.dtype == np.int64 and hits.scores.dtype == np.float32
        assert np.all(np.diff(hits.scores) <= 0)


def test_single_query_gives_one_row(filled: VectorIndex, data: np.ndarray) -> None:
    (hits,) = filled.search(data[7], 3)
    assert hits.ids[0] == 70 and hits.scores[0] == pytest.approx(1.0, abs=1e-5)


def test_fewer_results_than_k_are_not_padded(index: VectorIndex, data: np.ndarray) -> None:
    index.add(np.array([1, 2, 3]), data[:3])
    (hits,) = index.search(data[0], 10)
    assert sorted(hits.ids.tolist()) == [1, 2, 3]


def test_removed_ids_never_returned(filled: VectorIndex, data: np.ndarray) -> None:
    removed = np.arange(0, N, 2) * 10
    assert filled.remove(np.concatenate([removed, [-5, 999_999]])) == removed.size  # unknown ids ignored
    assert filled.remove(removed[:3]) == 0
    assert len(filled) == N - removed.size
    np.testing.assert_array_equal(filled.ids(), np.arange(1, N, 2) * 10)
    got = filled.search(data[:50], 10)  # half the queries are removed vectors themselves
    want = reference(data[1::2], np.arange(1, N, 2) * 10).search(data[:50], 10)
    assert_same(got, want)


def test_readd_replaces_vector(filled: VectorIndex, data: np.ndarray) -> None:
    new = unit_vectors(1, seed=9)
    filled.add(np.array([50]), new)  # already present: upsert
    assert len(filled) == N
    assert np.sum(filled.ids() == 50) == 1
    (hits,) = filled.search(new[0], 1)
    assert hits.ids.tolist() == [50] and hits.scores[0] == pytest.approx(1.0, abs=1e-5)
    (hits,) = filled.search(data[5], 5)
    assert 50 not in hits.ids.tolist() or hits.scores[hits.ids == 50][0] < 0.999
    filled.remove(np.array([60]))
    filled.add(np.array([60]), data[6:7])  # removed, then added again
    (hits,) = filled.search(data[6], 3)
    assert hits.ids[0] == 60 and np.sum(hits.ids == 60) == 1


def test_add_rejects_duplicate_ids_in_one_call(index: VectorIndex, data: np.ndarray) -> None:
    with pytest.raises(ValueError, match="unique"):
        index.add(np.array([1, 1]), data[:2])


@pytest.mark.parametrize("n_allowed", [5, 100])
def test_allowed_filter_respected(filled: VectorIndex, data: np.ndarray, n_allowed: int) -> None:
    rng = np.random.default_rng(3)
    allowed = rng.choice(N, n_allowed, replace=False) * 10
    filled.remove(allowed[:2])  # removed and unknown ids inside `allowed` are ignored
    queries = unit_vectors(10, seed=4)
    got = filled.search(queries, 8, allowed=np.concatenate([allowed, [123_456]]))
    live = allowed[2:]
    want = reference(data[live // 10], live).search(queries, 8)
    assert_same(got, want)


def test_empty_allowed_returns_nothing(filled: VectorIndex, data: np.ndarray) -> None:
    hits = filled.search(data[:2], 5, allowed=np.array([], dtype=np.int64))
    assert [h.ids.size for h in hits] == [0, 0]


def test_empty_index_returns_nothing(index: VectorIndex, data: np.ndarray) -> None:
    hits = index.search(data[:3], 5)
    assert len(hits) == 3 and all(h.ids.size == 0 and h.scores.size == 0 for h in hits)
    index.add(np.array([1]), data[:1])
    index.remove(np.array([1]))
    assert index.search(data[0], 5)[0].ids.size == 0


def test_dim_mismatch_raises(filled: VectorIndex) -> None:
    with pytest.raises(ValueError, match=f"dim {DIM}"):
        filled.add(np.array([1]), np.ones((1, DIM + 1), np.float32))
    with pytest.raises(ValueError, match=f"dim {DIM}"):
        filled.search(np.ones(DIM - 1, np.float32), 3)
    with pytest.raises(ValueError, match="k must be"):
        filled.search(np.ones(DIM, np.float32), 0)


def _nth_best(vectors: np.ndarray, query: np.ndarray, rank: int) -> float:
    scores = np.sort(vectors @ query)[::-1]
    return float(scores[min(rank, scores.size) - 1])


def test_score_at_rank_is_exact_below_the_sample_size(filled: VectorIndex, data: np.ndarray) -> None:
    """Under ~4,000 vectors every implementation reads every score (an HNSW index samples all of them)."""
    query = unit_vectors(1, seed=6)[0]
    for rank in (1, 7, 150, N, N + 50):  # past the last id: the lowest score
        assert filled.score_at_rank(query, rank) == pytest.approx(_nth_best(data, query, rank), abs=1e-5)
    filled.remove(np.arange(0, N, 2) * 10)  # removed ids no longer count
    assert filled.score_at_rank(query, 10) == pytest.approx(_nth_best(data[1::2], query, 10), abs=1e-5)
    allowed = np.concatenate([np.arange(1, 200, 4) * 10, np.arange(0, 60, 2) * 10, [123_456]])
    live = np.arange(1, 200, 4)  # the removed and unknown allowed ids are ignored
    assert filled.score_at_rank(query, 5, allowed) == pytest.approx(_nth_best(data[live], query, 5), abs=1e-5)
    assert filled.score_at_rank(query, 5, np.array([], np.int64)) is None


def test_score_at_rank_rejects_bad_queries(index: VectorIndex, data: np.ndarray) -> None:
    assert index.score_at_rank(data[0], 3) is None  # empty index
    index.add(np.array([1, 2]), data[:2])
    with pytest.raises(ValueError, match="k must be"):
        index.score_at_rank(data[0], 0)
    with pytest.raises(ValueError, match="one query vector"):
        index.score_at_rank(data[:2], 3)
    with pytest.raises(ValueError, match=f"dim {DIM}"):
        index.score_at_rank(np.ones(DIM + 1, np.float32), 3)


def test_save_load_round_trip(filled: VectorIndex, data: np.ndarray, tmp_path: Path) -> None:
    filled.remove(np.arange(0, 40) * 10)
    path = tmp_path / "ns.index"
    filled.save(path)
    loaded = load_index(path)
    assert type(loaded) is type(filled) and loaded.kind == filled.kind
    assert len(loaded) == len(filled)
    np.testing.assert_array_equal(loaded.ids(), filled.ids())
    queries = np.concatenate([data[:50], unit_vectors(10, seed=5)])
    assert_same(loaded.search(queries, 10), filled.search(queries, 10))
    allowed = np.arange(0, N, 3) * 10
    assert_same(loaded.search(queries, 10, allowed=allowed), filled.search(queries, 10, allowed=allowed))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_clone_is_independent_and_saves_like_the_original(filled: VectorIndex, data: np.ndarray,
                                                          tmp_path: Path) -> None:
    """The registry snapshots a clone outside the namespace lock: later changes must not leak into it."""
    ids = np.arange(N, dtype=np.int64) * 10
    twin = filled.clone()
    filled.remove(ids[:50])
    filled.add(np.array([99_999], dtype=np.int64), data[:1])
    assert len(twin) == N and np.array_equal(np.sort(twin.ids()), ids)
    twin.remove(ids[50:60])
    assert len(filled) == N - 50 + 1  # and the other way round
    twin.save(tmp_path / "twin.idx")
    loaded = load_index(tmp_path / "twin.idx")
    hits = loaded.search(data[70], 1)[0]
    assert hits.ids[0] == ids[70] and len(loaded) == N - 10
