"""Local (push) PPR against full power-iteration PPR: recall and PPR time on the multi-hop datasets, in-process.

The library-level twin of multihop_qa.py (no server): the whole corpus becomes a KnowledgeGraph (MuSiQue from
HippoRAG's cached GPT-3.5 OpenIE, HotpotQA and 2Wiki from the offline extractor, as multihop_qa.py does), every
passage is scored densely, the top 5000 dense passages seed the walk as in the server (retrieval.DENSE_POOL),
and each question is ranked by GRAPH and HYBRID once per PPR variant: ``power`` (the reference) and ``push`` at
each ``--epsilons``. What is compared is push against power on one graph, so the embedders only need to be the
same for both: ``--dense-embedder minilm`` (cached under $MEMSERVE_EVAL_CACHE, default /tmp; the graph_tuning
cache is reused for MuSiQue) or ``hash``; the graph's phrases and facts use ``--graph-embedder`` (default hash:64,
which needs no model time; minilm for absolute figures comparable with the README's).

    nice -n 10 python evals/ppr_recall.py --datasets musique,2wiki,hotpotqa --json evals/results/ppr_recall.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.datasets import (
    MULTIHOP_DATASETS,
    SHARED_DATA,
    load_json,
    parse_corpus,
    parse_openie,
    parse_questions,
)
from evals.graph_tuning import CachedEmbedder

DENSE_POOL = 5000


def _extractions(dataset: str, texts: list[str], ids: list[str]):
    from memserve.domain.extraction import ExtractionResult, Triple
    from memserve.extract import OfflineExtractor

    openie_file = MULTIHOP_DATASETS[dataset][2]
    if openie_file:
        cached, _ = parse_openie(load_json(SHARED_DATA / openie_file))
        return {seq: ExtractionResult(c.entities, tuple(Triple(*t) for t in c.triples))
                for seq, pid in enumerate(ids) if (c := cached.get(pid)) is not None}
    results = OfflineExtractor().extract(texts)
    return dict(enumerate(results))


def run_dataset(dataset: str, epsilons: list[float], limit: int | None, dense_embedder: str,
                graph_embedder: str, methods: tuple[str, ...] = ("exact", "power", "push"),
                pools: tuple[int, ...] = (DENSE_POOL,), floor_rank: int | None = None) -> dict:
    from memserve.engine.graph_retrieval import (
        GraphParams,
        HybridParams,
        ScoreArrays,
        graph_retrieve,
        hybrid_retrieve,
    )
    from memserve.extract import OfflineExtractor, normalize_phrase
    from memserve.graph import KnowledgeGraph
    from memserve.graph.ppr import PPRMatrix

    qfile, cfile, _ = MULTIHOP_DATASETS[dataset]
    corpus = parse_corpus(load_json(SHARED_DATA / cfile))
    questions = parse_questions(load_json(SHARED_DATA / qfile), corpus)[:limit]
    texts = [p.text for p in corpus.passages]
    ids = [p.id for p in corpus.passages]
    seq_of = {pid: seq for seq, pid in enumerate(ids)}
    from memserve.embed import make_embedder

    def embedder_for(name: str):
        if name == "minilm":
            return CachedEmbedder("graph_tuning" if dataset == "musique" else f"ppr_recall_{dataset}").embed
        return make_embedder(name).embed

    dense_embed, graph_embed = embedder_for(dense_embedder), embedder_for(graph_embedder)
    pvecs = dense_embed(texts)
    qvecs = dense_embed([q.question for q in questions])
    gvecs = graph_embed([q.question for q in questions])  # the query vector that searches facts
    t = time.perf_counter()
    kg = KnowledgeGraph(gvecs.shape[1])
    kg.add_passages(sorted(_extractions(dataset, texts, ids).items()), graph_embed)
    kg.matrix()
    build_s = time.perf_counter() - t
    print(f"{dataset}: {len(texts)} passages, {len(kg.phrases)} phrases, {len(kg.facts)} facts, "
          f"{kg.edge_count} edges, built in {build_s:.0f}s", flush=True)
    extractor = OfflineExtractor()
    qphrases = [tuple(normalize_phrase(e) for e in extractor.extract_one(q.question).entities) for q in questions]
    golds = [[frozenset(seq_of[i] for i in g) for g in q.gold] for q in questions]

    # "exact": power iteration in float64 to tol 1e-10 on a float64 copy of the matrix, to tell whether a gap
    # between push and "power" (the server's float32 power iteration, stopped at an L1 change of 1e-6) comes
    # from push's epsilon or from the float32 reference itself.
    variants = [(m, None) for m in ("exact", "power") if m in methods]
    variants += [("push", e) for e in epsilons] if "push" in methods else []
    matrix32 = kg.matrix()
    matrix64 = dataclasses.replace(matrix32, ppr=PPRMatrix.from_adjacency(matrix32.ppr.adjacency))
    rows: dict[str, dict] = {}

    def score(name: str, ranked_per_q: list[list[int]], ppr_ms: list[float]) -> None:
        out = {}
        for k in (2, 5, 10):
            out[f"R@{k}"] = 100 * float(np.mean([
                np.mean([bool(g & set(r[:k])) for g in gold]) for r, gold in zip(ranked_per_q, golds, strict=True)]))
        if ppr_ms:
            out["ppr_ms_p50"] = float(np.median(ppr_ms))
            out["ppr_ms_p95"] = float(np.percentile(ppr_ms, 95))
        rows[name] = out
        print(f"  {name:<22} R@2 {out['R@2']:5.1f}  R@5 {out['R@5']:5.1f}  R@10 {out['R@10']:5.1f}"
              + (f"  ppr p50 {out['ppr_ms_p50']:.2f} ms" if ppr_ms else ""), flush=True)

    dense_ranked = []
    tops = []
    for qv in qvecs:
        d = pvecs @ qv
        top = np.argsort(-d, kind="stable")[:max(*pools, floor_rank or 0)]
        dense_ranked.append(top[:10].tolist())
        tops.append((top, d[top]))
    score("dense", dense_ranked, [])
    for (mode, fn), (method, eps), pool_size in itertools.product(
            (("graph", graph_retrieve), ("hybrid", hybrid_retrieve)), variants, pools):
        # The dense pool: the top ``pool_size`` passages seed the walk (the server's dense_pool setting).
        # With --floor-rank, a shorter pool keeps the score at that rank as its prior's zero (the server's HNSW
        # pool: dense_pool_hnsw candidates, normalised down to the score at rank dense_pool).
        pool_of = [ScoreArrays(top[:pool_size], scores[:pool_size]) for top, scores in tops]
        floors = [float(scores[min(floor_rank, len(scores)) - 1]) if floor_rank and pool_size < floor_rank else None
                  for _, scores in tops]
        kg.install_matrix(matrix64 if method == "exact" else matrix32)
        ranked, ms = [], []
        for qv, pool, phrases, floor in zip(gvecs, pool_of, qphrases, floors, strict=True):
            gp = GraphParams(top_k=10, ppr_method="power" if method == "exact" else method,
                             ppr_epsilon=eps or 1e-5, dense_floor=floor)
            params = gp if mode == "graph" else HybridParams(graph=gp)
            result = fn(qv, kg, pool, params, query_phrases=phrases)  # type: ignore[arg-type]
            ranked.append([h.seq for h in result.hits])
            if "ppr" in result.timings_ms:
                ms.append(result.timings_ms["ppr"])
        floored = f" (zero at {floor_rank})" if floor_rank and pool_size < floor_rank else ""
        score(f"{mode}/{method}" + (f"@{eps:g}" if eps else "")
              + (f" pool {pool_size}{floored}" if len(pools) > 1 else ""),
              ranked, ms)
    return {"passages": len(texts), "phrases": len(kg.phrases), "facts": len(kg.facts), "edges": kg.edge_count,
            "questions": len(questions), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="musique,2wiki,hotpotqa")
    parser.add_argument("--epsilons", default="1e-4,3e-5,1e-5,1e-6")
    parser.add_argument("--limit", type=int, help="first N questions (the corpus is always indexed whole)")
    parser.add_argument("--dense-embedder", default="minilm", help="minilm (cached) or an embedder spec")
    parser.add_argument("--graph-embedder", default="hash:64", help="minilm (cached) or an embedder spec")
    parser.add_argument("--methods", default="exact,power,push", help="PPR variants: exact, power, push")
    parser.add_argument("--pools", default=str(DENSE_POOL),
                        help="dense pool sizes: the top-N dense passages that seed the walk (default %(default)s)")
    parser.add_argument("--floor-rank", type=int,
                        help="pools shorter than this normalise their prior down to the score at this rank, as the "
                             "server's HNSW pool does (dense_pool); default: each pool's own lowest score")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    eps = [float(e) for e in args.epsilons.split(",")]
    pools = tuple(int(p) for p in args.pools.split(","))
    results = {name: run_dataset(name, eps, args.limit, args.dense_embedder, args.graph_embedder,
                                 tuple(args.methods.split(",")), pools, args.floor_rank)
               for name in args.datasets.split(",")}
    results["embedders"] = {"dense": args.dense_embedder, "graph": args.graph_embedder}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
