"""The knowledge graph (phrases, passages, facts, synonymy) and Personalized PageRank over it."""

from __future__ import annotations

from ..domain.graph import Fact, GraphDelta
from .kg import Edge, GraphMatrix, KnowledgeGraph
from .ppr import PPRMatrix, personalized_pagerank, personalized_pagerank_networkx
from .restore import restore_graph

__all__ = [
    "Edge",
    "Fact",
    "GraphDelta",
    "GraphMatrix",
    "KnowledgeGraph",
    "PPRMatrix",
    "personalized_pagerank",
    "personalized_pagerank_networkx",
    "restore_graph",
]
