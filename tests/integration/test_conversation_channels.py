"""The lexical channel and the conversation signals through the real gRPC server and the Python SDK.

Each hand-made conversation needs one feature to find the turn; the same query on a server with that feature
off (same data, same embedder) misses it, so every test here fails without its feature."""

from __future__ import annotations

from datetime import UTC

import pytest
from memserve_client import EpisodeInput, InvalidArgumentError, MemoryClient

from tests.support.server import ServerProcess

OFF = {"speaker_boost": "0", "time_boost": "0", "lexical_previous_turn": "false", "lexical_weight": "0"}


@pytest.fixture(scope="module")
def on(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("on") / "d") as proc:
        yield proc


@pytest.fixture(scope="module")
def off(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("off") / "d", settings=OFF) as proc:
        yield proc


def _client(proc) -> MemoryClient:
    return MemoryClient(proc.target, timeout=30)


FILLERS = [("Alice", "I want to try the new bakery on Main Street."),
           ("Bob", "Work has me diving into spreadsheets all week."),
           ("Alice", "The course of the river changed after the flood."),
           ("Bob", "My cat knocked a glass off the table again."),
           ("Alice", "We painted the fence green on Sunday.")]


def _write_previous_turn_conversation(client: MemoryClient, ns: str) -> None:
    turns = [EpisodeInput(text, id=f"f{i}", session_id=f"s{i}", speaker=who) for i, (who, text) in enumerate(FILLERS)]
    turns += [EpisodeInput("Did you ever try the scuba diving course?", id="ask", session_id="dive", speaker="Alice"),
              EpisodeInput("Yes, last spring, loved it.", id="answer", session_id="dive", speaker="Bob")]
    client.write(ns, turns)


def _ids(result) -> list[str]:
    return [h.episode.id for h in result.hits]


def test_the_reply_is_found_through_the_turn_before_it(on, off):
    question = "When did Bob try scuba diving?"
    with _client(on) as a, _client(off) as b:
        for client in (a, b):
            _write_previous_turn_conversation(client, "prev")
        with_context = _ids(a.query("prev", question, top_k=3, mode="hybrid"))
        without = _ids(b.query("prev", question, top_k=3, mode="hybrid"))
        lexical = _ids(a.query("prev", question, top_k=3, mode="lexical"))
    assert "answer" in with_context[:2] and "answer" in lexical[:2]
    assert "answer" not in without


def _write_speaker_conversation(client: MemoryClient, ns: str) -> None:
    turns = [EpisodeInput(text, id=f"f{i}", session_id=f"s{i}", speaker=who) for i, (who, text) in enumerate(FILLERS)]
    turns += [EpisodeInput("I love hiking in the Andes every summer.", id="alice", session_id="a", speaker="Alice"),
              EpisodeInput("I love hiking in the Alps every summer.", id="bob", session_id="b", speaker="Bob")]
    client.write(ns, turns)


def test_a_named_speaker_or_a_speaker_hint_prefers_that_speakers_turns(on, off):
    with _client(on) as a, _client(off) as b:
        for client in (a, b):
            _write_speaker_conversation(client, "spk")
        got = {name: _ids(a.query("spk", f"Where does {name} love hiking every summer?", top_k=1, mode="hybrid"))
               for name in ("Alice", "Bob")}
        hinted = {name: _ids(a.query("spk", "Where does someone love hiking every summer?", top_k=1, mode="hybrid",
                                     speaker=name)) for name in ("alice", "BOB")}
        blind = {name: _ids(b.query("spk", f"Where does {name} love hiking every summer?", top_k=1, mode="hybrid"))
                 for name in ("Alice", "Bob")}
        blind_hint = {name: _ids(b.query("spk", "Where does someone love hiking every summer?", top_k=1,
                                         mode="hybrid", speaker=name)) for name in ("alice", "BOB")}
    assert got == {"Alice": ["alice"], "Bob": ["bob"]}
    assert hinted == {"alice": ["alice"], "BOB": ["bob"]}
    # Without the feature the name is just a word: at least one of the two questions gets the other's turn, and
    # the hint changes nothing.
    assert blind != got
    assert blind_hint["alice"] == blind_hint["BOB"]


def test_lexical_mode_scores_and_stats(on):
    with _client(on) as client:
        client.write("lexstats", [EpisodeInput("The zeppelin landed near the quarry.", id="z", session_id="s"),
                                  EpisodeInput("Nothing happened today.", id="n", session_id="t")])
        result = client.query("lexstats", "zeppelin", top_k=5, mode="lexical")
        assert result.mode == "lexical" and _ids(result) == ["z"]
        assert result.hits[0].lexical_score > 0 and result.hits[0].lexical_score == pytest.approx(result.hits[0].score)
        assert "lexical" in result.timings_ms and "embed" not in result.timings_ms
        hybrid = client.query("lexstats", "zeppelin", top_k=2, mode="hybrid")
        assert hybrid.mode == "hybrid" and hybrid.hits[0].episode.id == "z" and hybrid.hits[0].lexical_score > 0
        assert hybrid.hits[1].lexical_score == 0
        stats = client.stats("lexstats").namespaces[0]
        assert stats.lexical_count == stats.episode_count == 2
        with pytest.raises(InvalidArgumentError, match="speaker"):
            client.query("lexstats", "zeppelin", speaker="x" * 300)


def test_namespace_isolation_of_the_lexical_channel_and_speakers(on):
    with _client(on) as client:
        from datetime import datetime

        client.write("iso-a", [EpisodeInput("Gandalf rode the narwhal.", id="a1", speaker="Zorblax",
                                            event_time=datetime(2023, 5, 2, tzinfo=UTC))])
        client.write("iso-b", [EpisodeInput("An ordinary day at the office.", id="b1", speaker="Quentin"),
                               EpisodeInput("Zorblax is a name I made up.", id="b2", speaker="Quentin")])
        assert _ids(client.query("iso-b", "narwhal Gandalf", top_k=5, mode="lexical")) == []
        assert {h.episode.namespace for h in client.query("iso-b", "narwhal Gandalf", mode="hybrid").hits} == {"iso-b"}
        # Zorblax speaks only in iso-a: in iso-b the name is a word, not a speaker to prefer.
        assert _ids(client.query("iso-b", "What did Zorblax say?", top_k=1, mode="hybrid")) == ["b2"]
        # iso-a's May 2023 turn is no candidate in iso-b, however well it matches the time expression.
        may = client.query("iso-b", "What happened in May 2023?", top_k=5, mode="hybrid", now="2023-06-01T00:00:00Z")
        assert {h.episode.id for h in may.hits} == {"b1", "b2"}
        assert client.stats("iso-a").namespaces[0].lexical_count == 1
        client.delete_namespace("iso-a")
        client.write("iso-a", [EpisodeInput("A fresh start.", id="a2")])
        assert _ids(client.query("iso-a", "narwhal", top_k=5, mode="lexical")) == []


def test_deletes_pruning_and_a_crash_restart_keep_the_lexical_index_equal_to_duckdb(tmp_path):
    data = tmp_path / "d"
    server = ServerProcess(data).start()
    try:
        with MemoryClient(server.target, timeout=30) as client:
            client.write("crash", [EpisodeInput(f"turn {i} mentions word{i}", id=f"t{i}", session_id="s")
                                   for i in range(10)])
            client.write("crash", [EpisodeInput("the platypus lives here", id="gone", session_id="s")])
            assert _ids(client.query("crash", "platypus", mode="lexical")) == ["gone"]
            assert client.delete("crash", ["gone"]).deleted_count == 1
            assert _ids(client.query("crash", "platypus", mode="lexical")) == []
            pruned = client.prune("crash", max_episodes=7)
            assert len(pruned.pruned) == 3 and pruned.remaining_count == 7
            survivors = {e.id for e in client.iter_episodes("crash")}
            found = {h.episode.id for h in client.query("crash", " ".join(f"word{i}" for i in range(10)), top_k=20,
                                                        mode="lexical").hits}
            assert found == survivors and len(survivors) == 7
            client.write("crash", [EpisodeInput("acknowledged just before the crash: wombat", id="late")])
    finally:
        server.kill()  # SIGKILL: nothing of the lexical channel is saved, it must come back from DuckDB
    with ServerProcess(data) as again, MemoryClient(again.target, timeout=30) as client:
        assert _ids(client.query("crash", "wombat", mode="lexical")) == ["late"]
        assert _ids(client.query("crash", "platypus", mode="lexical")) == []
        found = {h.episode.id for h in client.query("crash", " ".join(f"word{i}" for i in range(10)), top_k=20,
                                                    mode="lexical").hits}
        assert found == survivors
        assert client.stats("crash").namespaces[0].lexical_count == 8


def _write_dated_conversation(client: MemoryClient, ns: str) -> None:
    from datetime import datetime

    def at(y: int, m: int, d: int) -> datetime:
        return datetime(y, m, d, 12, tzinfo=UTC)

    client.write(ns, [
        EpisodeInput("We went to a concert downtown.", id="may", session_id="s1", event_time=at(2023, 5, 20)),
        EpisodeInput("We went to a concert by the lake.", id="july", session_id="s2", event_time=at(2023, 7, 8)),
        EpisodeInput("We went to a concert at the stadium.", id="oct", session_id="s3", event_time=at(2023, 10, 12)),
    ] + [EpisodeInput(text, id=f"f{i}", session_id=f"f{i}", event_time=at(2023, 3, 1))
         for i, (_, text) in enumerate(FILLERS)])


def test_a_time_expression_prefers_turns_dated_inside_it(on, off):
    from datetime import datetime

    october = datetime(2023, 10, 18, tzinfo=UTC)
    asks = {"may": ("Which concert did we go to in May 2023?", october),
            "july": ("Which concert did we go to in July?", october),  # the most recent July before `now`
            "oct": ("Which concert did we go to yesterday?", datetime(2023, 10, 13, 9, tzinfo=UTC))}
    with _client(on) as a, _client(off) as b:
        for client in (a, b):
            _write_dated_conversation(client, "dated")
        got = {want: _ids(a.query("dated", q, top_k=1, mode="hybrid", now=now)) for want, (q, now) in asks.items()}
        blind = {want: _ids(b.query("dated", q, top_k=1, mode="hybrid", now=now)) for want, (q, now) in asks.items()}
        # "yesterday" is relative to `now`: a month later it names nothing dated here.
        later = _ids(a.query("dated", asks["oct"][0], top_k=3, mode="hybrid", now="2023-11-20T00:00:00+00:00"))
    assert got == {"may": ["may"], "july": ["july"], "oct": ["oct"]}
    assert blind != got
    assert set(later) == {"may", "july", "oct"}
