"""Real ``MemoryEngine``s for integration tests: DuckDB, FAISS and the graph worker, on a temporary data dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memserve.config import Settings
from memserve.engine.memory import MemoryEngine


@contextmanager
def engine_factory(base: Path) -> Iterator[Callable[..., MemoryEngine]]:
    """``make(data="data", embedder=None, configure=None, **settings)`` starts an engine on ``base / data`` with
    the hash embedder, the offline extractor and no summaries unless ``settings`` say otherwise; ``configure``
    sees the engine before it starts. Every engine made is closed on exit."""
    made: list[MemoryEngine] = []

    def make(data: str = "data", embedder: Any = None, configure: Callable[[MemoryEngine], None] | None = None,
             **overrides: Any) -> MemoryEngine:
        settings = Settings(data_dir=base / data, embedding_model="hash:64", snapshot_interval_s=0,
                            extractor="offline", summarizer="none").replace(**overrides)
        engine = MemoryEngine(settings, embedder=embedder)
        if configure is not None:
            configure(engine)
        engine.start()
        made.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in made:
            engine.close(timeout=5)
