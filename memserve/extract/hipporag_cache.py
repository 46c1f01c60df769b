"""Read HippoRAG's cached OpenIE output (e.g. the GPT-3.5 triples for MuSiQue) as extraction results."""

from __future__ import annotations

import json
from pathlib import Path

from memserve.domain.extraction import ExtractionResult
from memserve.extract.normalize import clean_triples, unique_phrases


def load_hipporag_openie(path: str | Path) -> dict[str, ExtractionResult]:
    """Map each doc's ``passage`` ("title\\ntext", HippoRAG's indexing string) to its cleaned result.

    The file's top level holds a literal NaN, which Python's json accepts. Malformed triples (2 or 4+
    elements) are dropped and counted in ``dropped_triples``.
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    results: dict[str, ExtractionResult] = {}
    for doc in data["docs"]:
        passage = doc.get("passage") or f"{doc['title']}\n{doc['text']}"
        triples, dropped = clean_triples(doc.get("extracted_triples") or [])
        results[passage] = ExtractionResult(
            entities=unique_phrases(doc.get("extracted_entities") or []), triples=triples, dropped_triples=dropped)
    return results
