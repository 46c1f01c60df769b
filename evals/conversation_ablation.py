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
from memserve.engine.summary import ExtractiveSummariser, SummaryState, fold
from memserve.engine.time_hints import time_window
from memserve.lexical import InvertedBM25, LexicalDoc, tokenize
from memserve.vector.faiss_index import FaissIndex

KS = (5, 10, 25)
# The server's defaults (chosen by the leave-one-conversation-out search below).
DEFAULTS = {name: float(getattr(Settings(), name)) for name in ("lexical_weight", "lexical_b", "speaker_boost",
                                                                 "time_boost")}
GRID = {"lexical_weight": (0.5, 0.8, 1.2), "lexical_b": (0.5, 0.75), "speaker_boost": (0.0, 0.05, 0.1, 0.2),
        "time_boost": (0.0, 0.1, 0.2, 0.4)}
_OFF = {"lexical": False, "context": False, "speaker": False, "time": False, "summaries": False}
_ALL = {"lexical": True, "context": True, "speaker": True, "time": True, "summaries": False}
ABLATION: dict[str, dict[str, Any]] = {
    "dense": _OFF,
    "+lexical": {**_OFF, "lexical": True},
    "+speaker": {**_OFF, "speaker": True},
    "+time": {**_OFF, "time": True},
    "+lexical+context": {**_OFF, "lexical": True, "context": True},
    "+summaries": {**_OFF, "summaries": True},
    "all (default)": _ALL,
    "all +summaries": {**_ALL, "summaries": True},
    # The one setting where summaries helped held-out recall a little (see loco_summaries): 10-turn segments,
    # matched by cosine. Not the server's segment size, and the server does not embed summaries.
    "all +summaries (10-turn segments, cosine)": {**_ALL, "summaries": True, "consts": {
        "summary_segment_size": 10, "summary_scorer": "dense", "summary_weight": 0.3}},
}
# The +summaries channel: HEMA segment summaries (the extractive summariser, the server's segment size) scored
# against the query by BM25 or by cosine; each turn a summary covers gets that summary's score (the best one
# when several cover it), and the channel is fused like the others. Its weight is chosen by
# leave-one-conversation-out (SUMMARY_GRID); summary_segment_size is the server's setting.
SUMMARY_DEFAULTS: dict[str, Any] = {"summary_weight": 0.05, "summary_scorer": "bm25",  # best on all three
                                    "summary_segment_size": int(Settings().summary_segment_size)}
SUMMARY_GRID: dict[str, tuple[Any, ...]] = {"summary_weight": (0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
                                            "summary_scorer": ("bm25", "dense")}
SEGMENT_SIZES = (10, 20, 50, 100)  # sensitivity to the segment size (a HEMA setting; not chosen here)
TIMING_REPEATS = 5


class EmbeddingCache:
    """text -> vector for one embedder, in one .npz file; only texts not seen before are encoded."""

    def __init__(self, folder: Path, model: str) -> None:
        self.path = folder / f"{hashlib.sha1(model.encode()).hexdigest()[:12]}.npz"
        self.model = model
        self._vectors: dict[str, np.ndarray] = {}
        if self.path.is_file():
            data = np.load(self.path, allow_pickle=False)
            self._vectors = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))

    def get(self, texts: list[str], quiet: bool) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            embedder = make_embedder(self.model, device="cpu")
            with common.progress(len(missing), "embed", "text", quiet) as bar:
                for start in range(0, len(missing), 64):
                    chunk = missing[start:start + 64]
                    for text, vec in zip(chunk, embedder.embed(chunk), strict=True):
                        self._vectors[text] = vec
                    bar.update(len(chunk))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(self._vectors)
            np.savez(self.path, texts=np.array(keys), vectors=np.stack([self._vectors[k] for k in keys]))
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32)


def segment_summaries(conv: Conversation, segment_size: int, source: str = "hema") -> list[tuple[int, int, str]]:
    """HEMA's closed segments for this conversation, as the server folds them (engine/hema.py): one summary state
    per session and one for the namespace, the extractive summariser. Returns (first turn, last turn, text),
    turn indexes inclusive (episode seq = turn index + 1). ``source="own-turns"``: the same segments, each
    summarised from its own turns only (``combine``), not from snapshots of the rolling summary (an experiment:
    HEMA does not do this)."""
    summariser = ExtractiveSummariser()
    when = datetime(2024, 1, 1).astimezone()
    streams: dict[str, list[tuple[int, str]]] = {"": []}
    for i, t in enumerate(conv.turns):
        streams[""].append((i + 1, t.text))
        streams.setdefault(t.session, []).append((i + 1, t.text))
    out: list[tuple[int, int, str]] = []
    if source == "own-turns":
        for episodes in streams.values():
            for start in range(0, len(episodes) - segment_size + 1, segment_size):
                chunk = episodes[start:start + segment_size]
                out.append((chunk[0][0] - 1, chunk[-1][0] - 1, summariser.combine([text for _, text in chunk])))
        return out
    for session, episodes in streams.items():
        result = fold(SummaryState(conv.sample_id, session), episodes, summariser, now=when, segment_size=segment_size)
        out.extend((seg.first_seq - 1, seg.last_seq - 1, seg.text) for seg in result.closed_segments)
    return out


def prepare(conv: Conversation, cache: EmbeddingCache, quiet: bool, summary_source: str = "hema") -> dict[str, Any]:
    turns = conv.turns
    docs = cache.get([t.text for t in turns], quiet)
    queries = cache.get([q.question for q in conv.questions], quiet)
    last = max((t.event_time for t in turns if t.event_time), default=None)
    now = (last or datetime(2024, 1, 1).astimezone()) + timedelta(days=1)
    speakers = sorted({t.speaker for t in turns if t.speaker})
    seqs = np.arange(len(turns), dtype=np.int64)
    faiss_index = FaissIndex(docs.shape[1], use_gpu=False)  # the server's dense index (flat at this size)
    faiss_index.add(seqs, docs)
    dense = np.zeros((len(queries), len(turns)), np.float32)  # the grid's dense scores: the same FAISS searches
    for qi, qvec in enumerate(queries):
        hits = faiss_index.search(qvec, len(turns))[0]
        dense[qi, hits.ids] = hits.scores
    summaries = {}
    for size in sorted({*SEGMENT_SIZES, SUMMARY_DEFAULTS["summary_segment_size"]}):
        segs = segment_summaries(conv, size, summary_source)
        summaries[size] = {"segments": segs, **summary_indexes(segs, {"cache": cache, "docs": docs}, quiet)}
    return {"cache": cache, "conv": conv, "docs": docs, "queries": queries, "now": now, "speakers": speakers, "seqs": seqs,
            "faiss": faiss_index, "speaker_of": np.array([t.speaker.casefold() for t in turns]),
            "times": [t.event_time for t in turns], "bm25": {}, "lexical": {}, "dense": dense,
            "summaries": summaries, "summary_channel": {}}


def summary_indexes(segs: list[tuple[int, int, str]], p: dict[str, Any], quiet: bool) -> dict[str, Any]:
    """BM25 over the segment summaries' texts, and their vectors (cached like every other text)."""
    index = InvertedBM25(k1=1.2, b=0.5, with_previous=False)
    index.add(LexicalDoc(j, f"s{j}", tuple(tokenize(text))) for j, (_, _, text) in enumerate(segs))
    texts = [text for _, _, text in segs]
    vectors = p["cache"].get(texts, quiet) if texts else np.zeros((0, p["docs"].shape[1]), np.float32)
    return {"bm25": index, "vectors": vectors}


def bm25_index(p: dict[str, Any], b: float, context: bool) -> InvertedBM25:
    key = (b, context)
    if key not in p["bm25"]:
        index = InvertedBM25(k1=1.2, b=b, with_previous=context)
        index.add(LexicalDoc(i, t.session, tuple(tokenize(t.text))) for i, t in enumerate(p["conv"].turns))
        p["bm25"][key] = index
    return p["bm25"][key]


def lexical_scores(p: dict[str, Any], b: float, context: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    key = (b, context)
    if key not in p["lexical"]:
        conv = p["conv"]
        index = bm25_index(p, b, context)
        p["lexical"][key] = [index.search(tokenize(q.question), len(conv.turns)) for q in conv.questions]
    return p["lexical"][key]


def summary_channel(p: dict[str, Any], qi: int, consts: dict[str, Any], qvec: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(turn seqs, score): each turn covered by a matching segment summary scores its best summary's match."""
    s = p["summaries"][consts["summary_segment_size"]]
    segs = s["segments"]
    if not segs:
        return np.zeros(0, np.int64), np.zeros(0)
    if consts["summary_scorer"] == "bm25":
        ids, scores = s["bm25"].search(tokenize(p["conv"].questions[qi].question), len(segs))
    else:
        ids = np.arange(len(segs))
        scores = s["vectors"] @ (p["queries"][qi] if qvec is None else qvec)
    best: dict[int, float] = {}
    for j, value in zip(ids.tolist(), np.asarray(scores, np.float64).tolist(), strict=True):
        first, last, _ = segs[j]
        for seq in range(first, last + 1):
            if value > best.get(seq, -np.inf):
                best[seq] = value
    return np.fromiter(best, np.int64, len(best)), np.fromiter(best.values(), np.float64, len(best))


def rank_one(p: dict[str, Any], qi: int, feats: dict[str, bool], consts: dict[str, Any], live: bool) -> list[str]:
    """One question's ranking. ``live``: search the FAISS and BM25 indexes for this question now, as the server
    does (what the latency figures time); otherwise reuse scores computed once per conversation (the grid)."""
    conv = p["conv"]
    q = conv.questions[qi]
    if live:
        hits = p["faiss"].search(p["queries"][qi], len(conv.turns))[0]
        channels = [(hits.ids, hits.scores.astype(np.float64), 1.0)]
    else:
        channels = [(p["seqs"], p["dense"][qi].astype(np.float64), 1.0)]
    if feats["lexical"]:
        if live:
            lex = bm25_index(p, consts["lexical_b"], feats["context"]).search(tokenize(q.question), len(conv.turns))
        else:
            lex = lexical_scores(p, consts["lexical_b"], feats["context"])[qi]
        channels.append((*lex, consts["lexical_weight"]))
    if feats["summaries"] and consts["summary_weight"] > 0:
        if live:
            channels.append((*summary_channel(p, qi, consts), consts["summary_weight"]))
        else:
            key = (qi, consts["summary_scorer"], consts["summary_segment_size"])
            if key not in p["summary_channel"]:
                p["summary_channel"][key] = summary_channel(p, qi, consts)
            channels.append((*p["summary_channel"][key], consts["summary_weight"]))
    lifts: list[tuple[set[int], float]] = []
    if feats["speaker"]:
        name = named_speaker(q.question, p["speakers"])
        if name:
            lifts.append((set(np.flatnonzero(p["speaker_of"] == name.casefold()).tolist()), consts["speaker_boost"]))
    if feats["time"]:
        window = time_window(q.question, p["now"])
        if window:
            lifts.append(({i for i, t in enumerate(p["times"]) if t and window[0] <= t < window[1]},
                          consts["time_boost"]))
    ids = conv.turns
    return [ids[s].dia_id for s, _ in fusion.ranked(fusion.hybrid(channels, lifts), max(KS))]


def rank_all(p: dict[str, Any], feats: dict[str, bool], consts: dict[str, Any]) -> list[list[str]]:
    return [rank_one(p, qi, feats, consts, live=False) for qi in range(len(p["conv"].questions))]


def score(p: dict[str, Any], rankings: list[list[str]]) -> list[tuple[str, dict[str, float]]]:
    rows = []
    for q, ranking in zip(p["conv"].questions, rankings, strict=True):
        gold = [frozenset({e}) for e in q.evidence]
        rows.append((str(q.category), {f"recall@{k}": metrics.recall_at_k(ranking, gold, k) for k in KS}))
    return rows


def summarise(per_conv: dict[str, list[tuple[str, dict[str, float]]]]) -> dict[str, Any]:
    pooled = [r for rows in per_conv.values() for r in rows]
    overall = metrics.by_key_mean(("all", s) for _, s in pooled)["all"]
    return {**{k: v for k, v in overall.items() if k != "n"}, "by_category": metrics.by_key_mean(pooled),
            "by_conversation": {c: metrics.by_key_mean(("all", s) for _, s in rows)["all"]
                                for c, rows in per_conv.items()}}


def _best_combo(table: dict[int, dict[str, Any]], n_combos: int, convs: list[str]) -> int:
    """The combination with the highest mean R@5 + R@10 over ``convs`` (ties: the earlier, smaller one)."""

    def objective(i: int) -> float:
        rows = [s for c in convs for _, s in table[i][c]]
        return float(np.mean([s["recall@5"] + s["recall@10"] for s in rows]))

    return max(range(n_combos), key=lambda i: (objective(i), -i))


def loco(prepared: list[dict[str, Any]]) -> dict[str, Any]:
    """Choose the constants on two conversations by R@5 + R@10, score them on the held-out third."""
    feats = ABLATION["all (default)"]
    names = list(GRID)
    combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*(GRID[n] for n in names))]
    table = {i: {p["conv"].sample_id: score(p, rank_all(p, feats, c)) for p in prepared} for i, c in enumerate(combos)}
    ids = [p["conv"].sample_id for p in prepared]
    held_out: dict[str, Any] = {}
    pooled: dict[str, list] = {}
    for held in ids:
        train = [c for c in ids if c != held]
        best = _best_combo(table, len(combos), train)
        held_out[held] = {"constants": combos[best], **summarise({held: table[best][held]})}
        pooled[held] = table[best][held]
    all_ids = _best_combo(table, len(combos), ids)
    return {"held_out": held_out, "pooled_held_out": summarise(pooled), "best_on_all": combos[all_ids]}


def loco_summaries(prepared: list[dict[str, Any]], segment_size: int) -> dict[str, Any]:
    """The summaries channel's weight and scorer, chosen on two conversations (R@5 + R@10 of "all +summaries",
    the other constants at their defaults), scored on the third next to "all (default)" on the same third."""
    feats = ABLATION["all +summaries"]
    names = list(SUMMARY_GRID)
    combos = [{**DEFAULTS, **SUMMARY_DEFAULTS, **dict(zip(names, v, strict=True)), "summary_segment_size": segment_size}
              for v in itertools.product(*(SUMMARY_GRID[n] for n in names))]
    table = {i: {p["conv"].sample_id: score(p, rank_all(p, feats, c)) for p in prepared} for i, c in enumerate(combos)}
    base = {p["conv"].sample_id: score(p, rank_all(p, ABLATION["all (default)"], DEFAULTS)) for p in prepared}
    ids = [p["conv"].sample_id for p in prepared]
    held_out: dict[str, Any] = {}
    pooled: dict[str, list] = {}
    for held in ids:
        train = [c for c in ids if c != held]
        best = _best_combo(table, len(combos), train)  # ties: the smaller weight
        chosen = {n: combos[best][n] for n in names}
        held_out[held] = {"constants": chosen, **summarise({held: table[best][held]}),
                          "without": {k: v for k, v in summarise({held: base[held]}).items() if k.startswith("recall")}}
        pooled[held] = table[best][held]
    best_all = _best_combo(table, len(combos), ids)
    pooled_base = summarise(base)
    return {"segment_size": segment_size, "n_segments": {p["conv"].sample_id: len(p["summaries"][segment_size]["segments"])
                                                         for p in prepared},
            "held_out": held_out, "pooled_held_out": summarise(pooled),
            "pooled_without": {k: v for k, v in pooled_base.items() if k.startswith("recall")},
            "best_on_all": {n: combos[best_all][n] for n in names}}


def time_configs(prepared: list[dict[str, Any]], consts: dict[str, Any], quiet: bool
                 ) -> tuple[dict[str, list[float]], dict[str, dict[str, list]]]:
    """Rank every question live under every configuration, interleaved (question by question, the order of the
    configurations rotated per repeat) so that load on a shared machine falls on all of them alike. Returns each
    configuration's per-question latency (the fastest of TIMING_REPEATS, ms: the work, with most of the other
    processes' interference taken out) and its scored rankings."""
    names = list(ABLATION)
    row_consts = {n: {**consts, **ABLATION[n].get("consts", {})} for n in names}
    ms: dict[str, list[float]] = {n: [] for n in names}
    rows: dict[str, dict[str, list]] = {n: {} for n in names}
    total = sum(len(p["conv"].questions) for p in prepared)
    with common.progress(total, "rank", "question", quiet) as bar:
        for p in prepared:
            rankings: dict[str, list[list[str]]] = {n: [] for n in names}
            for qi in range(len(p["conv"].questions)):
                samples: dict[str, list[float]] = {n: [] for n in names}
                for rep in range(TIMING_REPEATS):
                    for n in names[rep % len(names):] + names[:rep % len(names)]:
                        t0 = time.perf_counter()
                        ranking = rank_one(p, qi, ABLATION[n], row_consts[n], live=True)
                        samples[n].append(1000 * (time.perf_counter() - t0))
                        if rep == 0:
                            rankings[n].append(ranking)
                for n in names:
                    ms[n].append(min(samples[n]))
                bar.update(1)
            for n in names:
                rows[n][p["conv"].sample_id] = score(p, rankings[n])
    return ms, rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    conversations = parse_locomo(load_json(args.data), str(args.data))
    cache = EmbeddingCache(args.cache, args.embedding_model)
    prepared = [prepare(c, cache, args.quiet, args.summary_source) for c in conversations if c.questions]
    consts = {**DEFAULTS, **SUMMARY_DEFAULTS}
    ms, rows = time_configs(prepared, consts, args.quiet)
    floor = float(np.percentile(ms["dense"], 50))
    configs: dict[str, Any] = {}
    for name, feats in ABLATION.items():
        p50, p95 = (float(np.percentile(ms[name], q)) for q in (50, 95))
        configs[name] = {**summarise(rows[name]), "features": feats, "p50_ms": p50, "p95_ms": p95,
                         "p50_vs_dense": p50 / floor, "p95_vs_dense": p95 / float(np.percentile(ms["dense"], 95))}
    report = {"dataset": "locomo", "data": str(args.data), "embedding_model": args.embedding_model,
              "summary_source": args.summary_source,
              "n_questions": sum(len(p["conv"].questions) for p in prepared), "constants": consts,
              "latency": ("in process, per question: the server's FAISS flat search, tokenizer, BM25 index, hints, "
                          "summary scoring and fusion over pre-computed query vectors (query encoding excluded; "
                          f"fastest of {TIMING_REPEATS} interleaved repeats; shared machine, so read the ratios to "
                          "dense, measured in the same run)"),
              "configs": configs, **common.provenance()}
    if not args.no_loco and len(prepared) >= 2:  # one conversation leaves nothing to choose constants on
        report["loco"] = loco(prepared)
        report["loco_summaries"] = {str(size): loco_summaries(prepared, size) for size in SEGMENT_SIZES}
    return report


def report_table(report: dict[str, Any]) -> str:
    cats = ["1", "2", "3", "4"]
    names = {"1": "multi-hop", "2": "temporal", "3": "open-domain", "4": "single-hop"}
    convs = sorted(next(iter(report["configs"].values()))["by_conversation"])
    header = ["config", "R@5", "R@10", "R@25", "p50 ms", "p95 ms", *[f"R@10 {names[c]}" for c in cats],
              *[f"{c} R@5/R@10" for c in convs]]
    rows = []
    for name, m in report["configs"].items():
        rows.append([name, common.pct(m["recall@5"]), common.pct(m["recall@10"]), common.pct(m["recall@25"]),
                     f"{m['p50_ms']:.2f} ({m['p50_vs_dense']:.2f}×)", f"{m['p95_ms']:.2f} ({m['p95_vs_dense']:.2f}×)",
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
    for size, lo in report.get("loco_summaries", {}).items():
        lines = [f"  - held out {c}: R@5/R@10 {common.pct(h['recall@5'])}/{common.pct(h['recall@10'])} with "
                 f"{h['constants']} (all (default): {common.pct(h['without']['recall@5'])}/"
                 f"{common.pct(h['without']['recall@10'])})" for c, h in lo["held_out"].items()]
        pooled, without = lo["pooled_held_out"], lo["pooled_without"]
        out += (f"\n\nSummaries channel, segment size {size} (segments per conversation {lo['n_segments']}), "
                "weight and scorer chosen on the other two:\n" + "\n".join(lines) +
                f"\n  - pooled held-out R@5/R@10 {common.pct(pooled['recall@5'])}/{common.pct(pooled['recall@10'])}"
                f" against {common.pct(without['recall@5'])}/{common.pct(without['recall@10'])} without; "
                f"best on all three {lo['best_on_all']}")
    out += f"\n\nLatency: {report['latency']}."
    return out


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["configs"])
    x = np.arange(len(names))
    fig, (ax, lat) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for i, k in enumerate(KS):
        ax.bar(x + (i - 1) * 0.27, [100 * report["configs"][n][f"recall@{k}"] for n in names], 0.27, label=f"R@{k}")
    ax.set_xticks(x, names, rotation=25, ha="right")
    ax.set_ylabel("evidence recall (%)")
    ax.set_title(f"LoCoMo dev, {report['n_questions']} questions: signals over dense")
    ax.legend()
    for i, (key, label) in enumerate((("p50_ms", "p50"), ("p95_ms", "p95"))):
        lat.bar(x + (i - 0.5) * 0.4, [report["configs"][n][key] for n in names], 0.4, label=label)
    lat.set_xticks(x, names, rotation=25, ha="right")
    lat.set_ylabel("ms per question (in process)")
    lat.set_title("ranking latency, shared machine (query encoding excluded)")
    lat.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conversation_ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA / LOCOMO_DEFAULT)
    parser.add_argument("--embedding-model", default="bundled:all-MiniLM-L6-v2")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "memserve-evals",
                        help="folder of the embedding cache (default ~/.cache/memserve-evals)")
    parser.add_argument("--summary-source", choices=("hema", "own-turns"), default="hema",
                        help="segment summaries as HEMA folds them (default), or each from its own turns only")
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
