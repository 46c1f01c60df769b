"""Choose ``graph_predicate_weight`` for ``graph_vectors = "spans"`` by leave-one-dataset-out, and report it.

    python evals/graph_vectors_cv.py --weights 0,0.25,0.5,1,2 --out-dir evals/results/graph_vectors_cv \\
        --json evals/results/graph_vectors_cv.json

For every weight and dataset (MuSiQue, 2WikiMultihopQA, HotpotQA; offline extractor, 100 dev questions each)
this runs ``evals/multihop_qa.py`` with ``--set graph_vectors=spans --set graph_predicate_weight=W`` (a run
whose JSON is already in ``--out-dir`` is reused), plus one ``graph_vectors=encode`` run per dataset as the
reference. Then, for each dataset held out, the weight is the one with the best mean HYBRID R@2 + R@5 on the
other two, and the held-out dataset's figures at that weight are what the split reports: no dataset ever
chooses its own weight.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("musique", "2wiki", "hotpotqa")
KS = (2, 5, 10)


def run_path(out_dir: Path, tag: str, dataset: str) -> Path:
    return out_dir / f"{tag}_{dataset}.json"


def ensure_run(out_dir: Path, tag: str, dataset: str, settings: list[str]) -> dict[str, Any]:
    path = run_path(out_dir, tag, dataset)
    if not path.exists():
        cmd = [sys.executable, str(ROOT / "evals" / "multihop_qa.py"), "--dataset", dataset, "--extractor", "offline",
               "--modes", "dense,graph,hybrid", "--quiet", "--json", str(path)]
        for s in settings:
            cmd += ["--set", s]
        print("running:", " ".join(cmd[1:]), file=sys.stderr)
        subprocess.run(cmd, check=True)
    return json.loads(path.read_text())


def recall(report: dict[str, Any], mode: str, k: int) -> float:
    value = float(report["modes"][mode][f"recall@{k}"])
    return value * 100 if value <= 1 else value


def score(report: dict[str, Any]) -> float:
    """What the weight is chosen on: HYBRID (the default mode) R@2 + R@5."""
    return recall(report, "hybrid", 2) + recall(report, "hybrid", 5)


def leave_one_out(runs: dict[float, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    splits = []
    for held in DATASETS:
        others = [d for d in DATASETS if d != held]
        chosen = max(sorted(runs), key=lambda w: (sum(score(runs[w][d]) for d in others), -abs(w - 1.0)))
        splits.append({"held_out": held, "chosen_weight": chosen,
                       "tuning_score": {str(w): round(sum(score(runs[w][d]) for d in others) / 2, 2)
                                        for w in sorted(runs)},
                       "held_out_hybrid": {f"R@{k}": recall(runs[chosen][held], "hybrid", k) for k in KS},
                       "held_out_graph": {f"R@{k}": recall(runs[chosen][held], "graph", k) for k in KS}})
    return splits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="0,0.25,0.5,1,2", help="graph_predicate_weight values to try")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "evals" / "results" / "graph_vectors_cv",
                        help="where each multihop_qa run's JSON goes (and is reused from)")
    parser.add_argument("--json", type=Path, help="write the splits and the table's figures here")
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",") if w.strip()]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    encode = {d: ensure_run(args.out_dir, "encode", d, ["graph_vectors=encode"]) for d in DATASETS}
    runs = {w: {d: ensure_run(args.out_dir, f"spans_pw{w:g}", d,
                              ["graph_vectors=spans", f"graph_predicate_weight={w:g}"]) for d in DATASETS}
            for w in weights}
    splits = leave_one_out(runs)
    print("| predicate weight | " + " | ".join(f"{d} HYBRID R@2 / R@5 / R@10" for d in DATASETS) + " |")
    print("|---|" + "---|" * len(DATASETS))
    print("| encode (reference) | " + " | ".join(
        " / ".join(f"{recall(encode[d], 'hybrid', k):.1f}" for k in KS) for d in DATASETS) + " |")
    for w in weights:
        print(f"| spans, {w:g} | " + " | ".join(
            " / ".join(f"{recall(runs[w][d], 'hybrid', k):.1f}" for k in KS) for d in DATASETS) + " |")
    print("\n| held out | weight chosen on the other two | held-out HYBRID R@2 / R@5 / R@10 | encode |")
    print("|---|---|---|---|")
    for s in splits:
        d, w = s["held_out"], s["chosen_weight"]
        print(f"| {d} | {w:g} | " + " / ".join(f"{s['held_out_hybrid'][f'R@{k}']:.1f}" for k in KS) + " | "
              + " / ".join(f"{recall(encode[d], 'hybrid', k):.1f}" for k in KS) + " |")
    if args.json:
        args.json.write_text(json.dumps({
            "weights": weights, "splits": splits,
            "runs": {str(w): {d: {"hybrid": {f"R@{k}": recall(r, "hybrid", k) for k in KS},
                                  "graph": {f"R@{k}": recall(r, "graph", k) for k in KS},
                                  "index_seconds": r["index_seconds"], "git_sha": r.get("git_sha")}
                              for d, r in by_ds.items()} for w, by_ds in runs.items()},
            "encode": {d: {"hybrid": {f"R@{k}": recall(r, "hybrid", k) for k in KS},
                           "graph": {f"R@{k}": recall(r, "graph", k) for k in KS},
                           "index_seconds": r["index_seconds"], "git_sha": r.get("git_sha")}
                       for d, r in encode.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
