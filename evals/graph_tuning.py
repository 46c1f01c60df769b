"""Tune and measure GRAPH / HYBRID retrieval on MuSiQue, at the library level (no server).

Passages are ``title\\ntext`` (HippoRAG's convention); gold = paragraphs with ``is_supporting``; the graph is built
from HippoRAG's cached GPT-3.5 OpenIE. Embeddings (MiniLM) are cached under /tmp so reruns only pay for PPR.

    python evals/graph_tuning.py [--json out.json] [--sweep]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "musique"
if not DATA.exists():
    DATA = Path("/work/shared/data/musique")
CACHE_DIR = Path(os.environ.get("MEMSERVE_EVAL_CACHE", "/tmp"))
MODEL = "bundled:all-MiniLM-L6-v2"


class CachedEmbedder:
    """Embeds through MiniLM, remembering every text's vector in /tmp/*.npy so reruns are free."""

    def __init__(self, name: str = "graph_tuning") -> None:
        self._vec_path = CACHE_DIR / f"memserve_{name}_vecs.npy"
        self._txt_path = CACHE_DIR / f"memserve_{name}_texts.json"
        self._rows: dict[str, int] = {}
        self._vecs = np.zeros((0, 384), dtype=np.float32)
        if self._vec_path.exists() and self._txt_path.exists():
            texts = json.loads(self._txt_path.read_text())
            vecs = np.load(self._vec_path)
            if len(texts) == len(vecs):
                self._rows = {t: i for i, t in enumerate(texts)}
                self._vecs = vecs
        self._model = None
        self.seconds = 0.0

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = sorted({t for t in texts if t not in self._rows})
        if missing:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from memserve.embed import make_embedder

                self._model = make_embedder(MODEL)
            start = time.perf_counter()
            new = self._model.embed(missing)
            self.seconds += time.perf_counter() - start
            base = len(self._vecs)
            self._vecs = np.vstack([self._vecs, new.astype(np.float32)])
            for i, t in enumerate(missing):
                self._rows[t] = base + i
            self._save()
        return self._vecs[[self._rows[t] for t in texts]] if texts else np.zeros((0, 384), np.float32)

    def _save(self) -> None:
        texts = [""] * len(self._rows)
        for t, i in self._rows.items():
            texts[i] = t
        np.save(self._vec_path, self._vecs)
        self._txt_path.write_text(json.dumps(texts))


# ------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Question:
    text: str
    gold: frozenset[int]  # passage seqs


def load_musique() -> tuple[list[str], list[Question], dict[str, object]]:
    from memserve.extract.hipporag_cache import load_hipporag_openie

    corpus = json.loads((DATA / "musique_train_corpus.json").read_text())
    passages = [f"{p['title']}\n{p['text']}" for p in corpus]
    seq_of = {text: seq for seq, text in enumerate(passages)}
    questions = []
    for record in json.loads((DATA / "musique_train.json").read_text()):
        gold = {seq_of[f"{p['title']}\n{p['paragraph_text']}"] for p in record["paragraphs"] if p["is_supporting"]}
        questions.append(Question(record["question"], frozenset(gold)))
    openie = load_hipporag_openie(DATA / "openie_musique_train_results_ner_gpt-3.5-turbo-1106_1890.json")
    return passages, questions, openie  # type: ignore[return-value]


def recall(ranked: Sequence[int], gold: frozenset[int], k: int) -> float:
    return len(gold.intersection(ranked[:k])) / len(gold)


# ------------------------------------------------------------------------------------------------- runs


def build_graph(passages: list[str], openie: dict, embedder: CachedEmbedder, **options: object):
    from memserve.graph import KnowledgeGraph

    kg = KnowledgeGraph(384, **options)  # type: ignore[arg-type]
    items = [(seq, openie[text]) for seq, text in enumerate(passages) if text in openie]
    kg.add_passages(items, embedder.embed)
    # Passages without any extraction still belong to the corpus: they stay dense-only (see graph_retrieve).
    return kg


def evaluate(kg, pvecs: np.ndarray, qvecs: np.ndarray, questions: list[Question], mode: str, params) -> dict:
    from memserve.engine.graph_retrieval import graph_retrieve, hybrid_retrieve
    from memserve.extract import OfflineExtractor, normalize_phrase

    extractor = OfflineExtractor()
    r2 = r5 = 0.0
    times = []
    fallbacks = 0
    for q, qv in zip(questions, qvecs, strict=True):
        start = time.perf_counter()
        dense = pvecs @ qv
        if mode == "dense":
            ranked = list(np.argsort(-dense, kind="stable")[:5])
        else:
            scores = {i: float(s) for i, s in enumerate(dense)}
            fn = graph_retrieve if mode == "graph" else hybrid_retrieve
            phrases = tuple(normalize_phrase(e) for e in extractor.extract_one(q.text).entities)
            result = fn(qv, kg, scores, params, query_phrases=phrases)
            fallbacks += result.mode == "dense_fallback"
            ranked = [h.seq for h in result.hits]
        times.append((time.perf_counter() - start) * 1e3)
        r2 += recall(ranked, q.gold, 2)
        r5 += recall(ranked, q.gold, 5)
    n = len(questions)
    return {"R@2": 100 * r2 / n, "R@5": 100 * r5 / n, "ms_p50": float(np.median(times)), "fallbacks": fallbacks}


def main(argv: list[str] | None = None) -> int:
    from memserve.engine.graph_retrieval import GraphParams, HybridParams

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--sweep", action="store_true", help="grid over the tunable parameters")
    args = parser.parse_args(argv)

    passages, questions, openie = load_musique()
    embedder = CachedEmbedder()
    pvecs = embedder.embed(passages)
    qvecs = embedder.embed([q.text for q in questions])
    t = time.perf_counter()
    kg = build_graph(passages, openie, embedder)
    build_s = time.perf_counter() - t
    kg.matrix()
    print(f"graph: {len(kg.phrases)} phrases, {len(kg.facts)} facts, {len(kg.passages)} passages, "
          f"built in {build_s:.1f}s (embedding {embedder.seconds:.1f}s of it)")

    graph_params = GraphParams(top_k=5)
    results = {
        "dense": evaluate(kg, pvecs, qvecs, questions, "dense", None),
        "graph": evaluate(kg, pvecs, qvecs, questions, "graph", graph_params),
        "hybrid": evaluate(kg, pvecs, qvecs, questions, "hybrid", HybridParams(graph=graph_params)),
    }
    if args.sweep:
        results["sweep"] = sweep(kg, pvecs, qvecs, questions)
    print(f"{'mode':<8} {'R@2':>6} {'R@5':>6} {'query ms p50':>13}")
    for mode in ("dense", "graph", "hybrid"):
        r = results[mode]
        print(f"{mode:<8} {r['R@2']:6.1f} {r['R@5']:6.1f} {r['ms_p50']:13.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def sweep(kg, pvecs, qvecs, questions) -> list[dict]:
    from memserve.engine.graph_retrieval import GraphParams, HybridParams

    rows = []
    for pw in (0.05, 0.1):
        for fk in (5, 10):
            gp = GraphParams(top_k=5, passage_weight=pw, fact_top_k=fk)
            rows.append({"mode": "graph", "passage_weight": pw, "fact_top_k": fk,
                         **evaluate(kg, pvecs, qvecs, questions, "graph", gp)})
            print(rows[-1], flush=True)
            for anchor in (1, 2):
                h = evaluate(kg, pvecs, qvecs, questions, "hybrid", HybridParams(graph=gp, dense_anchor=anchor))
                rows.append({"mode": "hybrid-anchor", "passage_weight": pw, "fact_top_k": fk, "anchor": anchor, **h})
                print(rows[-1], flush=True)
            for gw, rk in ((0.5, 60.0), (0.5, 5.0), (0.7, 5.0)):
                hp = HybridParams(graph=gp, fusion="rrf", graph_weight=gw, rrf_k=rk)
                rows.append({"mode": "hybrid-rrf", "passage_weight": pw, "fact_top_k": fk, "graph_weight": gw,
                             "rrf_k": rk, **evaluate(kg, pvecs, qvecs, questions, "hybrid", hp)})
                print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
