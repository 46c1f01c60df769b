"""Dense search at 10k-1M vectors: exact flat vs the approximate index the registry switches to, per size.

    nice -n 10 python evals/bench_dense_scale.py --sizes 10000,100000 --json evals/results/dense_scale.json \
        --plot evals/results/dense_scale.png

Pre-computed vectors (384-d, clustered like sentence embeddings, fixed seed; no model), so this measures the
index alone: single-query search latency with one FAISS thread (as the server searches), recall@10 of the
approximate index against exact search over the same vectors, build time of the HNSW graph (done in the
background by the server, while the flat index serves), resident memory growth and the snapshot's size on disk,
and the dense pool (``--pool``, default the ``dense_pool`` setting) that the graph and HYBRID modes take (its
latency and its overlap with exact search).
The end-to-end query adds the query encode (~20 ms with MiniLM on 2 cores) on top of these figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals._common import rss_mb
from evals.synthetic import clustered
from memserve.config import Settings
from memserve.engine.index_registry import single_query_threads
from memserve.vector import FaissIndex

DIM = 384


def overlap(hits: list, exact: list) -> float:
    """Mean share of the exact top-k that the approximate search found, over the queries."""
    return round(float(np.mean([len(set(h.ids) & set(e.ids)) / len(e.ids) for h, e in zip(hits, exact,
                                                                                          strict=True)])), 4)


def p50_ms(index: FaissIndex, queries: np.ndarray, k: int = 10) -> tuple[float, list]:
    times, hits = [], []
    with single_query_threads():
        for q in queries:
            t0 = time.perf_counter()
            hits.append(index.search(q[None, :], k)[0])
            times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 50)), hits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--pool", type=int, default=Settings().dense_pool,
                        help="the dense pool the graph and HYBRID modes take (default: the dense_pool setting)")
    parser.add_argument("--pool-queries", type=int, default=50, help="queries timed for the top-5000 pool")
    parser.add_argument("--threshold", type=int, default=FaissIndex(DIM).hnsw_threshold)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    rows = []
    queries = clustered(args.queries, DIM, seed=1)
    for n in [int(s) for s in args.sizes.split(",")]:
        base = rss_mb()
        vectors = clustered(n, DIM, seed=0)
        flat = FaissIndex(DIM, hnsw_threshold=None, use_gpu=False)
        flat.add(np.arange(n), vectors)
        flat_p50, exact_hits = p50_ms(flat, queries)
        flat_pool_p50, exact_pool = p50_ms(flat, queries[:args.pool_queries], args.pool)
        row = {"n": n, "flat_p50_ms": round(flat_p50, 3), "flat_pool_p50_ms": round(flat_pool_p50, 3)}
        if n > args.threshold:
            index = FaissIndex(DIM, hnsw_threshold=args.threshold, migrate_inline=False, use_gpu=False)
            index.add(np.arange(n), vectors)
            del flat
            t0 = time.perf_counter()
            job = index.migration_job()
            index.install_migration(job, job.run())
            del job
            row["hnsw_build_s"] = round(time.perf_counter() - t0, 1)
            approx_p50, hits = p50_ms(index, queries)
            pool_p50, pool_hits = p50_ms(index, queries[:args.pool_queries], args.pool)
            row.update(kind=index.kind, p50_ms=round(approx_p50, 3), recall_at_10=overlap(hits, exact_hits),
                       pool_p50_ms=round(pool_p50, 3), pool_recall=overlap(pool_hits, exact_pool))
        else:
            index = flat
            row.update(kind="flat", p50_ms=row["flat_p50_ms"], recall_at_10=1.0, pool_p50_ms=row["flat_pool_p50_ms"],
                       pool_recall=1.0)
        row["rss_growth_mb"] = round(rss_mb() - base, 1)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ns.faiss"
            index.save(path)
            row["disk_mb"] = round(sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20, 1)
        row["vectors_in_duckdb_mb_est"] = round(n * DIM * 4 / 2**20, 1)  # episodes.embedding FLOAT[]
        rows.append(row)
        print(row, flush=True)
        del index, vectors
    ten_k = next((r for r in rows if r["n"] == 10_000), rows[0])
    print(f"\n| vectors | index | p50 ms | x p50 at {ten_k['n']} | exact flat p50 ms | recall@10 | HNSW build s | "
          f"RSS growth MB | snapshot MB | top-{args.pool} pool p50 ms (exact flat) | pool recall |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        r["ratio_to_10k"] = round(r["p50_ms"] / ten_k["p50_ms"], 2)
        print(f"| {r['n']} | {r['kind']} | {r['p50_ms']} | {r['ratio_to_10k']} | {r['flat_p50_ms']} | "
              f"{r['recall_at_10']} | {r.get('hnsw_build_s', '')} | {r['rss_growth_mb']} | {r['disk_mb']} | "
              f"{r['pool_p50_ms']} ({r['flat_pool_p50_ms']}) | {r['pool_recall']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"dim": DIM, "threshold": args.threshold, "vectors": "clustered random",
                                         "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                         "rows": rows}, indent=2))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ns = [r["n"] for r in rows]
        ax.plot(ns, [r["flat_p50_ms"] for r in rows], "o-", label="exact flat")
        ax.plot(ns, [r["p50_ms"] for r in rows], "s-", label=f"auto (HNSW past {args.threshold})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("vectors in the namespace")
        ax.set_ylabel("search p50 ms (1 thread)")
        ax.legend()
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
