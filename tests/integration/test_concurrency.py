"""The lock model of docs/CONCURRENCY.md, raced deterministically: gates at the model boundary (encoder,
extractor, LLM), events and barriers, never sleeps. Each test names the defect it guards against; each
failed on the engine before the live-serving rework (by hanging at a gate until its bound, or by a wrong
answer)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from memserve.config import Settings
from memserve.engine.background import Settled, Worker
from memserve.engine.fact_filter import llm_fact_filter
from memserve.engine.memory import MemoryEngine
from memserve.errors import DeadlineExceeded, ExtractionFailed
from memserve.types import EpisodeIn, QueryIn, QueryMode
from memserve.vector.faiss_index import FaissIndex
from tests.support.gates import LONG, Gate, GatedEmbedder, GatedExtractor, run_in_thread, wait_until

DOCS = [
    "Alice Smith founded Acme Robotics in Berlin.",
    "Acme Robotics builds warehouse robots for Zalando.",
    "Bob Jones joined Acme Robotics as chief engineer.",
    "Zalando is a fashion retailer based in Berlin.",
]


@pytest.fixture()
def engine_factory(tmp_path):
    engines: list[MemoryEngine] = []

    def make(**overrides) -> MemoryEngine:
        settings = Settings(data_dir=tmp_path / f"data{len(engines)}", embedding_model="hash:64",
                            snapshot_interval_s=0, extractor="offline", summarizer="none")
        settings = settings.replace(**overrides)
        engine = MemoryEngine(settings, embedder=GatedEmbedder())
        engine.graph.extractor = GatedExtractor()
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        for gate in (engine.embedder.inner.gate, engine.graph.extractor.gate):
            gate.open()
        engine.close(timeout=5)


def graph_stats(engine, ns):
    from memserve.engine import stats as engine_stats

    return engine_stats.collect(engine, ns).namespaces[0].graph


def episodes(texts, session="s"):
    return [EpisodeIn(text=t, session_id=session) for t in texts]


def query(engine, text, ns="ns", mode=QueryMode.HYBRID):
    return engine.query(QueryIn(namespace=ns, text=text, top_k=3, mode=mode))


# -- encoder scheduling ------------------------------------------------------------------------------------

def test_query_completes_while_a_large_write_batch_encodes(engine_factory):
    engine = engine_factory(encode_chunk_chars=0)  # chunks of exactly encode_chunk texts (these are short)
    engine.write("ns", episodes(DOCS), wait_for_graph=True)
    embedder = engine.embedder.inner
    big = [f"note {i} about robots" for i in range(200)]
    big[0] = "BLOCK"  # the shortest text: the scheduler sorts by length, so the first chunk stops at the gate
    _, write = run_in_thread(lambda: engine.write("bulk", episodes(big)))
    embedder.gate.wait_entered()
    _, q = run_in_thread(lambda: query(engine, "Who founded Acme Robotics?", mode=QueryMode.DENSE))
    wait_until(lambda: len(engine.embedder._queries) == 1, "the query to queue behind the bulk chunk")
    embedder.gate.open()
    assert q["done"].wait(LONG) and "error" not in q, q.get("error")
    assert not write["done"].is_set() or engine.embedder.stats()["bulk_chunks"] > 1
    assert write["done"].wait(LONG) and "error" not in write, write.get("error")
    # The query's encode ran right after the first bulk chunk, not after the whole batch.
    query_call = next(i for i, call in enumerate(embedder.calls) if call == ["Who founded Acme Robotics?"])
    bulk_calls = [i for i, call in enumerate(embedder.calls) if any("about robots" in t for t in call)]
    assert len(bulk_calls) > 2 and query_call < bulk_calls[1]
    assert q["result"].hits[0].episode.text == DOCS[0]


# -- defect 1: the LLM fact filter ran under the graph lock ----------------------------------------------

class _GatedLLM:
    def __init__(self) -> None:
        self.gate = Gate()

    def complete(self, messages, json_mode=False, schema=None):
        self.gate.pass_through()
        raise_llm = __import__("memserve.errors", fromlist=["LLMError"]).LLMError
        raise raise_llm("offline")  # the filter keeps every candidate on an LLM error


def test_slow_fact_filter_does_not_block_deletes_or_writes(engine_factory):
    engine = engine_factory()
    engine.write("ns", episodes(DOCS), wait_for_graph=True)
    llm = _GatedLLM()
    engine.graph._fact_filter_factory = lambda q: llm_fact_filter(llm, q)
    _, q = run_in_thread(lambda: query(engine, "Who founded Acme Robotics?"))
    llm.gate.wait_entered()  # the query is inside its LLM call
    _, delete = run_in_thread(lambda: engine.delete("ns", [engine.list_episodes("ns")[0][3].id]))
    _, write = run_in_thread(lambda: engine.write("other", episodes(["Carol works at Initech."]),
                                                  wait_for_graph=True))
    assert delete["done"].wait(LONG) and "error" not in delete, delete.get("error")
    assert write["done"].wait(LONG) and "error" not in write, write.get("error")
    assert not q["done"].is_set()
    llm.gate.open()
    assert q["done"].wait(LONG) and "error" not in q, q.get("error")
    assert q["result"].hits


# -- defect 2: wait_for_graph said OK during back-off and for failed jobs --------------------------------

def test_wait_idle_is_not_ok_during_back_off():
    failed_once = threading.Event()
    calls = []

    def process(key):
        calls.append(key)
        if len(calls) == 1:
            failed_once.set()
            raise RuntimeError("transient")
        return False

    worker = Worker("t", process, threads=1, retry_delay_s=LONG)
    worker.start()
    try:
        worker.kick("k")
        assert failed_once.wait(LONG)
        assert worker.wait_idle("k", timeout=0.05) is Settled.TIMEOUT  # backing off: not caught up
        assert worker.pending("k")
    finally:
        worker.stop(1)


def test_worker_gives_up_after_max_failures_and_says_so():
    def process(key):
        raise RuntimeError("permanent")

    worker = Worker("t", process, threads=1, retry_delay_s=0.0, max_failures=3)
    worker.start()
    try:
        worker.kick("k")
        assert worker.wait_idle("k", timeout=LONG) is Settled.FAILED
        assert "permanent" in worker.failed()["k"]
        assert worker.errors == 3
        got = []
        assert worker.when_settled("k", got.append) is Settled.FAILED
        worker.kick("k")  # new work: a fresh start
        assert worker.wait_idle("k", timeout=LONG) is Settled.FAILED and worker.errors == 6
    finally:
        worker.stop(1)


def test_wait_for_graph_reports_permanently_failed_extraction(engine_factory):
    engine = engine_factory()
    with pytest.raises(ExtractionFailed) as err:
        engine.write("ns", episodes(["FAILLLM this one never extracts", "Alice met Bob in Paris."]),
                     wait_for_graph=True)
    assert err.value.reason == "EXTRACTION_FAILED"
    stats = graph_stats(engine, "ns")
    assert stats["extraction_failed"] == 1 and stats["extraction_backlog"] == 0
    # Stored and searchable all the same; a resend with wait_for_graph says the same thing again.
    assert len(engine.list_episodes("ns")[0]) == 2
    with pytest.raises(ExtractionFailed):
        engine.write("ns", episodes(["FAILLLM this one never extracts"]), wait_for_graph=True)
    engine.write("ns", episodes(["Carol met Dave in Rome."]), wait_for_graph=True)  # unaffected


# -- defect 4: the index was dropped after the namespace delete committed --------------------------------

def test_namespace_index_is_dropped_inside_the_delete_transaction(engine_factory):
    engine = engine_factory()
    engine.write("ns", episodes(DOCS))
    seen = []
    original = engine.indexes.drop

    def drop(namespace):
        seen.append(engine.db._write_lock._is_owned())
        original(namespace)

    engine.indexes.drop = drop
    engine.delete_namespace("ns")
    assert seen == [True]  # a write that re-creates the namespace cannot slip in before the drop
    engine.write("ns", episodes(["A brand new episode about llamas."]))
    hits = query(engine, "llamas", mode=QueryMode.DENSE).hits
    assert [h.episode.text for h in hits] == ["A brand new episode about llamas."]


# -- defect 5: snapshots fsynced under the index lock; one query per namespace at a time ----------------

def test_snapshot_write_blocks_neither_writes_nor_queries(engine_factory, monkeypatch):
    engine = engine_factory(index_kind="flat")
    engine.write("ns", episodes(DOCS))
    gate = Gate()
    real_save = FaissIndex.save

    def slow_save(self, path):
        gate.pass_through()
        real_save(self, path)

    monkeypatch.setattr(FaissIndex, "save", slow_save)
    _, snap = run_in_thread(engine.flush)
    gate.wait_entered()
    _, write = run_in_thread(lambda: engine.write("ns", episodes(["Written during a snapshot."])))
    _, q = run_in_thread(lambda: query(engine, "Acme", mode=QueryMode.DENSE))
    assert write["done"].wait(LONG) and "error" not in write, write.get("error")
    assert q["done"].wait(LONG) and "error" not in q, q.get("error")
    gate.open()
    assert snap["done"].wait(LONG) and "error" not in snap
    assert engine.indexes.snapshot() == 1  # the write after the clone left the namespace dirty


def test_queries_to_one_namespace_read_the_index_together(engine_factory):
    engine = engine_factory()
    engine.write("ns", episodes(DOCS))
    barrier = threading.Barrier(2, timeout=LONG)

    def reader():
        with engine.indexes.reading("ns") as index:
            barrier.wait()  # both threads are inside the namespace's index lock at once
            return len(index)

    threads = [run_in_thread(reader) for _ in range(2)]
    for _, box in threads:
        assert box["done"].wait(LONG) and box.get("result") == 4, box.get("error")


# -- defect 6: one background thread served every namespace ----------------------------------------------

def test_one_tenants_slow_extraction_does_not_hold_up_another(engine_factory):
    engine = engine_factory()
    extractor = engine.graph.extractor
    _, slow = run_in_thread(lambda: engine.write("slow", episodes(["SLOWLLM Alice met Bob."]),
                                                 wait_for_graph=True))
    extractor.gate.wait_entered()
    engine.write("fast", episodes(["Carol founded Initech in Austin."]), wait_for_graph=True, timeout=LONG)
    assert graph_stats(engine, "fast")["phrase_count"] > 0
    assert not slow["done"].is_set()
    extractor.gate.open()
    assert slow["done"].wait(LONG) and "error" not in slow, slow.get("error")


# -- defect 7: a call past its deadline kept running, and committed ---------------------------------------

def test_write_past_its_deadline_during_the_encode_is_not_committed(engine_factory, monkeypatch):
    from memserve.engine import memory

    engine = engine_factory()
    engine.write("ns", episodes(DOCS))
    embedder = engine.embedder.inner
    deadline = time.monotonic() + LONG
    _, write = run_in_thread(lambda: engine.store("ns", episodes(["BLOCK late write"]), deadline=deadline))
    embedder.gate.wait_entered()
    monkeypatch.setattr(memory, "_monotonic", lambda: deadline + 1)  # the deadline passes during the encode
    embedder.gate.open()
    assert write["done"].wait(LONG)
    assert isinstance(write.get("error"), DeadlineExceeded)
    assert "nothing was written" in str(write["error"])
    assert [e.text for e in engine.list_episodes("ns")[0]] == DOCS


def test_query_past_its_deadline_is_refused_before_the_encode(engine_factory):
    engine = engine_factory()
    engine.write("ns", episodes(DOCS))
    before = engine.embedder.stats()["queries"]
    with pytest.raises(DeadlineExceeded):
        engine.query(QueryIn(namespace="ns", text="Acme", top_k=3), deadline=time.monotonic() - 1)
    assert engine.embedder.stats()["queries"] == before


def test_graph_queries_never_build_the_matrix(engine_factory, monkeypatch):
    engine = engine_factory()
    engine.write("ns", episodes(DOCS), wait_for_graph=True)
    from memserve.graph.kg import KnowledgeGraph

    def forbidden(self, *args, **kwargs):
        raise AssertionError("a query built the PPR matrix")

    monkeypatch.setattr(KnowledgeGraph, "build_matrix", forbidden)
    result = query(engine, "Who founded Acme Robotics?", mode=QueryMode.GRAPH)
    assert result.mode == QueryMode.GRAPH and result.hits
    vec = np.asarray(engine.embedder.embed_query("x"))
    assert vec.shape == (64,)


def test_fact_and_phrase_ivfs_are_trained_by_the_worker_and_reused_at_start(tmp_path, monkeypatch):
    """Start-up used to retrain the fact index's k-means from scratch; now the worker trains it (no lock
    held) and persists it, and a restart rebuilds it from the stored centroids. The phrase index (synonym
    search of new phrases) goes the same way."""
    settings = Settings(data_dir=tmp_path / "d", embedding_model="hash:64", snapshot_interval_s=0,
                        extractor="offline", summarizer="none")
    names = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India", "Juliet"]
    texts = [f"{a} {b} founded {c}{d} Systems in {b}ville." for a in names for b in names[:4]
             for c, d in [(a, b)]]

    def start() -> MemoryEngine:
        engine = MemoryEngine(settings, embedder=GatedEmbedder())
        engine.graph.fact_index_exact_max = 20
        engine.graph.phrase_index_exact_max = 20
        engine.start()
        return engine

    engine = start()
    try:
        engine.write("ns", episodes(texts), wait_for_graph=True)
        kg = engine.graph._graph("ns")
        assert len(kg.facts) >= 64 and not kg.fact_index_needs_training()
        assert len(kg.phrases) > 20 and kg.search_approximate("phrase") and kg.ivf_due() == []
        for table in ("graph_fact_ivf", "graph_phrase_ivf"):
            stored = engine.db.reader().execute(f"SELECT count(*) FROM {table} WHERE namespace = 'ns'").fetchone()
            assert stored == (1,)
        before = query(engine, "Who founded AlphaBravo Systems?", mode=QueryMode.GRAPH)
    finally:
        engine.close()
    from memserve.graph import embedding_index

    def no_kmeans(self):
        raise AssertionError("start-up trained k-means")

    monkeypatch.setattr(embedding_index.IVFJob, "run", no_kmeans)
    engine = start()
    try:
        assert not engine.graph._graph("ns").fact_index_needs_training()
        assert engine.graph._graph("ns").search_approximate("phrase") and engine.graph._graph("ns").ivf_due() == []
        after = query(engine, "Who founded AlphaBravo Systems?", mode=QueryMode.GRAPH)
        assert [h.episode.id for h in after.hits] == [h.episode.id for h in before.hits]
    finally:
        engine.close()


def test_stats_are_cached_until_the_next_commit(engine_factory, monkeypatch):
    """GetStats polled by a dashboard: no SQL while nothing changes, never a stale answer after a commit."""
    from memserve.engine import stats as engine_stats
    from memserve.store import episodes_repo

    engine = engine_factory()
    engine.write("ns", episodes(DOCS), wait_for_graph=True)
    assert engine_stats.collect(engine, "ns").namespaces[0].episode_count == 4
    calls = []
    real = episodes_repo.namespace_counts
    monkeypatch.setattr(episodes_repo, "namespace_counts", lambda cur, ns: calls.append(ns) or real(cur, ns))
    for _ in range(5):
        stats = engine_stats.collect(engine, "ns")
    assert calls == [] and stats.namespaces[0].graph["phrase_count"] > 0
    engine.write("ns", episodes(["One more episode about Acme."]))
    assert engine_stats.collect(engine, "ns").namespaces[0].episode_count == 5 and calls == ["ns"]
    engine.delete("ns", [engine.list_episodes("ns")[0][0].id])
    assert engine_stats.collect(engine, "").namespaces[0].episode_count == 4
