"""Plain frozen dataclasses for everything the API takes and returns (no protobufs leak out of the SDK).

Timestamps are timezone-aware UTC ``datetime`` objects. Naive datetimes passed in are taken as UTC (not local
time), so ``datetime(2024, 5, 1, 9, 0)`` means 09:00 UTC; pass an aware datetime to mean anything else.
Sequence fields are stored as tuples so a value can be shared without being changed under you.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")

QueryMode = Literal["dense", "graph", "hybrid", "lexical"]
GraphFormat = Literal["graphml", "node-link"]


def _freeze(obj: object, name: str, value: Iterable[object]) -> None:
    # Frozen dataclasses forbid assignment, even in __post_init__; accepting lists is still friendlier.
    object.__setattr__(obj, name, tuple(value))


@dataclass(frozen=True, slots=True)
class Triple:
    subject: str
    predicate: str
    object: str


@dataclass(frozen=True, slots=True)
class Extraction:
    """A precomputed OpenIE result (e.g. from HippoRAG); the server then skips its own extractor."""

    entities: tuple[str, ...] = ()
    triples: tuple[Triple, ...] = ()

    def __post_init__(self) -> None:
        _freeze(self, "entities", self.entities)
        _freeze(self, "triples", (t if isinstance(t, Triple) else Triple(*t) for t in self.triples))


@dataclass(frozen=True, slots=True)
class EpisodeInput:
    """One episode to write. Without ``id`` the server derives one from the content, so re-sends are no-ops."""

    text: str
    _: KW_ONLY
    id: str = ""
    session_id: str = ""
    speaker: str = ""
    event_time: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    # None: the server default (0.5).
    importance: float | None = None
    pinned: bool = False
    extraction: Extraction | None = None


# What write() accepts for one episode: an EpisodeInput, a dict with the same keys ("time" may stand for
# "event_time"; times may be ISO 8601 strings), or just the text.
EpisodeLike = EpisodeInput | Mapping[str, Any] | str


@dataclass(frozen=True, slots=True)
class Episode:
    id: str
    namespace: str
    session_id: str
    speaker: str
    text: str
    event_time: datetime | None
    metadata: Mapping[str, str] = field(hash=False)
    importance: float
    pinned: bool
    create_time: datetime | None


@dataclass(frozen=True, slots=True)
class WriteResult:
    """One id per input episode, in input order; ``created[i]`` is False when episode i already existed."""

    ids: tuple[str, ...]
    created: tuple[bool, ...]

    @property
    def created_count(self) -> int:
        return sum(self.created)


@dataclass(frozen=True, slots=True)
class DeleteResult:
    deleted_count: int
    # Deleting an id that does not exist is not an error, so retries are safe.
    not_found_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Fact:
    subject: str
    predicate: str
    object: str
    score: float


@dataclass(frozen=True, slots=True)
class Hit:
    episode: Episode
    # What the ranking used, comparable only within one result: the cosine (dense), PPR mass (graph), or in
    # hybrid a fused rank value 1 / rank (not a similarity).
    score: float
    # 1-based.
    rank: int
    # Why the hit was returned (graph and hybrid modes).
    facts: tuple[Fact, ...]
    phrases: tuple[str, ...]
    # Cosine similarity to the query, in every mode.
    dense_score: float
    # PPR mass in graph and hybrid modes; 0 in dense mode and for dense-added fill hits.
    graph_score: float
    # BM25 score of the lexical channel (hybrid and lexical modes; 0 when it did not match).
    lexical_score: float = 0.0


@dataclass(frozen=True, slots=True)
class QueryResult:
    hits: tuple[Hit, ...]
    timings_ms: Mapping[str, float] = field(hash=False)
    # The mode that actually ran: "dense", "graph" or "hybrid" (graph falls back to dense without seeds).
    mode: str
    # Ready to paste into a prompt, under the token budget.
    context: str
    context_tokens: int


@dataclass(frozen=True, slots=True)
class QueryFilter:
    """Restricts a query. ``event_time_start`` is inclusive, ``event_time_end`` exclusive; None is unbounded."""

    session_ids: tuple[str, ...] = ()
    event_time_start: datetime | None = None
    event_time_end: datetime | None = None
    # Every key must be present with exactly this value.
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if isinstance(self.session_ids, str):
            raise TypeError("QueryFilter.session_ids must be a sequence of session ids, not a string")
        _freeze(self, "session_ids", self.session_ids)


@dataclass(frozen=True, slots=True)
class GraphOptions:
    """Per-query overrides of the server's graph retrieval settings; None keeps the server's value."""

    damping: float | None = None
    fact_top_k: int | None = None
    passage_weight: float | None = None
    synonym_threshold: float | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    # Empty on the last page.
    next_page_token: str


@dataclass(frozen=True, slots=True)
class EpisodePage(Page[Episode]):
    pass


@dataclass(frozen=True, slots=True)
class NamespaceInfo:
    name: str
    episode_count: int
    create_time: datetime | None


@dataclass(frozen=True, slots=True)
class NamespacePage(Page[NamespaceInfo]):
    pass


@dataclass(frozen=True, slots=True)
class NamespaceStats:
    namespace: str
    episode_count: int
    vector_count: int
    index_type: str
    index_bytes: int
    phrase_count: int
    fact_count: int
    graph_edge_count: int
    extraction_backlog: int
    session_count: int
    create_time: datetime | None
    extraction_failed: int = 0
    lexical_count: int = 0


@dataclass(frozen=True, slots=True)
class LlmUsage:
    calls: int
    cached_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    failed_calls: int


@dataclass(frozen=True, slots=True)
class Stats:
    namespaces: tuple[NamespaceStats, ...]
    episode_count: int
    db_bytes: int
    disk_bytes: int
    llm: LlmUsage
    embedding_model: str
    embedding_dim: int
    extractor: str
    gpu: bool
    dropped_triples: int


@dataclass(frozen=True, slots=True)
class SegmentSummary:
    index: int
    # Inclusive range of episode sequence numbers the segment covers.
    first_seq: int
    last_seq: int
    text: str
    update_time: datetime | None


@dataclass(frozen=True, slots=True)
class Summary:
    """The rolling compact memory (HEMA) of a namespace or session."""

    summary: str
    update_time: datetime | None
    episode_count: int
    segments: tuple[SegmentSummary, ...]
    # The summary of the segment summaries (second level).
    segments_summary: str
    # Episodes written but not yet folded into the summary.
    backlog: int


@dataclass(frozen=True, slots=True)
class PrunedEpisode:
    id: str
    score: float
    # "over_max_episodes", "over_max_bytes" or "below_min_score".
    reason: str
    text: str


@dataclass(frozen=True, slots=True)
class PruneResult:
    pruned: tuple[PrunedEpisode, ...]
    remaining_count: int
    dry_run: bool


@dataclass(frozen=True, slots=True)
class GraphExport:
    data: bytes
    node_count: int
    edge_count: int


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What ``backup`` wrote: a consistent copy of the server's database, on the server's machine."""

    directory: str
    size_bytes: int
    # Every write acknowledged before the backup started has a sequence number at or below this.
    last_seq: int
    backup_time: datetime | None
    schema_version: int


@dataclass(frozen=True, slots=True)
class ExportedEpisode:
    """One episode as ``export_namespace`` returns it: fields, stored embedding and stored extraction."""

    episode: Episode
    # Little-endian float32, ``NamespaceExport.embedding_dim`` values.
    embedding: bytes = field(repr=False)
    extraction: Extraction | None = None


@dataclass(frozen=True, slots=True)
class NamespaceExportPage(Page[ExportedEpisode]):
    # The embedder the embeddings came from ("name|dim"): ``import_namespace`` must be given it back.
    embedding_model: str = ""
    embedding_dim: int = 0
