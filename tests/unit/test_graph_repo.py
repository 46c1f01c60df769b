from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from memserve.store import graph_repo
from tests.unit.test_graph_kg import CORPUS, EMBED, build, er, snapshot

from memserve.graph import KnowledgeGraph

MIGRATIONS = Path(__file__).resolve().parents[2] / "memserve" / "store" / "migrations"


@pytest.fixture
def conn():
    c = duckdb.connect(":memory:")
    for name in ("0001_core.sql", "0002_graph.sql"):
        c.execute((MIGRATIONS / name).read_text())
    yield c
    c.close()


def _same(a: KnowledgeGraph, b: KnowledgeGraph) -> None:
    assert snapshot(a) == snapshot(b)
    ids = sorted(a.phrases)
    np.testing.assert_array_equal(a.phrase_vectors(ids), b.phrase_vectors(ids))
    fids = sorted(a.facts)
    np.testing.assert_array_equal(a.fact_vectors(fids), b.fact_vectors(fids))


def test_round_trip_through_deltas(conn: duckdb.DuckDBPyConnection) -> None:
    kg = KnowledgeGraph(64, synonym_threshold=0.5)
    items = list(CORPUS.items())
    for chunk in (items[:3], items[3:]):
        conn.execute("BEGIN")
        graph_repo.save_delta(conn, "ns", kg.add_passages(chunk, EMBED.embed))
        conn.execute("COMMIT")
    _same(graph_repo.load_graph(conn, "ns", 64, synonym_threshold=0.5), kg)

    graph_repo.save_delta(conn, "ns", kg.remove_passages([2]))
    graph_repo.save_delta(conn, "ns", kg.add_passages([(4, er(("Germany", "member of", "European Union")))],
                                                      EMBED.embed))
    loaded = graph_repo.load_graph(conn, "ns", 64, synonym_threshold=0.5)
    _same(loaded, kg)
    assert 6 in loaded.passages  # a passage without phrases survives the round trip


def test_namespaces_are_isolated_and_deletable(conn: duckdb.DuckDBPyConnection) -> None:
    graph_repo.save_delta(conn, "a", build([(1, CORPUS[1])]).add_passages([], EMBED.embed))
    kg_b = KnowledgeGraph(64, synonym_threshold=0.5)
    graph_repo.save_delta(conn, "b", kg_b.add_passages([(2, CORPUS[2])], EMBED.embed))
    kg_a = KnowledgeGraph(64, synonym_threshold=0.5)
    graph_repo.save_delta(conn, "a", kg_a.add_passages([(1, CORPUS[1])], EMBED.embed))
    graph_repo.delete_namespace_graph(conn, "a")
    assert not graph_repo.load_graph(conn, "a", 64).phrases
    _same(graph_repo.load_graph(conn, "b", 64, synonym_threshold=0.5), kg_b)


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
