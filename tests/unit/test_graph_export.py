from __future__ import annotations

import io
import json

import networkx as nx

from memserve.graph.export import PassageInfo, to_graphml, to_networkx, to_node_link_json
from tests.unit.test_graph_kg import CORPUS, build


def test_export_round_trips_through_graphml_and_json() -> None:
    kg = build(list(CORPUS.items()))
    g = to_networkx(kg, {1: PassageInfo("e1", "Alice Smith was born in Paris.")})
    assert g.number_of_nodes() == len(kg.phrases) + len(kg.passages)
    assert g.number_of_edges() == sum(1 for _ in kg.edges())
    assert g.nodes["passage:1"]["label"] == g.nodes["passage:1"]["id"] == "e1"
    assert g.nodes["passage:1"]["text"] == "Alice Smith was born in Paris."
    assert g.nodes["passage:2"]["label"] == "seq 2" and g.nodes["passage:2"]["text"] == ""
    kinds = {d["kind"] for _, _, d in g.edges(data=True)}
    assert kinds == {"fact", "passage", "synonym"}
    back = nx.read_graphml(io.BytesIO(to_graphml(kg)))
    assert back.number_of_edges() == g.number_of_edges()
    data = json.loads(to_node_link_json(kg))
    assert len(data["nodes"]) == g.number_of_nodes()
    born = [e for e in data["edges"] if e["kind"] == "fact" and "born in" in e["predicate"]]
    assert born and all(e["weight"] >= 1 for e in born)


def _phrase_key(kg, text: str) -> str:
    return next(f"phrase:{pid}" for pid, t in kg.phrases.items() if t == text)


def test_directed_export_keeps_subject_to_object() -> None:
    kg = build(list(CORPUS.items()))
    g = to_networkx(kg, directed=True)
    assert g.is_directed() and g.number_of_nodes() == len(kg.phrases) + len(kg.passages)
    alice, paris, bob = (_phrase_key(kg, t) for t in ("alice smith", "paris", "bob jones"))
    born = [d for d in g.get_edge_data(alice, paris).values() if d["kind"] == "fact"]
    assert [(d["predicate"], d["weight"]) for d in born] == [("born in", 2.0)]  # passages 1 and 5
    assert g.get_edge_data(paris, alice) is None  # no reverse edge
    assert g.has_edge(bob, paris) and not g.has_edge(paris, bob)
    facts = [d for _, _, d in g.edges(data=True) if d["kind"] == "fact"]
    distinct = {(f.subject_id, f.object_id, f.predicate) for f in kg.facts.values() if f.subject_id != f.object_id}
    assert len(facts) == len(distinct)
    assert all(g.nodes[u]["kind"] == "passage" for u, _, d in g.edges(data=True) if d["kind"] == "passage")
    back = json.loads(to_node_link_json(kg, directed=True))
    assert back["directed"] is True
    assert nx.read_graphml(io.BytesIO(to_graphml(kg, directed=True))).is_directed()
