"""LoCoMo long-conversation recall: can memserve find the turns that answer a question about a long chat?

    python evals/conversation_recall.py --modes dense,graph,hybrid --json out.json
    python evals/conversation_recall.py --limit-conversations 1 --limit-questions 20 --embedding-model hash:64
    python evals/conversation_recall.py --data my_locomo.json --server 127.0.0.1:50051

Each conversation goes to its own namespace; each turn is one episode: id = its dia_id ("D3:7"), session =
``session_<n>``, speaker, event time = the session's date ("1:56 pm on 8 May, 2023", taken as UTC), and text
``"Speaker: what they said"`` (plus ``[shares <caption>]`` when the turn shared an image, as LoCoMo's own RAG
baseline does). Every QA of categories 1–4 is a query (1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop;
5, adversarial, is excluded as everywhere). Questions whose evidence list is empty are skipped and counted.
Evidence Recall@k = fraction of the evidence turns in the top k, averaged over questions, per category and
overall and per conversation, for each mode; latency p50/p95 is measured at the client. Each question is sent
with ``now`` = the day after the conversation's last session (what "last year" in it resolves against). With
``--llm MODEL`` the top 5 turns (with their dates) are given to the model and its answers scored by token F1
(SQuAD normalisation). The ablation of each conversation signal, with leave-one-conversation-out constants, is
evals/conversation_ablation.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from memserve_client import EpisodeInput

from evals import _common as common
from evals import metrics
from evals.datasets import (
    LOCOMO_DEFAULT,
    SHARED_DATA,
    Conversation,
    DatasetError,
    load_json,
    parse_locomo,
)
from evals.server import EvalServerError
from memserve.errors import LLMError

LOCOMO_KS = (5, 10, 25)
CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conversation_recall", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--data", type=Path, default=SHARED_DATA / LOCOMO_DEFAULT,
                      help=f"LoCoMo-format file (default {SHARED_DATA / LOCOMO_DEFAULT})")
    data.add_argument("--limit-conversations", type=int, help="first N conversations only")
    data.add_argument("--limit-questions", type=int, help="first N scored questions of each conversation only")
    common.add_server_args(parser)
    return parser


def episodes_for(conv: Conversation) -> list[EpisodeInput]:
    return [EpisodeInput(t.text, id=t.dia_id, session_id=t.session, speaker=t.speaker, event_time=t.event_time)
            for t in conv.turns]


def asked_at(conv: Conversation) -> datetime | None:
    """Questions are asked the day after the conversation's last session: what "last year" resolves against."""
    last = max((t.event_time for t in conv.turns if t.event_time), default=None)
    return None if last is None else last + timedelta(days=1)


def reader_passages(conv: Conversation, ids: list[str]) -> list[str]:
    by_id = {t.dia_id: t for t in conv.turns}
    out = []
    for i in ids:
        turn = by_id.get(i)
        if turn is not None:
            when = turn.event_time.strftime("%-d %B %Y") if turn.event_time else "unknown date"
            out.append(f"({when}) {turn.text}")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    conversations = parse_locomo(load_json(args.data), str(args.data))
    if args.limit_conversations is not None:
        conversations = conversations[:args.limit_conversations]
    skipped_no_evidence = sum(c.skipped_no_evidence for c in conversations)
    skipped_category = sum(c.skipped_category for c in conversations)
    if args.limit_questions is not None:
        for conv in conversations:
            conv.questions = conv.questions[:args.limit_questions]
    n_questions = sum(len(c.questions) for c in conversations)
    if not n_questions:
        raise DatasetError(f"{args.data}: no questions of categories 1-4 with evidence")
    missing = sum(1 for c in conversations for q in c.questions for e in q.evidence
                  if e not in {t.dia_id for t in c.turns})
    if missing:
        common.note(f"warning: {missing} evidence ids name no turn; they count as never retrieved")
    reader = common.Reader(args.llm, args.llm_api_base, args.llm_api_key) if args.llm else None
    run_tag = common.run_id()
    n_turns = sum(len(c.turns) for c in conversations)

    # Per mode: (category, per-question scores) rows and latencies, pooled over conversations.
    rows: dict[str, list[tuple[str, dict[str, float]]]] = {m: [] for m in args.modes}
    by_conv: dict[str, list[tuple[str, dict[str, float]]]] = {m: [] for m in args.modes}
    latencies: dict[str, list[float]] = {m: [] for m in args.modes}
    ran_as: dict[str, dict[str, int]] = {m: {} for m in args.modes}
    index_seconds = 0.0
    with common.memserve(args, common.server_overrides(args)) as (client, described):
        settings = common.server_settings(client, described)
        for conv in conversations:
            if not conv.questions:
                continue
            namespace = common.namespace_for(args.namespace_prefix, "locomo", conv.sample_id, run_tag)
            with common.progress(len(conv.turns), f"index {conv.sample_id}", "turn", args.quiet) as bar:
                index_seconds += common.ingest(client, namespace, episodes_for(conv), batch_size=args.batch_size,
                                               bar=bar)
            common.settle(client, namespace)
            common.warm_up(client, namespace, conv.questions[0].question, args.modes, args.top_k)
            with common.progress(len(conv.questions), f"query {conv.sample_id}", "q", args.quiet) as bar:
                runs = common.query_all(client, namespace, [q.question for q in conv.questions], args.modes,
                                        args.top_k, bar, now=asked_at(conv))
            for mode, mode_run in runs.items():
                latencies[mode] += mode_run.latencies_s
                for name, count in mode_run.ran_as.items():
                    ran_as[mode][name] = ran_as[mode].get(name, 0) + count
                for q, ranking in zip(conv.questions, mode_run.rankings, strict=True):
                    gold = [frozenset({e}) for e in q.evidence]
                    scores = {f"recall@{k}": metrics.recall_at_k(ranking, gold, k) for k in LOCOMO_KS}
                    by_conv[mode].append((conv.sample_id, scores))
                    if reader is not None:
                        answer = reader.answer(q.question, reader_passages(conv, ranking[:5]))
                        scores["f1"] = metrics.token_f1(answer, [q.answer])
                    rows[mode].append((str(q.category), scores))
            common.drop_namespace(client, namespace, args)

    modes: dict[str, Any] = {}
    for mode in args.modes:
        overall = metrics.by_key_mean(("all", s) for _, s in rows[mode])["all"]
        result: dict[str, Any] = {name: overall[name] for name in overall if name != "n"}
        result["by_category"] = metrics.by_key_mean(rows[mode])
        result["by_conversation"] = metrics.by_key_mean(by_conv[mode])
        result.update(metrics.latency_summary(latencies[mode]))
        result["ran_as"] = ran_as[mode]
        modes[mode] = result
    report: dict[str, Any] = {
        "dataset": "locomo",
        "data": str(args.data),
        "n_conversations": len(conversations),
        "n_turns": n_turns,
        "n_questions": n_questions,
        "skipped_no_evidence": skipped_no_evidence,
        "skipped_category_5": skipped_category,
        "evidence_missing": missing,
        "modes": modes,
        "index_seconds": index_seconds,
        "turns_per_second": n_turns / index_seconds if index_seconds > 0 else None,
        **common.provenance(),
        "settings": {**settings, "top_k": args.top_k, "batch_size": args.batch_size},
    }
    if reader is not None:
        report["llm"] = {"model": args.llm, "usage": reader.usage()}
    return report


def report_table(report: dict[str, Any]) -> str:
    qa = any("f1" in m for m in report["modes"].values())
    cats = sorted({c for m in report["modes"].values() for c in m["by_category"]}, key=int)
    header = ["mode", "R@5", "R@10"] + [f"R@10 cat {c} ({CATEGORY_NAMES.get(int(c), '?')})" for c in cats] + [
        "p50 ms", "p95 ms"] + (["F1"] if qa else [])
    rows = []
    for mode, m in report["modes"].items():
        ran = m.get("ran_as", {})
        label = mode if set(ran) <= {mode} else f"{mode} (ran as {', '.join(f'{k}×{v}' for k, v in ran.items())})"
        row = [label, common.pct(m["recall@5"]), common.pct(m["recall@10"])]
        row += [common.pct(m["by_category"][c]["recall@10"]) if c in m["by_category"] else "—" for c in cats]
        row += [common.ms(m["p50_ms"]), common.ms(m["p95_ms"])] + ([common.pct(m.get("f1"))] if qa else [])
        rows.append(row)
    any_mode = next(iter(report["modes"].values()))
    counts = ", ".join(f"cat {c}: {any_mode['by_category'][c]['n']}" for c in cats)
    title = (f"**LoCoMo** — {report['n_conversations']} conversations, {report['n_turns']} turns, "
             f"{report['n_questions']} questions ({counts}; skipped: {report['skipped_no_evidence']} without "
             f"evidence, {report['skipped_category_5']} category 5), embedder "
             f"{report['settings'].get('embedding_model', '?')}; indexed in {report['index_seconds']:.1f} s "
             f"({report['turns_per_second']:.1f} turns/s); evidence recall in %, latency at the client")
    convs = sorted({c for m in report["modes"].values() for c in m.get("by_conversation", {})})
    conv_rows = [[mode] + [f"{common.pct(m['by_conversation'][c]['recall@5'])} / "
                           f"{common.pct(m['by_conversation'][c]['recall@10'])}" if c in m["by_conversation"]
                           else "—" for c in convs] for mode, m in report["modes"].items()]
    per_conv = "\n\nPer conversation, R@5 / R@10:\n\n" + common.markdown_table(["mode", *convs], conv_rows) \
        if convs else ""
    return title + "\n\n" + common.markdown_table(header, rows) + per_conv


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    common.check_common_args(parser, args)
    for name in ("limit_conversations", "limit_questions"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not args.data.is_file():
        parser.error(f"{args.data} not found")
    started = time.perf_counter()
    try:
        report = run(args)
    except (DatasetError, EvalServerError, LLMError) as exc:
        print(f"conversation_recall: {exc}", file=sys.stderr)
        return 2
    report["wall_seconds"] = time.perf_counter() - started
    print(report_table(report))
    if args.json:
        common.write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
