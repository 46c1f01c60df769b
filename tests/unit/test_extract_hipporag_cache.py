"""Loading HippoRAG's cached GPT-3.5 OpenIE output for MuSiQue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memserve.extract import load_hipporag_openie

DATA = Path(__file__).parents[2].parent / "shared" / "data"
MUSIQUE_OPENIE = DATA / "musique" / "openie_musique_train_results_ner_gpt-3.5-turbo-1106_1890.json"


def test_small_file_with_nan_and_bad_triples(tmp_path: Path) -> None:
    path = tmp_path / "openie.json"
    path.write_text('{"docs": [{"title": "T", "text": "body", "passage": "T\\nbody", '
                    '"extracted_entities": ["T", "B", "T"], '
                    '"extracted_triples": [["T", "has", "B"], ["T", "x"], ["T", "a", "b", "c"]]}], '
                    '"avg_ent_chars": NaN}')
    results = load_hipporag_openie(path)
    assert list(results) == ["T\nbody"]
    result = results["T\nbody"]
    assert result.entities == ("T", "B") and len(result.triples) == 1 and result.dropped_triples == 2


@pytest.mark.skipif(not MUSIQUE_OPENIE.exists(), reason=f"shared data not present at {MUSIQUE_OPENIE}")
def test_real_musique_openie_file() -> None:
    results = load_hipporag_openie(MUSIQUE_OPENIE)
    assert len(results) == 1890
    raw = json.loads(MUSIQUE_OPENIE.read_text(encoding="utf-8"))
    raw_triples = sum(len(d["extracted_triples"]) for d in raw["docs"])
    kept = sum(len(r.triples) for r in results.values())
    dropped = sum(r.dropped_triples for r in results.values())
    assert raw_triples == 17419
    # 185 of wrong arity (70 two-element, 112 four-, 3 longer) + 1 whose object is "$" (empty once normalised)
    assert dropped == 186
    assert kept + dropped <= raw_triples  # the rest are duplicates within a passage
    first = results[raw["docs"][0]["passage"]]
    assert "Journal of Mathematical Physics" in first.entities
    assert any(t.predicate == "published by" and t.object == "American Institute of Physics" for t in first.triples)
