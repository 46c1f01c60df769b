"""Statistics for GetStats: per-namespace counts, index and graph sizes, disk, LLM usage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..store import episodes_repo, extractions_repo
from .validation import check_namespace


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

    @property
    def episode_count(self) -> int:
        return sum(s.episode_count for s in self.namespaces)


def collect(engine, namespace: str = "") -> ServerStats:
    """``engine``: a MemoryEngine. Raises NamespaceNotFound for an unknown namespace."""
    cur = engine.db.reader()
    if namespace:
        check_namespace(namespace)
        engine.require_namespace(namespace)
        names = [namespace]
    else:
        names = episodes_repo.all_namespaces(cur)
    out = []
    for ns in names:
        episodes, sessions, nbytes = episodes_repo.namespace_counts(cur, ns)
        count, kind, index_bytes = engine.indexes.describe(ns)
        out.append(NamespaceStats(namespace=ns, episode_count=episodes, session_count=sessions, text_bytes=nbytes,
                                  vector_count=count, index_type=kind, index_bytes=index_bytes,
                                  create_time=episodes_repo.namespace_create_time(cur, ns),
                                  graph=engine.graph.stats(ns)))
    data_dir = engine.settings.data_dir
    disk = sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
    return ServerStats(namespaces=out, db_bytes=engine.db.file_bytes(), disk_bytes=disk,
                       embedding_model=engine.embedder.name, embedding_dim=engine.embedder.dim,
                       extractor=engine.graph.extractor_name, gpu=engine.indexes.gpu,
                       llm_usage=engine.llm.usage() if engine.llm is not None else None,
                       dropped_triples=extractions_repo.dropped_total(cur))
