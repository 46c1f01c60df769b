"""Build a namespace's in-memory graph from what the store read back (``store.graph_repo.load_graph_rows``)."""

from __future__ import annotations

from ..domain.graph import PersistedGraph
from .kg import KnowledgeGraph


def restore_graph(dim: int, persisted: PersistedGraph, **options: object) -> KnowledgeGraph:
    """The columns go to the vectorised restore, the fact and phrase IVFs are rebuilt from their persisted
    quantizers (no k-means), and the PPR matrix is built and installed, so neither the first query nor start-up
    pays for anything per row. ``options`` are ``KnowledgeGraph`` settings."""
    kg = KnowledgeGraph.restore_columns(dim, persisted.columns, fact_ivf=persisted.fact_ivf,
                                        phrase_ivf=persisted.phrase_ivf, **options)
    kg.install_matrix(kg.build_matrix())
    return kg
