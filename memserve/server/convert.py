"""Protobuf ⇄ domain conversion. No logic beyond shape: validation lives in engine/validation.py."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from memserve_client._proto import memory_pb2 as pb

from ..engine.transfer import ExportedEpisode
from ..errors import InvalidArgument
from ..types import (
    Episode,
    EpisodeIn,
    ExtractionIn,
    GraphParams,
    Hit,
    QueryFilter,
    QueryIn,
    QueryMode,
    QueryResult,
    TripleIn,
)

_MODES_IN = {pb.QUERY_MODE_UNSPECIFIED: None, pb.QUERY_MODE_DENSE: QueryMode.DENSE,
             pb.QUERY_MODE_GRAPH: QueryMode.GRAPH, pb.QUERY_MODE_HYBRID: QueryMode.HYBRID,
             pb.QUERY_MODE_LEXICAL: QueryMode.LEXICAL}
_MODES_OUT = {v: k for k, v in _MODES_IN.items() if v is not None}


def ts_in(msg: Message, name: str, field: str) -> datetime | None:
    if not msg.HasField(name):
        return None
    ts = getattr(msg, name)
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument(f"{field} is not a valid timestamp: {exc}", field=field) from None


def ts_out(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def episode_in(msg: pb.EpisodeInput, index: int) -> EpisodeIn:
    extraction = None
    if msg.HasField("extraction"):
        extraction = ExtractionIn(entities=tuple(msg.extraction.entities),
                                  triples=tuple(TripleIn(t.subject, t.predicate, t.object)
                                                for t in msg.extraction.triples))
    return EpisodeIn(text=msg.text, id=msg.id, session_id=msg.session_id, speaker=msg.speaker,
                     event_time=ts_in(msg, "event_time", f"episodes[{index}].event_time"),
                     metadata=dict(msg.metadata),
                     importance=msg.importance if msg.HasField("importance") else None,
                     pinned=msg.pinned, extraction=extraction)


def episode_out(e: Episode) -> pb.Episode:
    return pb.Episode(id=e.id, namespace=e.namespace, session_id=e.session_id, speaker=e.speaker, text=e.text,
                      event_time=ts_out(e.event_time), metadata=e.metadata, importance=e.importance,
                      pinned=e.pinned, create_time=ts_out(e.create_time))


def mode_in(value: pb.QueryMode) -> QueryMode | None:
    if value not in _MODES_IN:
        raise InvalidArgument(f"mode {value} is not a known QueryMode", field="mode")
    return _MODES_IN[value]


def mode_out(mode: QueryMode) -> pb.QueryMode:
    return _MODES_OUT[mode]


def query_in(req: pb.QueryRequest) -> QueryIn:
    f = req.filter
    flt = QueryFilter(session_ids=tuple(f.session_ids),
                      time_start=ts_in(f.event_time, "start", "filter.event_time.start"),
                      time_end=ts_in(f.event_time, "end", "filter.event_time.end"),
                      metadata=dict(f.metadata))
    g = req.graph
    graph = GraphParams(
        damping=g.damping if g.HasField("damping") else None,
        fact_top_k=g.fact_top_k if g.HasField("fact_top_k") else None,
        passage_weight=g.passage_weight if g.HasField("passage_weight") else None,
        synonym_threshold=g.synonym_threshold if g.HasField("synonym_threshold") else None)
    return QueryIn(namespace=req.namespace, text=req.text, top_k=req.top_k or 10, mode=mode_in(req.mode),
                   filter=flt, token_budget=req.token_budget, graph=graph,
                   summary_session_id=req.summary_session_id, speaker=req.speaker, now=ts_in(req, "now", "now"))


def hit_out(h: Hit) -> pb.Hit:
    return pb.Hit(episode=episode_out(h.episode), score=h.score, rank=h.rank, dense_score=h.dense_score,
                  graph_score=h.graph_score, lexical_score=h.lexical_score, phrases=list(h.phrases),
                  facts=[pb.Fact(subject=f.subject, predicate=f.predicate, object=f.object, score=f.score)
                         for f in h.facts])


def query_out(r: QueryResult) -> pb.QueryResponse:
    return pb.QueryResponse(hits=[hit_out(h) for h in r.hits], timings_ms=r.timings_ms, mode=mode_out(r.mode),
                            context=r.context, context_tokens=r.context_tokens)


def exported_out(x: ExportedEpisode) -> pb.ExportedEpisode:
    """engine.transfer.ExportedEpisode → protobuf."""
    out = pb.ExportedEpisode(episode=episode_out(x.episode), embedding=x.embedding.astype("<f4").tobytes())
    if x.extraction is not None:
        out.extraction.CopyFrom(pb.Extraction(
            entities=list(x.extraction.entities),
            triples=[pb.Triple(subject=t.subject, predicate=t.predicate, object=t.object)
                     for t in x.extraction.triples]))
    return out


def exported_in(msg: pb.ExportedEpisode, index: int) -> tuple[EpisodeIn, bytes, datetime | None]:
    """(episode as a write, embedding bytes, original create time) of one imported episode."""
    e = msg.episode
    extraction = None
    if msg.HasField("extraction"):
        extraction = ExtractionIn(entities=tuple(msg.extraction.entities),
                                  triples=tuple(TripleIn(t.subject, t.predicate, t.object)
                                                for t in msg.extraction.triples))
    if not e.id:
        raise InvalidArgument(f"episodes[{index}].episode.id is required (exports carry every id)",
                              field=f"episodes[{index}].episode.id")
    episode = EpisodeIn(text=e.text, id=e.id, session_id=e.session_id, speaker=e.speaker,
                        event_time=ts_in(e, "event_time", f"episodes[{index}].episode.event_time"),
                        metadata=dict(e.metadata), importance=e.importance, pinned=e.pinned, extraction=extraction)
    return episode, msg.embedding, ts_in(e, "create_time", f"episodes[{index}].episode.create_time")
