"""Scoring, kept pure so the arithmetic can be checked by hand (tests/unit/test_eval_metrics.py).

Gold is a sequence of *groups*: each group is the set of passage ids that would satisfy one gold passage. MuSiQue
gold passages are one id each; HotpotQA / 2Wiki gold passages are titles, and a title may (in a user's corpus)
name several passages, any of which counts. A group with no ids (a gold passage missing from the corpus) can
never be found, so it lowers recall instead of silently vanishing.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

KS = (1, 2, 5, 10)

GoldGroups = Sequence[frozenset[str]]


def found_groups(ranked_ids: Sequence[str], gold: GoldGroups, k: int) -> int:
    """How many gold groups have at least one member among the first ``k`` ranked ids."""
    top = set(ranked_ids[:k])
    return sum(1 for group in gold if group & top)


def recall_at_k(ranked_ids: Sequence[str], gold: GoldGroups, k: int) -> float:
    """Fraction of gold passages in the top ``k`` (HippoRAG's Recall@k for one question)."""
    if not gold:
        raise ValueError("a question needs at least one gold passage to be scored")
    return found_groups(ranked_ids, gold, k) / len(gold)


def all_recall_at_k(ranked_ids: Sequence[str], gold: GoldGroups, k: int) -> float:
    """1.0 when every gold passage is in the top ``k``, else 0.0."""
    if not gold:
        raise ValueError("a question needs at least one gold passage to be scored")
    return 1.0 if found_groups(ranked_ids, gold, k) == len(gold) else 0.0


def percentile_ms(latencies_s: Sequence[float], q: float) -> float:
    """The q-th percentile (linear interpolation, numpy's default) in milliseconds; NaN when empty."""
    if not latencies_s:
        return float("nan")
    return float(np.percentile(np.asarray(latencies_s, dtype=np.float64), q) * 1000.0)


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def retrieval_summary(rankings: Sequence[Sequence[str]], golds: Sequence[GoldGroups],
                      ks: Sequence[int] = KS, all_k: int = 5) -> dict[str, float]:
    """Recall@k averaged over questions (macro), plus all-recall@``all_k``."""
    if len(rankings) != len(golds):
        raise ValueError(f"{len(rankings)} rankings for {len(golds)} questions")
    out = {f"recall@{k}": mean(recall_at_k(r, g, k) for r, g in zip(rankings, golds, strict=True)) for k in ks}
    out[f"all_recall@{all_k}"] = mean(all_recall_at_k(r, g, all_k) for r, g in zip(rankings, golds, strict=True))
    return out


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    return {"p50_ms": percentile_ms(latencies_s, 50), "p95_ms": percentile_ms(latencies_s, 95)}


# --- answers (SQuAD v1.1 evaluation script, which HippoRAG and LoCoMo use) -----------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: object) -> str:
    """Lower-case, drop punctuation and articles (a/an/the), collapse white space. Numbers become strings."""
    s = str(text).lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold_answers: Sequence[object]) -> float:
    pred = normalize_answer(prediction)
    return 1.0 if any(pred == normalize_answer(g) for g in gold_answers) else 0.0


def _f1(prediction: str, gold: object) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return 1.0 if pred_tokens == gold_tokens else 0.0
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, gold_answers: Sequence[object]) -> float:
    """SQuAD token F1, the best over the gold answers (aliases)."""
    return max((_f1(prediction, g) for g in gold_answers), default=0.0)


def qa_summary(predictions: Sequence[str], golds: Sequence[Sequence[object]]) -> dict[str, float]:
    return {"em": mean(exact_match(p, g) for p, g in zip(predictions, golds, strict=True)),
            "f1": mean(token_f1(p, g) for p, g in zip(predictions, golds, strict=True))}


def by_key_mean(rows: Iterable[tuple[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Group per-question score dicts by key and average each metric; adds ``n`` per group."""
    groups: dict[str, list[Mapping[str, float]]] = {}
    for key, scores in rows:
        groups.setdefault(key, []).append(scores)
    out: dict[str, dict[str, float]] = {}
    for key in sorted(groups, key=lambda k: (len(k), k)):
        items = groups[key]
        out[key] = {name: mean(s[name] for s in items) for name in items[0]}
        out[key]["n"] = len(items)
    return out
