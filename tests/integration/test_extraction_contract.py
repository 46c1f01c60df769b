"""An extractor that breaks the one-result-per-text contract, through the real graph job path (MemoryEngine,
its background worker, DuckDB): no episode is marked extracted without a result of its own (issue 13: a
plain ``zip`` dropped the unmatched texts and finished their jobs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from memserve.engine import stats as engine_stats
from memserve.engine.memory import MemoryEngine
from memserve.errors import ExtractionFailed
from memserve.extract import Extractor
from memserve.store import extractions_repo
from memserve.types import EpisodeIn
from tests.fakes.broken_extractors import DroppingExtractor, SilentExtractor
from tests.support.engines import engine_factory

TEXTS = ["Alice Smith founded Acme Robotics in Berlin.", "Bob Jones joined Acme Robotics in Munich.",
         "Zalando is a fashion retailer based in Berlin."]


@pytest.fixture()
def engine_with(tmp_path) -> Iterator[Callable[[Extractor], MemoryEngine]]:
    with engine_factory(tmp_path) as make:
        count = iter(range(1_000))

        def with_extractor(extractor: Extractor) -> MemoryEngine:
            def use(engine: MemoryEngine) -> None:
                engine.graph.extractor = extractor

            return make(data=f"data{next(count)}", configure=use)

        yield with_extractor


def graph_stats(engine: MemoryEngine, ns: str) -> dict[str, int]:
    return engine_stats.collect(engine, ns).namespaces[0].graph


def stored_extractions(engine: MemoryEngine, ns: str) -> int:
    seqs = [e.seq for e in engine.list_episodes(ns)[0]]
    return len(extractions_repo.load(engine.db.reader(), ns, seqs))


def test_a_batch_with_a_missing_result_is_extracted_one_text_at_a_time(engine_with) -> None:
    engine = engine_with(DroppingExtractor())
    engine.write("ns", [EpisodeIn(text=t) for t in TEXTS], wait_for_graph=True)
    # Every episode has its own stored extraction: the one the batch lost was recovered, not marked done empty.
    assert stored_extractions(engine, "ns") == len(TEXTS)
    stats = graph_stats(engine, "ns")
    assert stats["extraction_failed"] == 0 and stats["extraction_backlog"] == 0
    assert engine.graph.extractor_contract_violations >= 1


def test_texts_that_get_no_result_fail_visibly(engine_with) -> None:
    engine = engine_with(SilentExtractor())
    with pytest.raises(ExtractionFailed):
        engine.write("ns", [EpisodeIn(text=t) for t in TEXTS[:2]], wait_for_graph=True)
    stats = graph_stats(engine, "ns")
    assert stats["extraction_failed"] == 2 and stats["extraction_backlog"] == 0  # retried, then failed for good
    assert stored_extractions(engine, "ns") == 0
    assert engine.graph.extractor_contract_violations >= 3  # one per attempt
    assert len(engine.list_episodes("ns")[0]) == 2  # stored and searchable all the same
