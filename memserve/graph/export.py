"""Export a namespace's graph for people and tools: networkx, GraphML, node-link JSON.

Nodes are keyed "phrase:<id>" / "passage:<seq>" (GraphML ids must be strings); a phrase pair joined by both a fact
and a synonymy edge keeps both, hence a MultiGraph keyed by edge kind.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping

import networkx as nx

from .kg import KnowledgeGraph


def _key(node: tuple[str, int]) -> str:
    return f"{node[0]}:{node[1]}"


def to_networkx(kg: KnowledgeGraph, passage_labels: Mapping[int, str] | Callable[[int], str] | None = None) -> nx.MultiGraph:
    """``passage_labels`` gives a passage node's label (e.g. its episode id or a text prefix); default "seq N"."""
    def label(seq: int) -> str:
        if passage_labels is None:
            return f"seq {seq}"
        return passage_labels(seq) if callable(passage_labels) else passage_labels.get(seq, f"seq {seq}")

    g = nx.MultiGraph()
    for pid, text in kg.phrases.items():
        g.add_node(_key(("phrase", pid)), kind="phrase", text=text, label=text, passages=len(kg.passages_of_phrase(pid)))
    for seq in kg.passages:
        g.add_node(_key(("passage", seq)), kind="passage", seq=int(seq), label=label(seq), text=label(seq))
    for edge in kg.edges():
        g.add_edge(_key(edge.u), _key(edge.v), key=edge.kind, kind=edge.kind, weight=float(edge.weight),
                   predicate="; ".join(edge.predicates))
    return g


def graphml_bytes(g: nx.MultiGraph) -> bytes:
    buffer = io.BytesIO()
    nx.write_graphml(g, buffer, encoding="utf-8")
    return buffer.getvalue()


def node_link_bytes(g: nx.MultiGraph) -> bytes:
    return json.dumps(nx.node_link_data(g, edges="edges"), ensure_ascii=False).encode("utf-8")


def to_graphml(kg: KnowledgeGraph, passage_labels: Mapping[int, str] | Callable[[int], str] | None = None) -> bytes:
    return graphml_bytes(to_networkx(kg, passage_labels))


def to_node_link_json(
    kg: KnowledgeGraph, passage_labels: Mapping[int, str] | Callable[[int], str] | None = None
) -> bytes:
    return node_link_bytes(to_networkx(kg, passage_labels))
