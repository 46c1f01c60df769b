"""Contract for every LexicalIndex backend: the incremental inverted index agrees with the brute-force BM25 and
with a from-scratch BM25 written out here, through adds and removes."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest

from memserve.domain.ranking import top_k
from memserve.lexical import (
    BruteForceBM25,
    InvertedBM25,
    LexicalDoc,
    make_lexical_index,
    tokenize,
)

BACKENDS = ["inverted", "brute"]
WORDS = ["apple", "banana", "cherry", "dog", "eagle", "fern", "grape", "hill", "iris", "jazz", "kite", "lemon", "moon", "nest",
         "oak", "pear"]


def textbook_bm25(docs: dict[int, list[str]], query: list[str], k1: float, b: float) -> dict[int, float]:
    """BM25 straight from the formula over already-composed documents."""
    n = len(docs)
    avg = sum(len(d) for d in docs.values()) / n
    out = {}
    for seq, doc in docs.items():
        tf = Counter(doc)
        score = 0.0
        for term in set(query):
            df = sum(1 for d in docs.values() if term in d)
            if tf[term]:
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                score += idf * tf[term] * (k1 + 1) / (tf[term] + k1 * (1 - b + b * len(doc) / avg))
        if score > 0:
            out[seq] = score
    return out


def random_corpus(rng: random.Random, n: int) -> list[LexicalDoc]:
    return [LexicalDoc(seq, f"s{rng.randrange(3)}" if rng.random() < 0.8 else "",
                       tuple(rng.choice(WORDS) for _ in range(rng.randrange(1, 9)))) for seq in range(1, n + 1)]


def composed(docs: list[LexicalDoc], with_previous: bool) -> dict[int, list[str]]:
    out = {}
    for d in docs:
        before = [o for o in docs if d.session_id and o.session_id == d.session_id and o.seq < d.seq]
        prev = max(before, key=lambda o: o.seq).tokens if before and with_previous else ()
        out[d.seq] = list(d.tokens) + list(prev)
    return out


@pytest.mark.parametrize("with_previous", [True, False])
@pytest.mark.parametrize("seed", range(5))
def test_inverted_agrees_with_brute_force_and_the_formula_through_adds_and_removes(seed, with_previous):
    rng = random.Random(seed)
    corpus = random_corpus(rng, 40)
    inv, brute = InvertedBM25(with_previous=with_previous), BruteForceBM25(with_previous=with_previous)
    rng.shuffle(corpus)  # out-of-order adds: a later add may slot in before an indexed turn of its session
    for chunk in (corpus[:15], corpus[15:30], corpus[30:]):
        inv.add(chunk)
        brute.add(chunk)
    removed = set(rng.sample([d.seq for d in corpus], 12))
    inv.remove(removed)
    brute.remove(removed)
    live = sorted((d for d in corpus if d.seq not in removed), key=lambda d: d.seq)
    docs = composed(live, with_previous)
    for _ in range(20):
        query = [rng.choice(WORDS) for _ in range(rng.randrange(1, 4))]
        want = textbook_bm25(docs, query, 1.2, 0.5)
        for index in (inv, brute):
            seqs, scores = index.search(query, 100)
            assert dict(zip(seqs.tolist(), scores.tolist(), strict=True)) == pytest.approx(want, rel=1e-9)
            assert list(scores) == sorted(scores, reverse=True)
    assert len(inv) == len(brute) == len(live)


@pytest.mark.parametrize("spread", [1, 1000])  # dense seqs sum by offset, sparse ones through np.unique
@pytest.mark.parametrize("seed", range(4))
def test_cached_term_arrays_follow_every_add_and_remove(seed, spread):
    """With every term's arrays kept between queries (cache_min_df=1), queries interleaved with adds, re-adds and
    removes still agree with brute force exactly, ranks and ties at the cut included, with and without allowed."""
    rng = random.Random(seed)
    corpus = [LexicalDoc(d.seq * spread, d.session_id, d.tokens) for d in random_corpus(rng, 60)]
    rng.shuffle(corpus)
    inv, brute = InvertedBM25(cache_min_df=1), BruteForceBM25()
    live: set[int] = set()
    for step in range(30):
        if step % 3 == 2 and live:
            gone = set(rng.sample(sorted(live), min(len(live), rng.randrange(1, 5))))
            inv.remove(gone)
            brute.remove(gone)
            live -= gone
        else:
            chunk = [corpus[i] for i in rng.sample(range(len(corpus)), 4)]  # may re-add a live or removed doc
            inv.add(chunk)
            brute.add(chunk)
            live |= {d.seq for d in chunk}
        for _ in range(3):
            query = [rng.choice(WORDS) for _ in range(rng.randrange(1, 4))]
            k = rng.choice([1, 3, 10, 100])
            allowed = set(rng.sample(sorted(live), len(live) // 2)) if live and rng.random() < 0.3 else None
            got, want = inv.search(query, k, allowed), brute.search(query, k, allowed)
            assert got[0].tolist() == want[0].tolist()
            assert got[1] == pytest.approx(want[1], rel=1e-12)
    assert inv._arrays  # the cached path was the one exercised


def test_top_k_breaks_ties_at_the_cut_by_seq_as_a_full_sort_does():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        seqs = rng.permutation(1000)[:n].astype(np.int64)
        vals = rng.integers(1, 4, n).astype(np.float64)  # many ties
        k = int(rng.integers(1, n + 3))
        full = np.lexsort((seqs, -vals))[:k]
        got = top_k(seqs, vals, k)
        assert got[0].tolist() == seqs[full].tolist() and got[1].tolist() == vals[full].tolist()


@pytest.mark.parametrize("kind", BACKENDS)
def test_add_is_idempotent_and_removing_an_unknown_seq_is_a_no_op(kind):
    index = make_lexical_index(kind)
    doc = LexicalDoc(1, "s", ("moon", "kite"))
    index.add([doc, LexicalDoc(2, "s", ("oak",))])
    before = index.search(["moon"], 10)
    index.add([doc])
    index.remove([99])
    after = index.search(["moon"], 10)
    assert before[0].tolist() == after[0].tolist() and np.allclose(before[1], after[1])
    assert 1 in index and 99 not in index and len(index) == 2


@pytest.mark.parametrize("kind", BACKENDS)
def test_removed_episode_is_gone_from_results_and_from_its_successors_document(kind):
    index = make_lexical_index(kind)
    index.add([LexicalDoc(1, "s", ("volcano",)), LexicalDoc(2, "s", ("yes",)), LexicalDoc(3, "t", ("pear",))])
    assert index.search(["volcano"], 10)[0].tolist() == [1, 2]  # 2 carries its predecessor's words
    index.remove([1])
    assert index.search(["volcano"], 10)[0].tolist() == []


@pytest.mark.parametrize("kind", BACKENDS)
def test_allowed_restricts_and_k_truncates_with_deterministic_ties(kind):
    index = make_lexical_index(kind, with_previous=False)
    index.add([LexicalDoc(s, "", ("jazz",)) for s in range(1, 6)])
    assert index.search(["jazz"], 3)[0].tolist() == [1, 2, 3]
    assert index.search(["jazz"], 10, allowed={2, 4})[0].tolist() == [2, 4]
    index.add([LexicalDoc(6, "", ("jazz", "blue"))])
    assert index.search(["jazz", "blue"], 10, allowed={99})[0].size == 0  # every posting of both filtered out
    assert index.search(["jazz", "blue"], 10, allowed=set())[0].size == 0
    assert index.search(["nothing"], 10)[0].size == 0
    assert make_lexical_index(kind).search(["jazz"], 10)[0].size == 0


def test_tokenizer_drops_stop_words_and_folds_plurals_and_case():
    assert tokenize("What did Caroline's kids paint at the Concerts?") == ["caroline", "kid", "paint", "concert"]
    assert tokenize("hobbies, glass, bus") == ["hobby", "glass", "bus"]


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown lexical index"):
        make_lexical_index("nope")
