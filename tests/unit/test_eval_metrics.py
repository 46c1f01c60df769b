"""The eval arithmetic and data readers, checked against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from evals import metrics
from evals.datasets import (
    DatasetError,
    clean_triples,
    parse_corpus,
    parse_locomo,
    parse_locomo_time,
    parse_openie,
    parse_questions,
    passage_id,
    split_evidence,
)


def g(*ids: str) -> frozenset[str]:
    return frozenset(ids)


# --- recall ---------------------------------------------------------------------------------------------------

def test_recall_at_k_counts_gold_passages_in_the_top_k():
    ranked = ["a", "x", "b", "y", "z", "c"]
    gold = [g("a"), g("b"), g("c")]
    assert metrics.recall_at_k(ranked, gold, 1) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(ranked, gold, 2) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(ranked, gold, 5) == pytest.approx(2 / 3)
    assert metrics.recall_at_k(ranked, gold, 10) == pytest.approx(1.0)
    assert metrics.all_recall_at_k(ranked, gold, 5) == 0.0
    assert metrics.all_recall_at_k(ranked, gold, 6) == 1.0


def test_a_gold_group_counts_once_however_many_members_are_retrieved():
    # Two passages share the gold title "T": finding both is still one gold passage found.
    ranked = ["t1", "t2", "x"]
    assert metrics.recall_at_k(ranked, [g("t1", "t2"), g("u")], 2) == 0.5


def test_a_gold_passage_missing_from_the_corpus_is_never_found():
    assert metrics.recall_at_k(["a", "b"], [g("a"), g()], 10) == 0.5
    assert metrics.all_recall_at_k(["a", "b"], [g("a"), g()], 10) == 0.0


def test_recall_needs_gold():
    with pytest.raises(ValueError):
        metrics.recall_at_k(["a"], [], 5)


def test_retrieval_summary_is_a_macro_average_over_questions():
    rankings = [["a", "b", "c"], ["x", "y", "z", "w", "v", "d", "e"], []]
    golds = [[g("a"), g("c")], [g("d"), g("e")], [g("q")]]
    got = metrics.retrieval_summary(rankings, golds)
    # q1: @1 1/2, @2 1/2, @5 1, @10 1; q2: 0, 0, 0, 1; q3: 0 everywhere.
    assert got["recall@1"] == pytest.approx((0.5 + 0 + 0) / 3)
    assert got["recall@2"] == pytest.approx((0.5 + 0 + 0) / 3)
    assert got["recall@5"] == pytest.approx((1 + 0 + 0) / 3)
    assert got["recall@10"] == pytest.approx((1 + 1 + 0) / 3)
    assert got["all_recall@5"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        metrics.retrieval_summary(rankings[:2], golds)


def test_latency_percentiles_in_milliseconds():
    lat = [0.001 * i for i in range(1, 101)]  # 1..100 ms
    got = metrics.latency_summary(lat)
    assert got["p50_ms"] == pytest.approx(50.5)
    assert got["p95_ms"] == pytest.approx(95.05)
    assert math.isnan(metrics.percentile_ms([], 50))


def test_by_key_mean_groups_and_counts():
    rows = [("1", {"r": 1.0}), ("2", {"r": 0.0}), ("1", {"r": 0.5}), ("10", {"r": 1.0})]
    assert metrics.by_key_mean(rows) == {"1": {"r": 0.75, "n": 2}, "2": {"r": 0.0, "n": 1},
                                         "10": {"r": 1.0, "n": 1}}


# --- answers --------------------------------------------------------------------------------------------------

def test_squad_normalisation():
    assert metrics.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert metrics.normalize_answer(2022) == "2022"
    assert metrics.normalize_answer("An apple a day") == "apple day"


def test_exact_match_and_f1_take_the_best_alias():
    assert metrics.exact_match("the Beatles", ["Beatles", "Fab Four"]) == 1.0
    assert metrics.exact_match("Beatles band", ["Beatles"]) == 0.0
    # pred {new, york, city} vs gold {new, york}: P = 2/3, R = 1, F1 = 0.8.
    assert metrics.token_f1("New York City", ["New York", "NYC"]) == pytest.approx(0.8)
    assert metrics.token_f1("", ["x"]) == 0.0
    assert metrics.token_f1("2", [2]) == 1.0
    got = metrics.qa_summary(["Paris", "blue sky"], [["paris"], ["sky"]])
    assert got == {"em": 0.5, "f1": pytest.approx((1 + 2 / 3) / 2)}


# --- data readers ---------------------------------------------------------------------------------------------

def test_corpus_formats_and_hotpotqa_sentence_joining():
    listed = parse_corpus([{"title": "A", "text": "alpha"}, {"title": "A", "text": "alpha"},
                           {"title": "B", "text": "b"}])
    assert [p.text for p in listed.passages] == ["A\nalpha", "B\nb"]
    assert listed.duplicates == 1
    assert listed.passages[0].id == passage_id("A\nalpha")
    mapped = parse_corpus({"H": ["First.", " Second."]})
    assert mapped.passages[0].text == "H\nFirst. Second."
    with pytest.raises(DatasetError):
        parse_corpus([{"name": "x"}])


def test_question_formats_are_detected_per_record():
    corpus = parse_corpus([{"title": "A", "text": "a1"}, {"title": "A", "text": "a2"}, {"title": "B", "text": "b"}])
    records = [
        {"id": "m", "question": "q?", "answer": "x", "answer_aliases": ["y"],
         "paragraphs": [{"title": "A", "paragraph_text": "a2", "is_supporting": True},
                        {"title": "B", "paragraph_text": "b", "is_supporting": False},
                        {"title": "C", "text": "not in corpus", "is_supporting": True}]},
        {"_id": "h", "question": "q2?", "answer": 7, "supporting_facts": [["A", 0], ["B", 2], ["A", 1]]},
    ]
    m, h = parse_questions(records, corpus)
    assert (m.format, m.answers) == ("musique", ("x", "y"))
    assert m.gold == (g(passage_id("A\na2")), g())
    assert (h.format, h.answers) == ("supporting_facts", ("7",))
    # Title-based gold: one gold passage per distinct title, satisfied by any passage with that title.
    assert h.gold == (g(passage_id("A\na1"), passage_id("A\na2")), g(passage_id("B\nb")))
    with pytest.raises(DatasetError, match=r"questions\[0\]"):
        parse_questions([{"question": "?"}], corpus)


def test_openie_cache_drops_malformed_triples():
    assert clean_triples([["a", "b", "c"], ["a", "b"], ["a", "b", "c", "d"], ["a", " ", "c"], "abc"]) == (
        (("a", "b", "c"),), 4)
    cache, dropped = parse_openie({"docs": [
        {"passage": "T\nx", "extracted_entities": ["E", "E", ""], "extracted_triples": [["E", "is", "F"], ["E"]]},
        {"title": "U", "text": "y", "extracted_entities": [], "extracted_triples": []},
    ], "avg_ent_chars": float("nan")})
    assert dropped == 1
    assert cache[passage_id("T\nx")].entities == ("E",)
    assert cache[passage_id("T\nx")].triples == (("E", "is", "F"),)
    assert passage_id("U\ny") in cache


def test_locomo_parsing():
    data = [{
        "sample_id": "conv-x",
        "conversation": {
            "speaker_a": "Ann", "speaker_b": "Bo",
            "session_2": [{"speaker": "Bo", "dia_id": "D2:1", "text": "Later.", "blip_caption": "a cat"}],
            "session_2_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [{"speaker": "Ann", "dia_id": "D1:1", "text": "Hi."}],
            "session_1_date_time": "11:01 am on 17 December, 2022",
            "session_3_date_time": "2:00 pm on 1 June, 2023",  # a timestamp without a session
        },
        "qa": [
            {"question": "q1", "answer": 2022, "evidence": ["D1:1"], "category": 2},
            {"question": "q2", "answer": "a", "evidence": ["D1:1; D2:1"], "category": 1},
            {"question": "q3", "answer": "a", "evidence": [], "category": 4},
            {"question": "q4", "adversarial_answer": "a", "evidence": ["D1:1"], "category": 5},
        ],
    }]
    (conv,) = parse_locomo(data)
    assert [t.dia_id for t in conv.turns] == ["D1:1", "D2:1"]
    assert conv.turns[0].text == "Ann: Hi."
    assert conv.turns[1].text == "Bo: Later. [shares a cat]"
    assert conv.turns[1].session == "session_2"
    assert conv.turns[1].event_time.isoformat() == "2023-05-08T13:56:00+00:00"
    assert [(q.question, q.answer, q.evidence) for q in conv.questions] == [
        ("q1", "2022", ("D1:1",)), ("q2", "a", ("D1:1", "D2:1"))]
    assert (conv.skipped_no_evidence, conv.skipped_category) == (1, 1)


def test_locomo_time_and_evidence_helpers():
    assert parse_locomo_time("12:48 am on 1 February, 2023").isoformat() == "2023-02-01T00:48:00+00:00"
    assert parse_locomo_time("sometime") is None
    assert split_evidence(["D8:6; D9:17", "D8:6", "D1:2,D1:3"]) == ("D8:6", "D9:17", "D1:2", "D1:3")


def _run(r2: float, r5: float) -> dict:
    return {"modes": {"hybrid": {"recall@2": r2, "recall@5": r5, "recall@10": r5},
                      "graph": {"recall@2": r2, "recall@5": r5, "recall@10": r5}}, "index_seconds": 1.0}


def test_graph_vectors_cv_never_lets_a_dataset_choose_its_own_weight() -> None:
    from evals.graph_vectors_cv import leave_one_out

    # musique alone prefers weight 2; the other two prefer 0.5. Held out, musique must get 0.5.
    runs = {0.5: {"musique": _run(0.40, 0.60), "2wiki": _run(0.70, 0.90), "hotpotqa": _run(0.60, 0.90)},
            2.0: {"musique": _run(0.50, 0.70), "2wiki": _run(0.60, 0.80), "hotpotqa": _run(0.50, 0.80)}}
    splits = {s["held_out"]: s for s in leave_one_out(runs)}
    assert splits["musique"]["chosen_weight"] == 0.5
    assert splits["musique"]["held_out_hybrid"]["R@2"] == 40.0  # reported at the weight it did not choose
    # Held out 2wiki: musique + hotpotqa sum to 2.5 at 0.5 and 2.5 at 2.0: the tie goes to the weight nearer 1.
    assert splits["2wiki"]["chosen_weight"] == 0.5
