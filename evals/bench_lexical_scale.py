"""The lexical (BM25) channel at scale: HYBRID's top-5000 BM25 candidates over 6k to 300k passages, in-process.

    python evals/bench_lexical_scale.py --sizes 6119,33333,100000,333333 --json evals/results/lexical_scale.json

The 2WikiMultihopQA corpus (6,119 passages) is repeated to each size, each copy a new document, so every term's
posting list grows with the namespace as a common word's does in a real corpus (rare names would stay rare
there: this is the pessimistic case). Queries are the 2Wiki dev questions, tokenised as the server does. Per
size: index build time, p50/p95 of one top-``--k`` search (HYBRID takes 5,000), resident memory growth. The
floor in the same run is the same search over the unrepeated corpus.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals._common import git_sha, rss_mb
from evals.datasets import MULTIHOP_DATASETS, SHARED_DATA, load_json, parse_corpus, parse_questions
from memserve.engine.retrieval import LEXICAL_POOL
from memserve.lexical import LexicalDoc, make_lexical_index, tokenize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="6119,33333,100000,333333")
    parser.add_argument("--k", type=int, default=LEXICAL_POOL)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the questions (the first warms up)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from tqdm import tqdm

    qfile, cfile, _ = MULTIHOP_DATASETS["2wiki"]
    corpus = parse_corpus(load_json(SHARED_DATA / cfile))
    questions = [tokenize(q.question) for q in parse_questions(load_json(SHARED_DATA / qfile), corpus)]
    docs = [tuple(tokenize(f"{p.title} {p.text}")) for p in corpus.passages]
    rows = []
    for n in tqdm([int(s) for s in args.sizes.split(",")], desc="sizes", file=sys.stderr):
        base = rss_mb()
        index = make_lexical_index(with_previous=False)
        t = time.perf_counter()
        index.add(LexicalDoc(i + 1, "", docs[i % len(docs)]) for i in range(n))
        build_s = time.perf_counter() - t
        times = []
        for round_ in range(args.rounds):
            for q in questions:
                t = time.perf_counter()
                index.search(q, args.k)
                if round_:
                    times.append((time.perf_counter() - t) * 1e3)
        rows.append({"passages": n, "build_s": round(build_s, 2), "p50_ms": round(float(np.median(times)), 3),
                     "p95_ms": round(float(np.percentile(times, 95)), 3), "rss_growth_mb": round(rss_mb() - base, 1)})
        print(rows[-1], file=sys.stderr, flush=True)
        del index
    floor = rows[0]["p50_ms"]
    print(f"| passages | build s | top-{args.k} p50 ms | p95 ms | x the {rows[0]['passages']:,}-passage p50 | "
          "RSS growth MB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        r["ratio_to_smallest"] = round(r["p50_ms"] / floor, 2)
        print(f"| {r['passages']:,} | {r['build_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['ratio_to_smallest']} | "
              f"{r['rss_growth_mb']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"git_sha": git_sha(), "k": args.k, "queries": len(questions),
                                         "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                         "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
