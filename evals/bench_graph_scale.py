"""Graph memory at scale: GRAPH / HYBRID query cost and graph memory from ~50k to 1M phrase nodes.

Graphs are synthetic (evals/synthetic.py ``graph_columns``: passages of 4 triples over 3 new entities and 2
Zipf-drawn shared ones, ~0.3 synonymy candidates per phrase, random unit vectors), built in-process with
``KnowledgeGraph.restore_columns`` — the server's start-up path, so no embedder runs and no synonym search is
done — then the PPR matrix is built and installed as the server's worker does. The dense pool is FAISS flat
inner product over random passage vectors (``--passage-index server``: memserve's own index, HNSW past its
threshold), the top ``dense_pool`` as the server's graph modes take (on HNSW the top ``dense_pool_hnsw``, normalised
down to the index's estimate of the score at rank ``dense_pool``, timed with the pool), so DENSE and GRAPH are
measured on the same data in the same process. Each size runs in a fresh subprocess (clean RSS).

Per size: p50/p95 of each GRAPH/HYBRID stage (fact_search, seed, ppr, fuse, total) with push and power PPR,
the DENSE query (top 10) and the dense pool, RSS per node and per edge (beyond the vectors), the
graph's columns on disk (as .npz: what a snapshot holds, not the server's DuckDB tables), and build time.

    nice -n 10 python evals/bench_graph_scale.py                 # 50k, 100k, 300k, 1M phrases
    nice -n 10 python evals/bench_graph_scale.py --quick         # 20k, 50k, 100k: a minute
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evals.synthetic import clustered, graph_columns  # noqa: E402

DIM = 32
STAGES = ("fact_search", "seed", "ppr", "fuse", "total")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _pct(values: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


WARM_UP_PHRASES = 2000


def one_size(phrases: int, queries: int, seed: int, clock: str, epsilon: float | None = None,
             methods: tuple[str, ...] = ("push", "power"), warm_up: bool = True, dim: int = DIM,
             passage_index: str = "flat", pool: int | None = None, clustered_passages: bool = False,
             other_pools: tuple[int, ...] = ()) -> dict:
    """Build a graph of ``phrases`` phrase nodes and time its queries. ``warm_up``: first build and query a
    2,000-phrase graph and drop it, so the per-node memory excludes what any graph costs once per process
    (imports, allocator arenas, first-use buffers); that fixed cost is reported on its own. ``dim``: the
    vectors' dimension (MiniLM's is 384). ``passage_index``: "flat" (exact FAISS inner product) or "server"
    (memserve's own ``FaissIndex``, HNSW past its threshold as a server namespace becomes, built before timing)."""
    import types

    import faiss

    from memserve.engine import graph_retrieval as gr
    from memserve.graph import KnowledgeGraph

    faiss.omp_set_num_threads(1)  # one query at a time on one core, as the server runs a query
    now = time.thread_time if clock == "cpu" else time.perf_counter
    build_clock = time.process_time if clock == "cpu" else time.perf_counter
    if clock == "cpu":  # the retrieval's own stage timings read the same clock
        gr.time = types.SimpleNamespace(perf_counter=time.thread_time)  # type: ignore[assignment]
    fixed = 0
    if warm_up:
        gc.collect()
        before = _rss()
        one_size(WARM_UP_PHRASES, 3, seed, clock, epsilon, methods, warm_up=False, dim=dim,
                 passage_index=passage_index, pool=pool, clustered_passages=clustered_passages)
        gc.collect()
        fixed = _rss() - before
    gc.collect()
    rss0 = _rss()
    t = build_clock()
    columns, passage_vecs = graph_columns(phrases, dim, seed, clustered_passages=clustered_passages)
    query_vecs = clustered(queries + 3, dim, seed + 1) if clustered_passages else None
    gen_s = build_clock() - t
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.npz"
        np.savez(path, **{k: np.asarray(v) for k, v in columns.__dict__.items()})  # type: ignore[arg-type]
        disk = path.stat().st_size
    vector_bytes = columns.phrase_vectors.nbytes + columns.fact_vectors.nbytes
    t = build_clock()
    kg = KnowledgeGraph.restore_columns(dim, columns)
    restore_s = build_clock() - t
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # builds use every core, as the server's worker does
    t = build_clock()
    job = kg.fact_ivf_job()
    if job is not None:
        kg.install_fact_ivf(job.run())
    ivf_s = build_clock() - t
    t = build_clock()
    assert kg.install_matrix(kg.build_matrix())
    matrix_s = build_clock() - t
    matrix = kg.matrix()
    nodes, edges = matrix.ppr.n, kg.edge_count
    del columns
    gc.collect()

    seqs = np.asarray(sorted(kg.passages), np.int64)
    t = build_clock()
    search = _passage_search(passage_index, passage_vecs, seqs)
    passage_index_s = build_clock() - t
    faiss.omp_set_num_threads(1)
    from memserve.config import Settings
    from memserve.engine.retrieval import dense_pool_size

    defaults = Settings()
    floor_rank = defaults.dense_pool
    if pool is None:  # as the server picks it: the index kind decides
        pool = dense_pool_size(defaults, search.kind.removeprefix("server "))
    # A pool shorter than dense_pool is normalised down to the score at rank dense_pool, read (estimated, on
    # HNSW) from the index as the server's query does; timed with the pool.
    floor_rank = floor_rank if pool < floor_rank else 0
    rng = np.random.default_rng(seed + 1)
    has_method = "ppr_method" in gr.GraphParams.__dataclass_fields__  # False on code before local PPR
    methods = methods if has_method else ("power",)
    phrase_ids = np.asarray(list(kg.phrases.keys())[:2000])
    out: dict = {"phrases": len(kg.phrases), "facts": len(kg.facts), "passages": len(seqs), "nodes": nodes,
                 "edges": edges, "generate_s": gen_s, "restore_s": restore_s, "fact_ivf_s": ivf_s,
                 "matrix_s": matrix_s, "disk_bytes": disk, "vector_bytes": vector_bytes, "dim": dim,
                 "dense_pool_size": pool, "floor_rank": floor_rank or None,
                 "clustered_passages": clustered_passages,
                 "passage_index": search.kind, "passage_index_s": passage_index_s, "modes": {}}
    timings: dict[str, dict[str, list[float]]] = {}
    dense_ms: list[float] = []
    pool_ms: list[float] = []
    other_pool_ms: dict[int, list[float]] = {}
    agreement: list[dict[str, float]] = []
    for i in range(queries + 3):  # 3 warm-up queries
        if query_vecs is not None:  # queries from the passages' distribution, as real queries are
            q = query_vecs[i]
        else:
            q = rng.standard_normal(dim).astype(np.float32)
            q /= np.linalg.norm(q)
        t = now()
        search(q, 10)
        d_ms = (now() - t) * 1e3
        t = now()
        pool_ids, scores = search(q, pool)
        floor = search.score_at_rank(q, floor_rank) if floor_rank and len(pool_ids) == pool else None
        p_ms = (now() - t) * 1e3
        dense_scores = gr.ScoreArrays(pool_ids, scores) if hasattr(gr, "ScoreArrays") else dict(
            zip(pool_ids.tolist(), scores.tolist(), strict=True))
        named = (kg.phrases[int(phrase_ids[rng.integers(0, len(phrase_ids))])],)
        if i >= 3:
            dense_ms.append(d_ms)
            pool_ms.append(p_ms)
            for size in other_pools:  # what a smaller or larger dense_pool would cost (the search alone)
                t = now()
                search(q, size)
                other_pool_ms.setdefault(size, []).append((now() - t) * 1e3)
        for method in methods:
            extra: dict = {"ppr_method": method} if has_method else {}
            if has_method and epsilon is not None:
                extra["ppr_epsilon"] = epsilon
            if floor is not None:
                extra["dense_floor"] = floor
            params = gr.GraphParams(top_k=10, **extra)
            for mode in ("graph", "hybrid"):
                t = now()
                if mode == "graph":
                    result = gr.graph_retrieve(q, kg, dense_scores, params, query_phrases=named)
                else:
                    result = gr.hybrid_retrieve(q, kg, dense_scores, gr.HybridParams(graph=params),
                                                query_phrases=named)
                wall = (now() - t) * 1e3
                if i < 3:
                    continue
                row = timings.setdefault(f"{mode}/{method}", {s: [] for s in (*STAGES, "query")})
                for stage in STAGES:
                    row[stage].append(result.timings_ms.get(stage, 0.0))
                row["query"].append(wall + p_ms)  # what a HYBRID/GRAPH query costs beyond embedding
        if floor is not None and i >= 3:  # untimed: the short pool against the exact pool of floor_rank
            agreement.append(_against_exact_pool(gr, kg, q, named, search, seqs, passage_vecs, pool_ids, floor_rank,
                                                 gr.GraphParams(top_k=10, ppr_method=methods[0], dense_floor=floor)))
    if agreement:
        out["short_pool_vs_exact"] = {k: float(np.mean([a[k] for a in agreement])) for k in agreement[0]}
    out["dense"] = _pct(dense_ms)
    out["dense_pool"] = _pct(pool_ms)
    out["other_pools"] = {str(size): _pct(ms) for size, ms in other_pool_ms.items()}
    for name, row in timings.items():
        out["modes"][name] = {stage: _pct(vals) for stage, vals in row.items()}
    gc.collect()
    rss = _rss() - rss0 - passage_vecs.nbytes - search.nbytes
    out["rss_bytes"] = rss
    out["fixed_rss_bytes"] = fixed  # the warm-up graph's process-wide cost, not counted per node
    out["rss_per_node_beyond_vectors"] = (rss - vector_bytes) / nodes
    # The fact IVF (past 50k facts) keeps a second copy of every fact vector in its lists: vectors too, but not in
    # vector_bytes, which counts each vector once.
    ivf_copy = len(kg.facts) * (dim * 4 + 8) if kg.fact_search_approximate else 0
    out["ivf_copy_bytes"] = ivf_copy
    out["rss_per_node_beyond_all_vector_copies"] = (rss - vector_bytes - ivf_copy) / nodes
    out["rss_per_edge_beyond_vectors"] = (rss - vector_bytes) / max(edges, 1)
    return out


def _against_exact_pool(gr, kg, q: np.ndarray, named: tuple, search, seqs: np.ndarray, vecs: np.ndarray,
                        pool_ids: np.ndarray, rank: int, params) -> dict[str, float]:
    """HYBRID from the short pool against HYBRID from the exact top ``rank``: the share of their top 10 in
    common, with the short pool normalised down to the estimated score at ``rank`` (what the server does), with
    its own lowest score as the zero (a plain short pool), and for the index's own pool of ``rank`` (the old
    default); plus the share of the exact pool's prior mass the short pool holds."""
    import dataclasses

    scores = vecs @ q
    top = np.argpartition(-scores, rank - 1)[:rank]
    plain = gr.HybridParams(graph=dataclasses.replace(params, dense_floor=None))

    def top10(ids: np.ndarray, hybrid) -> set[int]:
        pool = gr.ScoreArrays(ids, scores[np.searchsorted(seqs, ids)])
        return {h.seq for h in gr.hybrid_retrieve(q, kg, pool, hybrid, query_phrases=named).hits}

    want = top10(seqs[top], plain)
    weights = (scores[top] - scores[top].min()) / max(float(scores[top].max() - scores[top].min()), 1e-12)
    return {"overlap_short_pool_with_zero": len(top10(pool_ids, gr.HybridParams(graph=params)) & want) / 10,
            "overlap_short_pool_plain": len(top10(pool_ids, plain) & want) / 10,
            "overlap_index_pool_of_rank": len(top10(search(q, rank)[0], plain) & want) / 10,
            "prior_mass_kept": float(weights[np.isin(seqs[top], pool_ids)].sum() / max(float(weights.sum()), 1e-12))}


class _PassageSearch:
    """Top-k over the passage vectors, returning (seqs, scores): exact flat, or the server's own index."""

    def __init__(self, kind: str, index, seqs: np.ndarray, nbytes: int, raw: bool) -> None:
        self.kind, self._index, self._seqs, self.nbytes, self._raw = kind, index, seqs, nbytes, raw

    def __call__(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._raw:  # a bare FAISS index: positions, not seqs
            scores, ids = self._index.search(q[None, :], k)
            found = ids[0] >= 0  # FAISS pads with -1 past the end
            return self._seqs[ids[0][found]], scores[0][found]
        hits = self._index.search(q[None, :], k)[0]
        return hits.ids, hits.scores

    def score_at_rank(self, q: np.ndarray, rank: int) -> float | None:
        """The server index's score at ``rank`` (its estimate, on HNSW); a bare FAISS index has none."""
        return None if self._raw else self._index.score_at_rank(q, rank)


def _passage_search(kind: str, vecs: np.ndarray, seqs: np.ndarray) -> _PassageSearch:
    import faiss

    if kind == "flat":
        flat = faiss.IndexFlatIP(vecs.shape[1])
        flat.add(vecs)
        return _PassageSearch("flat", flat, seqs, flat.ntotal * vecs.shape[1] * 4, raw=True)
    from memserve.vector import FaissIndex

    index = FaissIndex(vecs.shape[1], migrate_inline=False, use_gpu=False)
    index.add(seqs, vecs)
    if index.migration_due():  # what the server's registry does in the background past hnsw_threshold
        job = index.migration_job()
        index.install_migration(job, job.run())
    return _PassageSearch(f"server {index.kind}", index, seqs, index.nbytes(), raw=False)


def _exponent(sizes: list[int], values: list[float]) -> float | None:
    if len(sizes) < 2 or min(values) <= 0:
        return None
    return float(np.polyfit(np.log(sizes), np.log(values), 1)[0])


def query_encode_ms(model: str, queries: int, clock: str) -> dict[str, float]:
    """p50/p95 of one query encode with ``model`` (what DENSE and HYBRID both pay before any search)."""
    from memserve.embed import make_embedder

    questions = [f"Who directed the film that won the award number {i} in the year {1950 + i}?" for i in
                 range(queries + 3)]
    embedder = make_embedder(model)
    now = time.thread_time if clock == "cpu" else time.perf_counter
    times = []
    for i, q in enumerate(questions):
        t = now()
        embedder.embed([q])
        if i >= 3:
            times.append((now() - t) * 1e3)
    return _pct(times)


def summarise(runs: list[dict]) -> dict:
    big = [r for r in runs if r["phrases"] >= 90_000]
    growth = {}
    for name in runs[0]["modes"]:
        for stage in ("ppr", "total"):
            growth[f"{name}:{stage}"] = _exponent([r["nodes"] for r in big],
                                                  [r["modes"][name][stage]["p50"] for r in big])
    return {"growth_exponent_p50_from_100k": growth}


def table(runs: list[dict]) -> str:
    names = list(runs[0]["modes"])
    head = ("| phrases | nodes | edges | dense ms p50 | " + " | ".join(f"{n} stages p50/p95" for n in names)
            + " | hybrid/push vs dense | with query encode | RSS B/node | without the IVF copy | B/edge | fixed MB"
               + " | disk MB | build s |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in runs:
        cells = [f"{r['phrases']:,}", f"{r['nodes']:,}", f"{r['edges']:,}",
                 f"{r['dense']['p50']:.2f} ({r.get('passage_index', 'flat')}, pool {r.get('dense_pool_size', 5000)}"
                 + (f", zero at rank {r['floor_rank']})" if r.get("floor_rank") else ")")]
        for n in names:
            m = r["modes"][n]
            cells.append(f"{m['total']['p50']:.1f}/{m['total']['p95']:.1f} (ppr {m['ppr']['p50']:.1f})")
        hyb = r["modes"].get("hybrid/push") or r["modes"].get("hybrid/power")
        cells.append(f"{hyb['query']['p50'] / r['dense']['p50']:.1f}x")
        enc = r.get("query_encode", {}).get("p50")
        cells.append(f"{(enc + hyb['query']['p50']) / (enc + r['dense']['p50']):.2f}x" if enc else "-")
        cells += [f"{r['rss_per_node_beyond_vectors']:.0f}",
                  f"{r.get('rss_per_node_beyond_all_vector_copies', r['rss_per_node_beyond_vectors']):.0f}",
                  f"{r['rss_per_edge_beyond_vectors']:.0f}",
                  f"{r.get('fixed_rss_bytes', 0) / 1e6:.0f}", f"{r['disk_bytes'] / 1e6:.0f}", f"{r['restore_s'] + r['matrix_s']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["nodes"] for r in runs]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in runs[0]["modes"]:
        ax.plot(x, [r["modes"][name]["total"]["p50"] for r in runs], marker="o", label=f"{name} (graph stages)")
        ax.plot(x, [r["modes"][name]["ppr"]["p50"] for r in runs], marker=".", linestyle=":",
                label=f"{name} ppr")
    ax.plot(x, [r["dense"]["p50"] for r in runs], marker="s", color="black", label="dense top-10")
    ax.plot(x, [r["dense_pool"]["p50"] for r in runs], marker="s", color="grey", label="dense pool")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("graph nodes (phrases + passages)")
    ax.set_ylabel("p50 ms")
    ax.set_title("GRAPH / HYBRID stages vs graph size (synthetic graphs, 1 core)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50000,100000,300000,1000000", help="phrase counts")
    parser.add_argument("--quick", action="store_true", help="20k, 50k, 100k phrases, 30 queries")
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=ROOT / "evals" / "results" / "bench_graph_scale.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "evals" / "results" / "bench_graph_scale.png")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: the query thread's CPU time (what an idle core takes; robust on a shared "
                             "machine), wall: elapsed time (default cpu)")
    parser.add_argument("--epsilon", type=float, help="ppr_epsilon for push (default: GraphParams' default)")
    parser.add_argument("--methods", default="push,power", help="PPR methods to time (power at 1M: ~1.5 s a query)")
    parser.add_argument("--encode-model", help="also time the query encode with this embedder (e.g. "
                        "bundled:all-MiniLM-L6-v2) and report HYBRID vs DENSE with it, as a real query pays")
    parser.add_argument("--dim", type=int, default=DIM, help=f"vector dimension (default {DIM}; MiniLM: 384)")
    parser.add_argument("--passage-index", choices=("flat", "server"), default="flat",
                        help="flat: exact FAISS over the passages; server: memserve's FaissIndex, HNSW past its "
                             "threshold as a server namespace becomes (default flat)")
    parser.add_argument("--pool", type=int, help="dense pool of the graph modes (default: as the server picks it, "
                        "dense_pool_hnsw on an HNSW index, else dense_pool)")
    parser.add_argument("--other-pools", default="", help="also time the dense search alone at these pool "
                        "sizes (comma-separated), to price a different dense_pool setting")
    parser.add_argument("--clustered-passages", action="store_true",
                        help="passage and query vectors around 1,000 centres, as sentence embeddings are (an HNSW "
                             "index's cost depends on it; default: random unit vectors)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size, print JSON
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_size(args.one, args.queries, args.seed, args.clock, args.epsilon,
                                  tuple(args.methods.split(",")), dim=args.dim, passage_index=args.passage_index,
                                  pool=args.pool, clustered_passages=args.clustered_passages,
                                  other_pools=tuple(int(p) for p in args.other_pools.split(",") if p))))
        return 0
    sizes = [20_000, 50_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    queries = 30 if args.quick else args.queries
    runs = []
    encode = query_encode_ms(args.encode_model, 30, args.clock) if args.encode_model else None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        def tqdm(x, **_):
            return x
    for size in tqdm(sizes, desc="graph sizes"):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, __file__, "--one", str(size), "--queries", str(queries),
                               "--seed", str(args.seed), "--clock", args.clock, "--methods", args.methods,
                               "--dim", str(args.dim), "--passage-index", args.passage_index,
                               *(["--pool", str(args.pool)] if args.pool else []),
                               *(["--clustered-passages"] if args.clustered_passages else []),
                               "--other-pools", args.other_pools,
                               *(["--epsilon", str(args.epsilon)] if args.epsilon else [])],
                              capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        if encode:
            runs[-1]["query_encode"] = encode
        print(f"  {size:,} phrases: " + ", ".join(
            f"{n} {m['total']['p50']:.1f} ms" for n, m in runs[-1]["modes"].items())
            + f", dense {runs[-1]['dense']['p50']:.2f} ms", flush=True)
        result = {"machine": f"{os.cpu_count()} cores (shared)", "clock": args.clock, "dim": args.dim,
                  "passage_index": args.passage_index, "dense_pool_size": args.pool or "server default",
                  "clustered_passages": args.clustered_passages,
                  "ppr_epsilon": args.epsilon,
                  "queries": queries, "runs": runs, **summarise(runs)}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))  # after every size: a long run keeps what it did
        plot(runs, args.plot)
    print(table(runs))
    print(json.dumps(result["growth_exponent_p50_from_100k"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
