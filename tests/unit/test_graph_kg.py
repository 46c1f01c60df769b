from __future__ import annotations

import numpy as np
import pytest

from memserve.domain.extraction import ExtractionResult, Triple
from memserve.embed import make_embedder
from memserve.graph import KnowledgeGraph

EMBED = make_embedder("hash:64")


def er(*triples: tuple[str, str, str], entities: tuple[str, ...] = ()) -> ExtractionResult:
    return ExtractionResult(entities=entities, triples=tuple(Triple(*t) for t in triples))


CORPUS = {
    1: er(("Alice Smith", "born in", "Paris"), ("Alice Smith", "works at", "Acme Corp")),
    2: er(("Paris", "capital of", "France"), ("Paris City", "located in", "France")),
    3: er(("Acme Corp", "founded by", "Bob Jones"), ("Bob Jones", "born in", "Paris")),
    4: er(("France", "member of", "European Union")),
    5: er(("Alice Smith", "born in", "Paris")),  # repeats a fact: weight 2
    6: er(),  # extraction found nothing: still a passage node
}


def snapshot(kg: KnowledgeGraph) -> tuple:
    edges = {(e.kind, e.u, e.v): round(e.weight, 9) for e in kg.edges()}
    return dict(kg.phrases), {f: kg.facts[f] for f in kg.facts}, kg.passages, edges, sorted(kg.synonym_candidates())


def build(items: list[tuple[int, ExtractionResult]], **opts: object) -> KnowledgeGraph:
    kg = KnowledgeGraph(64, synonym_threshold=0.5, **opts)  # type: ignore[arg-type]
    kg.add_passages(items, EMBED.embed)
    return kg


def test_fact_weight_counts_supporting_passages_and_specificity() -> None:
    kg = build(list(CORPUS.items()))
    edges = {(e.kind, kg.phrases.get(e.u[1]), kg.phrases.get(e.v[1])): e.weight for e in kg.edges() if e.kind == "fact"}
    born = [w for (k, a, b), w in edges.items() if {a, b} == {"alice smith", "paris"}]
    assert born == [2.0]
    paris = next(p for p, t in kg.phrases.items() if t == "paris")
    assert kg.specificity(paris) == pytest.approx(1 / 4)
    assert 6 in kg.passages


def test_incremental_equals_from_scratch() -> None:
    items = list(CORPUS.items())
    scratch = build(items)
    incremental = KnowledgeGraph(64, synonym_threshold=0.5)
    for seq, result in items:
        incremental.add_passages([(seq, result)], EMBED.embed)
    assert snapshot(incremental) == snapshot(scratch)
    m1, m2 = incremental.matrix(), scratch.matrix()
    assert (m1.ppr.adjacency != m2.ppr.adjacency).nnz == 0


def test_only_new_phrases_and_facts_are_embedded() -> None:
    kg = build([(1, CORPUS[1])])
    seen: list[str] = []

    def spy(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return EMBED.embed(texts)

    kg.add_passages([(5, CORPUS[5])], spy)
    assert seen == []
    kg.add_passages([(3, CORPUS[3])], spy)
    assert "alice smith" not in seen and "bob jones" in seen and "acme corp founded by bob jones" in seen


def test_synonym_cap_is_order_independent() -> None:
    items = list(CORPUS.items())
    scratch = build(items, max_synonyms=1)
    incremental = KnowledgeGraph(64, synonym_threshold=0.5, max_synonyms=1)
    for seq, result in reversed(items):
        incremental.add_passages([(seq, result)], EMBED.embed)
    assert snapshot(incremental) == snapshot(scratch)


def test_remove_leaves_no_orphans_and_equals_rebuild() -> None:
    kg = build(list(CORPUS.items()))
    delta = kg.remove_passages([2, 4])
    rebuilt = build([(s, r) for s, r in CORPUS.items() if s not in (2, 4)])
    assert snapshot(kg) == snapshot(rebuilt)
    assert "european union" not in kg.phrases.values()
    assert delta.removed_passages == [2, 4] and delta.removed_phrases
    for pid in kg.phrases:
        assert kg.passages_of_phrase(pid), "orphan phrase"
    for fid, fact in kg.facts.items():
        assert kg.passages_of_fact(fid), "orphan fact"
        assert fact.subject_id in kg.phrases and fact.object_id in kg.phrases
    for a, b, _ in kg.synonym_candidates():
        assert a in kg.phrases and b in kg.phrases
    assert len(kg.search_facts(EMBED.embed(["france"])[0], 100)) == len(kg.facts)


def test_readding_a_passage_replaces_it() -> None:
    kg = build(list(CORPUS.items()))
    kg.add_passages([(4, er(("Germany", "member of", "European Union")))], EMBED.embed)
    rebuilt = build([*[(s, r) for s, r in CORPUS.items() if s != 4], (4, er(("Germany", "member of", "European Union")))])
    assert snapshot(kg) == snapshot(rebuilt)


def test_failed_extraction_is_rejected() -> None:
    kg = KnowledgeGraph(64)
    with pytest.raises(ValueError):
        kg.add_passages([(1, ExtractionResult((), (), error="timeout"))], EMBED.embed)


def _fact_vectors(kg: KnowledgeGraph) -> dict[int, np.ndarray]:
    ids = sorted(kg.facts)
    return dict(zip(ids, kg.fact_vectors(ids), strict=True))


def test_composed_fact_vector_is_the_normalised_sum_of_its_parts() -> None:
    kg = build(list(CORPUS.items()), fact_vectors="compose", predicate_weight=1.0)
    for fid, vec in _fact_vectors(kg).items():
        fact = kg.facts[fid]
        parts = EMBED.embed([kg.phrases[fact.subject_id], fact.predicate, kg.phrases[fact.object_id]])
        want = parts.sum(axis=0)
        np.testing.assert_allclose(vec, want / np.linalg.norm(want), atol=1e-5)


def test_composing_embeds_phrases_and_predicates_but_no_fact_text() -> None:
    kg = KnowledgeGraph(64, synonym_threshold=0.5, fact_vectors="compose")
    kg.add_passages([(1, CORPUS[1])], EMBED.embed)
    seen: list[str] = []

    def spy(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return EMBED.embed(texts)

    assert kg.texts_to_embed([(3, CORPUS[3])]) == ["bob jones", "founded by", "born in"]
    kg.add_passages([(3, CORPUS[3])], spy)
    # "acme corp" and "paris" exist already: their vectors come from the phrase index, not the encoder.
    assert sorted(seen) == ["bob jones", "born in", "founded by"]
    assert not any(f.text in seen for f in kg.facts.values())


def test_composed_graph_is_order_independent_and_survives_replacement() -> None:
    items = list(CORPUS.items())
    scratch = build(items, fact_vectors="compose")
    incremental = KnowledgeGraph(64, synonym_threshold=0.5, fact_vectors="compose")
    for seq, result in reversed(items):
        incremental.add_passages([(seq, result)], EMBED.embed)
    assert snapshot(incremental) == snapshot(scratch)
    a, b = _fact_vectors(incremental), _fact_vectors(scratch)
    assert a.keys() == b.keys()
    for fid in a:
        np.testing.assert_allclose(a[fid], b[fid], atol=1e-6)
    # A fact search finds the composed fact its parts describe.
    query = EMBED.embed(["alice smith works at acme corp"])[0]
    best, _ = scratch.search_facts(query, 1)[0]
    assert best.text == "alice smith works at acme corp"


def test_unknown_fact_vector_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="fact_vectors"):
        KnowledgeGraph(64, fact_vectors="average")


def test_predicate_weight_scales_the_predicate_in_the_sum() -> None:
    kg = build([(1, CORPUS[1])], fact_vectors="compose", predicate_weight=2.0)
    for fid, vec in _fact_vectors(kg).items():
        fact = kg.facts[fid]
        s, p, o = EMBED.embed([kg.phrases[fact.subject_id], fact.predicate, kg.phrases[fact.object_id]])
        want = s + 2.0 * p + o
        np.testing.assert_allclose(vec, want / np.linalg.norm(want), atol=1e-5)
