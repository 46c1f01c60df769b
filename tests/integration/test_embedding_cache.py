"""The shared phrase/fact vector cache (0007_embedding_cache.sql) through a real engine and DuckDB.

A counting fake embedder (the model boundary) records every text it is asked to encode, so a cache hit shows
as a phrase the encoder never saw; the rest (DuckDB, FAISS, the graph) is real.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from memserve.config import Settings
from memserve.embed import HashEmbedder
from memserve.engine.memory import MemoryEngine
from memserve.store import embedding_cache_repo
from memserve.types import EpisodeIn, ExtractionIn, TripleIn

DIM = 64
TRIPLES = {
    "Alice Smith founded Acme Robotics in Berlin.": [("Alice Smith", "founded", "Acme Robotics")],
    "Acme Robotics builds warehouse robots for Zalando.": [("Acme Robotics", "builds robots for", "Zalando")],
    "Zalando is a fashion retailer based in Berlin.": [("Zalando", "based in", "Berlin")],
}
PHRASES = {"alice smith", "acme robotics", "zalando", "berlin"}


class CountingEmbedder:
    """HashEmbedder that counts, per text, how often it was encoded."""

    def __init__(self) -> None:
        self.name, self.dim = "hash-64", DIM
        self._inner = HashEmbedder(DIM)
        self.seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            for t in texts:
                self.seen[t] = self.seen.get(t, 0) + 1
        return self._inner.embed(texts)


def episodes() -> list[EpisodeIn]:
    return [EpisodeIn(text, id=f"e{i}", extraction=ExtractionIn(
        entities=(), triples=tuple(TripleIn(s, p, o) for s, p, o in triples)))
        for i, (text, triples) in enumerate(TRIPLES.items())]


@pytest.fixture()
def make_engine(tmp_path):
    engines: list[MemoryEngine] = []

    def make(**overrides) -> tuple[MemoryEngine, CountingEmbedder]:
        settings = Settings(data_dir=tmp_path / "data", embedding_model="hash:64", snapshot_interval_s=0,
                            extractor="offline", summarizer="none").replace(**overrides)
        embedder = CountingEmbedder()
        engine = MemoryEngine(settings, embedder=embedder)
        engine.start()
        engines.append(engine)
        return engine, embedder

    yield make
    for engine in engines:
        engine.close(timeout=5)


def phrase_vectors(engine: MemoryEngine, ns: str) -> dict[str, np.ndarray]:
    kg = engine.graph._graph(ns)
    ids = sorted(kg.phrases)
    return dict(zip([kg.phrases[i] for i in ids], kg.phrase_vectors(ids), strict=True))


def test_a_second_namespace_reads_phrase_and_fact_vectors_from_the_cache(make_engine) -> None:
    engine, embedder = make_engine()
    engine.write("a", episodes(), wait_for_graph=True)
    assert set(embedder.seen) >= PHRASES  # the first namespace encodes its phrases
    first = dict(embedder.seen)
    engine.write("b", episodes(), wait_for_graph=True)
    new = {t: n - first.get(t, 0) for t, n in embedder.seen.items() if n > first.get(t, 0)}
    assert set(new) == set(TRIPLES)  # only the passages themselves were encoded again (dense index)
    assert engine.graph.embedding_cache_hits >= len(PHRASES) + 3
    a, b = phrase_vectors(engine, "a"), phrase_vectors(engine, "b")
    assert a.keys() == b.keys() == PHRASES
    for text in PHRASES:
        np.testing.assert_array_equal(a[text], b[text])


def test_cache_is_keyed_by_model(make_engine) -> None:
    engine, embedder = make_engine()
    # Vectors another model left for the same strings: must not be reused.
    bogus = np.zeros((len(PHRASES), DIM), np.float32)
    bogus[:, 0] = 1.0
    with engine.db.transaction() as tx:
        embedding_cache_repo.store(tx, "some-other-model", sorted(PHRASES), bogus)
    engine.write("a", episodes(), wait_for_graph=True)
    assert set(embedder.seen) >= PHRASES
    got = phrase_vectors(engine, "a")
    for text in PHRASES:
        np.testing.assert_allclose(got[text], HashEmbedder(DIM).embed([text])[0], rtol=1e-6)
    cur = engine.db.reader()
    assert embedding_cache_repo.count(cur, "some-other-model") == len(PHRASES)
    assert embedding_cache_repo.count(cur, embedder.name) >= len(PHRASES) + 3  # phrases and facts


def test_deletes_and_namespace_isolation_are_unaffected(make_engine) -> None:
    engine, embedder = make_engine()
    engine.write("a", episodes(), wait_for_graph=True)
    engine.write("b", episodes()[:1], wait_for_graph=True)
    engine.delete_namespace("a")
    kg_b = engine.graph._graph("b")
    assert set(kg_b.phrases.values()) == {"alice smith", "acme robotics"}  # b holds only its own passage
    engine.delete("b", ["e0"])
    engine.graph.wait("b", 30)
    assert not engine.graph._graph("b").phrases
    # The cache outlives the namespaces (it holds no episode text) and still serves a fresh one.
    before = dict(embedder.seen)
    engine.write("c", episodes(), wait_for_graph=True)
    assert all(embedder.seen[p] == before[p] for p in PHRASES)
    assert set(phrase_vectors(engine, "c")) == PHRASES


def test_cache_off_encodes_again(make_engine) -> None:
    engine, embedder = make_engine(graph_embedding_cache=False)
    engine.write("a", episodes(), wait_for_graph=True)
    engine.write("b", episodes(), wait_for_graph=True)
    assert all(embedder.seen[p] == 2 for p in PHRASES)
    assert embedding_cache_repo.count(engine.db.reader()) == 0
