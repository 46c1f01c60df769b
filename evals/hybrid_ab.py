"""HYBRID before / after on one index: a multi-hop dataset indexed once, queried by two checkouts' servers.

    python evals/hybrid_ab.py --dataset musique --extractor openie-file --baseline ../wt-main \\
        --json evals/results/hybrid_ab_musique_openie.json

The corpus is indexed by a server running this checkout, on a data directory kept for the run; every question
is asked in each mode; the server is stopped and a server running the ``--baseline`` checkout (e.g. main before
a change) is started on the same data directory (graph restored from DuckDB) and asked the same questions. So
before and after share the index, the machine state and the questions; only the query path differs.

Per question the rankings are kept, so the report also gives:

- per-split figures (``--folds`` contiguous blocks of the questions) for every mode and checkout;
- replayed HYBRID variants built from this checkout's DENSE / GRAPH / HYBRID lists (``anchor_dense``: the best
  dense passage, then GRAPH's order; ``anchor_fused``: HYBRID's first passage, then GRAPH's order), and for each
  fold the variant chosen on the other folds (cross-validation of the anchor);
- ``graph_order_kept``: the share of questions where HYBRID after its first slot is exactly GRAPH's order (what
  a fully trusted graph gives, engine/fusion.after_graph).
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python evals/hybrid_ab.py

from memserve_client import EpisodeInput, MemoryClient

from evals import _common as common
from evals import metrics
from evals.datasets import (
    LOCOMO_DEFAULT,
    SHARED_DATA,
    load_json,
    parse_corpus,
    parse_locomo,
    parse_openie,
    parse_questions,
)
from evals.multihop_qa import EXTRACTORS, episodes_for, resolve_files

ROOT = Path(__file__).resolve().parents[1]
MODES = ("dense", "graph", "hybrid")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybrid_ab", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="musique", help="a multi-hop dataset, or locomo (folds = conversations)")
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA, help="where the default files live")
    parser.add_argument("--questions", type=Path)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--openie", type=Path)
    parser.add_argument("--limit", type=int, help="first N questions (LoCoMo: per conversation)")
    parser.add_argument("--extractor", choices=EXTRACTORS[:2], default="offline")
    parser.add_argument("--baseline", type=Path, required=True, help="checkout whose server answers 'before'")
    parser.add_argument("--embedding-model", metavar="MODEL")
    parser.add_argument("--set", dest="settings", action="append", type=common.parse_setting, default=[],
                        metavar="NAME=VALUE", help="setting for both servers (repeatable)")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=common.WRITE_BATCH)
    parser.add_argument("--folds", type=int, default=2, help="contiguous question blocks for per-split figures")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quiet", action="store_true")
    return parser


class CheckoutServer:
    """``python -m memserve serve`` from ``code`` (its own package, not this one) on ``data_dir``."""

    def __init__(self, code: Path, data_dir: Path, settings: dict[str, str], start_timeout: float = 1800.0) -> None:
        self.code, self.data_dir, self.settings, self.start_timeout = code, data_dir, settings, start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.target = ""

    def __enter__(self) -> str:
        port_file = self.data_dir.parent / "port"
        port_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "memserve", "serve", "--data-dir", str(self.data_dir), "--port", "0",
               "--port-file", str(port_file)]
        for name, value in self.settings.items():
            cmd += ["--set", f"{name}={value}"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "PYTHONPATH": f"{self.code}:{self.code / 'clients' / 'python'}", "PYTHONUNBUFFERED": "1"}
        log = open(self.data_dir.parent / f"server-{self.code.name}.log", "ab")
        self.proc = subprocess.Popen(cmd, cwd=self.code, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"memserve from {self.code} did not start (see {self.data_dir.parent})")
            time.sleep(0.2)
        self.target = f"127.0.0.1:{int(port_file.read_text())}"
        return self.target

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(600)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def git_sha(code: Path) -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=code, capture_output=True, text=True, check=False)
    return out.stdout.strip()


@dataclass
class Task:
    """One namespace: its episodes and its questions (LoCoMo: one per conversation)."""

    name: str
    namespace: str
    episodes: list[EpisodeInput]
    texts: list[str]
    golds: list[Any]  # per question, metrics' gold groups
    now: datetime | None = None
    categories: list[str] = field(default_factory=list)


def multihop_tasks(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Task]:
    questions_path, corpus_path, openie_path = resolve_files(parser, args)
    corpus = parse_corpus(load_json(corpus_path), str(corpus_path))
    questions = parse_questions(load_json(questions_path), corpus, str(questions_path))[: args.limit]
    openie = (parse_openie(load_json(openie_path), str(openie_path))[0]
              if args.extractor == "openie-file" and openie_path is not None else None)
    episodes, _ = episodes_for(corpus, openie)
    return [Task(args.dataset, common.namespace_for("ab", args.dataset, common.run_id()), episodes,
                 [q.question for q in questions], [q.gold for q in questions])]


def locomo_tasks(args: argparse.Namespace) -> list[Task]:
    from evals.conversation_recall import asked_at
    from evals.conversation_recall import episodes_for as turns_of

    conversations = parse_locomo(load_json(args.data_dir / LOCOMO_DEFAULT), "locomo")
    for c in conversations:
        c.questions = c.questions[: args.limit]
    tag = common.run_id()
    return [Task(c.sample_id, common.namespace_for("ab", "locomo", c.sample_id, tag), turns_of(c),
                 [q.question for q in c.questions], [[frozenset({e}) for e in q.evidence] for q in c.questions],
                 asked_at(c), [str(q.category) for q in c.questions]) for c in conversations if c.questions]


def ask(target: str, tasks: Sequence[Task], top_k: int, quiet: bool) -> dict[str, common.ModeRun]:
    """Every task's questions in every mode; the rankings and latencies of all tasks, in task order."""
    out = {mode: common.ModeRun() for mode in MODES}
    with MemoryClient(target, timeout=600) as client:
        client.wait_ready(timeout=600)
        for task in tasks:
            common.warm_up(client, task.namespace, task.texts[0], MODES, top_k)
            with common.progress(len(task.texts), f"query {task.name}", "q", quiet) as bar:
                runs = common.query_all(client, task.namespace, task.texts, MODES, top_k, bar, now=task.now)
            for mode, run in runs.items():
                out[mode].rankings += run.rankings
                out[mode].latencies_s += run.latencies_s
    return out


def anchored(first: str | None, order: Sequence[str], k: int) -> list[str]:
    head = [first] if first is not None else []
    return (head + [seq for seq in order if seq != first])[:k]


def folds_of(n: int, folds: int) -> list[range]:
    edges = [round(i * n / folds) for i in range(folds + 1)]
    return [range(edges[i], edges[i + 1]) for i in range(folds)]


def summary(rankings: Sequence[Sequence[str]], golds: Sequence[Any], idx: Sequence[int]) -> dict[str, float]:
    return metrics.retrieval_summary([rankings[i] for i in idx], [golds[i] for i in idx])


def score(s: dict[str, float]) -> float:
    return sum(s[f"recall@{k}"] for k in metrics.KS) / len(metrics.KS)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tasks = locomo_tasks(args) if args.dataset == "locomo" else multihop_tasks(parser, args)
    settings = {"snapshot_interval_s": "0", "extractor": "offline", **dict(args.settings)}
    if args.embedding_model:
        settings["embedding_model"] = args.embedding_model
    golds = [g for task in tasks for g in task.golds]
    n_questions = len(golds)
    runs: dict[str, dict[str, common.ModeRun]] = {}
    started = time.perf_counter()
    after_sha, after_dirty = common.git_sha(), common.git_dirty()  # the code the first server runs
    with tempfile.TemporaryDirectory(prefix="hybrid-ab-") as tmp:
        data_dir = Path(tmp) / "data"
        with CheckoutServer(ROOT, data_dir, settings) as target, MemoryClient(target, timeout=600) as client:
            client.wait_ready(timeout=600)
            index_seconds = 0.0
            for task in tasks:
                with common.progress(len(task.episodes), f"index {task.name}", "episode", args.quiet) as bar:
                    index_seconds += common.ingest(client, task.namespace, task.episodes,
                                                   batch_size=args.batch_size, bar=bar)
                common.settle(client, task.namespace, timeout=1800)
            runs["after"] = ask(target, tasks, args.top_k, args.quiet)
        with CheckoutServer(args.baseline.resolve(), data_dir, settings) as target:
            runs["before"] = ask(target, tasks, args.top_k, args.quiet)

    rankings = {f"{mode} {side}": run.rankings for side, by_mode in runs.items() for mode, run in by_mode.items()}
    after = runs["after"]
    k = args.top_k
    if args.dataset != "locomo":  # exact replays where the graph is fully trusted (multi-hop documents)
        rankings["hybrid anchor_dense (replay)"] = [
            anchored(d[0] if d else None, g, k) for d, g in zip(after["dense"].rankings, after["graph"].rankings,
                                                                 strict=True)]
        rankings["hybrid anchor_fused (replay)"] = [
            anchored(h[0] if h else None, g, k) for h, g in zip(after["hybrid"].rankings, after["graph"].rankings,
                                                                 strict=True)]
    kept = sum(h == anchored(h[0] if h else None, g, len(h)) for h, g in zip(after["hybrid"].rankings,
                                                                            after["graph"].rankings, strict=True))
    everyone = range(n_questions)
    if args.dataset == "locomo":  # the folds are the conversations
        edges = [0]
        for task in tasks:
            edges.append(edges[-1] + len(task.texts))
        splits = [range(a, b) for a, b in itertools.pairwise(edges)]
    else:
        splits = folds_of(n_questions, args.folds)
    report: dict[str, Any] = {
        "dataset": args.dataset, "extractor": args.extractor, "n_questions": n_questions,
        "n_passages": sum(len(t.episodes) for t in tasks), "index_seconds": index_seconds, "settings": settings,
        "after_sha": after_sha, "after_dirty": after_dirty, "baseline": str(args.baseline),
        "baseline_sha": git_sha(args.baseline), "graph_order_kept": kept / n_questions,
        "all": {name: summary(r, golds, everyone) for name, r in rankings.items()},
        "folds": [{"questions": [s.start, s.stop], "name": tasks[i].name if len(tasks) == len(splits) else str(i),
                   **{name: summary(r, golds, s) for name, r in rankings.items()}} for i, s in enumerate(splits)],
        "latency": {f"{mode} {side}": metrics.latency_summary(run.latencies_s)
                    for side, by_mode in runs.items() for mode, run in by_mode.items()},
    }
    variants = ("hybrid anchor_fused (replay)", "hybrid anchor_dense (replay)")
    chosen: list[dict[str, Any]] = []
    for i, held in enumerate(splits if variants[0] in rankings else []):
        train = [j for s in splits if s is not held for j in s]
        best = max(variants, key=lambda v: (score(summary(rankings[v], golds, train)), v == variants[0]))
        chosen.append({"fold": i, "chosen": best, "held_out": summary(rankings[best], golds, held)})
    report["anchor_cv"] = chosen
    lat = report["latency"]
    report["p50_vs_dense"] = {side: lat[f"hybrid {side}"]["p50_ms"] / lat[f"dense {side}"]["p50_ms"] for side in runs}
    if any(t.categories for t in tasks):
        cats = [c for t in tasks for c in t.categories]
        report["by_category"] = {cat: {name: summary(r, golds, [i for i, c in enumerate(cats) if c == cat])
                                       for name, r in rankings.items()} for cat in sorted(set(cats))}
    report["wall_seconds"] = time.perf_counter() - started
    header = ["ranking", *[f"R@{k}" for k in metrics.KS],
              *[f"{f['name']} R@2/R@5/R@10" for f in report["folds"]]]
    rows = [[name, *[common.pct(report["all"][name][f"recall@{k}"]) for k in metrics.KS],
             *[" / ".join(common.pct(f[name][f"recall@{k}"]) for k in (2, 5, 10)) for f in report["folds"]]]
            for name in rankings]
    print(f"**{args.dataset}** ({args.extractor}): {n_questions} questions, {report['n_passages']} episodes; "
          f"after {report['after_sha'][:8]}, before {report['baseline_sha'][:8]}; "
          f"HYBRID keeps GRAPH's order after slot 1 on {100 * report['graph_order_kept']:.0f}% of questions")
    print(common.markdown_table(header, rows))
    print("HYBRID p50 / DENSE p50: " + ", ".join(f"{side} {v:.2f}x" for side, v in report["p50_vs_dense"].items()))
    for c in chosen:
        print(f"fold {c['fold']}: anchor chosen on the other folds = {c['chosen']}, held-out "
              + " / ".join(common.pct(c["held_out"][f"recall@{k}"]) for k in metrics.KS))
    if args.json:
        common.write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
