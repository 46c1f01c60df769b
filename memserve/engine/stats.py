"""Statistics for GetStats: per-namespace counts, index and graph sizes, disk, LLM usage."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ..store import episodes_repo, extractions_repo, graph_repo
from .graph_service import job_stats
from .validation import check_namespace

if TYPE_CHECKING:  # memory.py imports this module
    from .memory import MemoryEngine

T = TypeVar("T")


@dataclass(frozen=True)
class NamespaceStats:
    namespace: str
    episode_count: int
    session_count: int
    text_bytes: int
    vector_count: int
    index_type: str
    index_bytes: int
    create_time: datetime | None
    graph: dict[str, int] = field(default_factory=dict)
    lexical_count: int = 0


@dataclass(frozen=True)
class ServerStats:
    namespaces: list[NamespaceStats]
    db_bytes: int
    disk_bytes: int
    embedding_model: str
    embedding_dim: int
    extractor: str
    gpu: bool
    llm_usage: dict[str, float] | None
    dropped_triples: int
    llm_output: dict[str, int] | None = None

    @property
    def episode_count(self) -> int:
        return sum(s.episode_count for s in self.namespaces)


class StatsCache:
    """What GetStats reads from DuckDB (counts, create times, job states), cached until the next commit: a
    dashboard polling an idle server costs microseconds, and a poll during ingest one pass of SQL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[int, Any]] = {}  # key -> (commit count, value)

    def get(self, engine: MemoryEngine, key: str, compute: Callable[[], T]) -> T:
        commits = engine.db.commits  # read before computing: a commit meanwhile forces the next recompute
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] == commits:
            return hit[1]
        value = compute()
        with self._lock:
            if len(self._entries) > 4096:
                self._entries.clear()
            self._entries[key] = (commits, value)
        return value


def _db_part(engine: MemoryEngine, ns: str) -> tuple:
    cur = engine.db.reader()
    return (episodes_repo.namespace_counts(cur, ns), episodes_repo.namespace_create_time(cur, ns),
            job_stats(graph_repo.job_counts(cur, ns)))


def collect(engine: MemoryEngine, namespace: str = "", *, visible: Callable[[str], bool] | None = None) -> ServerStats:
    """``engine``: a MemoryEngine. Raises NamespaceNotFound for an unknown namespace. ``visible`` limits the
    all-namespaces answer to what the caller may see (and then hides the server-wide byte counts)."""
    cache: StatsCache = engine.stats_cache
    if namespace:
        check_namespace(namespace)
        engine.require_namespace(namespace)
        names = [namespace]
    else:
        names = cache.get(engine, "\x00namespaces", lambda: episodes_repo.all_namespaces(engine.db.reader()))
        if visible is not None:
            names = [ns for ns in names if visible(ns)]
    out = []
    for ns in names:
        (episodes, sessions, nbytes), created, jobs = cache.get(engine, ns, functools.partial(_db_part, engine, ns))
        count, kind, index_bytes = engine.indexes.describe(ns)
        out.append(NamespaceStats(namespace=ns, episode_count=episodes, session_count=sessions, text_bytes=nbytes,
                                  vector_count=count, index_type=kind, index_bytes=index_bytes,
                                  create_time=created, graph={**engine.graph.counters(ns), **jobs},
                                  lexical_count=engine.lexical.size(ns)))
    data_dir = engine.settings.data_dir
    db_bytes = engine.db.file_bytes()  # before the walk: a commit meanwhile grows the WAL, never shrinks it
    disk = sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
    dropped = cache.get(engine, "\x00dropped", lambda: extractions_repo.dropped_total(engine.db.reader()))
    if visible is not None:  # the server's totals include other tenants' data
        db_bytes = disk = 0
    return ServerStats(namespaces=out, db_bytes=db_bytes, disk_bytes=max(disk, db_bytes),
                       embedding_model=engine.embedder.name, embedding_dim=engine.embedder.dim,
                       extractor=engine.graph.extractor_name, gpu=engine.indexes.gpu,
                       llm_usage=engine.llm.usage() if engine.llm is not None else None,
                       dropped_triples=dropped,
                       llm_output=engine.llm.output_counts() if engine.llm is not None else None)
