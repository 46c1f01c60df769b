"""Where the graph's phrase and fact vectors come from (``graph_vectors``), through a real engine, DuckDB and
FAISS. A counting fake embedder (the model boundary) records every text it is asked to encode, so a phrase
pooled from its episode's tokens or a composed fact shows as a text the encoder never saw."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from memserve.embed import HashEmbedder
from memserve.embed.spans import TokenVectors, span_vector
from memserve.engine.graph_service import vector_mode
from memserve.engine.memory import MemoryEngine
from memserve.extract import OfflineExtractor
from memserve.extract.normalize import normalize_phrase
from memserve.store import extractions_repo
from memserve.types import EpisodeIn, ExtractionIn, QueryIn, QueryMode, TripleIn
from tests.support.engines import engine_factory

DIM = 64
TEXTS = [
    "Polish-Russian War\nPolish-Russian War is a 2009 film directed by Xawery Żuławski.",
    "Xawery Żuławski\nXawery Żuławski is the son of actress Małgorzata Braunek.",
    "Małgorzata Braunek\nMałgorzata Braunek was a Polish actress born in Szamotuły.",
]


class CountingTokenEmbedder(HashEmbedder):
    """HashEmbedder (with token vectors) that records each text it encodes, at the boundary only."""

    def __init__(self) -> None:
        super().__init__(DIM)
        self.seen: dict[str, int] = {}
        self._count_lock = threading.Lock()
        self._inside = threading.local()

    def _count(self, texts: list[str]) -> None:
        if getattr(self._inside, "on", False):
            return  # the word vectors HashEmbedder makes for its own token rows are not encodes
        with self._count_lock:
            for t in texts:
                self.seen[t] = self.seen.get(t, 0) + 1

    def embed(self, texts: list[str]) -> np.ndarray:
        self._count(texts)
        return super().embed(texts)

    def embed_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        self._count(texts)
        self._inside.on = True
        try:
            return super().embed_with_tokens(texts)
        finally:
            self._inside.on = False


class CountingPlainEmbedder:
    """An embedder without token vectors (a model served elsewhere, say)."""

    def __init__(self) -> None:
        self.name, self.dim = "hash-64", DIM
        self._inner = HashEmbedder(DIM)
        self.seen: dict[str, int] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        for t in texts:
            self.seen[t] = self.seen.get(t, 0) + 1
        return self._inner.embed(texts)


@pytest.fixture()
def make_engine(tmp_path):
    with engine_factory(tmp_path) as make:
        def counted(embedder=None, data: str = "data", **overrides) -> MemoryEngine:
            return make(data=data, embedder=embedder or CountingTokenEmbedder(), graph_embedding_cache=False,
                        **overrides)

        yield counted


def graph_vectors(engine: MemoryEngine, ns: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    kg = engine.graph._graph(ns)
    pids, fids = sorted(kg.phrases), sorted(kg.facts)
    phrases = dict(zip([kg.phrases[i] for i in pids], kg.phrase_vectors(pids), strict=True))
    facts = dict(zip([kg.facts[i].text for i in fids], kg.fact_vectors(fids), strict=True))
    return phrases, facts


def write(engine: MemoryEngine, ns: str = "ns", texts: list[str] = TEXTS) -> None:
    engine.write(ns, [EpisodeIn(t) for t in texts], wait_for_graph=True)


def test_spans_pool_phrases_from_the_episode_and_compose_facts(make_engine) -> None:
    engine = make_engine(graph_vectors="spans")
    embedder = engine.embedder.inner
    write(engine)
    phrases, facts = graph_vectors(engine, "ns")
    assert {"polish russian war", "xawery zuławski", "małgorzata braunek"} <= phrases.keys()
    assert engine.graph.span_vectors == len(phrases)  # every phrase was found in its own episode
    assert not set(phrases) & set(embedder.seen)  # ... and none was encoded
    assert not set(facts) & set(embedder.seen)  # nor any fact text
    kg = engine.graph._graph("ns")
    assert {f.predicate for f in kg.facts.values() if f.predicate} <= set(embedder.seen)  # predicates were
    # A phrase's vector is the mean of its tokens' vectors in the episode that brought it.
    _, [tokens] = HashEmbedder(DIM).embed_with_tokens([TEXTS[1]])
    want = span_vector(tokens, HashEmbedder(DIM).phrase_token_ids(["małgorzata braunek"])[0])
    assert want is not None
    np.testing.assert_allclose(phrases["małgorzata braunek"], want, atol=1e-3)
    assert len(engine.graph.token_stash or ()) == 0  # every entry was taken
    answer = engine.query(QueryIn(namespace="ns", text="Who is the mother of the director of Polish-Russian War?",
                                  top_k=3, mode=QueryMode.GRAPH))
    assert answer.hits and any("Braunek" in h.episode.text for h in answer.hits)


def test_compose_encodes_phrases_but_no_fact_text(make_engine) -> None:
    engine = make_engine(graph_vectors="compose")
    embedder = engine.embedder.inner
    write(engine)
    phrases, facts = graph_vectors(engine, "ns")
    assert set(phrases) <= set(embedder.seen) and not set(facts) & set(embedder.seen)
    assert engine.graph.span_vectors == 0 and engine.graph.token_stash is None
    for text, vec in phrases.items():
        np.testing.assert_allclose(vec, HashEmbedder(DIM).embed([text])[0], atol=1e-6)


def test_encode_is_the_old_behaviour(make_engine) -> None:
    engine = make_engine(graph_vectors="encode")
    embedder = engine.embedder.inner
    write(engine)
    phrases, facts = graph_vectors(engine, "ns")
    assert set(phrases) | set(facts) <= set(embedder.seen)


def test_a_full_stash_falls_back_to_encoding_and_loses_nothing(make_engine) -> None:
    spans = make_engine(graph_vectors="spans", graph_token_stash_mb=0)
    write(spans)
    encoded = make_engine(data="other", graph_vectors="compose")
    write(encoded)
    assert spans.graph.span_vectors == 0
    (p1, f1), (p2, f2) = graph_vectors(spans, "ns"), graph_vectors(encoded, "ns")
    assert p1.keys() == p2.keys() and f1.keys() == f2.keys()
    for text in p1:
        np.testing.assert_allclose(p1[text], p2[text], atol=1e-6)


def test_an_embedder_without_token_vectors_composes(make_engine) -> None:
    plain = CountingPlainEmbedder()
    engine = make_engine(embedder=plain, graph_vectors="spans")
    write(engine)
    phrases, facts = graph_vectors(engine, "ns")
    assert engine.graph.token_stash is None and engine.graph.span_vectors == 0
    assert set(phrases) <= set(plain.seen) and not set(facts) & set(plain.seen)


def test_client_extractions_and_a_restart(make_engine) -> None:
    engine = make_engine(graph_vectors="spans")
    engine.write("ns", [EpisodeIn(TEXTS[0], extraction=ExtractionIn(entities=(), triples=(
        TripleIn("Polish-Russian War", "directed by", "Xawery Żuławski"),
        TripleIn("Polish-Russian War", "released in", "Warsaw")))),  # "Warsaw" is not in the text: encoded
    ], wait_for_graph=True)
    seen = engine.embedder.inner.seen
    assert "warsaw" in seen and "polish russian war" not in seen and engine.graph.span_vectors == 2
    before, before_facts = graph_vectors(engine, "ns")
    engine.close(timeout=5)
    again = make_engine(graph_vectors="spans")  # same data dir: the graph is restored, nothing re-encoded
    after, after_facts = graph_vectors(again, "ns")
    assert after.keys() == before.keys() and after_facts.keys() == before_facts.keys()
    for text in before:
        np.testing.assert_array_equal(after[text], before[text])
    write(again, texts=TEXTS[1:])
    assert again.graph.span_vectors >= 2 and normalize_phrase("Małgorzata Braunek") in graph_vectors(again, "ns")[0]


def test_no_graph_no_stash_and_deletes_drop_entries(make_engine) -> None:
    engine = make_engine(graph_vectors="spans", extractor="none")  # no extraction: nobody would take entries
    engine.write("ns", [EpisodeIn(TEXTS[0], id="a")])
    assert engine.graph.token_stash is not None and len(engine.graph.token_stash) == 0
    spans = make_engine(data="other", graph_vectors="spans")
    spans.write("ns", [EpisodeIn(TEXTS[0], id="a"), EpisodeIn(TEXTS[1], id="b")], wait_for_graph=True)
    stash = spans.graph.token_stash
    assert stash is not None and len(stash) == 0
    # An entry still waiting for the worker when its episode is deleted, and one of a dropped namespace.
    seq_a = spans.get("ns", "a").seq
    stash.put("ns", [(seq_a, TEXTS[0], HashEmbedder(DIM).embed_with_tokens([TEXTS[0]])[1][0])])
    spans.delete("ns", ["a"])
    assert len(stash) == 0
    seq_b = spans.get("ns", "b").seq
    stash.put("ns", [(seq_b, TEXTS[1], HashEmbedder(DIM).embed_with_tokens([TEXTS[1]])[1][0])])
    spans.delete_namespace("ns")
    assert len(stash) == 0 and stash.nbytes == 0


def test_auto_pools_what_the_offline_extractor_found_and_encodes_what_an_llm_wrote(make_engine) -> None:
    engine = make_engine()  # the defaults: graph_vectors=auto, extractor=auto without an LLM (offline)
    embedder = engine.embedder.inner
    assert engine.graph.token_stash is not None
    engine.write("ns", [EpisodeIn(TEXTS[0])], wait_for_graph=True)  # extracted here, offline: spans
    engine.write("ns", [EpisodeIn(TEXTS[1], extraction=ExtractionIn(entities=(), triples=(  # a client's (LLM) triples
        TripleIn("Xawery Żuławski", "is the son of", "Małgorzata Braunek"),)))], wait_for_graph=True)
    kg = engine.graph._graph("ns")
    facts = {f.text for f in kg.facts.values()}
    assert "xawery zuławski is the son of małgorzata braunek" in facts
    assert "xawery zuławski is the son of małgorzata braunek" in embedder.seen  # encoded, as before
    assert not (facts - {"xawery zuławski is the son of małgorzata braunek"}) & set(embedder.seen)  # composed
    assert "małgorzata braunek" in embedder.seen and "polish russian war" not in embedder.seen
    assert engine.graph.span_vectors >= 2


def test_vector_mode_per_source() -> None:
    assert vector_mode("auto", OfflineExtractor.name) == "spans"
    assert vector_mode("auto", "offline-regex") == "spans"  # what v1 stored
    assert vector_mode("auto", "client") == "encode"
    assert vector_mode("auto", "llm-openie:openai/gpt-4o-mini") == "encode"
    for explicit in ("encode", "compose", "spans"):
        assert vector_mode(explicit, "client") == explicit == vector_mode(explicit, OfflineExtractor.name)


def test_an_extraction_the_offline_extractor_would_make_keeps_its_source(make_engine) -> None:
    """What import-namespace brings from another server: the offline extractor's own output, sent as a client's.
    It must get the vectors it got there (auto: spans), while a real client's triples are encoded."""
    engine = make_engine()
    offline = OfflineExtractor().extract_one(TEXTS[0])
    as_sent = ExtractionIn(entities=tuple(offline.entities),
                           triples=tuple(TripleIn(t.subject, t.predicate, t.object) for t in offline.triples))
    engine.write("ns", [EpisodeIn(TEXTS[0], id="moved", extraction=as_sent),
                        EpisodeIn(TEXTS[1], id="client", extraction=ExtractionIn(entities=(), triples=(
                            TripleIn("Xawery Żuławski", "is the son of", "Małgorzata Braunek"),)))],
                 wait_for_graph=True)
    seqs = {e.id: e.seq for e in (engine.get("ns", "moved"), engine.get("ns", "client"))}
    sources = extractions_repo.sources(engine.db.reader(), "ns", list(seqs.values()))
    assert sources == {seqs["moved"]: OfflineExtractor.name, seqs["client"]: "client"}
    seen = engine.embedder.inner.seen
    assert "polish russian war" not in seen  # pooled from the moved episode's tokens
    assert "xawery zuławski is the son of małgorzata braunek" in seen  # the client's fact, encoded
