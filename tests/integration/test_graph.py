"""The knowledge graph through the real server: extraction, GRAPH/HYBRID queries, deletes, export, LLM."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC

import networkx as nx
import pytest
from memserve_client import EpisodeInput, Extraction, MemoryClient, Triple

from tests.fakes.openai_replay import ReplayServer, Reply
from tests.support.gates import LONG, SETTLE, wait_until
from tests.support.server import ServerProcess

FILM = [
    EpisodeInput(text="Polish-Russian War (film)\nPolish-Russian War is a 2009 Polish film directed by "
                      "Xawery Żuławski.", id="film"),
    EpisodeInput(text="Xawery Żuławski\nXawery Żuławski is a Polish film director. He is the son of actress "
                      "Małgorzata Braunek and director Andrzej Żuławski.", id="director"),
    EpisodeInput(text="Lake Baikal\nLake Baikal is a rift lake in Siberia, Russia.", id="lake"),
    EpisodeInput(text="Kiwi Fruit\nThe kiwifruit is an edible berry grown in New Zealand.", id="kiwi"),
]


def ns() -> str:
    return "g-" + uuid.uuid4().hex[:10]


def passage_nodes(client, name) -> dict[str, set[str]]:
    """passage label (episode id) -> phrases it links to, from the exported graph."""
    data = json.loads(client.export_graph(name, format="node-link").data)
    g = nx.node_link_graph(data, edges="edges", multigraph=True)
    out = {}
    for node, attrs in g.nodes(data=True):
        if attrs["kind"] == "passage":
            out[attrs["label"]] = {g.nodes[n]["text"] for n in g.neighbors(node)}
    orphans = [n for n, a in g.nodes(data=True) if a["kind"] == "phrase"
               and not any(g.nodes[m]["kind"] == "passage" for m in g.neighbors(n))]
    assert not orphans, f"orphan phrases: {orphans}"
    return out


@pytest.fixture(scope="module")
def gserver(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("g") / "data", settings={"extractor": "offline"}) as proc:
        yield proc


@pytest.fixture()
def gclient(gserver):
    with MemoryClient(gserver.target, timeout=SETTLE) as c:
        yield c


def test_offline_extraction_builds_a_graph_and_graph_mode_explains_hits(gclient):
    name = ns()
    gclient.write(name, FILM, wait_for_graph=True)
    stats = gclient.stats(name).namespaces[0]
    assert stats.phrase_count > 5 and stats.fact_count > 3 and stats.graph_edge_count > 5
    assert stats.extraction_backlog == 0
    result = gclient.query(name, "Who is the mother of the director of Polish-Russian War?", top_k=3, mode="graph")
    assert result.mode == "graph"
    assert {"film", "director"} <= {h.episode.id for h in result.hits[:3]}
    explained = [h for h in result.hits if h.facts]
    assert explained and all(h.phrases for h in explained)
    assert any("graph_ppr" in k for k in result.timings_ms)
    hybrid = gclient.query(name, "Who is the mother of the director of Polish-Russian War?", top_k=3, mode="hybrid")
    assert hybrid.mode == "hybrid" and {h.episode.id for h in hybrid.hits[:3]} >= {"film", "director"}


def test_precomputed_extractions_are_used_verbatim(gclient):
    name = ns()
    gclient.write(name, [
        EpisodeInput(text="alpha text one", id="a", extraction=Extraction(
            entities=("Zorblax", "Quuxville"), triples=(Triple("Zorblax", "was born in", "Quuxville"),))),
        EpisodeInput(text="beta text two", id="b", extraction=Extraction(
            entities=("Quuxville",), triples=(Triple("Quuxville", "is capital of", "Fooland"),))),
    ], wait_for_graph=True)
    graph = passage_nodes(gclient, name)
    assert graph == {"a": {"zorblax", "quuxville"}, "b": {"quuxville", "fooland"}}
    hits = gclient.query(name, "Where was Zorblax born?", mode="graph", top_k=2).hits
    assert hits[0].episode.id == "a"
    assert any(f.subject == "zorblax" and f.object == "quuxville" for f in hits[0].facts)


def test_delete_and_prune_leave_no_orphans_in_the_graph(gclient):
    name = ns()
    gclient.write(name, FILM, wait_for_graph=True)
    before = passage_nodes(gclient, name)
    assert set(before) == {"film", "director", "lake", "kiwi"}
    gclient.delete(name, ["director"])
    after = passage_nodes(gclient, name)
    assert set(after) == {"film", "lake", "kiwi"}
    phrases_only_in_director = before["director"] - before["film"] - before["lake"] - before["kiwi"]
    assert phrases_only_in_director
    data = json.loads(gclient.export_graph(name, format="node-link").data)
    texts = {n.get("text") for n in data["nodes"]}
    assert not phrases_only_in_director & texts
    for mode in ("dense", "graph", "hybrid"):
        hits = gclient.query(name, "Małgorzata Braunek son director", mode=mode, top_k=10).hits
        assert "director" not in {h.episode.id for h in hits}
    gclient.prune(name, max_episodes=2)
    assert len(passage_nodes(gclient, name)) == 2


def test_graphs_are_isolated_per_namespace(gclient):
    a, b = ns(), ns()
    gclient.write(a, FILM[:2], wait_for_graph=True)
    gclient.write(b, FILM[2:], wait_for_graph=True)
    assert set(passage_nodes(gclient, a)) == {"film", "director"}
    assert set(passage_nodes(gclient, b)) == {"lake", "kiwi"}
    for h in gclient.query(b, "Who directed Polish-Russian War?", mode="graph", top_k=10).hits:
        assert h.episode.namespace == b and h.episode.id in {"lake", "kiwi"}
        assert all("żuławski" not in f.subject + f.object for f in h.facts)


def test_graphml_export_parses(gclient, tmp_path):
    name = ns()
    gclient.write(name, FILM, wait_for_graph=True)
    export = gclient.export_graph(name, format="graphml")
    path = tmp_path / "g.graphml"
    path.write_bytes(export.data)
    g = nx.read_graphml(path)
    assert g.number_of_nodes() == export.node_count > 0
    assert export.edge_count > 0


def test_graph_survives_restart(tmp_path):
    settings = {"extractor": "offline"}
    with ServerProcess(tmp_path / "d", settings=settings) as srv, MemoryClient(srv.target, timeout=SETTLE) as c:
        c.write("kg", FILM, wait_for_graph=True)
        before = passage_nodes(c, "kg")
        stats_before = c.stats("kg").namespaces[0]
    with ServerProcess(tmp_path / "d", settings=settings) as srv, MemoryClient(srv.target, timeout=SETTLE) as c:
        assert passage_nodes(c, "kg") == before
        after = c.stats("kg").namespaces[0]
        assert (after.phrase_count, after.fact_count, after.graph_edge_count) == \
            (stats_before.phrase_count, stats_before.fact_count, stats_before.graph_edge_count)


def _script_llm(server: ReplayServer, passage: str, entities: list[str], triples: list[list[str]],
                hold: threading.Event | None = None):
    """Scripted NER and triple answers for ``passage``; with ``hold``, both wait until the test sets it."""
    ner, facts = Reply.json({"named_entities": entities}), Reply.json({"triples": triples})
    if hold is not None:
        ner, facts = ner.held(hold), facts.held(hold)
    server.on(f"{passage}\n\nNamed entities:", facts)
    server.on(passage, ner)


def llm_settings(replay: ReplayServer, timeout_s: float = 10) -> dict[str, str]:
    return {"llm_model": replay.litellm_model, "llm_api_base": replay.url, "llm_api_key": "test",
            "llm_max_retries": "2", "llm_timeout_s": str(timeout_s), "summarizer": "extractive"}


def backlog(c: MemoryClient, name: str) -> int:
    return c.stats(name).namespaces[0].extraction_backlog


def test_llm_extraction_is_cached_and_accounted(tmp_path):
    with ReplayServer() as replay:
        texts = [f"Person {i}\nPerson {i} was born in City {i}." for i in range(3)]
        for i, t in enumerate(texts):
            _script_llm(replay, t, [f"Person {i}", f"City {i}"], [[f"Person {i}", "was born in", f"City {i}"]])
        replay.on("Question:", Reply.json({"fact": []}))
        with ServerProcess(tmp_path / "d", settings=llm_settings(replay)) as srv, \
                MemoryClient(srv.target, timeout=SETTLE) as c:
            c.write("one", texts, wait_for_graph=True)
            calls = len(replay.requests)
            assert calls == 6  # NER + triples per passage
            assert passage_nodes(c, "one")  # graph built from the LLM's triples
            c.write("two", texts, wait_for_graph=True)  # same texts elsewhere: every prompt is cached
            assert len(replay.requests) == calls
            stats = c.stats()
            assert stats.extractor.startswith("llm-openie")
            assert stats.llm.calls >= 12 and stats.llm.cached_calls >= 6
            assert stats.llm.prompt_tokens >= 60 and stats.llm.completion_tokens >= 30


def test_crash_mid_extraction_resumes_after_restart(tmp_path):
    with ReplayServer() as replay:
        gate = threading.Event()  # items 2.. are held: the first server dies with them in the backlog
        texts = [f"Item {i}\nItem {i} belongs to Group {i % 3}." for i in range(6)]
        for i, t in enumerate(texts):
            _script_llm(replay, t, [f"Item {i}", f"Group {i % 3}"], [[f"Item {i}", "belongs to", f"Group {i % 3}"]],
                        hold=gate if i >= 2 else None)
        # A held LLM call must not time out while the test looks at it: a generous LLM timeout.
        settings = {**llm_settings(replay, timeout_s=LONG), "llm_max_concurrency": "1", "extraction_batch": "2"}
        server = ServerProcess(tmp_path / "d", settings=settings).start()
        try:
            with MemoryClient(server.target, timeout=SETTLE) as c:
                c.write("crash", texts)
                # The first batch (items 0, 1) lands; the second sits at the gate.
                wait_until(lambda: backlog(c, "crash") <= 4 and replay.requests_matching("Item 2\n"),
                           "the first extraction batch to land and the second to start")
                assert backlog(c, "crash") == 4
        finally:
            server.kill()  # mid-extraction: the held batch never answers this process
        gate.set()
        with ServerProcess(tmp_path / "d", settings=settings) as srv, MemoryClient(srv.target, timeout=SETTLE) as c:
            wait_until(lambda: backlog(c, "crash") == 0, "the restarted server to finish the backlog")
            assert set(passage_nodes(c, "crash")) == {e.id for e in c.iter_episodes("crash")}


def test_wait_for_graph_past_the_deadline_keeps_the_write(tmp_path):
    from memserve_client import DeadlineExceededError

    with ReplayServer() as replay:
        gate = threading.Event()  # the LLM answers only when the test says so: the graph cannot catch up before
        text = "Slow Passage\nSlow Passage mentions Alpha Centauri."
        _script_llm(replay, text, ["Alpha Centauri"], [["Slow Passage", "mentions", "Alpha Centauri"]], hold=gate)
        with ServerProcess(tmp_path / "d", settings=llm_settings(replay, timeout_s=LONG)) as srv, \
                MemoryClient(srv.target, timeout=SETTLE) as c:
            # Stored first (acknowledged), so what follows does not hang on how fast a loaded machine stores.
            assert c.write("slow", [EpisodeInput(text=text, id="slow-1")]).created == (True,)
            wait_until(lambda: replay.requests_matching(text), "the extraction to reach the held LLM")
            with pytest.raises(DeadlineExceededError):
                c.write("slow", [EpisodeInput(text=text, id="slow-1")], wait_for_graph=True, timeout=2.0)
            assert c.get("slow", "slow-1").text == text  # stored and searchable all the same
            assert c.query("slow", "Alpha Centauri", mode="dense").hits[0].episode.id == "slow-1"
            assert backlog(c, "slow") == 1  # still waiting for the graph, not dropped
            gate.set()
            c.write("slow", [EpisodeInput(text=text, id="slow-1")], wait_for_graph=True, timeout=SETTLE)  # resend waits
            assert backlog(c, "slow") == 0


@pytest.mark.parametrize("mode", ["graph", "hybrid"])
def test_graph_modes_respect_filters(gclient, mode):
    """The walk ranks every passage; only the filter's passages may come back (session, time and metadata)."""
    from datetime import datetime, timedelta

    from memserve_client import QueryFilter

    name = ns()
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    sessions = {"film": "a", "director": "b", "lake": "a", "kiwi": "b"}
    episodes = [EpisodeInput(text=e.text, id=e.id, session_id=sessions[e.id],
                             event_time=t0 + timedelta(days=i), metadata={"n": str(i % 2)})
                for i, e in enumerate(FILM)]
    gclient.write(name, episodes, wait_for_graph=True)
    question = "Who is the mother of the director of Polish-Russian War?"

    def ids(flt):
        result = gclient.query(name, question, top_k=4, mode=mode, filter=flt)
        assert result.mode == mode
        return [h.episode.id for h in result.hits]

    assert set(ids(None)) == set(sessions)
    assert set(ids(QueryFilter(session_ids=("b",)))) == {"director", "kiwi"}
    assert ids(QueryFilter(session_ids=("b",)))[0] == "director"
    assert set(ids(QueryFilter(event_time_end=t0 + timedelta(days=1, hours=1)))) == {"film", "director"}
    assert set(ids(QueryFilter(metadata={"n": "0"}))) == {"film", "lake"}


def test_scores_are_exposed_separately_in_every_mode(gclient):
    name = ns()
    gclient.write(name, FILM, wait_for_graph=True)
    question = "Who is the mother of the director of Polish-Russian War?"
    dense = gclient.query(name, question, mode="dense", top_k=4)
    cosine = {h.episode.id: h.dense_score for h in dense.hits}
    assert len(cosine) == 4 and all(h.score == h.dense_score and h.graph_score == 0.0 for h in dense.hits)
    graph = gclient.query(name, question, mode="graph", top_k=4)
    hybrid = gclient.query(name, question, mode="hybrid", top_k=4)
    assert graph.mode == "graph" and hybrid.mode == "hybrid"
    for result in (graph, hybrid):
        for h in result.hits:  # the cosine is the same number whatever the mode ranked by
            assert h.dense_score == pytest.approx(cosine[h.episode.id], abs=1e-6)
    ppr = {h.episode.id: h.graph_score for h in graph.hits}
    assert all(h.score == h.graph_score > 0 for h in graph.hits if h.facts)
    # HYBRID's score is the fused rank value 1/rank; its graph score is a PPR mass, not that rank value. HYBRID's
    # graph stage is seeded on the dense scores, as GRAPH is, so the masses are GRAPH mode's.
    assert [h.score for h in hybrid.hits] == pytest.approx([1.0 / h.rank for h in hybrid.hits])
    for h in hybrid.hits:
        if ppr.get(h.episode.id, 0.0) > 0:
            assert 0 < h.graph_score < 1 and h.graph_score != pytest.approx(h.score)
            assert h.graph_score == pytest.approx(ppr[h.episode.id], rel=1e-9)
    assert any(h.graph_score > 0 for h in hybrid.hits)


# A passage that shares most of the question's words (BM25) but none of its entities. Seeding the walk with the
# fused dense + BM25 prior moves reset mass onto it; the graph stage must not see the lexical channel.
WORDY = EpisodeInput(text="Mother of the War\nWho is the mother of the war? The director of the war asked the "
                          "mother of the director of the war.", id="wordy")


@pytest.fixture(scope="module")
def trusted_server(tmp_path_factory):
    # adaptive_passage_weight off: the graph is fully trusted (graph_trust = 1) whatever this tiny graph's density.
    settings = {"extractor": "offline", "adaptive_passage_weight": "false"}
    with ServerProcess(tmp_path_factory.mktemp("t") / "data", settings=settings) as proc:
        yield proc


def test_hybrid_keeps_the_graph_seeded_on_dense_and_its_order_where_the_graph_is_trusted(trusted_server):
    question = "Who is the mother of the director of Polish-Russian War?"
    with MemoryClient(trusted_server.target, timeout=SETTLE) as client:
        name = ns()
        client.write(name, [*FILM, WORDY], wait_for_graph=True)
        graph = client.query(name, question, mode="graph", top_k=5)
        hybrid = client.query(name, question, mode="hybrid", top_k=5)
        lexical = client.query(name, question, mode="lexical", top_k=5)
        dense = client.query(name, question, mode="dense", top_k=1)
    assert graph.mode == "graph" and hybrid.mode == "hybrid"
    assert lexical.hits[0].episode.id == "wordy"  # the lexical channel would pull the walk towards it
    masses = {h.episode.id: h.graph_score for h in graph.hits}
    for h in hybrid.hits:  # the same walk: GRAPH mode's masses, to the last digit
        assert h.graph_score == pytest.approx(masses.get(h.episode.id, 0.0), rel=1e-9, abs=1e-12)
    # Trust 1: exactly the dense-anchored HYBRID: the best dense passage, then GRAPH's order.
    anchor = hybrid.hits[0].episode.id
    assert anchor == dense.hits[0].episode.id
    assert [h.episode.id for h in hybrid.hits[1:]] == [h.episode.id for h in graph.hits if h.episode.id != anchor][:4]


def test_export_puts_episode_text_on_passages_and_directed_keeps_fact_direction(gclient):
    name = ns()
    gclient.write(name, [EpisodeInput(text="alpha text one", id="a", extraction=Extraction(
        entities=("Zorblax", "Quuxville"), triples=(Triple("Zorblax", "was born in", "Quuxville"),)))],
        wait_for_graph=True)
    undirected = json.loads(gclient.export_graph(name, format="node-link").data)
    passages = [n for n in undirected["nodes"] if n["kind"] == "passage"]
    assert [(n["id"], n["label"], n["text"]) for n in passages] == [("passage:" + str(passages[0]["seq"]), "a",
                                                                     "alpha text one")]
    directed = json.loads(gclient.export_graph(name, format="node-link", directed=True).data)
    assert directed["directed"] is True and undirected["directed"] is False
    text = {n["id"]: n.get("text") for n in directed["nodes"]}
    facts = [(text[e["source"]], e["predicate"], text[e["target"]]) for e in directed["edges"] if e["kind"] == "fact"]
    assert facts == [("zorblax", "was born in", "quuxville")]
