"""Synonym search of new phrases at 50k-200k phrases: exact range search vs the phrase IVF, in one run.

    nice -n 10 python evals/bench_synonym_scale.py --sizes 50000,200000 \
        --json evals/results/synonym_scale.json --plot evals/results/synonym_scale.png

Every new phrase the graph ingests is range-searched for neighbours with cosine >= ``synonym_threshold``
(``KnowledgeGraph._link_synonyms`` -> ``EmbeddingIndex.range_pairs``). This measures that call alone, on
pre-computed vectors (384-d like MiniLM, unit norm, clustered so that pairs inside a cluster straddle the
threshold; fixed seed; no model): two indexes hold the same phrases, one exact (flat) and one with the IVF the
worker trains past ``phrase_index_exact_max`` (trained here in-process and timed: the server does it in the
background). Batches of new phrases are added to both and range-searched, as ``add_passages`` does; the
figure is CPU time of the calling thread per new phrase, with one FAISS thread (the 2-core machine is shared,
so thread CPU time, not wall time, is the stable measure), and the approximate pairs' recall against exact.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memserve.graph.embedding_index import EmbeddingIndex

DIM = 384


class Phrases:
    """Unit vectors around ``n // 8`` cluster centres, per-point spread uniform in [0.3, 0.7]."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        c = self._rng.standard_normal((max(n // 8, 1), DIM)).astype(np.float32)
        self._centres = c / np.linalg.norm(c, axis=1, keepdims=True)

    def draw(self, n: int) -> np.ndarray:
        base = self._centres[self._rng.integers(0, len(self._centres), n)]
        sigma = self._rng.uniform(0.3, 0.7, (n, 1)).astype(np.float32)
        v = base + sigma * self._rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def run_size(n: int, batches: int, batch: int, threshold: float) -> dict[str, float]:
    phrases = Phrases(n)
    base = phrases.draw(n)
    ids = np.arange(n, dtype=np.int64)
    exact = EmbeddingIndex(DIM)
    approx = EmbeddingIndex(DIM, approximate_above=min(50_000, n - 1), train_inline=False)
    for index in (exact, approx):
        for start in range(0, n, 50_000):
            index.add(ids[start:start + 50_000], base[start:start + 50_000])
    del base
    faiss.omp_set_num_threads(2)
    t0 = time.perf_counter()
    job = approx.ivf_job()
    assert job is not None
    trained = job.run()
    assert approx.install_ivf(trained)
    train_s = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)  # the measured part: one thread, CPU time of this thread
    cpu = {"exact": 0.0, "approx": 0.0}
    want = got = hit = 0
    next_id = n
    for _ in tqdm(range(batches), desc=f"{n:,} phrases", leave=False):
        vecs = phrases.draw(batch)
        new = np.arange(next_id, next_id + batch, dtype=np.int64)
        next_id += batch
        found: dict[str, set[tuple[int, int]]] = {}
        for name, index in (("exact", exact), ("approx", approx)):
            index.add(new, vecs)
            t = time.thread_time()
            q, h = index.range_pairs(new, vecs, threshold)
            cpu[name] += time.thread_time() - t
            found[name] = {(min(a, b), max(a, b)) for a, b in zip(q.tolist(), h.tolist(), strict=True)}
        want += len(found["exact"])
        got += len(found["approx"])
        hit += len(found["exact"] & found["approx"])
    new_total = batches * batch
    exact_ms, approx_ms = 1e3 * cpu["exact"] / new_total, 1e3 * cpu["approx"] / new_total
    return {"phrases": n, "new_phrases": new_total, "batch": batch, "nlist": int(trained.index.nlist),
            "nprobe": int(trained.index.nprobe), "ivf_train_s": train_s,
            "exact_ms_per_phrase": exact_ms, "approx_ms_per_phrase": approx_ms, "speedup": exact_ms / approx_ms,
            "pairs_exact": want, "pairs_approx": got, "recall": hit / want if want else 1.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="50000,200000")
    ap.add_argument("--batches", type=int, default=10, help="batches of new phrases per size")
    ap.add_argument("--batch", type=int, default=100, help="new phrases per batch (one add_passages call)")
    ap.add_argument("--threshold", type=float, default=0.8, help="synonym_threshold (the server's default)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    rows = [run_size(int(s), args.batches, args.batch, args.threshold) for s in args.sizes.split(",")]
    print("| phrases | exact ms / new phrase | IVF ms / new phrase | speedup | recall vs exact | pairs (exact) "
          "| nlist / nprobe | IVF training s (background) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['phrases']:,} | {r['exact_ms_per_phrase']:.3f} | {r['approx_ms_per_phrase']:.3f} | "
              f"{r['speedup']:.1f}x | {r['recall']:.4f} | {r['pairs_exact']:,} | {r['nlist']} / {r['nprobe']} | "
              f"{r['ivf_train_s']:.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"dim": DIM, "threshold": args.threshold, "rows": rows}, indent=2) + "\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        sizes = [r["phrases"] for r in rows]
        ax.plot(sizes, [r["exact_ms_per_phrase"] for r in rows], "o-", label="exact range search")
        ax.plot(sizes, [r["approx_ms_per_phrase"] for r in rows], "o-", label="phrase IVF")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("phrases in the graph")
        ax.set_ylabel("CPU ms per new phrase (1 thread)")
        ax.set_title("Synonym search of a new phrase")
        ax.legend()
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
