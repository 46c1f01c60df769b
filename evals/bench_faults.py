"""Reliability under faults: no acknowledged write is lost, no call gets INTERNAL, the server stays healthy.

    python evals/bench_faults.py                      # long form: real model, 20 kill cycles, 32 clients x 60 s
    python evals/bench_faults.py --quick              # CI form: hash embedder, 2 cycles, a few seconds each
    python evals/bench_faults.py --only sigkill_storm,corrupt_snapshot --cycles 5

Scenarios (evals/fault_scenarios.py; ``--only`` takes a comma-separated subset):

* ``sigkill_storm`` — ``--writers`` threads write 8-episode batches with unique ids; after a random number of
  acknowledged batches the server gets SIGKILL (the other writers mid-call), restarts on the same data, and
  every id acknowledged so far must be found by GetEpisode; ``--cycles`` times.
* ``mixed_load`` — ``--clients`` SDK clients (own channels) write, query (all modes), get, list, stat and
  delete for ``--seconds``; every acknowledged, undeleted id must be there at the end.
* ``delete_namespace_under_load`` — writers and readers on one namespace while another client deletes it every
  quarter second; writes acknowledged after the last delete must survive it.
* ``disk_full`` — the data directory on a small tmpfs (needs root) filled by writes: expects RESOURCE_EXHAUSTED
  with reason DISK_FULL, and after space is freed and the server restarts, every acknowledged id.
* ``corrupt_snapshot`` — after a clean stop the FAISS snapshot is replaced by garbage, bit-flipped past its
  header, or truncated; after each restart every episode must be found and a query for its own text must
  rank it first.

Every scenario also checks that DuckDB and the vector index agree (episode_count == vector_count) and counts
errors by status code (and reason). A scenario whose behaviour this server does not have (no DISK_FULL error)
or this machine cannot stage (no tmpfs) says "not supported" instead of failing. Exit status 1 when any
scenario failed. The JSON goes to evals/results/bench_faults.json unless --json says otherwise.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))

import memserve  # noqa: E402
from evals import fault_scenarios  # noqa: E402
from evals.fault_scenarios import SCENARIOS, Plan, Scenario  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="the CI form: hash:64 embedder, 2 kill cycles, 8 clients x 4 s, 3 s of DeleteNamespace, "
                        "one kind of snapshot damage (bit flips), a 12 MB disk to fill")
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios (default: all)")
    p.add_argument("--cycles", type=int, help="SIGKILL cycles (default 20; --quick 2)")
    p.add_argument("--writers", type=int, default=8, help="writer threads in the storm and under DeleteNamespace")
    p.add_argument("--clients", type=int, help="clients of the mixed load (default 32; --quick 8)")
    p.add_argument("--seconds", type=float, help="duration of the mixed load (default 60; --quick 4)")
    p.add_argument("--delete-seconds", type=float, help="duration of DeleteNamespace under load (default 20; --quick 3)")
    p.add_argument("--embedding-model", help="server embedding_model (default: the bundled model; --quick hash:64)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", type=Path, default=HERE / "results" / "bench_faults.json")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        p.error(f"--only takes a subset of {','.join(SCENARIOS)}; unknown: {unknown}")
    args.names = names
    return args


def plan_from(args: argparse.Namespace) -> Plan:
    quick = args.quick
    return Plan(cycles=args.cycles or (2 if quick else 20), writers=args.writers,
                clients=args.clients or (8 if quick else 32), mixed_seconds=args.seconds or (4.0 if quick else 60.0),
                delete_seconds=args.delete_seconds or (3.0 if quick else 20.0),
                embedding_model=args.embedding_model or ("hash:64" if quick else None), seed=args.seed,
                corruptions=("bit flips",) if quick else ("garbage", "bit flips", "truncated"),
                disk_mb=12 if quick else 24,
                progress=(lambda _msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True)))


def table(results: list[Scenario]) -> str:
    rows = [("scenario", "status", "acknowledged", "lost", "errors by code", "seconds")]
    for r in results:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(r.errors.items())) or "-"
        rows.append((r.name, r.status, str(r.acknowledged), str(r.lost), errors, f"{r.seconds:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = [f"- {r.name}: {n}" for r in results for n in r.notes]
    return "\n".join(lines + (["", *notes] if notes else []))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = plan_from(args)
    started = time.perf_counter()
    env_before = fault_scenarios.environment()
    results = fault_scenarios.run(args.names, plan)
    print(table(results))
    out = {
        "form": "quick" if args.quick else "long",
        "plan": {"cycles": plan.cycles, "writers": plan.writers, "clients": plan.clients,
                 "mixed_seconds": plan.mixed_seconds, "delete_seconds": plan.delete_seconds,
                 "embedding_model": plan.embedding_model or "default (bundled MiniLM)", "seed": plan.seed},
        "scenarios": {r.name: r.as_json() for r in results},
        "ok": all(r.status != "failed" for r in results),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"platform": platform.platform(), "load_before": env_before["load_avg"],
                    "load_after": fault_scenarios.environment()["load_avg"], "cpus": env_before["cpus"]},
        "memserve": str(Path(memserve.__file__).resolve().parent),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
