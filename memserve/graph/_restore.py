"""Fill an empty ``KnowledgeGraph`` from persisted columns with array operations (the start-up path).

Grouping, the fact-pair weights and the per-phrase synonymy cap are sorts and reductions over the whole column;
what remains per item is building the Python containers the graph reads (dicts, sets), no per-row logic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..domain.graph import Fact, GraphColumns
from .kg import _EMPTY, _groups, _i64, _unique_pairs
from .lazy_map import LazyMap
from .text_column import TextColumn

if TYPE_CHECKING:
    from .kg import KnowledgeGraph


def _dedupe(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (a, b) rows, sorted by a then b."""
    order, first = _unique_pairs(a, b)
    return a[order][first], b[order][first]


def _sets(keys: np.ndarray, values: np.ndarray, all_keys: np.ndarray) -> LazyMap[set[int]]:
    """key → set of values, for rows sorted by key; every key of ``all_keys`` is present (maybe empty)."""
    ids = np.unique(all_keys)
    lo, hi = np.searchsorted(keys, ids, "left"), np.searchsorted(keys, ids, "right")
    return LazyMap(ids, lambda i: set(values[lo[i]:hi[i]].tolist()))


def _arrays(keys: np.ndarray, values: np.ndarray, all_keys: np.ndarray) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = dict.fromkeys(all_keys.tolist(), _EMPTY)
    uniq, starts, _ = _groups(keys)
    if len(uniq):
        out.update(zip(uniq.tolist(), np.split(values, starts[1:]), strict=True))
    return out


def fill(kg: KnowledgeGraph, c: GraphColumns) -> None:
    phrase_ids, fact_ids = _i64(c.phrase_ids), _i64(c.fact_ids)
    pp_seq, pp_phrase = _dedupe(_i64(c.passage_phrase_seqs), _i64(c.passage_phrase_ids))
    pf_seq, pf_fact = _dedupe(_i64(c.passage_fact_seqs), _i64(c.passage_fact_ids))
    passages = np.unique(np.concatenate([_i64(c.passages), pp_seq, pf_seq]))

    # Texts live in one UTF-8 blob until read (~60 bytes of str object + ~100 of dict entry saved per phrase).
    phrase_texts = TextColumn(c.phrase_texts)
    by_pid = np.argsort(phrase_ids, kind="stable")
    kg._phrase_text = LazyMap(phrase_ids[by_pid], lambda i: phrase_texts[int(by_pid[i])])
    kg._passage_phrases = _arrays(pp_seq, pp_phrase, passages)  # values sorted: rows are sorted by (seq, id)
    kg._passage_facts = _arrays(pf_seq, pf_fact, passages)
    kg._passage_edges = len(pp_seq)
    by_phrase = np.lexsort((pp_seq, pp_phrase))
    kg._phrase_passages = _sets(pp_phrase[by_phrase], pp_seq[by_phrase], phrase_ids)
    by_fact = np.lexsort((pf_seq, pf_fact))
    kg._fact_passages = _sets(pf_fact[by_fact], pf_seq[by_fact], fact_ids)

    _, starts, ends = _groups(pp_phrase[by_phrase])
    counts, how_many = np.unique(ends - starts, return_counts=True)
    kg._count_hist = dict(zip(counts.tolist(), how_many.tolist(), strict=True))

    subjects, objects = _i64(c.fact_subjects), _i64(c.fact_objects)
    by_id = np.argsort(fact_ids, kind="stable")
    ids, subj, obj = fact_ids[by_id], subjects[by_id], objects[by_id]
    preds, texts = TextColumn(c.fact_predicates), TextColumn(c.fact_texts)
    kg._facts = LazyMap(ids, lambda i: Fact(int(ids[i]), int(subj[i]), preds[int(by_id[i])], int(obj[i]),
                                            texts[int(by_id[i])]))
    _fill_fact_pairs(kg, fact_ids, subjects, objects, pf_fact)
    _fill_synonyms(kg, _i64(c.synonym_a), _i64(c.synonym_b), np.asarray(c.synonym_similarity, np.float64))

    kg._phrase_index.add(phrase_ids, c.phrase_vectors)
    kg._fact_index.add(fact_ids, c.fact_vectors)


def _fill_fact_pairs(kg: KnowledgeGraph, fact_ids: np.ndarray, subjects: np.ndarray, objects: np.ndarray,
                     pf_fact: np.ndarray) -> None:
    order = np.argsort(fact_ids)
    support = np.zeros(len(fact_ids), np.float64)
    if len(fact_ids) and len(pf_fact):
        pos = np.clip(np.searchsorted(fact_ids[order], pf_fact), 0, len(fact_ids) - 1)
        known = fact_ids[order][pos] == pf_fact
        np.add.at(support, order[pos[known]], 1.0)
    keep = subjects != objects  # a self-loop carries no walk between phrases
    a, b = np.minimum(subjects, objects)[keep], np.maximum(subjects, objects)[keep]
    w = support[keep]
    order, first = _unique_pairs(a, b)
    starts = np.flatnonzero(first)
    refs = np.diff(np.append(starts, len(order)))
    weights = np.add.reduceat(w[order], starts) if len(starts) else np.zeros(0)
    kg._fact_pairs.load(a[order][starts], b[order][starts], weights, refs)


def _fill_synonyms(kg: KnowledgeGraph, a: np.ndarray, b: np.ndarray, sim: np.ndarray) -> None:
    # Candidates in both directions, grouped by phrase, most similar first (ties: smaller id), as the cap ranks.
    src, dst, s = np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([sim, sim])
    order = np.lexsort((dst, -s, src))
    src, dst, s = src[order], dst[order], s[order]
    uniq, lo, hi = _groups(src)
    kg._near = LazyMap(uniq, lambda i: dict(zip(dst[lo[i]:hi[i]].tolist(), s[lo[i]:hi[i]].tolist(), strict=True)))
    rank = np.arange(len(src)) - np.repeat(lo, hi - lo)
    kept = rank < kg.max_synonyms
    ka, kb = np.minimum(src, dst)[kept], np.maximum(src, dst)[kept]
    ks = s[kept]
    order, first = _unique_pairs(ka, kb)
    starts = np.flatnonzero(first)
    refs = np.diff(np.append(starts, len(order)))  # 2 when both ends keep the edge
    kg._synonyms.load(ka[order][starts], kb[order][starts], ks[order][starts], refs)
