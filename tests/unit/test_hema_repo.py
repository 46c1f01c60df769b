from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from memserve.domain.clock import FakeClock
from memserve.engine.pruning import PruneDecision, PrunePolicy, select_for_pruning
from memserve.engine.summary import ExtractiveSummariser, SummaryState, fold
from memserve.store import hema_repo

MIGRATIONS = Path(__file__).resolve().parents[2] / "memserve" / "store" / "migrations"


@pytest.fixture
def conn():
    c = duckdb.connect(":memory:")
    for name in ("0001_core.sql", "0003_hema.sql"):
        c.execute((MIGRATIONS / name).read_text())
    yield c
    c.close()


@pytest.fixture
def clock():
    return FakeClock()


def add_episode(conn, clock, ns, seq, *, session="s1", text="hello", importance=0.5, pinned=False, age_days=0.0):
    conn.execute(
        "INSERT INTO episodes VALUES (?, ?, ?, ?, 'user', ?, NULL, '{}', ?, ?, ?, ?, [0.0])",
        [seq, ns, f"id{seq}", session, text, importance, pinned, clock.now() - timedelta(days=age_days), len(text.encode())],
    )


def test_summary_state_round_trip_and_default(conn, clock):
    assert hema_repo.load_summary_state(conn, "ns", "s1") == SummaryState("ns", "s1")
    state = SummaryState(
        "ns", "s1", text="Alice plans Kyoto.", episode_count=7, last_seq=42, segments_summary="Trip.", segment_count=1,
        open_first_seq=40, open_count=2, open_notes=("a", "東京 🎉"), update_time=clock.now(),
    )
    hema_repo.save_summary_state(conn, state)
    assert hema_repo.load_summary_state(conn, "ns", "s1") == state
    hema_repo.save_summary_state(conn, SummaryState("ns", "s1", text="v2", last_seq=43, update_time=clock.now()))
    assert hema_repo.load_summary_state(conn, "ns", "s1").text == "v2"
    assert conn.execute("SELECT count(*) FROM hema_summaries").fetchone()[0] == 1


def test_worker_resumes_from_last_seq(conn, clock):
    # Two namespaces, interleaved global seqs; the namespace-level summary reads every session.
    for seq in range(1, 31):
        add_episode(conn, clock, "ns" if seq % 3 else "other", seq, session="a" if seq % 2 else "b", text=f"Kyoto turn {seq}.")
    assert hema_repo.pending_summaries(conn, "ns") == [("ns", ""), ("ns", "a"), ("ns", "b")]

    summariser = ExtractiveSummariser()
    # Crash-style: fold in small batches, persisting after each, reloading from the DB every time.
    while True:
        state = hema_repo.load_summary_state(conn, "ns", "")
        batch = hema_repo.load_unfolded_episodes(conn, "ns", "", state.last_seq, limit=4)
        if not batch:
            break
        result = fold(state, batch, summariser, now=clock.now(), segment_size=5,
                      segments=hema_repo.load_segments(conn, "ns", ""))
        hema_repo.save_fold_result(conn, result)

    in_one_go = fold(SummaryState("ns", ""), hema_repo.load_unfolded_episodes(conn, "ns", "", 0), summariser,
                     now=clock.now(), segment_size=5)
    assert hema_repo.load_summary_state(conn, "ns", "") == in_one_go.state
    assert hema_repo.load_segments(conn, "ns", "") == list(in_one_go.closed_segments)
    assert in_one_go.state.episode_count == 20 and len(in_one_go.closed_segments) == 4
    assert hema_repo.count_backlog(conn, "ns", "", in_one_go.state.last_seq) == 0
    assert hema_repo.count_backlog(conn, "ns", "a", 0) == 10
    assert hema_repo.pending_summaries(conn, "ns") == [("ns", "a"), ("ns", "b")]
    assert hema_repo.pending_summaries(conn) == [("ns", "a"), ("ns", "b"), ("other", ""), ("other", "a"), ("other", "b")]


def test_record_accesses_upserts_in_one_batch(conn, clock):
    for seq in (1, 2, 3):
        add_episode(conn, clock, "ns", seq)
    add_episode(conn, clock, "other", 4)
    t0 = clock.now()
    hema_repo.record_accesses(conn, "ns", [1, 2, 2], t0)
    clock.advance(timedelta(hours=1))
    hema_repo.record_accesses(conn, "ns", [2, 3, 4, 999], clock.now())  # 4: other namespace; 999: gone
    stats = hema_repo.load_access_stats(conn, "ns")
    assert stats == {1: (1, t0), 2: (3, clock.now()), 3: (1, clock.now())}
    assert hema_repo.load_access_stats(conn, "other") == {}
    # An older timestamp arriving late never moves last_access backwards.
    hema_repo.record_accesses(conn, "ns", [2], t0)
    assert hema_repo.load_access_stats(conn, "ns")[2] == (4, clock.now())
    hema_repo.record_accesses(conn, "ns", [], clock.now())


def test_prune_candidates_decisions_and_audit_log(conn, clock):
    add_episode(conn, clock, "ns", 1, age_days=90, text="old")
    add_episode(conn, clock, "ns", 2, age_days=90, text="old but used")
    add_episode(conn, clock, "ns", 3, age_days=900, pinned=True, text="pinned")
    add_episode(conn, clock, "ns", 4, age_days=0, text="new")
    hema_repo.record_accesses(conn, "ns", [2, 2, 2], clock.now() - timedelta(days=1))

    candidates = hema_repo.load_prune_candidates(conn, "ns")
    assert [c.seq for c in candidates] == [1, 2, 3, 4]
    assert candidates[1].access_count == 3 and candidates[1].last_access == clock.now() - timedelta(days=1)
    assert candidates[2].pinned and candidates[0].text_bytes == 3 and candidates[0].create_time.tzinfo is not None

    decisions = select_for_pruning(candidates, PrunePolicy(max_episodes=2), clock.now())
    # Seq 2 was retrieved yesterday, so it is younger than the unused new episode and outlives it.
    assert [(d.seq, d.reason) for d in decisions] == [(1, "over_max_episodes"), (4, "over_max_episodes")]
    hema_repo.write_prune_log(conn, "ns", decisions, clock.now())
    hema_repo.forget_episodes(conn, "ns", [d.seq for d in decisions])
    log = hema_repo.load_prune_log(conn, "ns")
    assert [entry for entry, _ in log] == decisions
    assert all(when == clock.now() for _, when in log)
    assert 2 in hema_repo.load_access_stats(conn, "ns")
    hema_repo.forget_episodes(conn, "ns", [2])
    assert hema_repo.load_access_stats(conn, "ns") == {}


def test_delete_namespace_only_touches_that_namespace(conn, clock):
    for ns, seq in (("ns", 1), ("keep", 2)):
        add_episode(conn, clock, ns, seq)
        hema_repo.record_accesses(conn, ns, [seq], clock.now())
        result = fold(SummaryState(ns, ""), [(seq, "Some text here.")], ExtractiveSummariser(), now=clock.now(), segment_size=1)
        hema_repo.save_fold_result(conn, result)
        hema_repo.write_prune_log(conn, ns, [PruneDecision(seq, f"id{seq}", math.inf, "below_min_score")], clock.now())
    hema_repo.delete_namespace(conn, "ns")
    for table in ("hema_summaries", "hema_segments", "hema_episode_access", "hema_prune_log"):
        rows = conn.execute(f"SELECT DISTINCT namespace FROM {table}").fetchall()
        assert rows == [("keep",)], table
