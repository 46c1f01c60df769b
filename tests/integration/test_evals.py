"""The benchmarks, run for real but small: a memserve subprocess with the hash embedder, driven through the SDK.

Checks the JSON the evals write against the schema users rely on, and the recall arithmetic end to end on a
hand-made case whose answers are known (tests/data/handmade_*.json: each question is the exact text of one
gold passage, so the hash embedder ranks it first; one gold title is absent from the corpus).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from evals import conversation_recall, multihop_qa
from tests.fakes.openai_replay import ReplayServer, Reply, replay_server  # noqa: F401  (fixture)

DATA = Path(__file__).resolve().parents[1] / "data"
FAST = ["--embedding-model", "hash:64", "--quiet"]

_FRACTION = {"type": "number", "minimum": 0, "maximum": 1}
_MS = {"type": "number", "minimum": 0}
MULTIHOP_SCHEMA = {
    "type": "object",
    "required": ["dataset", "n_questions", "n_passages", "extractor", "modes", "index_seconds", "git_sha",
                 "settings"],
    "properties": {
        "dataset": {"type": "string"},
        "n_questions": {"type": "integer", "minimum": 1},
        "n_passages": {"type": "integer", "minimum": 1},
        "extractor": {"enum": ["offline", "openie-file", "llm"]},
        "index_seconds": {"type": "number", "minimum": 0},
        "git_sha": {"type": "string", "pattern": "^([0-9a-f]{40}|unknown)$"},
        "settings": {"type": "object", "required": ["embedding_model"]},
        "modes": {
            "type": "object", "minProperties": 1,
            "propertyNames": {"enum": ["dense", "graph", "hybrid", "lexical"]},
            "additionalProperties": {
                "type": "object",
                "required": ["recall@1", "recall@2", "recall@5", "recall@10", "all_recall@5", "p50_ms", "p95_ms"],
                "properties": {"recall@1": _FRACTION, "recall@2": _FRACTION, "recall@5": _FRACTION,
                               "recall@10": _FRACTION, "all_recall@5": _FRACTION, "p50_ms": _MS, "p95_ms": _MS},
            },
        },
    },
}
_RECALLS = {"type": "object", "required": ["recall@5", "recall@10"],
            "properties": {"recall@5": _FRACTION, "recall@10": _FRACTION, "n": {"type": "integer", "minimum": 1}}}
LOCOMO_SCHEMA = {
    "type": "object",
    "required": ["n_questions", "modes", "index_seconds", "git_sha", "settings"],
    "properties": {
        "git_sha": {"type": "string", "pattern": "^([0-9a-f]{40}|unknown)$"},
        "modes": {
            "type": "object", "minProperties": 1,
            "propertyNames": {"enum": ["dense", "graph", "hybrid", "lexical"]},
            "additionalProperties": {
                "allOf": [_RECALLS, {
                    "required": ["by_category", "p50_ms", "p95_ms"],
                    "properties": {
                        "p50_ms": _MS, "p95_ms": _MS,
                        "by_category": {"type": "object", "minProperties": 1,
                                        "propertyNames": {"enum": ["1", "2", "3", "4"]},
                                        "additionalProperties": _RECALLS},
                    },
                }],
            },
        },
    },
}


def run_eval(module, argv: list[str], out: Path, capsys) -> tuple[dict, str]:
    assert module.main([*argv, *FAST, "--json", str(out)]) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def test_multihop_sample(shared_data, tmp_path, capsys):
    report, table = run_eval(multihop_qa, ["--dataset", "sample", "--modes", "dense,graph,hybrid",
                                           "--plot", str(tmp_path / "recall.png")], tmp_path / "out.json", capsys)
    jsonschema.validate(report, MULTIHOP_SCHEMA)
    assert (report["dataset"], report["n_questions"], report["n_passages"]) == ("sample", 1, 3)
    assert set(report["modes"]) == {"dense", "graph", "hybrid"}
    assert report["settings"]["embedding_model"].startswith("hash")
    assert "| dense |" in table and "R@5" in table
    assert (tmp_path / "recall.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_multihop_recall_arithmetic_on_a_handmade_case(tmp_path, capsys):
    report, _ = run_eval(multihop_qa, ["--dataset", "handmade", "--modes", "dense",
                                       "--questions", str(DATA / "handmade_questions.json"),
                                       "--corpus", str(DATA / "handmade_corpus.json")], tmp_path / "out.json", capsys)
    jsonschema.validate(report, MULTIHOP_SCHEMA)
    dense = report["modes"]["dense"]
    # q1 (MuSiQue format): its one gold passage at rank 1 -> 1.0 at every k, all-recall 1.
    # q2 (supporting_facts): "Grace Hopper" at rank 1, "Margaret Hamilton" not in the corpus -> 0.5, all-recall 0.
    for k in (1, 2, 5, 10):
        assert dense[f"recall@{k}"] == pytest.approx(0.75)
    assert dense["all_recall@5"] == pytest.approx(0.5)
    assert report["gold_passages_missing"] == 1
    assert (report["n_questions"], report["n_passages"]) == (2, 4)


def test_multihop_attaches_cached_openie(tmp_path, capsys):
    corpus = json.loads((DATA / "handmade_corpus.json").read_text())
    openie = {"docs": [
        {"passage": f"{corpus[0]['title']}\n{corpus[0]['text']}", "extracted_entities": ["Ada Lovelace"],
         "extracted_triples": [["Ada Lovelace", "wrote", "first algorithm"], ["Ada Lovelace", "wrote"],
                               ["Ada Lovelace", "", "x"]]},
        {"title": "Not indexed", "text": "nowhere", "extracted_entities": [], "extracted_triples": []},
    ]}
    (tmp_path / "openie.json").write_text(json.dumps(openie))
    report, _ = run_eval(multihop_qa, ["--dataset", "handmade", "--modes", "dense", "--extractor", "openie-file",
                                       "--questions", str(DATA / "handmade_questions.json"),
                                       "--corpus", str(DATA / "handmade_corpus.json"),
                                       "--openie", str(tmp_path / "openie.json")], tmp_path / "out.json", capsys)
    jsonschema.validate(report, MULTIHOP_SCHEMA)
    assert (report["openie_attached"], report["openie_dropped_triples"]) == (1, 2)


def test_multihop_scores_llm_answers(tmp_path, capsys, replay_server: ReplayServer):
    # The reader sees the question after the passages; answer q1 right and q2 half right.
    replay_server.on("Question: Ada Lovelace", Reply.text("Ada Lovelace"))
    replay_server.on("Question: Grace Hopper", Reply.text("COBOL language"))
    report, table = run_eval(multihop_qa, ["--dataset", "handmade", "--modes", "dense",
                                           "--questions", str(DATA / "handmade_questions.json"),
                                           "--corpus", str(DATA / "handmade_corpus.json"),
                                           "--llm", replay_server.litellm_model, "--llm-api-base", replay_server.url,
                                            "--llm-api-key", "test-key"],
                             tmp_path / "out.json", capsys)
    dense = report["modes"]["dense"]
    assert dense["em"] == pytest.approx(0.5)
    assert dense["f1"] == pytest.approx((1 + 2 / 3) / 2)  # "cobol language" vs "cobol": P 1/2, R 1
    assert report["llm"]["usage"]["calls"] == 2
    assert "| EM | F1 |" in table
    # Top-5 passages reach the model, the gold one first.
    prompt = replay_server.requests_matching("Question: Ada")[0].last_user_message
    assert "[1] Ada Lovelace\nAda Lovelace wrote" in prompt


def test_multihop_rejects_bad_input(tmp_path, capsys):
    (tmp_path / "q.json").write_text(json.dumps([{"question": "no gold here"}]))
    code = multihop_qa.main(["--questions", str(tmp_path / "q.json"), "--corpus",
                             str(DATA / "handmade_corpus.json"), *FAST])
    assert code == 2
    assert "q.json[0]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        multihop_qa.main(["--dataset", "sample", "--modes", "dense,sparse"])


def locomo_slice(shared_data: Path, out: Path, sessions: int = 3, questions: int = 20) -> Path:
    """The first conversation cut to its first sessions and the questions answerable from them."""
    conv = json.loads((shared_data / "locomo" / "locomo_dev.json").read_text())[0]
    keep = {f"session_{n}" for n in range(1, sessions + 1)}
    conv["conversation"] = {k: v for k, v in conv["conversation"].items()
                            if not k.startswith("session_") or k in keep or k.removesuffix("_date_time") in keep}
    prefixes = tuple(f"D{n}:" for n in range(1, sessions + 1))
    conv["qa"] = [q for q in conv["qa"] if q.get("category") != 5 and q.get("evidence")
                  and all(e.startswith(prefixes) for e in q["evidence"])][:questions]
    out.write_text(json.dumps([conv]))
    return out


def test_locomo_slice(shared_data, tmp_path, capsys):
    data = locomo_slice(shared_data, tmp_path / "locomo_slice.json")
    report, table = run_eval(conversation_recall, ["--data", str(data), "--modes", "dense,hybrid",
                                                   "--limit-questions", "20"], tmp_path / "out.json", capsys)
    jsonschema.validate(report, LOCOMO_SCHEMA)
    assert report["n_conversations"] == 1
    assert 1 <= report["n_questions"] <= 20
    assert report["evidence_missing"] == 0
    for mode in report["modes"].values():
        assert sum(c["n"] for c in mode["by_category"].values()) == report["n_questions"]
    assert "| dense |" in table


def test_locomo_recall_arithmetic_on_a_handmade_conversation(tmp_path, capsys):
    turns = ["I adopted a grey kitten named Pixel last week.", "Pottery class on Tuesdays keeps me calm.",
             "My sister moved to Lisbon in spring.", "We hiked the ridge trail at sunrise.",
             "I started learning the cello.", "The bakery on Elm Street closed."]
    data = [{
        "sample_id": "hand made/1",  # not a valid namespace as is: the eval must sanitise it
        "conversation": {
            "speaker_a": "Ann", "speaker_b": "Bo",
            "session_1": [{"speaker": "Ann" if i % 2 == 0 else "Bo", "dia_id": f"D1:{i + 1}", "text": t}
                          for i, t in enumerate(turns)],
            "session_1_date_time": "1:56 pm on 8 May, 2023",
        },
        "qa": [
            # Exact turn text: that turn ranks first; the second evidence id names no turn at all.
            {"question": "Ann: I adopted a grey kitten named Pixel last week.", "answer": "Pixel",
             "evidence": ["D1:1", "D9:9"], "category": 4},
            {"question": "Bo: Pottery class on Tuesdays keeps me calm.", "answer": 2,
             "evidence": ["D1:2"], "category": 1},
            {"question": "ignored", "answer": "x", "evidence": [], "category": 2},
            {"question": "ignored", "adversarial_answer": "x", "evidence": ["D1:3"], "category": 5},
        ],
    }]
    (tmp_path / "hand.json").write_text(json.dumps(data))
    report, _ = run_eval(conversation_recall, ["--data", str(tmp_path / "hand.json"), "--modes", "dense"],
                         tmp_path / "out.json", capsys)
    jsonschema.validate(report, LOCOMO_SCHEMA)
    dense = report["modes"]["dense"]
    assert dense["by_category"] == {"1": {"recall@5": 1.0, "recall@10": 1.0, "recall@25": 1.0, "n": 1},
                                    "4": {"recall@5": 0.5, "recall@10": 0.5, "recall@25": 0.5, "n": 1}}
    assert dense["by_conversation"] == {"hand made/1": {"recall@5": 0.75, "recall@10": 0.75, "recall@25": 0.75,
                                                        "n": 2}}
    assert dense["recall@5"] == pytest.approx(0.75)
    assert (report["skipped_no_evidence"], report["skipped_category_5"], report["evidence_missing"]) == (1, 1, 1)


def test_conversation_ablation_on_the_locomo_slice(shared_data, tmp_path, capsys):
    from evals import conversation_ablation

    data = locomo_slice(shared_data, tmp_path / "locomo_slice.json")
    out = tmp_path / "ablation.json"
    argv = ["--data", str(data), "--embedding-model", "hash:64", "--cache", str(tmp_path / "cache"), "--quiet",
            "--json", str(out), "--plot", str(tmp_path / "ablation.png")]
    assert conversation_ablation.main(argv) == 0
    first = json.loads(out.read_text())
    assert set(first["configs"]) == set(conversation_ablation.ABLATION)
    assert (tmp_path / "ablation.png").stat().st_size > 0 and list((tmp_path / "cache").glob("*.npz"))
    assert "loco" not in first  # one conversation: nothing to hold out
    assert first["configs"]["dense"]["by_conversation"].keys() == {"conv-26"}
    for name, config in first["configs"].items():  # p50/p95 per row, and ratios to the dense row of the same run
        assert 0 < config["p50_ms"] <= config["p95_ms"], name
    assert first["configs"]["dense"]["p50_vs_dense"] == first["configs"]["dense"]["p95_vs_dense"] == 1.0
    table = capsys.readouterr().out
    assert "| dense |" in table and "| all (default) |" in table and "| +summaries |" in table
    assert "p50 ms" in table and "in process" in table
    # A second run reads every vector from the cache and gives the same figures.
    assert conversation_ablation.main([*argv[:-4], "--no-loco", "--json", str(out)]) == 0
    again = json.loads(out.read_text())
    assert {k: v["recall@10"] for k, v in again["configs"].items()} == \
        {k: v["recall@10"] for k, v in first["configs"].items()}


def test_ablation_live_path_ranks_as_the_grid_path(shared_data, tmp_path):
    """The timed path (FAISS and BM25 searched per question) gives the rankings the grid path scores."""
    from evals import conversation_ablation as ca
    from evals.datasets import load_json, parse_locomo

    data = locomo_slice(shared_data, tmp_path / "locomo_slice.json")
    conv = parse_locomo(load_json(data))[0]
    p = ca.prepare(conv, ca.EmbeddingCache(tmp_path / "cache", "hash:64"), quiet=True)
    consts = {**ca.DEFAULTS, **ca.SUMMARY_DEFAULTS, "summary_segment_size": 10, "summary_weight": 0.3}
    for name, feats in ca.ABLATION.items():
        live = [ca.rank_one(p, qi, feats, consts, live=True) for qi in range(len(conv.questions))]
        assert live == ca.rank_all(p, feats, consts), name


def test_ablation_summary_channel_lifts_the_turns_its_segment_covers(tmp_path):
    """A question matching segment summaries (HEMA, extractive) scores the turns those segments cover. A segment
    summary is made of snapshots of the rolling summary, so it carries earlier salient sentences forward: the
    greyhound of turn 1 is also in the summary of turns 3-4, and nothing of turns 5-6 is in theirs."""
    from evals import conversation_ablation as ca
    from evals.datasets import Conversation, LocomoQuestion, Turn

    texts = ["Ana: I adopted a greyhound called Pixel.", "Ben: Pixel sounds lovely.",
             "Ana: The pottery class in Lisbon was wonderful.", "Ben: Lisbon pottery, nice!",
             "Ana: Work was busy.", "Ben: Mine too."]
    turns = [Turn(f"D1:{i + 1}", "session_1", t.split(":")[0], t, None) for i, t in enumerate(texts)]
    conv = Conversation("hand", turns, [LocomoQuestion("Which greyhound was adopted?", "Pixel", 4, ("D1:1",))])
    segs = ca.segment_summaries(conv, 2)
    assert sorted({(a, b) for a, b, _ in segs}) == [(0, 1), (2, 3), (4, 5)]  # session and namespace level
    assert "greyhound" in {(a, b): t for a, b, t in segs}[(2, 3)]
    p = ca.prepare(conv, ca.EmbeddingCache(tmp_path / "cache", "hash:64"), quiet=True)
    p["summaries"][2] = {"segments": segs, **ca.summary_indexes(segs, p, quiet=True)}
    seqs, scores = ca.summary_channel(p, 0, {"summary_segment_size": 2, "summary_scorer": "bm25"})
    assert sorted(seqs.tolist()) == [0, 1, 2, 3] and (scores > 0).all()
    by_seq = dict(zip(seqs.tolist(), scores.tolist(), strict=True))
    assert by_seq[0] == by_seq[1] and by_seq[2] == by_seq[3]  # a turn takes its covering segment's score
    own = {(a, b): t for a, b, t in ca.segment_summaries(conv, 2, "own-turns")}  # the experiment: no carry-over
    assert "Work" in own[(4, 5)] and "pottery" not in own[(4, 5)] and "greyhound" not in own[(2, 3)]
