"""OfflineExtractor vs HippoRAG's cached GPT-3.5 OpenIE on the 1,890 MuSiQue passages.

    python evals/extractor_quality.py [--data ../shared/data] [--json out.json]

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
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from memserve.extract import OfflineExtractor, load_hipporag_openie, normalize_phrase

OPENIE_FILE = "musique/openie_musique_train_results_ner_gpt-3.5-turbo-1106_1890.json"


def evaluate(data_dir: Path, repeats: int = 3) -> dict[str, float]:
    gold = load_hipporag_openie(data_dir / OPENIE_FILE)
    passages = list(gold)
    extractor = OfflineExtractor()
    extractor.extract(passages[:50])  # warm regex caches
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predicted = extractor.extract(passages)
        best = min(best, time.perf_counter() - started)

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
    return {
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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--json", type=Path, help="also write the metrics as JSON here")
    args = parser.parse_args()
    if not (args.data / OPENIE_FILE).exists():
        sys.exit(f"missing {args.data / OPENIE_FILE}: pass --data pointing at shared/data")
    metrics = evaluate(args.data)
    width = max(map(len, metrics))
    print(f"{'metric':<{width}}  value")
    for name, value in metrics.items():
        print(f"{name:<{width}}  {value:.3f}" if isinstance(value, float) else f"{name:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
