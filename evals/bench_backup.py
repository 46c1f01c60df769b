"""What a live backup costs the server: how long `BackupDatabase` takes, how long writes wait for it, and
whether queries notice.

    python evals/bench_backup.py --episodes 20000,60000 --out evals/results/bench_backup.json

One real ``memserve serve`` subprocess per size (memserve.testing.ServerProcess, hash:384 embedder, extraction
and summaries off so only the database is measured), filled with synthetic chat turns. Then three phases, each
with one writer thread (10-episode batches) and one query thread running: idle (the floor), during a backup,
after it. Reported as ratios against the idle floor of the same run, because the machine is shared: write p50,
the longest single write (the one that waited for the copy), query p50/p95.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from memserve_client import MemoryClient
from tqdm import tqdm

from evals.synthetic import NAMES, turn
from memserve.testing import ServerProcess

SETTINGS = {"embedding_model": "hash:384", "extractor": "none", "summarizer": "none", "snapshot_interval_s": "0"}


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def _load(target: str, n: int) -> None:
    rng = random.Random(7)
    turns = [f"{turn(rng, rng.choice(NAMES), rng.choice(NAMES))} (turn {i})" for i in range(n)]
    with MemoryClient(target, timeout=120) as client, tqdm(total=n, unit="ep", desc=f"fill {n}") as bar:
        for start in range(0, n, 1000):
            client.write("bk", turns[start:start + 1000])
            bar.update(min(1000, n - start))


def _phase(target: str, action, label: str) -> dict:
    """Run a writer and a querier until ``action()`` returns (or for 3 s when it is None)."""
    writes: list[float] = []
    queries: list[float] = []
    stop = threading.Event()
    counter = [0]

    def writer() -> None:
        with MemoryClient(target, timeout=300) as client:
            while not stop.is_set():
                counter[0] += 1
                batch = [f"{label} write {counter[0]} turn {i}" for i in range(10)]
                t0 = time.perf_counter()
                client.write("bk", batch)
                writes.append(time.perf_counter() - t0)

    def querier() -> None:
        with MemoryClient(target, timeout=60) as client:
            while not stop.is_set():
                t0 = time.perf_counter()
                client.query("bk", "what did we plan for the weekend trip", top_k=10, mode="dense")
                queries.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=writer), threading.Thread(target=querier)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # both loops running before the measured action (a benchmark, not a test)
    t0 = time.perf_counter()
    result = action() if action else time.sleep(3.0)
    elapsed = time.perf_counter() - t0
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    return {"seconds": elapsed, "writes": len(writes), "write_p50_ms": 1000 * statistics.median(writes),
            "write_max_ms": 1000 * max(writes), "query_p50_ms": 1000 * statistics.median(queries),
            "query_p95_ms": 1000 * _pct(queries, 0.95), "queries": len(queries), "result": result}


def run(n: int, workdir: Path) -> dict:
    with ServerProcess(workdir / f"data-{n}", settings=SETTINGS) as server:
        _load(server.target, n)
        idle = _phase(server.target, None, "idle")
        with MemoryClient(server.target, timeout=600) as client:
            during = _phase(server.target, lambda: client.admin.backup(str(workdir / f"backup-{n}")).size_bytes,
                            "backup")
    return {"episodes": n, "backup_bytes": during["result"], "backup_s": during["seconds"], "idle": idle,
            "during": during,
            "ratios": {"write_max_during / write_p50_idle": during["write_max_ms"] / idle["write_p50_ms"],
                       "query_p50_during / idle": during["query_p50_ms"] / idle["query_p50_ms"],
                       "query_p95_during / idle": during["query_p95_ms"] / idle["query_p95_ms"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", default="20000", help="comma-separated namespace sizes")
    parser.add_argument("--out", type=Path, default=Path("evals/results/bench_backup.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
        rows.extend(run(int(x), Path(tmp)) for x in args.episodes.split(","))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": "shared 2-core VM", "settings": SETTINGS, "rows": rows}, indent=2))
    print("| episodes | backup MB | backup s | write p50 idle ms | longest write during backup ms | "
          "query p50 idle / during ms | query p95 idle / during ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        i, d = r["idle"], r["during"]
        print(f"| {r['episodes']} | {r['backup_bytes'] / 1e6:.1f} | {r['backup_s']:.2f} | {i['write_p50_ms']:.1f} | "
              f"{d['write_max_ms']:.1f} | {i['query_p50_ms']:.1f} / {d['query_p50_ms']:.1f} | "
              f"{i['query_p95_ms']:.1f} / {d['query_p95_ms']:.1f} |")


if __name__ == "__main__":
    main()
