"""Export a namespace's graph for people and tools: networkx, GraphML, node-link JSON.

Nodes are keyed "phrase:<id>" / "passage:<seq>" (GraphML ids must be strings). A passage node carries its episode's
``id`` (also its ``label``) and its ``text``; a phrase node its normalised ``text``.

Undirected export (default): a MultiGraph keyed by edge kind, one "fact" edge per phrase pair (its predicates
joined), as the PPR walk sees it. Directed export: a MultiDiGraph in which each "fact" edge runs subject → object,
one edge per (subject, object, predicate) with ``weight`` = the passages stating it; "passage" edges run
passage → phrase, and a "synonym" edge runs once, in canonical order.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx

from .kg import KnowledgeGraph


@dataclass(frozen=True)
class PassageInfo:
    """What an export shows of a passage: its episode's public id and its text."""

    id: str
    text: str


def _key(node: tuple[str, int]) -> str:
    return f"{node[0]}:{node[1]}"


def to_networkx(kg: KnowledgeGraph, passages: Mapping[int, PassageInfo | str] | None = None, *,
                directed: bool = False) -> nx.MultiGraph | nx.MultiDiGraph:
    """``passages``: seq → PassageInfo (or just an id); a passage missing from it is labelled "seq N"."""
    g: nx.MultiGraph | nx.MultiDiGraph = nx.MultiDiGraph() if directed else nx.MultiGraph()
    for pid, text in kg.phrases.items():
        g.add_node(_key(("phrase", pid)), kind="phrase", text=text, label=text, passages=len(kg.passages_of_phrase(pid)))
    for seq in kg.passages:
        info = (passages or {}).get(seq)
        if isinstance(info, str):
            info = PassageInfo(info, "")
        episode_id = info.id if info else f"seq {seq}"
        g.add_node(_key(("passage", seq)), kind="passage", seq=int(seq), id=episode_id, label=episode_id,
                   text=info.text if info else "")
    for edge in kg.edges():
        if directed and edge.kind == "fact":
            continue
        g.add_edge(_key(edge.u), _key(edge.v), key=edge.kind, kind=edge.kind, weight=float(edge.weight),
                   predicate="; ".join(edge.predicates))
    if directed:
        for (subject, obj, predicate), weight in sorted(_directed_facts(kg).items()):
            g.add_edge(_key(("phrase", subject)), _key(("phrase", obj)), key=f"fact:{predicate}", kind="fact",
                       weight=float(weight), predicate=predicate)
    return g


def _directed_facts(kg: KnowledgeGraph) -> dict[tuple[int, int, str], int]:
    """(subject id, object id, predicate) → number of passages stating it; self-loops dropped as in ``edges``."""
    out: dict[tuple[int, int, str], int] = {}
    for fid, fact in kg.facts.items():
        if fact.subject_id == fact.object_id:
            continue
        key = (fact.subject_id, fact.object_id, fact.predicate)
        out[key] = out.get(key, 0) + len(kg.passages_of_fact(fid))
    return out


def graphml_bytes(g: nx.MultiGraph | nx.MultiDiGraph) -> bytes:
    buffer = io.BytesIO()
    nx.write_graphml(g, buffer, encoding="utf-8")
    return buffer.getvalue()


def node_link_bytes(g: nx.MultiGraph | nx.MultiDiGraph) -> bytes:
    return json.dumps(nx.node_link_data(g, edges="edges"), ensure_ascii=False).encode("utf-8")


def to_graphml(kg: KnowledgeGraph, passages: Mapping[int, PassageInfo | str] | None = None, *,
               directed: bool = False) -> bytes:
    return graphml_bytes(to_networkx(kg, passages, directed=directed))


def to_node_link_json(kg: KnowledgeGraph, passages: Mapping[int, PassageInfo | str] | None = None, *,
                      directed: bool = False) -> bytes:
    return node_link_bytes(to_networkx(kg, passages, directed=directed))
