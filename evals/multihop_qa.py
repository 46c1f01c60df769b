"""Multi-hop QA retrieval benchmark: memserve against the HippoRAG datasets, through the Python SDK.

    python evals/multihop_qa.py --dataset musique --limit 100 --modes dense,graph,hybrid --json out.json
    python evals/multihop_qa.py --dataset sample --embedding-model hash:64          # seconds: a smoke test
    python evals/multihop_qa.py --questions q.json --corpus c.json [--openie openie.json]   # your own files
    python evals/multihop_qa.py --dataset musique --server 127.0.0.1:50051          # a running server

By default a fresh memserve is started on a temporary data directory. The whole corpus is indexed (``--limit``
only cuts the questions, so distractors stay as hard as in the paper), each passage as ``title + "\\n" + text``
with a content-hash id; each question is then asked in every mode. Metrics, per mode, averaged over questions:
Recall@1/2/5/10 (fraction of gold passages in the top k), all-recall@5 (every gold passage in the top 5), and
query latency p50/p95 measured at the client around each SDK call (one untimed warm-up query per mode first).
With ``--llm MODEL`` the top 5 passages are also given to the model and its answers scored by exact match and
token F1 (SQuAD normalisation). Gold passages follow ../shared/data/SOURCES.md: MuSiQue paragraphs with
``is_supporting``; HotpotQA / 2Wiki ``supporting_facts`` titles.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python evals/multihop_qa.py

from memserve_client import EpisodeInput, Extraction, GraphOptions, MemoryClient, Triple

from evals import _common as common
from evals import metrics
from evals.datasets import (
    MULTIHOP_DATASETS,
    SHARED_DATA,
    Corpus,
    DatasetError,
    OpenIE,
    Question,
    load_json,
    parse_corpus,
    parse_openie,
    parse_questions,
)
from evals.server import EvalServerError
from memserve.errors import LLMError

EXTRACTORS = ("offline", "openie-file", "llm")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="multihop_qa", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="musique",
                      help=f"name for the report; {', '.join(MULTIHOP_DATASETS)} also pick default files "
                           f"under {SHARED_DATA} (default musique)")
    data.add_argument("--data-dir", type=Path, default=SHARED_DATA, help="where the default files live")
    data.add_argument("--questions", type=Path, help="questions file (MuSiQue, HotpotQA or 2Wiki records)")
    data.add_argument("--corpus", type=Path, help="corpus: list of {title, text} or object title -> sentences")
    data.add_argument("--openie", type=Path, help="HippoRAG OpenIE results for --extractor openie-file")
    data.add_argument("--limit", type=int, help="first N questions only (the corpus is always indexed whole)")
    data.add_argument("--corpus-limit", type=int, metavar="N",
                      help="index only the first N passages, and ask only the questions whose gold passages are "
                           "all among them (for costly extractors such as a local LLM; MuSiQue's corpus lists "
                           "each question's 20 paragraphs together, so N=100 is its first 5 questions)")
    parser.add_argument("--no-answers", action="store_true",
                        help="with --llm: retrieval only, do not also answer the questions with the model")
    parser.add_argument("--extractor", choices=EXTRACTORS, default="offline",
                        help="offline: the server's offline extractor; openie-file: attach the cached OpenIE "
                             "to each passage; llm: the server extracts with --llm (default offline)")
    parser.add_argument("--graph-sweep", type=_sweep, action="append", default=[], metavar="NAME=V1,V2",
                        help="also ask the graph modes again with each per-query value of a graph option "
                             f"({', '.join(SWEEPABLE)}; reported as graph@NAME=V): a sweep over one index. A "
                             "synonym_threshold below the server's changes nothing, so start the server at the "
                             "lowest. Repeatable")
    common.add_server_args(parser)
    parser.add_argument("--plot", type=Path, metavar="PATH", help="draw recall@k per mode as a PNG")
    return parser


SWEEPABLE = {"synonym_threshold": float, "fact_top_k": int, "passage_weight": float, "damping": float}


def _sweep(value: str) -> tuple[str, list[float]]:
    name, _, values = value.partition("=")
    if name not in SWEEPABLE:
        raise argparse.ArgumentTypeError(f"--graph-sweep: unknown option {name!r}; one of {', '.join(SWEEPABLE)}")
    try:
        out = [SWEEPABLE[name](v) for v in values.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--graph-sweep {name}: numbers like {name}=1,2, got {values!r}") from exc
    if not out:
        raise argparse.ArgumentTypeError(f"--graph-sweep {name}: no values given")
    return name, out


def resolve_files(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Path, Path, Path | None]:
    defaults = MULTIHOP_DATASETS.get(args.dataset)
    if defaults is None and not (args.questions and args.corpus):
        parser.error(f"--dataset {args.dataset!r} has no default files: give --questions and --corpus "
                     f"(known: {', '.join(MULTIHOP_DATASETS)})")
    questions = args.questions or args.data_dir / defaults[0]
    corpus = args.corpus or args.data_dir / defaults[1]
    openie = args.openie
    if openie is None and args.extractor == "openie-file" and defaults and defaults[2] and not args.corpus:
        openie = args.data_dir / defaults[2]
    if args.extractor == "openie-file" and openie is None:
        parser.error(f"--extractor openie-file needs --openie (no cached OpenIE is known for {args.dataset!r})")
    for path in (questions, corpus, openie):
        if path is not None and not path.is_file():
            parser.error(f"{path} not found")
    return questions, corpus, openie


def episodes_for(corpus: Corpus, openie: dict[str, OpenIE] | None) -> tuple[list[EpisodeInput], int]:
    """One episode per passage; with a cache, its entities and triples ride along so the server skips extraction."""
    episodes, attached = [], 0
    for p in corpus.passages:
        extraction = None
        found = openie.get(p.id) if openie is not None else None
        if found is not None:
            extraction = Extraction(entities=found.entities, triples=tuple(Triple(*t) for t in found.triples))
            attached += 1
        episodes.append(EpisodeInput(p.text, id=p.id, metadata={"title": p.title[:200]}, extraction=extraction))
    return episodes, attached


def evaluate(client: MemoryClient, namespace: str, questions: list[Question], args: argparse.Namespace,
             reader: common.Reader | None) -> dict[str, dict[str, Any]]:
    runs: dict[str, common.ModeRun] = {}
    graph_modes = [m for m in args.modes if m in ("graph", "hybrid")]
    sweeps = [None, *((name, v) for name, values in args.graph_sweep for v in values)]
    for sweep in sweeps:  # per-query graph options: one index, several sweeps
        modes = args.modes if sweep is None else graph_modes
        options = None if sweep is None else GraphOptions(**{sweep[0]: sweep[1]})
        tag = "" if sweep is None else f"@{sweep[0]}={sweep[1]}"
        with common.progress(len(questions), f"query{tag}", "q", args.quiet) as bar:
            got = common.query_all(client, namespace, [q.question for q in questions], modes, args.top_k, bar,
                                   graph=options)
        runs.update((m + tag, run) for m, run in got.items())
    golds = [q.gold for q in questions]
    results: dict[str, dict[str, Any]] = {}
    for mode, run in runs.items():
        result: dict[str, Any] = metrics.retrieval_summary(run.rankings, golds)
        result.update(metrics.latency_summary(run.latencies_s))
        result["ran_as"] = dict(run.ran_as)
        if reader is not None:
            with common.progress(len(questions), f"answer {mode}", "q", args.quiet) as bar:
                predictions = []
                for q, texts in zip(questions, run.contexts, strict=True):
                    predictions.append(reader.answer(q.question, texts))
                    bar.update(1)
            result.update(metrics.qa_summary(predictions, [q.answers or ("",) for q in questions]))
        results[mode] = result
    return results


def report_table(report: dict[str, Any]) -> str:
    qa = any("f1" in m for m in report["modes"].values())
    header = ["mode", "R@1", "R@2", "R@5", "R@10", "all-R@5", "p50 ms", "p95 ms"] + (["EM", "F1"] if qa else [])
    rows = []
    for mode, m in report["modes"].items():
        ran = m.get("ran_as", {})
        label = mode if set(ran) <= {mode} else f"{mode} (ran as {', '.join(f'{k}×{v}' for k, v in ran.items())})"
        row = [label] + [common.pct(m[f"recall@{k}"]) for k in metrics.KS] + [
            common.pct(m["all_recall@5"]), common.ms(m["p50_ms"]), common.ms(m["p95_ms"])]
        if qa:
            row += [common.pct(m.get("em")), common.pct(m.get("f1"))]
        rows.append(row)
    title = (f"**{report['dataset']}** — {report['n_questions']} questions, {report['n_passages']} passages, "
             f"extractor {report['extractor']}, embedder {report['settings'].get('embedding_model', '?')}; "
             f"indexed in {report['index_seconds']:.1f} s ({report['passages_per_second']:.1f} passages/s); "
             f"recall in %, latency at the client")
    return title + "\n\n" + common.markdown_table(header, rows)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for mode, m in report["modes"].items():
        ax.plot(metrics.KS, [100 * m[f"recall@{k}"] for k in metrics.KS], marker="o", label=mode)
    ax.set_xscale("log")
    ax.set_xticks(metrics.KS, [str(k) for k in metrics.KS])
    ax.set_xlabel("k")
    ax.set_ylabel("Recall@k (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{report['dataset']}: {report['n_questions']} questions, {report['n_passages']} passages")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def run(args: argparse.Namespace, questions_path: Path, corpus_path: Path, openie_path: Path | None) -> dict:
    corpus = parse_corpus(load_json(corpus_path), str(corpus_path))
    if args.corpus_limit is not None:
        corpus = Corpus(corpus.passages[:args.corpus_limit])
    questions = parse_questions(load_json(questions_path), corpus, str(questions_path))
    if args.corpus_limit is not None:
        questions = [q for q in questions if q.gold and all(q.gold)]
    if args.limit is not None:
        questions = questions[:args.limit]
    if not questions:
        raise DatasetError(f"{questions_path}: no questions to ask")
    missing = sum(1 for q in questions for g in q.gold if not g)
    if missing:
        common.note(f"warning: {missing} gold passages are not in the corpus; they count as never retrieved")
    openie, dropped = (parse_openie(load_json(openie_path), str(openie_path))
                       if args.extractor == "openie-file" else (None, 0))
    episodes, attached = episodes_for(corpus, openie)
    if openie is not None:
        common.note(f"OpenIE cache: {attached}/{len(episodes)} passages covered, {dropped} malformed triples dropped")

    extra = {"extractor": "offline"}
    if args.extractor == "llm":
        extra = {"extractor": "llm", "llm_model": args.llm}
        if args.llm_api_base:
            extra["llm_api_base"] = args.llm_api_base
    reader = (common.Reader(args.llm, args.llm_api_base, args.llm_api_key)
              if args.llm and not args.no_answers else None)
    namespace = common.namespace_for(args.namespace_prefix, args.dataset, common.run_id())

    with common.memserve(args, common.server_overrides(args, extra)) as (client, described):
        with common.progress(len(episodes), "index", "passage", args.quiet) as bar:
            index_seconds = common.ingest(client, namespace, episodes, batch_size=args.batch_size, bar=bar)
        settings = common.server_settings(client, described)
        common.settle(client, namespace)
        common.warm_up(client, namespace, questions[0].question, args.modes, args.top_k)
        modes = evaluate(client, namespace, questions, args, reader)
        stats = client.stats(namespace).namespaces
        common.drop_namespace(client, namespace, args)

    report: dict[str, Any] = {
        "dataset": args.dataset,
        "n_questions": len(questions),
        "n_passages": len(corpus.passages),
        "corpus_limit": args.corpus_limit,
        "extractor": args.extractor,
        "modes": modes,
        "index_seconds": index_seconds,
        "passages_per_second": len(corpus.passages) / index_seconds if index_seconds > 0 else None,
        **common.provenance(),
        "settings": {**settings, "top_k": args.top_k, "batch_size": args.batch_size},
        "files": {"questions": str(questions_path), "corpus": str(corpus_path),
                  "openie": str(openie_path) if openie_path else None},
        "gold_passages_missing": missing,
        "openie_attached": attached if openie is not None else None,
        "openie_dropped_triples": dropped if openie is not None else None,
        "graph": ({"phrases": stats[0].phrase_count, "facts": stats[0].fact_count,
                   "edges": stats[0].graph_edge_count} if stats else None),
    }
    if reader is not None:
        report["llm"] = {"model": args.llm, "usage": reader.usage()}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    common.check_common_args(parser, args)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if args.corpus_limit is not None and args.corpus_limit < 1:
        parser.error("--corpus-limit must be at least 1")
    if args.extractor == "llm" and not args.llm:
        parser.error("--extractor llm needs --llm MODEL")
    if args.extractor == "llm" and args.server:
        parser.error("--extractor llm configures a server this eval starts; configure a --server yourself")
    files = resolve_files(parser, args)
    started = time.perf_counter()
    try:
        report = run(args, *files)
    except (DatasetError, EvalServerError, LLMError) as exc:
        print(f"multihop_qa: {exc}", file=sys.stderr)
        return 2
    report["wall_seconds"] = time.perf_counter() - started
    print(report_table(report))
    if args.json:
        common.write_json(args.json, report)
    if args.plot:
        plot(report, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
