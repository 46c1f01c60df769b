"""Protobuf ⇄ dataclass conversion: pure functions, no I/O. The only module that touches memory_pb2 fields."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from ._proto import memory_pb2 as pb
from .types import (
    BackupInfo,
    DeleteResult,
    Episode,
    EpisodeInput,
    EpisodeLike,
    EpisodePage,
    ExportedEpisode,
    Extraction,
    Fact,
    GraphExport,
    GraphOptions,
    Hit,
    LlmUsage,
    NamespaceExportPage,
    NamespaceInfo,
    NamespacePage,
    NamespaceStats,
    PrunedEpisode,
    PruneResult,
    QueryFilter,
    QueryResult,
    SegmentSummary,
    Stats,
    Summary,
    Triple,
    WriteResult,
)

_MODES = {
    "dense": pb.QUERY_MODE_DENSE,
    "graph": pb.QUERY_MODE_GRAPH,
    "hybrid": pb.QUERY_MODE_HYBRID,
    "lexical": pb.QUERY_MODE_LEXICAL,
}
_MODE_NAMES = {value: name for name, value in _MODES.items()}
_FORMATS = {"graphml": pb.GRAPH_FORMAT_GRAPHML, "node-link": pb.GRAPH_FORMAT_NODE_LINK_JSON}

# Keys a dict episode may use; "time" is the short spelling used by JSONL ingest files.
_EPISODE_KEYS = frozenset(
    {"id", "text", "session_id", "speaker", "time", "event_time", "metadata", "importance", "pinned", "extraction"}
)


# --- scalars -------------------------------------------------------------------------------------------------


def to_timestamp(value: datetime) -> Timestamp:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # documented: naive means UTC, never local time
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def from_timestamp(message: Any, name: str) -> datetime | None:
    # An unset Timestamp would read as 1970-01-01; None says "not known" honestly.
    if not message.HasField(name):
        return None
    when: datetime = getattr(message, name).ToDatetime(tzinfo=UTC)
    return when


def parse_mode(mode: str | None) -> pb.QueryMode:
    if mode is None:
        return pb.QUERY_MODE_UNSPECIFIED
    try:
        return _MODES[mode]
    except (KeyError, TypeError):
        raise ValueError(f"mode must be one of {sorted(_MODES)} or None, got {mode!r}") from None


def parse_format(fmt: str) -> pb.GraphFormat:
    try:
        return _FORMATS[fmt]
    except (KeyError, TypeError):
        raise ValueError(f"format must be one of {sorted(_FORMATS)}, got {fmt!r}") from None


def _coerce_time(value: object, where: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{where}: not an ISO 8601 time: {value!r}") from None
    raise TypeError(f"{where}: expected a datetime or ISO 8601 string, got {type(value).__name__}")


# --- episode inputs ------------------------------------------------------------------------------------------


def coerce_extraction(value: Extraction | Mapping[str, Any] | None) -> Extraction | None:
    if value is None or isinstance(value, Extraction):
        return value
    return Extraction(entities=tuple(value.get("entities", ())), triples=tuple(value.get("triples", ())))


def coerce_episode(value: EpisodeLike, index: int = 0) -> EpisodeInput:
    """Accept the friendly spellings of an episode: an EpisodeInput, a dict, or just its text."""
    if isinstance(value, EpisodeInput):
        return value
    if isinstance(value, str):
        return EpisodeInput(value)
    if not isinstance(value, Mapping):
        raise TypeError(f"episodes[{index}]: expected EpisodeInput, dict or str, got {type(value).__name__}")
    unknown = set(value) - _EPISODE_KEYS
    if unknown:
        # A typo ("sesion_id") would otherwise silently drop data.
        raise ValueError(f"episodes[{index}]: unknown keys {sorted(unknown)}; allowed: {sorted(_EPISODE_KEYS)}")
    if "time" in value and "event_time" in value:
        raise ValueError(f"episodes[{index}]: give either 'time' or 'event_time', not both")
    if "text" not in value:
        raise ValueError(f"episodes[{index}]: missing 'text'")
    return EpisodeInput(
        value["text"],
        id=value.get("id", ""),
        session_id=value.get("session_id", ""),
        speaker=value.get("speaker", ""),
        event_time=_coerce_time(value.get("event_time", value.get("time")), f"episodes[{index}].event_time"),
        metadata=dict(value.get("metadata") or {}),
        importance=value.get("importance"),
        pinned=bool(value.get("pinned", False)),
        extraction=coerce_extraction(value.get("extraction")),
    )


def coerce_episodes(episodes: Iterable[EpisodeLike] | EpisodeLike) -> list[EpisodeInput]:
    # A lone str or EpisodeInput would otherwise be iterated character by character / rejected.
    if isinstance(episodes, (str, EpisodeInput, Mapping)):
        episodes = [episodes]
    return [coerce_episode(e, i) for i, e in enumerate(episodes)]


def episode_input_to_proto(episode: EpisodeInput) -> pb.EpisodeInput:
    message = pb.EpisodeInput(
        id=episode.id,
        session_id=episode.session_id,
        speaker=episode.speaker,
        text=episode.text,
        metadata=dict(episode.metadata),
        pinned=episode.pinned,
    )
    if episode.event_time is not None:
        message.event_time.CopyFrom(to_timestamp(episode.event_time))
    if episode.importance is not None:
        message.importance = episode.importance
    if episode.extraction is not None:
        message.extraction.CopyFrom(extraction_to_proto(episode.extraction))
    return message


def extraction_to_proto(extraction: Extraction) -> pb.Extraction:
    return pb.Extraction(entities=list(extraction.entities),
                         triples=[pb.Triple(subject=t.subject, predicate=t.predicate, object=t.object)
                                  for t in extraction.triples])


# --- requests ------------------------------------------------------------------------------------------------


def write_request(namespace: str, episodes: Sequence[EpisodeInput], wait_for_graph: bool) -> pb.WriteEpisodesRequest:
    return pb.WriteEpisodesRequest(
        namespace=namespace,
        episodes=[episode_input_to_proto(e) for e in episodes],
        wait_for_graph=wait_for_graph,
    )


def query_filter_to_proto(flt: QueryFilter) -> pb.QueryFilter:
    message = pb.QueryFilter(session_ids=list(flt.session_ids), metadata=dict(flt.metadata))
    if flt.event_time_start is not None:
        message.event_time.start.CopyFrom(to_timestamp(flt.event_time_start))
    if flt.event_time_end is not None:
        message.event_time.end.CopyFrom(to_timestamp(flt.event_time_end))
    return message


def graph_options_to_proto(options: GraphOptions) -> pb.GraphOptions:
    message = pb.GraphOptions()
    # Only set what was given: unset optional fields mean "use the server's setting".
    for name in ("damping", "fact_top_k", "passage_weight", "synonym_threshold"):
        value = getattr(options, name)
        if value is not None:
            setattr(message, name, value)
    return message


def query_request(
    namespace: str,
    text: str,
    *,
    top_k: int,
    mode: str | None,
    filter: QueryFilter | None,
    token_budget: int,
    graph: GraphOptions | None,
    summary_session_id: str,
    speaker: str = "",
    now: datetime | str | None = None,
) -> pb.QueryRequest:
    message = pb.QueryRequest(
        namespace=namespace,
        text=text,
        top_k=top_k,
        mode=parse_mode(mode),
        token_budget=token_budget,
        summary_session_id=summary_session_id,
        speaker=speaker,
    )
    when = _coerce_time(now, "now")
    if when is not None:
        message.now.CopyFrom(to_timestamp(when))
    if filter is not None:
        message.filter.CopyFrom(query_filter_to_proto(filter))
    if graph is not None:
        message.graph.CopyFrom(graph_options_to_proto(graph))
    return message


def prune_request(
    namespace: str, *, dry_run: bool, max_episodes: int, max_bytes: int, min_score: float | None
) -> pb.PruneRequest:
    message = pb.PruneRequest(namespace=namespace, dry_run=dry_run, max_episodes=max_episodes, max_bytes=max_bytes)
    if min_score is not None:
        message.min_score = min_score
    return message


# --- responses -----------------------------------------------------------------------------------------------


def write_result_from_proto(responses: Iterable[pb.WriteEpisodesResponse]) -> WriteResult:
    # A large write is sent as several chunks; their answers concatenate in input order.
    ids: list[str] = []
    created: list[bool] = []
    for response in responses:
        ids.extend(response.ids)
        created.extend(response.created)
    return WriteResult(ids=tuple(ids), created=tuple(created))


def episode_from_proto(message: pb.Episode) -> Episode:
    return Episode(
        id=message.id,
        namespace=message.namespace,
        session_id=message.session_id,
        speaker=message.speaker,
        text=message.text,
        event_time=from_timestamp(message, "event_time"),
        metadata=dict(message.metadata),
        importance=message.importance,
        pinned=message.pinned,
        create_time=from_timestamp(message, "create_time"),
    )


def hit_from_proto(message: pb.Hit) -> Hit:
    return Hit(
        episode=episode_from_proto(message.episode),
        score=message.score,
        rank=message.rank,
        facts=tuple(Fact(f.subject, f.predicate, f.object, f.score) for f in message.facts),
        phrases=tuple(message.phrases),
        dense_score=message.dense_score,
        graph_score=message.graph_score,
        lexical_score=message.lexical_score,
    )


def query_result_from_proto(message: pb.QueryResponse) -> QueryResult:
    return QueryResult(
        hits=tuple(hit_from_proto(h) for h in message.hits),
        timings_ms=dict(message.timings_ms),
        mode=_MODE_NAMES.get(message.mode, ""),
        context=message.context,
        context_tokens=message.context_tokens,
    )


def episode_page_from_proto(message: pb.ListEpisodesResponse) -> EpisodePage:
    return EpisodePage(
        items=tuple(episode_from_proto(e) for e in message.episodes), next_page_token=message.next_page_token
    )


def delete_result_from_proto(message: pb.DeleteEpisodesResponse) -> DeleteResult:
    return DeleteResult(deleted_count=message.deleted_count, not_found_ids=tuple(message.not_found_ids))


def namespace_stats_from_proto(message: pb.NamespaceStats) -> NamespaceStats:
    return NamespaceStats(
        namespace=message.namespace,
        episode_count=message.episode_count,
        vector_count=message.vector_count,
        index_type=message.index_type,
        index_bytes=message.index_bytes,
        phrase_count=message.phrase_count,
        fact_count=message.fact_count,
        graph_edge_count=message.graph_edge_count,
        extraction_backlog=message.extraction_backlog,
        session_count=message.session_count,
        create_time=from_timestamp(message, "create_time"),
        extraction_failed=message.extraction_failed,
        lexical_count=message.lexical_count,
    )


def stats_from_proto(message: pb.GetStatsResponse) -> Stats:
    llm = message.llm
    return Stats(
        namespaces=tuple(namespace_stats_from_proto(n) for n in message.namespaces),
        episode_count=message.episode_count,
        db_bytes=message.db_bytes,
        disk_bytes=message.disk_bytes,
        llm=LlmUsage(
            calls=llm.calls,
            cached_calls=llm.cached_calls,
            prompt_tokens=llm.prompt_tokens,
            completion_tokens=llm.completion_tokens,
            cost_usd=llm.cost_usd,
            failed_calls=llm.failed_calls,
        ),
        embedding_model=message.embedding_model,
        embedding_dim=message.embedding_dim,
        extractor=message.extractor,
        gpu=message.gpu,
        dropped_triples=message.dropped_triples,
    )


def namespace_page_from_proto(message: pb.ListNamespacesResponse) -> NamespacePage:
    return NamespacePage(
        items=tuple(
            NamespaceInfo(name=n.name, episode_count=n.episode_count, create_time=from_timestamp(n, "create_time"))
            for n in message.namespaces
        ),
        next_page_token=message.next_page_token,
    )


def graph_export_from_proto(message: pb.ExportGraphResponse) -> GraphExport:
    return GraphExport(data=message.data, node_count=message.node_count, edge_count=message.edge_count)


def summary_from_proto(message: pb.GetSummaryResponse) -> Summary:
    return Summary(
        summary=message.summary,
        update_time=from_timestamp(message, "update_time"),
        episode_count=message.episode_count,
        segments=tuple(
            SegmentSummary(
                index=s.index,
                first_seq=s.first_seq,
                last_seq=s.last_seq,
                text=s.text,
                update_time=from_timestamp(s, "update_time"),
            )
            for s in message.segments
        ),
        segments_summary=message.segments_summary,
        backlog=message.backlog,
    )


def prune_result_from_proto(message: pb.PruneResponse) -> PruneResult:
    return PruneResult(
        pruned=tuple(PrunedEpisode(id=p.id, score=p.score, reason=p.reason, text=p.text) for p in message.pruned),
        remaining_count=message.remaining_count,
        dry_run=message.dry_run,
    )



# --- administration ------------------------------------------------------------------------------------------


def backup_from_proto(message: pb.BackupDatabaseResponse) -> BackupInfo:
    return BackupInfo(directory=message.directory, size_bytes=message.size_bytes, last_seq=message.last_seq,
                      backup_time=from_timestamp(message, "backup_time"), schema_version=message.schema_version)


def export_page_from_proto(message: pb.ExportNamespaceResponse) -> NamespaceExportPage:
    items = []
    for x in message.episodes:
        extraction = None
        if x.HasField("extraction"):
            extraction = Extraction(entities=tuple(x.extraction.entities),
                                    triples=tuple(Triple(t.subject, t.predicate, t.object)
                                                  for t in x.extraction.triples))
        items.append(ExportedEpisode(episode=episode_from_proto(x.episode), embedding=x.embedding,
                                     extraction=extraction))
    return NamespaceExportPage(items=tuple(items), next_page_token=message.next_page_token,
                               embedding_model=message.embedding_model, embedding_dim=message.embedding_dim)


def exported_to_proto(x: ExportedEpisode) -> pb.ExportedEpisode:
    e = x.episode
    episode = pb.Episode(id=e.id, namespace=e.namespace, session_id=e.session_id, speaker=e.speaker, text=e.text,
                         metadata=dict(e.metadata), importance=e.importance, pinned=e.pinned)
    if e.event_time is not None:
        episode.event_time.CopyFrom(to_timestamp(e.event_time))
    if e.create_time is not None:
        episode.create_time.CopyFrom(to_timestamp(e.create_time))
    out = pb.ExportedEpisode(episode=episode, embedding=bytes(x.embedding))
    if x.extraction is not None:
        out.extraction.CopyFrom(extraction_to_proto(x.extraction))
    return out
