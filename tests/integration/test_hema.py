"""HEMA through the real server: compact summaries, pruning, token-budgeted context."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from memserve_client import EpisodeInput, InvalidArgumentError, MemoryClient

from memserve.engine.summary import ExtractiveSummariser, SummaryState, fold
from tests.support.gates import LONG, wait_until
from tests.support.server import ServerProcess


def ns() -> str:
    return "h-" + uuid.uuid4().hex[:10]


def wait_summary(client, name, session=""):
    """The summary once its backlog is folded (state decides; the bound only catches a stuck worker)."""
    box = {}

    def settled() -> bool:
        box["s"] = client.summary(name, session)
        return box["s"].backlog == 0

    wait_until(settled, f"the summary backlog of {name!r} to drain")
    return box["s"]


TOPICS = ["Alice planted tomatoes in the garden", "Bob repaired the old bicycle", "Carol booked flights to Lisbon",
          "The team discussed the quarterly budget", "Dave adopted a puppy named Rex"]


def test_summaries_fold_every_episode_in_order_under_concurrent_writes(client):
    name = ns()

    def writer(w: int) -> None:
        for i in range(12):
            client.write(name, [EpisodeInput(text=f"{TOPICS[(w + i) % 5]} (turn {w}-{i}).", session_id=f"s{w % 2}")])

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    whole = wait_summary(client, name)
    assert whole.episode_count == 48 and whole.summary
    # Same result as folding every episode once, in seq order (= listing order), with the same summariser.
    ordered = [(i + 1, e.text) for i, e in enumerate(client.iter_episodes(name, page_size=100))]
    expected = fold(SummaryState(namespace=name), ordered, ExtractiveSummariser(), now=datetime.now(UTC),
                    segment_size=100).state
    assert whole.summary == expected.text
    per_session = [wait_summary(client, name, f"s{k}") for k in (0, 1)]
    assert [s.episode_count for s in per_session] == [24, 24]


def test_segments_close_and_summaries_survive_restart(tmp_path):
    settings = {"summary_segment_size": "10"}
    with ServerProcess(tmp_path / "d", settings=settings) as server, MemoryClient(server.target, timeout=LONG) as c:
        c.write("conv", [EpisodeInput(text=f"{TOPICS[i % 5]} on day {i}.", session_id="s") for i in range(25)])
        before = wait_summary(c, "conv")
    assert len(before.segments) == 2
    assert [(s.first_seq, s.last_seq) for s in before.segments] == [(1, 10), (11, 20)]
    assert before.segments_summary
    with ServerProcess(tmp_path / "d", settings=settings) as server, MemoryClient(server.target, timeout=LONG) as c:
        after = c.summary("conv")
        assert after.summary == before.summary and after.segments == before.segments
        assert after.episode_count == 25 and after.backlog == 0


def test_summary_resumes_after_a_crash(tmp_path):
    server = ServerProcess(tmp_path / "d").start()
    try:
        with MemoryClient(server.target, timeout=LONG) as c:
            c.write("conv", [f"{TOPICS[i % 5]} again {i}." for i in range(200)])
    finally:
        server.kill()
    with ServerProcess(tmp_path / "d") as server, MemoryClient(server.target, timeout=LONG) as c:
        assert wait_summary(c, "conv").episode_count == 200


def test_prune_dry_run_changes_nothing_and_pinned_survive(client):
    name = ns()
    ids = client.write(name, [EpisodeInput(text=f"note {i} about {TOPICS[i % 5]}", pinned=(i < 3),
                                           importance=0.1 if i >= 3 else 0.9) for i in range(20)]).ids
    dry = client.prune(name, dry_run=True, max_episodes=5)
    assert dry.dry_run and len(dry.pruned) == 15 and dry.remaining_count == 20
    assert not {p.id for p in dry.pruned} & set(ids[:3])
    assert all(p.reason == "over_max_episodes" and p.text for p in dry.pruned)
    assert client.stats(name).episode_count == 20
    real = client.prune(name, max_episodes=5)
    assert [p.id for p in real.pruned] == [p.id for p in dry.pruned]
    assert real.remaining_count == 5
    left = {e.id for e in client.iter_episodes(name)}
    assert set(ids[:3]) <= left and len(left) == 5
    assert left == set(ids) - {p.id for p in real.pruned}
    for p in real.pruned:
        hits = client.query(name, p.text, top_k=20, mode="dense").hits
        assert p.id not in {h.episode.id for h in hits}
    # Only pinned ones left above the limit: nothing else to remove.
    assert client.prune(name, max_episodes=1).remaining_count == 3


def test_prune_prefers_unused_episodes(client):
    name = ns()
    ids = client.write(name, [f"memory {i}: {TOPICS[i % 5]} number {i}" for i in range(10)]).ids
    for _ in range(3):
        client.query(name, "memory 7: Carol booked flights to Lisbon number 7", top_k=1)
    # No wait for the once-a-second background flush: pruning flushes queued accesses before it decides.
    decisions = client.prune(name, dry_run=True, max_episodes=9).pruned
    assert len(decisions) == 1 and decisions[0].id != ids[7]


def test_prune_rejects_bad_limits(client):
    name = ns()
    client.write(name, ["x"])
    with pytest.raises(InvalidArgumentError):
        client.prune(name, max_episodes=-1)


@pytest.mark.parametrize("budget", [20, 60, 200, 3500])
def test_context_never_exceeds_the_budget(client, budget):
    name = ns()
    client.write(name, [EpisodeInput(text=" ".join([TOPICS[i % 5]] * 8), session_id="s", speaker="user")
                        for i in range(30)])
    wait_summary(client, name)
    result = client.query(name, "budget and bicycles", top_k=20, token_budget=budget)
    assert 0 < result.context_tokens <= budget
    assert result.context
    if budget >= 200:
        assert result.hits[0].episode.text[:30] in result.context


def test_background_pruning_keeps_namespaces_within_limits(tmp_path):
    settings = {"prune_max_episodes": "5", "prune_interval_s": "1"}
    with ServerProcess(tmp_path / "d", settings=settings) as server, MemoryClient(server.target, timeout=LONG) as c:
        ids = c.write("auto", [EpisodeInput(text=f"fact {i}: {TOPICS[i % 5]}", pinned=(i == 0)) for i in range(12)]).ids
        wait_until(lambda: c.stats("auto").episode_count <= 5, "background pruning to run")
        left = {e.id for e in c.iter_episodes("auto")}
        assert ids[0] in left and len(left) == 5
