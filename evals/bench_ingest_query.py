"""Ingest and query throughput of a real memserve, through the SDK, next to the raw encoder.

    python evals/bench_ingest_query.py --sizes 10000,100000 --json evals/results/bench_ingest_query.json

For each size: a fresh server process on a temporary data directory; synthetic chat-like episodes
(deterministic); ingest episodes/s through gRPC; raw ``model.encode`` sentences/s on the same texts in this
process (so the server's overhead shows as a ratio); query p50/p95 end to end over gRPC; server RSS. With
``--wait-hnsw S``, a namespace past the HNSW threshold is queried again once the server's background HNSW build
has been swapped in (the dense-at-scale target: p50 at 100k vs p50 at 10k, query encode included).
Extraction and summaries are switched off by default so the numbers are those of the core write path;
``--set extractor=offline`` etc. measures the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals._common import git_sha, markdown_table, rss_mb
from evals.synthetic import DAYS, MONTHS, NAMES, PLACES, TEMPLATES, THINGS, turn


def make_texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.sample(NAMES, 2)
        text = turn(rng, a, b)
        out.append(f"{text} (note {i})")
    return out


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def raw_encode_rate(texts: list[str], model: str, batch_size: int) -> float:
    from memserve.embed import make_embedder

    embedder = make_embedder(model, batch_size=batch_size)
    embedder.embed(texts[:64])  # warm-up
    t0 = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - t0)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def time_queries(client, questions: list[str], progress: str | None = None,
                 stages: dict[str, list[float]] | None = None) -> tuple[list[float], list[float]]:
    """Dense queries on "bench": the first 20 warm up, the rest are timed. Returns (client-side ms, the server's
    own ``total`` ms) per timed query; ``progress`` shows a bar with that label; ``stages`` collects the server's
    per-stage milliseconds (embed, dense, fetch, context) by stage name."""
    from tqdm import tqdm

    for q in questions[:20]:
        client.query("bench", q, top_k=10, mode="dense")
    lat, server_ms = [], []
    timed = tqdm(questions[20:], desc=progress, file=sys.stderr) if progress else questions[20:]
    for q in timed:
        t = time.perf_counter()
        r = client.query("bench", q, top_k=10, mode="dense")
        lat.append((time.perf_counter() - t) * 1000)
        server_ms.append(r.timings_ms.get("total", 0.0))
        if stages is not None:
            for name, ms in r.timings_ms.items():
                stages.setdefault(name, []).append(ms)
    return lat, server_ms


def stage_p50s(stages: dict[str, list[float]]) -> dict[str, float]:
    return {name: round(percentile(ms, 0.5), 3) for name, ms in sorted(stages.items())}


def bench_size(n: int, args, raw_rate: float) -> dict:
    from memserve_client import MemoryClient
    from tqdm import tqdm

    from memserve.testing import ServerProcess

    texts = make_texts(n)
    settings = {"embedding_model": args.embedding_model, "extractor": "none", "summarizer": "none",
                "snapshot_interval_s": "0"}
    for item in args.set:
        k, _, v = item.partition("=")
        settings[k] = v
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data", settings=settings, env={"OPENBLAS_NUM_THREADS": "1"})
        with server, MemoryClient(server.target, timeout=600) as client:
            rss_start = rss_mb(server.proc.pid)
            t0 = time.perf_counter()
            with tqdm(total=n, unit="ep", desc=f"ingest {n}", file=sys.stderr) as bar:
                for start in range(0, n, args.batch):
                    chunk = texts[start:start + args.batch]
                    client.write("bench", [{"text": t, "session_id": f"s{(start + i) % 50}"}
                                           for i, t in enumerate(chunk)])
                    bar.update(len(chunk))
            ingest_s = time.perf_counter() - t0
            rng = random.Random(11)
            questions = [rng.choice(TEMPLATES).format(a=rng.choice(NAMES), b=rng.choice(NAMES),
                                                      t=rng.choice(THINGS), p=rng.choice(PLACES),
                                                      d=rng.choice(DAYS), m=rng.choice(MONTHS))
                         for _ in range(args.queries + 20)]
            stages: dict[str, list[float]] = {}
            lat, server_ms = time_queries(client, questions, "query", stages)
            stats = client.stats("bench").namespaces[0]
            rss_end = rss_mb(server.proc.pid)
            hnsw = {}
            if args.wait_hnsw and stats.index_type != "hnsw" and n > args.hnsw_threshold:
                # Past hnsw_threshold the server builds HNSW in the background while the flat index serves;
                # wait for the swap (a benchmark may poll; tests never do) and measure the same queries on it.
                t = time.perf_counter()
                with tqdm(desc="waiting for the background HNSW build", unit="s", file=sys.stderr) as bar:
                    while client.stats("bench").namespaces[0].index_type != "hnsw":
                        if time.perf_counter() - t > args.wait_hnsw:
                            raise SystemExit(f"no HNSW index after {args.wait_hnsw} s")
                        time.sleep(2.0)
                        bar.update(2)
                waited = time.perf_counter() - t
                stages_h: dict[str, list[float]] = {}
                lat_h, server_h = time_queries(client, questions, stages=stages_h)
                hnsw = {"hnsw_wait_s_after_ingest": round(waited, 1),
                        "query_p50_ms_hnsw": round(percentile(lat_h, 0.5), 2),
                        "query_p95_ms_hnsw": round(percentile(lat_h, 0.95), 2),
                        "server_total_p50_ms_hnsw": round(percentile(server_h, 0.5), 2),
                        "server_stage_p50_ms_hnsw": stage_p50s(stages_h),
                        "rss_mb_hnsw": round(rss_mb(server.proc.pid), 1)}
            pruned = {}
            if args.prune_to and args.prune_to < n:
                t = time.perf_counter()
                result = client.prune("bench", max_episodes=args.prune_to)
                prune_s = time.perf_counter() - t
                lat_after, _ = time_queries(client, questions)
                pruned = {"pruned_to": result.remaining_count, "prune_seconds": round(prune_s, 2),
                          "query_p50_ms_after_prune": round(percentile(lat_after, 0.5), 2),
                          "query_p95_ms_after_prune": round(percentile(lat_after, 0.95), 2)}
            restart = {}
            if args.restart:
                # Last (after any pruning): a graceful stop snapshots the index; the restart loads it.
                restart["disk_mb"] = round(dir_mb(server.data_dir), 1)
                t = time.perf_counter()
                server.stop()
                restart["stop_s"] = round(time.perf_counter() - t, 1)
                restart["disk_mb_after_stop"] = round(dir_mb(server.data_dir), 1)
                t = time.perf_counter()
                server.start()
                restart["start_s"] = round(time.perf_counter() - t, 1)
                with MemoryClient(server.target, timeout=600) as again:
                    after = again.stats("bench").namespaces[0]
                    lat_r, _ = time_queries(again, questions)
                restart.update(episodes_after_restart=after.episode_count, index_type_after_restart=after.index_type,
                               query_p50_ms_after_restart=round(percentile(lat_r, 0.5), 2),
                               rss_mb_after_restart=round(rss_mb(server.proc.pid), 1))
    rate = n / ingest_s
    return {"episodes": n, "ingest_seconds": round(ingest_s, 2), "ingest_eps_per_s": round(rate, 1),
            "raw_encode_per_s": round(raw_rate, 1), "server_vs_raw": round(rate / raw_rate, 3),
            "query_p50_ms": round(percentile(lat, 0.5), 2), "query_p95_ms": round(percentile(lat, 0.95), 2),
            "server_total_p50_ms": round(percentile(server_ms, 0.5), 2), "server_stage_p50_ms": stage_p50s(stages),
            "index_type": stats.index_type,
            "rss_start_mb": round(rss_start, 1), "rss_end_mb": round(rss_end, 1), **hnsw, **restart, **pruned}


def sub_table(rows: list[dict], marker: str, headers: list[str], keys: list[str]) -> None:
    """A markdown table of ``keys`` for the rows that have ``marker`` (none: nothing printed)."""
    rows = [r for r in rows if marker in r]
    if rows:
        print("\n" + markdown_table(["episodes", *headers], [[str(r["episodes"]), *(str(r[k]) for k in keys)]
                                                             for r in rows]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embedding-model", default="bundled:all-MiniLM-L6-v2")
    parser.add_argument("--raw-sample", type=int, default=5000, help="texts encoded in-process for the raw rate")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="server setting")
    parser.add_argument("--prune-to", type=int, default=0,
                        help="after measuring, prune each namespace to this many episodes and measure queries again")
    parser.add_argument("--wait-hnsw", type=int, default=0, metavar="S",
                        help="past --hnsw-threshold, wait up to S seconds for the server's background HNSW build "
                             "and measure the queries again on it (0: do not wait)")
    parser.add_argument("--restart", action="store_true",
                        help="after measuring, stop the server gracefully, start it again on the same data and "
                             "measure the queries again (and the data directory's size on disk)")
    parser.add_argument("--hnsw-threshold", type=int, default=50_000,
                        help="the server's hnsw_threshold (pass the same with --set if you change it)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sizes = [int(s) for s in args.sizes.split(",")]
    sample = make_texts(min(args.raw_sample, max(sizes)))
    raw = raw_encode_rate(sample, args.embedding_model, 32)
    print(f"raw model.encode: {raw:.1f} sentences/s on {len(sample)} texts", file=sys.stderr)
    rows = [bench_size(n, args, raw) for n in sizes]
    cols = ["episodes", "ingest_eps_per_s", "raw_encode_per_s", "server_vs_raw", "query_p50_ms", "query_p95_ms",
            "server_total_p50_ms", "index_type", "rss_end_mb"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    if any("query_p50_ms_hnsw" in r for r in rows):
        small = rows[0]
        print("\n| episodes | index | p50 ms | p95 ms | p50 vs the smallest size | waited for HNSW s |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            p50 = r.get("query_p50_ms_hnsw", r["query_p50_ms"])
            print(f"| {r['episodes']} | {'hnsw' if 'query_p50_ms_hnsw' in r else r['index_type']} | {p50} | "
                  f"{r.get('query_p95_ms_hnsw', r['query_p95_ms'])} | {p50 / small['query_p50_ms']:.2f}x | "
                  f"{r.get('hnsw_wait_s_after_ingest', '')} |")
    print("\n| episodes | index | server stage p50 ms |")
    print("|---|---|---|")
    for r in rows:
        for key, index in (("server_stage_p50_ms", r["index_type"]), ("server_stage_p50_ms_hnsw", "hnsw")):
            if key in r:
                print(f"| {r['episodes']} | {index} | " + ", ".join(f"{k} {v}" for k, v in r[key].items()) + " |")
    sub_table(rows, "start_s", ["disk MB", "stop s", "start s", "episodes after", "index after", "p50 ms after",
                                "RSS MB after"],
              ["disk_mb_after_stop", "stop_s", "start_s", "episodes_after_restart", "index_type_after_restart",
               "query_p50_ms_after_restart", "rss_mb_after_restart"])
    sub_table(rows, "pruned_to", ["pruned to", "prune s", "p50 ms before", "p50 ms after", "p95 ms before",
                                  "p95 ms after"],
              ["pruned_to", "prune_seconds", "query_p50_ms", "query_p50_ms_after_prune", "query_p95_ms",
               "query_p95_ms_after_prune"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"git_sha": git_sha(), "embedding_model": args.embedding_model,
                                         "cpus": os.cpu_count(), "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
