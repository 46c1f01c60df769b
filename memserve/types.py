"""Domain values passed between the engine, the store and the servicer (never protobufs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

DEFAULT_IMPORTANCE = 0.5


class QueryMode(str, Enum):
    DENSE = "dense"
    GRAPH = "graph"
    HYBRID = "hybrid"
    LEXICAL = "lexical"


@dataclass(frozen=True)
class TripleIn:
    subject: str
    predicate: str
    object: str


@dataclass(frozen=True)
class ExtractionIn:
    """A precomputed extraction sent with a write (e.g. HippoRAG OpenIE output)."""

    entities: tuple[str, ...]
    triples: tuple[TripleIn, ...]


@dataclass(frozen=True)
class EpisodeIn:
    text: str
    id: str = ""
    session_id: str = ""
    speaker: str = ""
    event_time: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    importance: float | None = None
    pinned: bool = False
    extraction: ExtractionIn | None = None


@dataclass(frozen=True)
class Episode:
    seq: int
    namespace: str
    id: str
    session_id: str
    speaker: str
    text: str
    event_time: datetime | None
    metadata: dict[str, str]
    importance: float
    pinned: bool
    create_time: datetime
    text_bytes: int


@dataclass(frozen=True)
class QueryFilter:
    session_ids: tuple[str, ...] = ()
    time_start: datetime | None = None
    time_end: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.session_ids or self.time_start or self.time_end or self.metadata)


@dataclass(frozen=True)
class GraphParams:
    damping: float | None = None
    fact_top_k: int | None = None
    passage_weight: float | None = None
    synonym_threshold: float | None = None


@dataclass(frozen=True)
class QueryIn:
    namespace: str
    text: str
    top_k: int = 10
    mode: QueryMode | None = None
    filter: QueryFilter = field(default_factory=QueryFilter)
    token_budget: int = 0
    graph: GraphParams = field(default_factory=GraphParams)
    summary_session_id: str = ""
    speaker: str = ""  # prefer this speaker's turns (empty: detected from the text)
    now: datetime | None = None  # what "last week" in the text is relative to (None: the server clock)


@dataclass(frozen=True)
class FactOut:
    subject: str
    predicate: str
    object: str
    score: float


@dataclass(frozen=True)
class Hit:
    episode: Episode
    score: float
    rank: int
    dense_score: float = 0.0
    graph_score: float = 0.0
    facts: tuple[FactOut, ...] = ()
    lexical_score: float = 0.0
    phrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueryResult:
    hits: list[Hit]
    timings_ms: dict[str, float]
    mode: QueryMode
    context: str = ""
    context_tokens: int = 0


@dataclass(frozen=True)
class WriteResult:
    ids: list[str]
    created: list[bool]
