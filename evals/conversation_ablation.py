"""LoCoMo ablation of the conversation signals, in process, over cached embeddings.

    python evals/conversation_ablation.py --json evals/results/locomo_ablation.json --plot evals/results/locomo_ablation.png
    python evals/conversation_ablation.py --embedding-model hash:64      # no model: a quick smoke run

Ranks every question of every LoCoMo conversation exactly as the server's HYBRID mode does — the same tokenizer,
BM25 index, fusion, speaker and time hints (memserve.lexical, engine/fusion.py, engine/query_hints.py,
engine/time_hints.py) — over the same embedder's vectors, which are cached on disk (``--cache``) so that re-runs
cost no encoding. Reports, per configuration (dense, +lexical, +context, +speaker, +time, each alone and all
together), evidence R@5/R@10/R@25 overall, per category and per conversation, and then leave-one-conversation-out:
each constant (lexical weight, BM25 b, speaker and time lifts) is chosen on two conversations and scored on the
third. End-to-end figures and latency through the real server: evals/conversation_recall.py.

Each question is asked "the day after the conversation" (``now`` = last session date + 1 day), which is what
relative expressions ("last year") resolve against.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from evals import _common as common
from evals import metrics
from evals.datasets import (
    LOCOMO_DEFAULT,
    SHARED_DATA,
    Conversation,
    load_json,
    parse_locomo,
)
from memserve.config import Settings
from memserve.embed import make_embedder
from memserve.engine import fusion
from memserve.engine.query_hints import named_speaker
from memserve.engine.time_hints import time_window
from memserve.lexical import InvertedBM25, LexicalDoc, tokenize

KS = (5, 10, 25)
# The server's defaults (chosen by the leave-one-conversation-out search below).
DEFAULTS = {name: float(getattr(Settings(), name)) for name in ("lexical_weight", "lexical_b", "speaker_boost",
                                                                 "time_boost")}
GRID = {"lexical_weight": (0.5, 0.8, 1.2), "lexical_b": (0.5, 0.75), "speaker_boost": (0.0, 0.05, 0.1, 0.2),
        "time_boost": (0.0, 0.1, 0.2, 0.4)}
ABLATION: dict[str, dict[str, Any]] = {
    "dense": {"lexical": False, "context": False, "speaker": False, "time": False},
    "+lexical": {"lexical": True, "context": False, "speaker": False, "time": False},
    "+speaker": {"lexical": False, "context": False, "speaker": True, "time": False},
    "+time": {"lexical": False, "context": False, "speaker": False, "time": True},
    "+lexical+context": {"lexical": True, "context": True, "speaker": False, "time": False},
    "all (default)": {"lexical": True, "context": True, "speaker": True, "time": True},
}


class EmbeddingCache:
    """text -> vector for one embedder, in one .npz file; only texts not seen before are encoded."""

    def __init__(self, folder: Path, model: str) -> None:
        self.path = folder / f"{hashlib.sha1(model.encode()).hexdigest()[:12]}.npz"
        self.model = model
        self._vectors: dict[str, np.ndarray] = {}
        if self.path.is_file():
            data = np.load(self.path, allow_pickle=False)
            self._vectors = dict(zip(data["texts"].tolist(), data["vectors"]))

    def get(self, texts: list[str], quiet: bool) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            embedder = make_embedder(self.model, device="cpu")
            with common.progress(len(missing), "embed", "text", quiet) as bar:
                for start in range(0, len(missing), 64):
                    chunk = missing[start:start + 64]
                    for text, vec in zip(chunk, embedder.embed(chunk)):
                        self._vectors[text] = vec
                    bar.update(len(chunk))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(self._vectors)
            np.savez(self.path, texts=np.array(keys), vectors=np.stack([self._vectors[k] for k in keys]))
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32)


def prepare(conv: Conversation, cache: EmbeddingCache, quiet: bool) -> dict[str, Any]:
    turns = conv.turns
    docs = cache.get([t.text for t in turns], quiet)
    queries = cache.get([q.question for q in conv.questions], quiet)
    last = max((t.event_time for t in turns if t.event_time), default=None)
    now = (last or datetime(2024, 1, 1).astimezone()) + timedelta(days=1)
    speakers = sorted({t.speaker for t in turns if t.speaker})
    return {"conv": conv, "docs": docs, "queries": queries, "now": now, "speakers": speakers,
            "speaker_of": np.array([t.speaker.casefold() for t in turns]),
            "times": [t.event_time for t in turns], "lexical": {}}


def lexical_scores(p: dict[str, Any], b: float, context: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    key = (b, context)
    if key not in p["lexical"]:
        conv = p["conv"]
        index = InvertedBM25(k1=1.2, b=b, with_previous=context)
        index.add(LexicalDoc(i, t.session, tuple(tokenize(t.text))) for i, t in enumerate(conv.turns))
        p["lexical"][key] = [index.search(tokenize(q.question), len(conv.turns)) for q in conv.questions]
    return p["lexical"][key]


def rank_all(p: dict[str, Any], feats: dict[str, bool], consts: dict[str, float]) -> list[list[str]]:
    conv = p["conv"]
    ids = [t.dia_id for t in conv.turns]
    seqs = np.arange(len(ids), dtype=np.int64)
    dense = p["queries"] @ p["docs"].T
    lex = lexical_scores(p, consts["lexical_b"], feats["context"]) if feats["lexical"] else None
    out = []
    for qi, q in enumerate(conv.questions):
        channels = [(seqs, dense[qi].astype(np.float64), 1.0)]
        if lex is not None:
            channels.append((*lex[qi], consts["lexical_weight"]))
        lifts: list[tuple[set[int], float]] = []
        if feats["speaker"]:
            name = named_speaker(q.question, p["speakers"])
            if name:
                lifts.append((set(np.flatnonzero(p["speaker_of"] == name.casefold()).tolist()),
                              consts["speaker_boost"]))
        if feats["time"]:
            window = time_window(q.question, p["now"])
            if window:
                lifts.append(({i for i, t in enumerate(p["times"]) if t and window[0] <= t < window[1]},
                              consts["time_boost"]))
        out.append([ids[s] for s, _ in fusion.ranked(fusion.hybrid(channels, lifts), max(KS))])
    return out


def score(p: dict[str, Any], rankings: list[list[str]]) -> list[tuple[str, dict[str, float]]]:
    rows = []
    for q, ranking in zip(p["conv"].questions, rankings):
        gold = [frozenset({e}) for e in q.evidence]
        rows.append((str(q.category), {f"recall@{k}": metrics.recall_at_k(ranking, gold, k) for k in KS}))
    return rows


def summarise(per_conv: dict[str, list[tuple[str, dict[str, float]]]]) -> dict[str, Any]:
    pooled = [r for rows in per_conv.values() for r in rows]
    overall = metrics.by_key_mean(("all", s) for _, s in pooled)["all"]
    return {**{k: v for k, v in overall.items() if k != "n"}, "by_category": metrics.by_key_mean(pooled),
            "by_conversation": {c: metrics.by_key_mean(("all", s) for _, s in rows)["all"]
                                for c, rows in per_conv.items()}}


def loco(prepared: list[dict[str, Any]]) -> dict[str, Any]:
    """Choose the constants on two conversations by R@5 + R@10, score them on the held-out third."""
    feats = ABLATION["all (default)"]
    names = list(GRID)
    combos = [dict(zip(names, values)) for values in itertools.product(*(GRID[n] for n in names))]
    table = {i: {p["conv"].sample_id: score(p, rank_all(p, feats, c)) for p in prepared} for i, c in enumerate(combos)}

    def objective(i: int, convs: list[str]) -> float:
        rows = [s for c in convs for _, s in table[i][c]]
        return float(np.mean([s["recall@5"] + s["recall@10"] for s in rows]))

    ids = [p["conv"].sample_id for p in prepared]
    held_out: dict[str, Any] = {}
    pooled: dict[str, list] = {}
    for held in ids:
        train = [c for c in ids if c != held]
        best = max(range(len(combos)), key=lambda i: (objective(i, train), -i))
        held_out[held] = {"constants": combos[best], **summarise({held: table[best][held]})}
        pooled[held] = table[best][held]
    all_ids = max(range(len(combos)), key=lambda i: (objective(i, ids), -i))
    return {"held_out": held_out, "pooled_held_out": summarise(pooled), "best_on_all": combos[all_ids]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    conversations = parse_locomo(load_json(args.data), str(args.data))
    cache = EmbeddingCache(args.cache, args.embedding_model)
    prepared = [prepare(c, cache, args.quiet) for c in conversations if c.questions]
    configs: dict[str, Any] = {}
    for name, feats in ABLATION.items():
        t0 = time.perf_counter()
        per_conv = {p["conv"].sample_id: score(p, rank_all(p, feats, DEFAULTS)) for p in prepared}
        n = sum(len(p["conv"].questions) for p in prepared)
        configs[name] = {**summarise(per_conv), "features": feats,
                         "rank_ms_per_query": 1000 * (time.perf_counter() - t0) / n}
    report = {"dataset": "locomo", "data": str(args.data), "embedding_model": args.embedding_model,
              "n_questions": sum(len(p["conv"].questions) for p in prepared), "constants": DEFAULTS,
              "configs": configs, **common.provenance()}
    if not args.no_loco and len(prepared) >= 2:  # one conversation leaves nothing to choose constants on
        report["loco"] = loco(prepared)
    return report


def report_table(report: dict[str, Any]) -> str:
    cats = ["1", "2", "3", "4"]
    names = {"1": "multi-hop", "2": "temporal", "3": "open-domain", "4": "single-hop"}
    convs = sorted(next(iter(report["configs"].values()))["by_conversation"])
    header = ["config", "R@5", "R@10", "R@25", *[f"R@10 {names[c]}" for c in cats], *[f"{c} R@5/R@10" for c in convs]]
    rows = []
    for name, m in report["configs"].items():
        rows.append([name, common.pct(m["recall@5"]), common.pct(m["recall@10"]), common.pct(m["recall@25"]),
                     *[common.pct(m["by_category"].get(c, {}).get("recall@10")) for c in cats],
                     *[f"{common.pct(m['by_conversation'][c]['recall@5'])}/"
                       f"{common.pct(m['by_conversation'][c]['recall@10'])}" for c in convs]])
    out = (f"**LoCoMo ablation** ({report['n_questions']} questions, embedder {report['embedding_model']}, "
           f"constants {report['constants']}); evidence recall in %\n\n" + common.markdown_table(header, rows))
    if "loco" in report:
        lo = report["loco"]
        lines = [f"- held out {c}: R@5 {common.pct(h['recall@5'])}, R@10 {common.pct(h['recall@10'])} with "
                 f"{h['constants']}" for c, h in lo["held_out"].items()]
        pooled = lo["pooled_held_out"]
        out += ("\n\nLeave-one-conversation-out (constants chosen on the other two):\n" + "\n".join(lines) +
                f"\n- pooled held-out: R@5 {common.pct(pooled['recall@5'])}, R@10 {common.pct(pooled['recall@10'])}"
                f"; per category R@10 " + ", ".join(f"{names[c]} {common.pct(pooled['by_category'][c]['recall@10'])}"
                                                    for c in cats if c in pooled["by_category"]) +
                f"\n- best on all three: {lo['best_on_all']}")
    return out


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["configs"])
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, k in enumerate(KS):
        ax.bar(x + (i - 1) * 0.27, [100 * report["configs"][n][f"recall@{k}"] for n in names], 0.27, label=f"R@{k}")
    ax.set_xticks(x, names, rotation=15)
    ax.set_ylabel("evidence recall (%)")
    ax.set_title(f"LoCoMo dev, {report['n_questions']} questions: conversation signals over dense")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conversation_ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA / LOCOMO_DEFAULT)
    parser.add_argument("--embedding-model", default="bundled:all-MiniLM-L6-v2")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "memserve-evals",
                        help="folder of the embedding cache (default ~/.cache/memserve-evals)")
    parser.add_argument("--no-loco", action="store_true", help="skip the leave-one-conversation-out search")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"{args.data} not found")
    report = run(args)
    print(report_table(report))
    if args.json:
        common.write_json(args.json, report)
    if args.plot:
        plot(report, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
