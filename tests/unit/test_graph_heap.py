"""The graph hands freed heap memory back after its bulk steps (graph/heap.py)."""

from __future__ import annotations

import platform

import pytest

from evals.synthetic import graph_columns
from memserve.graph import KnowledgeGraph
from memserve.graph import kg as kg_module
from memserve.graph.heap import release_free_heap


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="malloc_trim is glibc's")
def test_release_free_heap_works_on_glibc() -> None:
    assert release_free_heap() is True
    assert release_free_heap() is True  # and again: nothing to give back is no error


def test_restore_and_matrix_build_release_the_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(kg_module, "release_free_heap", lambda: calls.append("trim") or True)
    columns, _ = graph_columns(500, 16, 0)
    kg = KnowledgeGraph.restore_columns(16, columns)
    assert calls == ["trim"]
    kg.build_matrix()
    assert calls == ["trim", "trim"]
