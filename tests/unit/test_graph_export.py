from __future__ import annotations

import io
import json

import networkx as nx

from memserve.graph.export import to_graphml, to_networkx, to_node_link_json
from tests.unit.test_graph_kg import CORPUS, build


def test_export_round_trips_through_graphml_and_json() -> None:
    kg = build(list(CORPUS.items()))
    g = to_networkx(kg, {1: "episode one"})
    assert g.number_of_nodes() == len(kg.phrases) + len(kg.passages)
    assert g.number_of_edges() == sum(1 for _ in kg.edges())
    assert g.nodes["passage:1"]["label"] == "episode one"
    kinds = {d["kind"] for _, _, d in g.edges(data=True)}
    assert kinds == {"fact", "passage", "synonym"}
    back = nx.read_graphml(io.BytesIO(to_graphml(kg)))
    assert back.number_of_edges() == g.number_of_edges()
    data = json.loads(to_node_link_json(kg))
    assert len(data["nodes"]) == g.number_of_nodes()
    born = [e for e in data["edges"] if e["kind"] == "fact" and "born in" in e["predicate"]]
    assert born and all(e["weight"] >= 1 for e in born)
