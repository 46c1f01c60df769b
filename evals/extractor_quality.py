"""OfflineExtractor (and optionally an LLM) vs HippoRAG's cached GPT-3.5 OpenIE on the 1,890 MuSiQue passages.

    python evals/extractor_quality.py [--data ../shared/data] [--json out.json]
    python evals/extractor_quality.py --limit 100 --llm openai/gemma3-270m --llm-api-base http://127.0.0.1:8080/v1 \
        --prompt-style completion --json out.json      # a local model next to the offline extractor

With ``--llm`` both extractors run on the same first ``--limit`` passages; the LLM's passages/s is one pass
through memserve's LLMOpenIEExtractor (two calls per passage, no cache), so it includes the HTTP round trips.

Metrics (all on normalised phrases, micro-averaged over passages):
- entity precision / recall / F1 of offline entities against GPT's NER entities;
- triple-endpoint recall against GPT's NER entities ∪ triple subjects/objects (GPT's graph phrases);
- GPT triples covered: fraction of GPT triples whose subject and object both appear among offline entities
  (a proxy for "the offline graph has the nodes this fact connects");
- GPT triples linked: fraction whose subject and object are also joined by an offline triple (either direction);
- throughput in passages/s (single thread, after a warm-up pass).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from memserve.extract import (
    LLMOpenIEExtractor,
    OfflineExtractor,
    load_hipporag_openie,
    normalize_phrase,
)

OPENIE_FILE = "musique/openie_musique_train_results_ner_gpt-3.5-turbo-1106_1890.json"


def evaluate(data_dir: Path, repeats: int = 3, *, limit: int | None = None, llm: Any = None) -> dict[str, Any]:
    """Metrics of the offline extractor, or of ``LLMOpenIEExtractor(llm)`` when ``llm`` (an LLMClient) is given."""
    gold = load_hipporag_openie(data_dir / OPENIE_FILE)
    passages = list(gold)[:limit]
    if llm is None:
        extractor = OfflineExtractor()
        extractor.extract(passages[:50])  # warm regex caches
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            predicted = extractor.extract(passages)
            best = min(best, time.perf_counter() - started)
    else:
        from tqdm import tqdm

        extractor = LLMOpenIEExtractor(llm)
        predicted = []
        started = time.perf_counter()
        for passage in tqdm(passages, desc="llm openie", unit="passage"):
            predicted.extend(extractor.extract([passage]))
        best = time.perf_counter() - started

    tp = n_pred = n_gold = 0
    phrase_hit = phrase_total = 0
    covered = linked = total_triples = 0
    offline_triples = 0
    for passage, result in zip(passages, predicted, strict=True):
        reference = gold[passage]
        pred = {normalize_phrase(e) for e in result.entities} - {""}
        ref = {normalize_phrase(e) for e in reference.entities} - {""}
        tp += len(pred & ref)
        n_pred += len(pred)
        n_gold += len(ref)
        phrases = ref | {normalize_phrase(x) for t in reference.triples for x in (t.subject, t.object)}
        phrase_hit += len(pred & phrases)
        phrase_total += len(phrases)
        edges = {(normalize_phrase(t.subject), normalize_phrase(t.object)) for t in result.triples}
        edges |= {(o, s) for s, o in edges}
        offline_triples += len(result.triples)
        for t in reference.triples:
            s, o = normalize_phrase(t.subject), normalize_phrase(t.object)
            total_triples += 1
            if s in pred and o in pred:
                covered += 1
                linked += (s, o) in edges
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    metrics: dict[str, Any] = {
        "extractor": extractor.name,
        "passages": len(passages),
        "entity_precision": precision,
        "entity_recall": recall,
        "entity_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "phrase_recall": phrase_hit / phrase_total if phrase_total else 0.0,
        "gpt_triples_covered": covered / total_triples if total_triples else 0.0,
        "gpt_triples_linked": linked / total_triples if total_triples else 0.0,
        "offline_entities_per_passage": n_pred / len(passages),
        "gpt_entities_per_passage": n_gold / len(passages),
        "offline_triples_per_passage": offline_triples / len(passages),
        "gpt_triples_per_passage": total_triples / len(passages),
        "passages_per_s": len(passages) / best,
        "failed_passages": sum(1 for r in predicted if not r.ok),
        "dropped_triples": sum(r.dropped_triples for r in predicted),
    }
    if llm is not None:
        metrics["llm_output_repairs"] = llm.output_counts()
        metrics["llm_usage"] = llm.usage()
        metrics["_results"] = list(zip(passages, predicted, strict=True))
    return metrics


def save_openie(path: Path, results: list[tuple[str, Any]]) -> None:
    """The LLM's extraction in HippoRAG's OpenIE format, so `multihop_qa.py --extractor openie-file --openie PATH`
    can build its graph from it without asking the model again."""
    docs = [{"idx": i, "passage": passage, "extracted_entities": list(r.entities),
             "extracted_triples": [[t.subject, t.predicate, t.object] for t in r.triples]}
            for i, (passage, r) in enumerate(results)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"docs": docs}, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--json", type=Path, help="also write the metrics as JSON here")
    parser.add_argument("--limit", type=int, help="first N passages only (default: all 1,890)")
    parser.add_argument("--llm", metavar="MODEL", help="litellm model string: also evaluate LLM OpenIE with it")
    parser.add_argument("--llm-api-base", metavar="URL", help="base URL of an OpenAI-compatible server")
    parser.add_argument("--prompt-style", choices=["auto", "chat", "completion"], default="auto",
                        help="how prompts reach --llm (memserve's llm_prompt_style; completion for base models)")
    parser.add_argument("--llm-max-tokens", type=int, default=512, help="most tokens per LLM answer (default 512)")
    parser.add_argument("--save-openie", type=Path, metavar="PATH",
                        help="with --llm: write its extraction as HippoRAG OpenIE JSON (for multihop_qa.py)")
    parser.add_argument("--llm-timeout", type=float, default=300.0, help="seconds per LLM call (default 300)")
    args = parser.parse_args()
    if not (args.data / OPENIE_FILE).exists():
        sys.exit(f"missing {args.data / OPENIE_FILE}: pass --data pointing at shared/data")
    report: dict[str, Any] = {"offline": evaluate(args.data, limit=args.limit)}
    if args.llm:
        from memserve.llm import LLMClient, LLMSettings

        client = LLMClient(LLMSettings(model=args.llm, api_base=args.llm_api_base,
                                       api_key="not-needed" if args.llm_api_base else None,
                                       prompt_style=args.prompt_style, max_tokens=args.llm_max_tokens,
                                       timeout_s=args.llm_timeout, max_concurrency=1, max_retries=1))
        report["llm"] = evaluate(args.data, limit=args.limit, llm=client)
        results = report["llm"].pop("_results")
        if args.save_openie:
            save_openie(args.save_openie, results)
        report["settings"] = {"llm": args.llm, "prompt_style": client.prompt_style,
                              "max_tokens": args.llm_max_tokens, "cpu_count": os.cpu_count()}
    names = [k for k, v in report["offline"].items() if isinstance(v, (int, float))]
    width = max(map(len, names))
    columns = [c for c in ("offline", "llm") if c in report]
    print(f"{'metric':<{width}}  " + "  ".join(f"{c:>10}" for c in columns))
    for name in names:
        cells = [report[c].get(name) for c in columns]
        print(f"{name:<{width}}  " + "  ".join(f"{v:>10.3f}" if isinstance(v, float) else f"{v!s:>10}"
                                              for v in cells))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = report if args.llm else report["offline"]  # without --llm: the file format it always had
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
