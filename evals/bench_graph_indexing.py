"""Graph indexing cost as the corpus grows: is it linear? (HippoRAG recomputes all synonym pairs per insert.)

    python evals/bench_graph_indexing.py --json evals/results/graph_indexing_2wiki.json

Ingests the 2WikiMultihopQA corpus (6,119 passages) into one namespace in steps of ``--step`` passages,
each step waiting until extraction and the graph update are done, and reports seconds per 1,000 episodes
for each step together with the graph's size after it. Linear indexing shows as a flat seconds/1k column.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memserve_client import EpisodeInput, MemoryClient  # noqa: E402
from tqdm import tqdm  # noqa: E402

from evals.datasets import SHARED_DATA, load_json, parse_corpus  # noqa: E402
from memserve.testing import ServerProcess  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SHARED_DATA / "2wikimultihopqa" / "2wikimultihopqa_corpus.json")
    parser.add_argument("--step", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--extractor", default="offline")
    parser.add_argument("--embedding-model", default="bundled:all-MiniLM-L6-v2")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    corpus = parse_corpus(load_json(args.corpus), str(args.corpus))
    passages = [EpisodeInput(p.text, id=p.id) for p in corpus.passages]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "d", settings={"embedding_model": args.embedding_model,
                                                          "extractor": args.extractor, "summarizer": "none"})
        with server, MemoryClient(server.target, timeout=3600) as client:
            for start in range(0, len(passages), args.step):
                chunk = passages[start:start + args.step]
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
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"corpus": str(args.corpus), "extractor": args.extractor,
                                         "embedding_model": args.embedding_model, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
