"""How much encoder work graph indexing adds, in tokens: the bound on graph ingest vs raw passage ``encode``.

For the first ``--limit`` 2WikiMultihopQA passages this extracts triples (offline extractor, as the server's
default), adds them to a ``KnowledgeGraph`` in ``--batch``-sized steps (``hash:64`` vectors: only *which*
strings are new matters here), collects the phrase and fact strings each step would send to the encoder (only
strings new to the graph, as the server does), and counts MiniLM tokens (with [CLS]/[SEP]) of those strings and
of the passages. Batches are length-sorted and padded to their longest text, as the encoder does.

MiniLM's cost per token is nearly flat at these lengths (the feed-forward layers dominate below ~256 tokens),
so ``passage tokens / (passage tokens + graph tokens)`` bounds the ratio graph ingest can reach against raw
passage encoding when every new phrase and fact is encoded by the same model. No model runs: this takes seconds.

    python evals/graph_indexing_tokens.py --limit 2000 --json evals/results/graph_indexing_tokens.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.datasets import SHARED_DATA, load_json, parse_corpus


def _padded(lengths: np.ndarray, batch: int) -> int:
    ordered = np.sort(lengths)
    return int(sum(ordered[i:i + batch].max() * len(ordered[i:i + batch]) for i in range(0, len(ordered), batch)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED_DATA / "2wikimultihopqa" / "2wikimultihopqa_corpus.json")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64, help="passages per write, as bench_graph_indexing.py")
    parser.add_argument("--encode", type=int, default=0,
                        help="also encode the first N passages and the graph strings they added with MiniLM "
                             "(process CPU time, batches of 32, length-sorted): the measured cost ratio")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    from memserve.embed import make_embedder
    from memserve.embed.sentence_transformer import DEFAULT_MODEL, resolve_model_path
    from memserve.extract import OfflineExtractor
    from memserve.graph import KnowledgeGraph

    texts = [p.text for p in parse_corpus(load_json(args.corpus)).passages[:args.limit]]
    results = OfflineExtractor().extract(texts)
    embed = make_embedder("hash:64")
    kg = KnowledgeGraph(embed.dim)
    new: list[str] = []
    new_by_passage_count: list[int] = []  # len(new) after each step
    for start in range(0, len(texts), args.batch):
        items = list(zip(range(start, start + args.batch), results[start:start + args.batch], strict=False))
        new += kg.texts_to_embed(items)
        new_by_passage_count.append(len(new))
        kg.add_passages(items, embed.embed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_MODEL))

    def lengths(strings: list[str]) -> np.ndarray:
        return np.array([len(ids) for ids in tokenizer(strings, truncation=True, max_length=256)["input_ids"]])

    passage_tokens, graph_tokens = lengths(texts), lengths(new)
    p_pad, g_pad = _padded(passage_tokens, 32), _padded(graph_tokens, 32)
    out = {
        "passages": len(texts),
        "passage_tokens": int(passage_tokens.sum()),
        "passage_tokens_mean": round(float(passage_tokens.mean()), 1),
        "graph_strings": len(new),
        "graph_strings_per_passage": round(len(new) / len(texts), 2),
        "graph_tokens": int(graph_tokens.sum()),
        "graph_tokens_mean": round(float(graph_tokens.mean()), 2),
        "padded_tokens_passages_b32": p_pad,
        "padded_tokens_graph_b32": g_pad,
        "graph_share_of_tokens": round(float(graph_tokens.sum() / (graph_tokens.sum() + passage_tokens.sum())), 3),
        "ratio_bound_if_cost_per_token_flat": round(p_pad / (p_pad + g_pad), 3),
    }
    if args.encode:
        import time

        model = make_embedder(DEFAULT_MODEL)
        steps = max(1, args.encode // args.batch)
        sample, strings = texts[:steps * args.batch], new[:new_by_passage_count[steps - 1]]
        model.embed(sample[:32])  # warm-up
        cpu = {}
        for name, batch in (("passages", sample), ("graph_strings", strings)):
            t = time.process_time()
            model.embed(batch)
            cpu[name] = time.process_time() - t
        out["encode_sample"] = {"passages": len(sample), "graph_strings": len(strings),
                                "cpu_s_passages": round(cpu["passages"], 2),
                                "cpu_s_graph_strings": round(cpu["graph_strings"], 2),
                                "measured_ratio_bound": round(cpu["passages"] / (cpu["passages"]
                                                                                 + cpu["graph_strings"]), 3)}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
