"""The core API against a real server process (hash embedder), through the real SDK."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from memserve_client import (
    EpisodeInput,
    EpisodeNotFoundError,
    NamespaceNotFoundError,
    QueryFilter,
)


def ns() -> str:
    return "t-" + uuid.uuid4().hex[:10]


FACTS = [
    "Alice moved to Paris in 2019 and works as a baker.",
    "Bob keeps three cats and a parrot named Kiwi.",
    "The quarterly budget review is scheduled for Friday afternoon.",
    "Carol climbed Mount Kilimanjaro with her brother last summer.",
]


def test_write_then_query_finds_the_matching_episode(client):
    name = ns()
    result = client.write(name, [EpisodeInput(text=t, session_id="s1", speaker="user",
                                              metadata={"n": str(i)}) for i, t in enumerate(FACTS)])
    assert len(result.ids) == 4 and all(result.created)
    answer = client.query(name, "Bob parrot named Kiwi cats", top_k=2)
    assert answer.hits[0].episode.text == FACTS[1]
    assert answer.hits[0].rank == 1 and answer.hits[1].rank == 2
    assert answer.hits[0].score >= answer.hits[1].score
    assert answer.hits[0].episode.metadata == {"n": "1"}
    assert answer.hits[0].episode.speaker == "user" and answer.hits[0].episode.session_id == "s1"
    assert {"embed", "dense", "total"} <= set(answer.timings_ms)


def test_resending_is_idempotent(client):
    name = ns()
    first = client.write(name, [EpisodeInput(text="hello", id="client-1"), EpisodeInput(text="plain text")])
    again = client.write(name, [EpisodeInput(text="hello", id="client-1"), EpisodeInput(text="plain text")])
    assert first.ids == again.ids
    assert first.created == (True, True) and again.created == (False, False)
    assert client.stats(name).namespaces[0].episode_count == 2
    assert client.stats(name).namespaces[0].vector_count == 2


def test_same_content_twice_in_one_batch_is_stored_once(client):
    name = ns()
    result = client.write(name, ["same words", "same words"])
    assert result.ids[0] == result.ids[1] and result.created == (True, False)
    assert client.stats(name).episode_count == 1


def test_delete_removes_from_results_and_get(client):
    name = ns()
    ids = client.write(name, FACTS).ids
    deleted = client.delete(name, [ids[1], "never-existed"])
    assert deleted.deleted_count == 1 and deleted.not_found_ids == ("never-existed",)
    hits = client.query(name, "Bob parrot named Kiwi cats", top_k=10).hits
    assert ids[1] not in {h.episode.id for h in hits} and len(hits) == 3
    with pytest.raises(EpisodeNotFoundError):
        client.get(name, ids[1])
    assert client.get(name, ids[0]).text == FACTS[0]


def test_namespaces_are_isolated(client):
    a, b = ns(), ns()
    client.write(a, [EpisodeInput(text=t, id=f"a{i}") for i, t in enumerate(FACTS)])
    client.write(b, [EpisodeInput(text=t + " (copy)", id=f"b{i}") for i, t in enumerate(FACTS)])
    for text in FACTS:
        hits = client.query(a, text, top_k=100).hits
        assert {h.episode.id for h in hits} == {"a0", "a1", "a2", "a3"}
        assert all(h.episode.namespace == a for h in hits)
    with pytest.raises(EpisodeNotFoundError):
        client.get(a, "b0")


def test_list_pages_through_everything_once(client):
    name = ns()
    ids = client.write(name, [f"episode number {i}" for i in range(25)]).ids
    seen, token, pages = [], "", 0
    while True:
        page = client.list(name, page_size=10, page_token=token)
        seen += [e.id for e in page.items]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3 and seen == list(ids)
    assert [e.id for e in client.iter_episodes(name, page_size=7)] == list(ids)


def test_list_and_delete_namespaces(client):
    name = ns()
    client.write(name, ["x", "y"])
    names = {n.name: n.episode_count for n in client.list_namespaces(page_size=1000).items}
    assert names[name] == 2
    assert client.delete_namespace(name) == 2
    with pytest.raises(NamespaceNotFoundError):
        client.query(name, "x")
    assert name not in {n.name for n in client.list_namespaces(page_size=1000).items}


def test_filters_by_session_time_and_metadata(client):
    name = ns()
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    client.write(name, [
        EpisodeInput(text="meeting notes about the garden", id="e1", session_id="s1", event_time=t0,
                     metadata={"kind": "note", "path/with~odd": "yes"}),
        EpisodeInput(text="meeting notes about the garden again", id="e2", session_id="s2",
                     event_time=t0 + timedelta(days=10), metadata={"kind": "chat"}),
        EpisodeInput(text="meeting notes about the garden, no time", id="e3", session_id="s1"),
    ])

    def ids(flt):
        return {h.episode.id for h in client.query(name, "garden meeting", top_k=10, filter=flt).hits}

    assert ids(QueryFilter(session_ids=("s1",))) == {"e1", "e3"}
    assert ids(QueryFilter(session_ids=("s1", "s2"))) == {"e1", "e2", "e3"}
    assert ids(QueryFilter(event_time_start=t0 + timedelta(days=1))) == {"e2"}
    assert ids(QueryFilter(event_time_end=t0 + timedelta(days=1))) == {"e1"}
    assert ids(QueryFilter(metadata={"kind": "chat"})) == {"e2"}
    assert ids(QueryFilter(metadata={"path/with~odd": "yes"})) == {"e1"}
    assert ids(QueryFilter(session_ids=("nobody",))) == set()


def test_stats_report_counts_and_bytes(client):
    name = ns()
    client.write(name, [EpisodeInput(text=t, session_id=f"s{i % 2}") for i, t in enumerate(FACTS)])
    stats = client.stats(name)
    (one,) = stats.namespaces
    assert one.episode_count == 4 and one.vector_count == 4 and one.session_count == 2
    assert one.index_type in ("flat", "hnsw") and one.index_bytes > 0
    assert stats.db_bytes > 0 and stats.disk_bytes >= stats.db_bytes
    assert stats.embedding_dim == 64
    total = client.stats()
    assert total.episode_count >= 4 and name in {n.namespace for n in total.namespaces}


def test_health_and_reflection(server, client):
    import grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    assert client.health() == "SERVING"
    with grpc.insecure_channel(server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"memserve.v1.MemoryService", "grpc.health.v1.Health"} <= names
