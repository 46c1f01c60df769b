"""FaissIndex specifics: agreement with the exact reference at scale, tombstones, files, GPU guard."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from memserve.vector import (
    ExactIndex,
    FaissIndex,
    IndexFileError,
    gpu_available,
    load_index,
    make_index,
)
from memserve.vector.faiss_index import tombstone_path
from tests.support.vectors import clustered


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray, ExactIndex]:
    x = clustered(20_200, 64, seed=0)
    vectors, queries = x[:20_000], x[20_000:]
    exact = ExactIndex(64)
    exact.add(np.arange(20_000), vectors)
    return vectors, queries, exact


def recall_at_10(got: list, want: list) -> float:
    return float(np.mean([len(set(g.ids) & set(w.ids)) / 10 for g, w in zip(got, want, strict=True)]))


def test_flat_equals_exact_and_hnsw_recall(corpus: tuple[np.ndarray, np.ndarray, ExactIndex]) -> None:
    vectors, queries, exact = corpus
    want = exact.search(queries, 10)
    flat = make_index("flat", 64)
    flat.add(np.arange(20_000), vectors)
    for g, w in zip(flat.search(queries, 10), want, strict=True):
        np.testing.assert_array_equal(g.ids, w.ids)
    hnsw = make_index("hnsw", 64)
    hnsw.add(np.arange(20_000), vectors)
    assert hnsw.kind == "hnsw"
    assert recall_at_10(hnsw.search(queries, 10), want) >= 0.95
    # A 10% filter goes through the HNSW IDSelector path (above exact_filter_max) and must stay accurate.
    allowed = np.arange(0, 20_000, 10)
    assert recall_at_10(hnsw.search(queries, 10, allowed=allowed), exact.search(queries, 10, allowed=allowed)) >= 0.95


def test_tombstones_filter_then_compact() -> None:
    x = clustered(100, 16, seed=1, clusters=5)
    index = FaissIndex(16, hnsw_threshold=0, compact_fraction=0.2)
    index.add(np.arange(100), x)
    index.remove(np.arange(20))
    assert index.tombstones == 20 and len(index) == 80  # exactly 20%: not yet over the fraction
    for hits in index.search(x[:20], 10):
        assert hits.ids.size == 10 and hits.ids.min() >= 20  # over-fetched past the tombstones
    index.remove(np.array([20]))
    assert index.tombstones == 0 and len(index) == 79 and index.kind == "hnsw"
    np.testing.assert_array_equal(index.ids(), np.arange(21, 100))
    (hits,) = index.search(x[50], 1)
    assert hits.ids.tolist() == [50]


def test_tombstones_survive_save_load(tmp_path: Path) -> None:
    x = clustered(200, 16, seed=2, clusters=5)
    index = make_index("hnsw", 16)
    index.add(np.arange(200), x)
    index.remove(np.arange(0, 30))
    index.add(np.array([5]), x[5:6])  # a tombstoned id re-added: two slots, one alive
    path = tmp_path / "ns.faiss"
    index.save(path)
    loaded = load_index(path)
    assert isinstance(loaded, FaissIndex) and loaded.tombstones == 30 and len(loaded) == 171
    for hits in loaded.search(x[:30], 10):
        assert not set(hits.ids.tolist()) & set(range(30)) - {5}
        assert np.sum(hits.ids == 5) <= 1


def test_stale_tombstone_file_is_detected(tmp_path: Path) -> None:
    x = clustered(50, 16, seed=3, clusters=5)
    index = make_index("hnsw", 16)
    index.add(np.arange(40), x[:40])
    index.remove(np.array([1]))
    path = tmp_path / "ns.faiss"
    index.save(path)
    shutil.copy(tombstone_path(path), tmp_path / "old")
    index.add(np.arange(40, 50), x[40:])
    index.save(path)
    shutil.copy(tmp_path / "old", tombstone_path(path))
    with pytest.raises(IndexFileError, match="does not belong"):
        load_index(path)
    tombstone_path(path).unlink()
    with pytest.raises(IndexFileError):
        load_index(path)


def test_unreadable_file_raises_index_file_error(tmp_path: Path) -> None:
    path = tmp_path / "junk"
    path.write_bytes(b"not an index at all")
    with pytest.raises(IndexFileError):
        load_index(path)
    with pytest.raises(IndexFileError):
        load_index(tmp_path / "missing")


def test_factory_kinds_and_settings() -> None:
    assert make_index("flat", 8, hnsw_threshold=5).kind == "flat"  # forced flat never migrates
    flat = make_index("flat", 8)
    flat.add(np.arange(300), clustered(300, 8, seed=4))
    assert flat.kind == "flat"
    with pytest.raises(ValueError, match="unknown vector index kind"):
        make_index("ivf", 8)
    with pytest.raises(ValueError, match="no settings"):
        make_index("exact", 8, ef_search=10)


def test_load_applies_search_settings(tmp_path: Path) -> None:
    index = make_index("hnsw", 8)
    index.add(np.arange(10), clustered(10, 8, seed=5))
    index.save(tmp_path / "i")
    loaded = load_index(tmp_path / "i", ef_search=200)
    assert isinstance(loaded, FaissIndex) and loaded.ef_search == 200


@pytest.mark.skipif(gpu_available(), reason="checks the CPU-only guard")
def test_gpu_guard_without_gpu() -> None:
    assert FaissIndex(8).gpu is False
    with pytest.raises(ValueError, match="GPU"):
        FaissIndex(8, use_gpu=True)


# -- migration to HNSW off the owner's lock --------------------------------------------------------------------

def test_background_migration_replays_changes_and_keeps_every_id(
        corpus: tuple[np.ndarray, np.ndarray, ExactIndex]) -> None:
    """``migrate_inline=False``: past the threshold the index stays flat (exact) until the owner installs an
    HNSW build; adds, removes and upserts made while the build ran are replayed, none lost or resurrected."""
    vectors, queries, _ = corpus
    index = FaissIndex(64, hnsw_threshold=10_000, migrate_inline=False)
    index.add(np.arange(15_000), vectors[:15_000])
    assert index.kind == "flat" and index.migration_due()
    job = index.migration_job()
    # Changes while the graph builds: new ids, removals, and upserts of copied ids with another vector.
    index.add(np.arange(15_000, 20_000), vectors[15_000:])
    index.remove(np.arange(0, 1_000))
    index.add(np.arange(1_000, 1_100), vectors[5_000:5_100])
    flat_answers = index.search(queries, 10)
    store = job.run()
    assert index.kind == "flat"  # the build alone changes nothing
    assert index.install_migration(job, store)
    assert index.kind == "hnsw" and not index.migration_due()
    want_ids = np.arange(1_000, 20_000)
    np.testing.assert_array_equal(index.ids(), want_ids)
    exact = ExactIndex(64)
    exact.add(np.arange(1_000, 20_000), np.concatenate([vectors[5_000:5_100], vectors[1_100:]]))
    got = index.search(queries, 10)
    assert recall_at_10(got, exact.search(queries, 10)) >= 0.95
    for g, w in zip(flat_answers, exact.search(queries, 10), strict=True):  # flat was exact meanwhile (ties: same scores)
        np.testing.assert_allclose(g.scores, w.scores, rtol=1e-5)
    assert not set(np.concatenate([h.ids for h in got]).tolist()) & set(range(1_000))
    # An upserted id is found by its new vector, not its old one.
    hit = index.search(vectors[5_000:5_001], 1)[0]
    assert hit.ids[0] in (1_000, 5_000)  # the same vector is stored under both ids
    # A second install without a job is refused; so is one onto an HNSW index.
    assert not index.install_migration(job, job.run())


def test_inline_migration_is_still_the_default() -> None:
    x = clustered(300, 16, seed=3, clusters=5)
    index = FaissIndex(16, hnsw_threshold=200)
    index.add(np.arange(300), x)
    assert index.kind == "hnsw"


def test_clone_during_a_migration_carries_no_job() -> None:
    x = clustered(300, 16, seed=4, clusters=5)
    index = FaissIndex(16, hnsw_threshold=200, migrate_inline=False)
    index.add(np.arange(300), x)
    job = index.migration_job()
    twin = index.clone()
    assert not twin.install_migration(job, job.run())
    assert index.install_migration(job, job.run())


def test_hnsw_score_at_rank_estimate_lands_near_the_rank() -> None:
    """Past the sample size HNSW estimates: the estimate's true rank among the live (allowed) vectors stays
    within 25% of the rank asked for, and the sample follows rebuilds, deletes and growth."""
    n, dim = 20_000, 32
    data = clustered(n + 10_000, dim, seed=11)
    index = make_index("hnsw", dim)
    index.add(np.arange(n), data[:n])
    queries = data[n: n + 10]

    def true_rank(vectors: np.ndarray, query: np.ndarray, score: float | None) -> int:
        assert score is not None
        return int(np.count_nonzero(vectors @ query >= score - 1e-6))

    for q in queries:
        for rank in (1000, 5000):
            assert 0.75 * rank <= true_rank(data[:n], q, index.score_at_rank(q, rank)) <= 1.25 * rank
    allowed = np.arange(0, n, 2)  # the allowed half: rank 1000 of 10,000
    for q in queries[:3]:
        assert 750 <= true_rank(data[allowed], q, index.score_at_rank(q, 1000, allowed)) <= 1250
    index.remove(np.arange(n // 2))  # half deleted (then compacted): ranks count the live half only
    index.add(np.arange(n, n + 10_000), data[n:])  # and grown by 10,000 new vectors
    live = data[n // 2:]
    for q in queries[:3]:
        assert 750 <= true_rank(live, q, index.score_at_rank(q, 1000)) <= 1250
