"""Flat -> HNSW switch of a namespace's index in the IndexRegistry: built in the background, swapped in
without losing a vector, while searches and writes go on (real FAISS and DuckDB; the build is held by a gate,
never by a sleep)."""

from __future__ import annotations

import numpy as np
import pytest

from memserve.engine.index_registry import IndexRegistry
from memserve.store.db import Database
from memserve.vector import ExactIndex, faiss_index, load_index
from tests.support.gates import LONG, Gate, run_in_thread
from tests.unit.test_vector_faiss import clustered, recall_at_10


@pytest.fixture()
def registry(tmp_path):
    db = Database(tmp_path / "m.duckdb")
    db.migrate()
    reg = IndexRegistry(db, tmp_path / "indexes", dim=32, kind="auto", hnsw_threshold=2_000, use_gpu="false")
    yield reg
    reg.wait_migrations(LONG)
    db.close()


def test_switch_to_hnsw_keeps_serving_and_keeps_every_id(registry, monkeypatch) -> None:
    gate = Gate()
    real_run = faiss_index.MigrationJob.run

    def held_run(job):
        gate.pass_through()
        return real_run(job)

    monkeypatch.setattr(faiss_index.MigrationJob, "run", held_run)
    x = clustered(4_100, 32, seed=7, clusters=40)
    vectors, queries = x[:4_000], x[4_000:]
    registry.add("ns", np.arange(2_500), vectors[:2_500])  # past the threshold: a build starts
    gate.wait_entered()
    # While the HNSW graph builds: searches answer (exactly, from the flat index) and writes land.
    with registry.reading("ns") as index:
        assert index.kind == "flat"
        assert len(index.search(queries[:5], 10)[0].ids) == 10
    _, write = run_in_thread(lambda: registry.add("ns", np.arange(2_500, 4_000), vectors[2_500:]))
    assert write["done"].wait(LONG) and "error" not in write
    registry.remove("ns", np.arange(0, 100))
    gate.open()
    registry.wait_migrations(LONG)
    with registry.reading("ns") as index:
        assert index.kind == "hnsw"
        np.testing.assert_array_equal(index.ids(), np.arange(100, 4_000))
        exact = ExactIndex(32)
        exact.add(np.arange(100, 4_000), vectors[100:])
        assert recall_at_10(index.search(queries, 10), exact.search(queries, 10)) >= 0.95
    # The switch is persisted like any change: the next snapshot writes the HNSW index.
    assert registry.snapshot() == 1
    saved = load_index(registry._path("ns"))
    assert saved.kind == "hnsw"
    np.testing.assert_array_equal(saved.ids(), np.arange(100, 4_000))


def test_a_dropped_namespace_discards_its_build(registry, monkeypatch) -> None:
    gate = Gate()
    real_run = faiss_index.MigrationJob.run
    monkeypatch.setattr(faiss_index.MigrationJob, "run", lambda job: (gate.pass_through(), real_run(job))[1])
    registry.add("ns", np.arange(2_500), clustered(2_500, 32, seed=8))
    gate.wait_entered()
    registry.drop("ns")
    gate.open()
    registry.wait_migrations(LONG)
    assert registry.describe("ns") == (0, "none", 0)
