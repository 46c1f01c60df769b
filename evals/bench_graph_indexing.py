"""Graph indexing speed against raw encoder speed, and its cost as the corpus grows.

    nice -n 10 python evals/bench_graph_indexing.py --limit 2000 \
        --json evals/results/graph_indexing_ratio_2wiki.json --plot evals/results/graph_indexing_ratio_2wiki.png

**Ratio** (the default): the floor is raw ``encode`` of the first ``--limit`` 2WikiMultihopQA passages with the
server's embedder, in this process, in ``--batch``-sized calls. Then each configuration ingests the same
passages into a fresh server (offline extraction, graph on) and waits for the graph; its passages/s over the
floor's passages/s is the ratio (1.0: indexing a graph costs nothing beyond encoding the passages). The
configurations: ``before`` (encoder chunks of exactly ``encode_chunk`` texts, no vector cache: main before
issue 9), ``cost-batches`` (the defaults plus ``embedding_batch_chars=512``: forward passes of short texts
bounded by cost, not by count; measured 9% slower than the defaults on 2 idle cores, so not the default),
``after`` (the defaults), and ``after, 2nd namespace`` (the same passages again on the ``after``
server: phrase and fact vectors come from the shared cache). ``encode``, ``compose`` and ``spans`` set
``graph_vectors``: every phrase and fact text encoded; facts composed from their phrases' and predicate's
vectors; and phrases also pooled from their episode's own forward pass (only predicates left to encode).
The floor is measured again at the end and the
mean of both runs is used, so a busy machine moves floor and ingest alike.

**Linearity** (``--steps N``): ingests the whole corpus in steps of N passages and reports seconds per 1,000
episodes for each step with the graph's size after it (flat seconds/1k = linear indexing).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memserve_client import EpisodeInput, MemoryClient
from tqdm import tqdm

from evals.datasets import SHARED_DATA, load_json, parse_corpus
from memserve.testing import ServerProcess

CONFIGS = {
    "before": {"encode_chunk_chars": "0", "graph_embedding_cache": "false", "embedding_batch_chars": "0"},
    "cost-batches": {"embedding_batch_chars": "512"},
    "after": {},
    "encode": {"graph_vectors": "encode"},  # every new phrase and fact text encoded
    "compose": {"graph_vectors": "compose"},  # facts composed from their phrases' and predicate's vectors
    "spans": {"graph_vectors": "spans"},  # ... and phrases pooled from their episode's own forward pass
}


def raw_encode_seconds(texts: list[str], model: str, batch: int) -> float:
    from memserve.embed import make_embedder

    embedder = make_embedder(model)
    embedder.embed(texts[:batch])  # warm-up (first call allocates)
    t0 = time.perf_counter()
    for b in tqdm(range(0, len(texts), batch), desc="raw encode", file=sys.stderr):
        embedder.embed(texts[b:b + batch])
    return time.perf_counter() - t0


def ingest(client: MemoryClient, ns: str, passages: list[EpisodeInput], batch: int) -> float:
    t0 = time.perf_counter()
    for b in tqdm(range(0, len(passages), batch), desc=f"ingest {ns}", file=sys.stderr):
        client.write(ns, passages[b:b + batch])
    client.write(ns, passages[-1:], wait_for_graph=True)  # idempotent: waits until the graph has them all
    return time.perf_counter() - t0


def ratio_bench(args: argparse.Namespace, passages: list[EpisodeInput]) -> dict:
    texts = [p.text for p in passages]
    floor_runs = [raw_encode_seconds(texts, args.embedding_model, args.batch)]
    rows = []
    for name in args.configs.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            settings = {"embedding_model": args.embedding_model, "extractor": args.extractor,
                        "summarizer": "none", "snapshot_interval_s": "0", **CONFIGS[name]}
            with ServerProcess(Path(tmp) / "d", settings=settings, start_timeout=900) as server, \
                    MemoryClient(server.target, timeout=7200) as client:
                seconds = ingest(client, "wiki", passages, args.batch)
                s = client.stats("wiki").namespaces[0]
                rows.append({"config": name, "seconds": round(seconds, 2), "phrases": s.phrase_count,
                             "facts": s.fact_count})
                if name == "after" and args.second_namespace:
                    rows.append({"config": "after, 2nd namespace",
                                 "seconds": round(ingest(client, "wiki2", passages, args.batch), 2),
                                 "phrases": s.phrase_count, "facts": s.fact_count})
    floor_runs.append(raw_encode_seconds(texts, args.embedding_model, args.batch))
    floor = sum(floor_runs) / len(floor_runs)
    for r in rows:
        r["passages_per_s"] = round(len(texts) / r["seconds"], 2)
        r["ms_per_passage"] = round(r["seconds"] / len(texts) * 1000, 1)
        r["ratio_to_raw_encode"] = round(floor / r["seconds"], 3)
    return {"passages": len(texts), "raw_encode_seconds": [round(x, 2) for x in floor_runs],
            "raw_passages_per_s": round(len(texts) / floor, 2), "raw_ms_per_passage": round(floor / len(texts) * 1000, 1),
            "rows": rows}


def print_ratio(result: dict) -> None:
    print(f"raw encode: {result['raw_passages_per_s']} passages/s ({result['raw_ms_per_passage']} ms/passage; "
          f"runs {result['raw_encode_seconds']} s)")
    print("| configuration | s | passages/s | ms/passage | ratio to raw encode | phrases | facts |")
    print("|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        print(f"| {r['config']} | {r['seconds']} | {r['passages_per_s']} | {r['ms_per_passage']} | "
              f"{r['ratio_to_raw_encode']} | {r['phrases']} | {r['facts']} |")


def plot_ratio(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["raw encode"] + [r["config"] for r in result["rows"]]
    rates = [result["raw_passages_per_s"]] + [r["passages_per_s"] for r in result["rows"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars = ax.bar(names, rates, color=["#888"] + ["#c44" if r["config"] == "before" else "#48c"
                                                 for r in result["rows"]])
    for bar, r in zip(bars[1:], result["rows"], strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{r['ratio_to_raw_encode']:.2f}x",
                ha="center", va="bottom")
    ax.axhline(0.8 * result["raw_passages_per_s"], ls="--", color="k", lw=0.8, label="0.8x raw encode")
    ax.set_ylabel("passages / s")
    ax.set_title(f"Graph ingest vs raw encode, first {result['passages']} 2Wiki passages")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def linearity_bench(args: argparse.Namespace, passages: list[EpisodeInput]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "d", settings={"embedding_model": args.embedding_model,
                                                          "extractor": args.extractor, "summarizer": "none"})
        with server, MemoryClient(server.target, timeout=3600) as client:
            for start in range(0, len(passages), args.steps):
                chunk = passages[start:start + args.steps]
                t0 = time.perf_counter()
                for b in tqdm(range(0, len(chunk), args.batch), desc=f"passages {start}-{start + len(chunk)}",
                              file=sys.stderr):
                    client.write("wiki", chunk[b:b + args.batch])
                written = time.perf_counter() - t0
                client.write("wiki", chunk[-1:], wait_for_graph=True)  # idempotent: just waits for the graph
                total = time.perf_counter() - t0
                s = client.stats("wiki").namespaces[0]
                rows.append({"episodes_after": start + len(chunk), "step_episodes": len(chunk),
                             "write_seconds": round(written, 1), "step_seconds": round(total, 1),
                             "seconds_per_1k": round(total / len(chunk) * 1000, 1), "phrases": s.phrase_count,
                             "facts": s.fact_count, "edges": s.graph_edge_count})
    print("| episodes after step | step s | s per 1k episodes | of which dense write s | phrases | facts | edges |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['episodes_after']} | {r['step_seconds']} | {r['seconds_per_1k']} | {r['write_seconds']} | "
              f"{r['phrases']} | {r['facts']} | {r['edges']} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SHARED_DATA / "2wikimultihopqa" / "2wikimultihopqa_corpus.json")
    parser.add_argument("--limit", type=int, default=2000, help="passages for the ratio benchmark")
    parser.add_argument("--configs", default="before,after", help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--no-second-namespace", dest="second_namespace", action="store_false")
    parser.add_argument("--steps", type=int, default=0, help="run the linearity benchmark in steps of N instead")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--extractor", default="offline")
    parser.add_argument("--embedding-model", default="bundled:all-MiniLM-L6-v2")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    corpus = parse_corpus(load_json(args.corpus), str(args.corpus))
    passages = [EpisodeInput(p.text, id=p.id) for p in corpus.passages]
    meta = {"corpus": str(args.corpus), "extractor": args.extractor, "embedding_model": args.embedding_model,
            "batch": args.batch, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.steps:
        out = {**meta, "rows": linearity_bench(args, passages)}
    else:
        out = {**meta, **ratio_bench(args, passages[: args.limit])}
        print_ratio(out)
        if args.plot:
            plot_ratio(out, args.plot)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
