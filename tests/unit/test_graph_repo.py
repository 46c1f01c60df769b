from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from memserve.domain.graph import PersistedGraph
from memserve.graph import KnowledgeGraph, restore_graph
from memserve.store import graph_repo
from tests.unit.test_graph_kg import CORPUS, EMBED, build, er, snapshot

MIGRATIONS = Path(__file__).resolve().parents[2] / "memserve" / "store" / "migrations"


@pytest.fixture
def conn():
    c = duckdb.connect(":memory:")
    for name in ("0001_core.sql", "0002_graph.sql", "0006_graph_fact_ivf.sql", "0010_graph_phrase_ivf.sql"):
        c.execute((MIGRATIONS / name).read_text())
    yield c
    c.close()


def _load(conn: duckdb.DuckDBPyConnection, namespace: str, dim: int, **options: object) -> KnowledgeGraph:
    """What the engine does at start-up: the store reads rows, the graph package builds the graph."""
    return restore_graph(dim, graph_repo.load_graph_rows(conn, namespace, dim), **options)


def _same(a: KnowledgeGraph, b: KnowledgeGraph) -> None:
    assert snapshot(a) == snapshot(b)
    ids = sorted(a.phrases)
    np.testing.assert_array_equal(a.phrase_vectors(ids), b.phrase_vectors(ids))
    fids = sorted(a.facts)
    np.testing.assert_array_equal(a.fact_vectors(fids), b.fact_vectors(fids))


def test_the_store_returns_rows_and_the_graph_package_builds_the_graph(conn: duckdb.DuckDBPyConnection) -> None:
    kg = KnowledgeGraph(64, synonym_threshold=0.5)
    graph_repo.save_delta(conn, "ns", kg.add_passages(list(CORPUS.items()), EMBED.embed))
    rows = graph_repo.load_graph_rows(conn, "ns", 64)
    assert isinstance(rows, PersistedGraph) and rows.fact_ivf is None and rows.phrase_ivf is None
    assert sorted(rows.columns.phrase_ids.tolist()) == sorted(kg.phrases)
    assert rows.columns.phrase_vectors.shape == (len(kg.phrases), 64)
    assert sorted(rows.columns.fact_ids.tolist()) == sorted(kg.facts)
    _same(restore_graph(64, rows, synonym_threshold=0.5), kg)


def test_round_trip_through_deltas(conn: duckdb.DuckDBPyConnection) -> None:
    kg = KnowledgeGraph(64, synonym_threshold=0.5)
    items = list(CORPUS.items())
    for chunk in (items[:3], items[3:]):
        conn.execute("BEGIN")
        graph_repo.save_delta(conn, "ns", kg.add_passages(chunk, EMBED.embed))
        conn.execute("COMMIT")
    _same(_load(conn, "ns", 64, synonym_threshold=0.5), kg)

    graph_repo.save_delta(conn, "ns", kg.remove_passages([2]))
    graph_repo.save_delta(conn, "ns", kg.add_passages([(4, er(("Germany", "member of", "European Union")))],
                                                      EMBED.embed))
    loaded = _load(conn, "ns", 64, synonym_threshold=0.5)
    _same(loaded, kg)
    assert 6 in loaded.passages  # a passage without phrases survives the round trip


def test_namespaces_are_isolated_and_deletable(conn: duckdb.DuckDBPyConnection) -> None:
    graph_repo.save_delta(conn, "a", build([(1, CORPUS[1])]).add_passages([], EMBED.embed))
    kg_b = KnowledgeGraph(64, synonym_threshold=0.5)
    graph_repo.save_delta(conn, "b", kg_b.add_passages([(2, CORPUS[2])], EMBED.embed))
    kg_a = KnowledgeGraph(64, synonym_threshold=0.5)
    graph_repo.save_delta(conn, "a", kg_a.add_passages([(1, CORPUS[1])], EMBED.embed))
    graph_repo.delete_namespace_graph(conn, "a")
    assert not _load(conn, "a", 64).phrases
    _same(_load(conn, "b", 64, synonym_threshold=0.5), kg_b)


def test_extraction_jobs_resume_after_crash(conn: duckdb.DuckDBPyConnection) -> None:
    graph_repo.enqueue_jobs(conn, "ns", [3, 1, 2])
    assert graph_repo.claim_jobs(conn, "ns", 2) == [1, 2]
    # crash: jobs 1 and 2 are left running
    assert graph_repo.requeue_running(conn) == 2
    assert graph_repo.job_counts(conn, "ns") == {"pending": 3}
    claimed = graph_repo.claim_jobs(conn, "ns", 10)
    graph_repo.finish_jobs(conn, "ns", claimed[:2])
    graph_repo.fail_job(conn, "ns", claimed[2], "llm timeout", max_attempts=1)
    assert graph_repo.job_counts(conn, "ns") == {"done": 2, "failed": 1}


def _many_facts(n: int) -> list:
    return [(i, er((f"person {i}", "lives in", f"town {i % 17}"))) for i in range(1, n + 1)]


def test_load_graph_equals_live_graph_and_installs_its_matrix(conn: duckdb.DuckDBPyConnection) -> None:
    from tests.unit.test_graph_matrix import assert_matches_reference

    kg = KnowledgeGraph(64, synonym_threshold=0.5, max_synonyms=1)
    items = list(CORPUS.items())
    for chunk in (items[:3], items[3:]):
        graph_repo.save_delta(conn, "ns", kg.add_passages(chunk, EMBED.embed))
    graph_repo.save_delta(conn, "ns", kg.remove_passages([4]))
    loaded = _load(conn, "ns", 64, synonym_threshold=0.5, max_synonyms=1)
    _same(loaded, kg)
    assert loaded.matrix_current() and loaded.edge_count == kg.edge_count
    assert_matches_reference(loaded)
    live, back = kg.build_matrix(), loaded.matrix()
    assert (live.ppr.adjacency != back.ppr.adjacency).nnz == 0
    assert loaded.specific_phrase_density() == kg.specific_phrase_density()
    # The restored graph keeps changing like the live one.
    more = [(8, er(("Paris", "twinned with", "Rome")))]
    kg.add_passages(more, EMBED.embed)
    loaded.add_passages(more, EMBED.embed)
    _same(loaded, kg)
    assert_matches_reference(loaded)
    kg.remove_passages([1, 8])
    loaded.remove_passages([1, 8])
    _same(loaded, kg)
    assert_matches_reference(loaded)
    assert len(loaded.facts) == len(kg.facts) and len(loaded.phrases) == len(kg.phrases)


def test_fact_ivf_is_trained_off_lock_persisted_and_reused(conn: duckdb.DuckDBPyConnection,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from memserve.graph.embedding_index import IVFJob

    opts = {"fact_index_exact_max": 50, "train_fact_ivf_inline": False}
    kg = KnowledgeGraph(64, **opts)
    graph_repo.save_delta(conn, "ns", kg.add_passages(_many_facts(100), EMBED.embed))
    assert kg.fact_index_needs_training() and not kg.fact_search_approximate  # never trained under the lock
    job = kg.fact_ivf_job()
    assert job is not None
    trained = job.run()  # no lock
    # Changes between the snapshot and the install are caught up, not lost.
    graph_repo.save_delta(conn, "ns", kg.add_passages(_many_facts(140)[100:], EMBED.embed))
    graph_repo.save_delta(conn, "ns", kg.remove_passages([1, 2]))
    assert kg.install_fact_ivf(trained)
    assert kg.fact_search_approximate and not kg.fact_index_needs_training()
    graph_repo.save_fact_ivf(conn, "ns", trained.blob, trained.built_at)
    q = EMBED.embed(["person 120 lives in town 1"])[0]
    assert kg.search_facts(q, 1)[0][0].text == "person 120 lives in town 1"
    assert all(f.text != "person 1 lives in town 1" for f, _ in kg.search_facts(q, 200))

    def no_kmeans(self: IVFJob) -> None:
        raise AssertionError("start-up trained k-means")

    monkeypatch.setattr(IVFJob, "run", no_kmeans)
    loaded = _load(conn, "ns", 64, **opts)
    assert loaded.fact_search_approximate and not loaded.fact_index_needs_training()
    assert [f.fact_id for f, _ in loaded.search_facts(q, 5)] == [f.fact_id for f, _ in kg.search_facts(q, 5)]


def test_unusable_fact_ivf_blob_falls_back_to_exact_search(conn: duckdb.DuckDBPyConnection) -> None:
    opts = {"fact_index_exact_max": 50, "train_fact_ivf_inline": False}
    kg = KnowledgeGraph(64, **opts)
    graph_repo.save_delta(conn, "ns", kg.add_passages(_many_facts(100), EMBED.embed))
    graph_repo.save_fact_ivf(conn, "ns", b"not a faiss index", 100)
    loaded = _load(conn, "ns", 64, **opts)
    assert not loaded.fact_search_approximate and loaded.fact_index_needs_training()
    q = EMBED.embed(["person 7 lives in town 7"])[0]
    assert loaded.search_facts(q, 1)[0][0].text == "person 7 lives in town 7"
    graph_repo.delete_namespace_graph(conn, "ns")
    assert graph_repo.load_fact_ivf(conn, "ns") is None
