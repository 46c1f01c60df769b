"""Dataclass ⇄ protobuf conversion, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from memserve_client import (
    EpisodeInput,
    Extraction,
    GraphOptions,
    QueryFilter,
    Triple,
)
from memserve_client import _convert as conv
from memserve_client._proto import memory_pb2 as pb

WHEN = datetime(2024, 5, 1, 9, 30, 15, 250000, tzinfo=UTC)


def test_episode_input_to_proto_carries_every_field() -> None:
    episode = EpisodeInput(
        "Alice moved to Paris.",
        id="e1",
        session_id="s1",
        speaker="user",
        event_time=WHEN,
        metadata={"topic": "travel"},
        importance=0.75,
        pinned=True,
        extraction=Extraction(entities=["Alice", "Paris"], triples=[("Alice", "moved to", "Paris")]),
    )
    message = conv.episode_input_to_proto(episode)
    assert (message.id, message.session_id, message.speaker, message.text) == ("e1", "s1", "user", episode.text)
    assert message.event_time.ToDatetime(tzinfo=UTC) == WHEN
    assert dict(message.metadata) == {"topic": "travel"}
    assert message.HasField("importance") and message.importance == pytest.approx(0.75)
    assert message.pinned
    assert list(message.extraction.entities) == ["Alice", "Paris"]
    assert message.extraction.triples[0] == pb.Triple(subject="Alice", predicate="moved to", object="Paris")


def test_unset_optionals_stay_unset() -> None:
    message = conv.episode_input_to_proto(EpisodeInput("hi"))
    assert not message.HasField("importance")  # the server default applies, not 0.0
    assert not message.HasField("event_time")
    assert not message.HasField("extraction")


def test_naive_datetime_is_utc_and_aware_is_converted() -> None:
    naive = conv.to_timestamp(datetime(2024, 5, 1, 9, 30))
    assert naive.ToDatetime(tzinfo=UTC) == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    paris = timezone(timedelta(hours=2))
    aware = conv.to_timestamp(datetime(2024, 5, 1, 11, 30, tzinfo=paris))
    assert aware.ToDatetime(tzinfo=UTC) == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def test_dict_and_str_episodes_are_coerced() -> None:
    episodes = conv.coerce_episodes(
        [
            "just text",
            {
                "text": "with time",
                "time": "2024-05-01T09:30:15.25Z",
                "metadata": {"k": "v"},
                "importance": 0.2,
                "extraction": {"entities": ["a"], "triples": [["a", "b", "c"]]},
            },
        ]
    )
    assert episodes[0] == EpisodeInput("just text")
    assert episodes[1].event_time == WHEN
    assert episodes[1].extraction == Extraction(("a",), (Triple("a", "b", "c"),))
    assert conv.coerce_episodes("lone") == [EpisodeInput("lone")]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"text": "x", "sesion_id": "typo"}, ValueError),
        ({"text": "x", "time": WHEN, "event_time": WHEN}, ValueError),
        ({"speaker": "user"}, ValueError),
        ({"text": "x", "time": "yesterday"}, ValueError),
        (42, TypeError),
    ],
)
def test_bad_episodes_are_rejected_before_any_call(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"episodes\[0\]"):
        conv.coerce_episodes([value])  # type: ignore[list-item]


def test_query_request_modes_filter_and_graph_options() -> None:
    request = conv.query_request(
        "ns",
        "where?",
        top_k=5,
        mode="graph",
        filter=QueryFilter(session_ids=["s1", "s2"], event_time_start=WHEN, metadata={"k": "v"}),
        token_budget=1000,
        graph=GraphOptions(damping=0.6, fact_top_k=3),
        summary_session_id="s1",
    )
    assert request.mode == pb.QUERY_MODE_GRAPH
    assert list(request.filter.session_ids) == ["s1", "s2"]
    assert request.filter.event_time.start.ToDatetime(tzinfo=UTC) == WHEN
    assert not request.filter.event_time.HasField("end")  # unbounded
    assert dict(request.filter.metadata) == {"k": "v"}
    assert request.graph.HasField("damping") and request.graph.fact_top_k == 3
    assert not request.graph.HasField("passage_weight")
    assert (request.top_k, request.token_budget, request.summary_session_id) == (5, 1000, "s1")


@pytest.mark.parametrize(
    ("mode", "value"),
    [(None, pb.QUERY_MODE_UNSPECIFIED), ("dense", pb.QUERY_MODE_DENSE), ("hybrid", pb.QUERY_MODE_HYBRID)],
)
def test_modes(mode: str | None, value: int) -> None:
    assert conv.parse_mode(mode) == value


@pytest.mark.parametrize("mode", ["DENSE", "ppr", "", 1])
def test_bad_mode_raises_value_error(mode: object) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        conv.parse_mode(mode)  # type: ignore[arg-type]


def test_graph_formats() -> None:
    assert conv.parse_format("graphml") == pb.GRAPH_FORMAT_GRAPHML
    assert conv.parse_format("node-link") == pb.GRAPH_FORMAT_NODE_LINK_JSON
    with pytest.raises(ValueError):
        conv.parse_format("gexf")


def test_prune_request_min_score_is_optional() -> None:
    assert not conv.prune_request("ns", dry_run=True, max_episodes=0, max_bytes=0, min_score=None).HasField(
        "min_score"
    )
    request = conv.prune_request("ns", dry_run=False, max_episodes=10, max_bytes=0, min_score=0.0)
    assert request.HasField("min_score")  # 0.0 is a real threshold, not "unset"


def _episode_proto(**overrides: object) -> pb.Episode:
    message = pb.Episode(
        id="e1", namespace="ns", session_id="s1", speaker="user", text="hello", metadata={"k": "v"},
        importance=0.5, pinned=True,
    )
    message.event_time.FromDatetime(WHEN)
    message.create_time.FromDatetime(WHEN + timedelta(minutes=1))
    for key, value in overrides.items():
        setattr(message, key, value)
    return message


def test_episode_from_proto_has_aware_utc_times() -> None:
    episode = conv.episode_from_proto(_episode_proto())
    assert episode.event_time == WHEN and episode.event_time.tzinfo is not None
    assert episode.create_time == WHEN + timedelta(minutes=1)
    assert episode.metadata == {"k": "v"} and episode.importance == 0.5 and episode.pinned
    bare = conv.episode_from_proto(pb.Episode(id="e2"))
    assert bare.event_time is None and bare.create_time is None


def test_query_response_round_trip() -> None:
    response = pb.QueryResponse(
        hits=[
            pb.Hit(
                episode=_episode_proto(), score=0.9, rank=1, dense_score=0.4, graph_score=0.8, phrases=["alice"],
                facts=[pb.Fact(subject="alice", predicate="lives in", object="paris", score=0.7)],
            )
        ],
        timings_ms={"embed": 1.5, "total": 4.0},
        mode=pb.QUERY_MODE_HYBRID,
        context="Alice lives in Paris.",
        context_tokens=6,
    )
    result = conv.query_result_from_proto(response)
    assert result.mode == "hybrid"
    assert result.timings_ms == {"embed": 1.5, "total": 4.0}
    hit = result.hits[0]
    assert (hit.rank, hit.phrases, hit.episode.id) == (1, ("alice",), "e1")
    assert hit.score == pytest.approx(0.9) and hit.graph_score == pytest.approx(0.8)
    assert hit.facts[0].object == "paris" and hit.facts[0].score == pytest.approx(0.7)
    assert (result.context, result.context_tokens) == ("Alice lives in Paris.", 6)


def test_stats_summary_prune_pages_and_export() -> None:
    stats_pb = pb.GetStatsResponse(
        namespaces=[pb.NamespaceStats(namespace="ns", episode_count=3, index_type="flat")],
        episode_count=3, llm=pb.LlmUsage(calls=2, cost_usd=0.01), embedding_dim=384, gpu=True,
    )
    stats = conv.stats_from_proto(stats_pb)
    assert stats.namespaces[0].namespace == "ns" and stats.namespaces[0].create_time is None
    assert (stats.llm.calls, stats.llm.cost_usd, stats.embedding_dim, stats.gpu) == (2, 0.01, 384, True)

    summary_pb = pb.GetSummaryResponse(
        summary="s", episode_count=4, backlog=1, segments_summary="ss",
        segments=[pb.SegmentSummary(index=0, first_seq=1, last_seq=4, text="seg")],
    )
    summary_pb.update_time.FromDatetime(WHEN)
    summary = conv.summary_from_proto(summary_pb)
    assert summary.update_time == WHEN and summary.segments[0].last_seq == 4 and summary.backlog == 1

    prune = conv.prune_result_from_proto(
        pb.PruneResponse(pruned=[pb.PrunedEpisode(id="e1", reason="below_min_score")], remaining_count=9,
                         dry_run=True)
    )
    assert prune.pruned[0].reason == "below_min_score" and prune.dry_run and prune.remaining_count == 9

    page = conv.namespace_page_from_proto(
        pb.ListNamespacesResponse(namespaces=[pb.NamespaceInfo(name="a", episode_count=2)], next_page_token="t")
    )
    assert page.items[0].name == "a" and page.next_page_token == "t"

    export = conv.graph_export_from_proto(pb.ExportGraphResponse(data=b"<graphml/>", node_count=2, edge_count=1))
    assert (export.data, export.node_count, export.edge_count) == (b"<graphml/>", 2, 1)


def test_chunked_write_responses_concatenate_in_order() -> None:
    result = conv.write_result_from_proto(
        [pb.WriteEpisodesResponse(ids=["a", "b"], created=[True, False]),
         pb.WriteEpisodesResponse(ids=["c"], created=[True])]
    )
    assert result.ids == ("a", "b", "c") and result.created == (True, False, True) and result.created_count == 2
