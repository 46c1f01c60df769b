"""The hand-over of written episodes' token vectors to the graph worker (engine/token_stash.py) and the span
pooling it feeds (embed/spans.py)."""

from __future__ import annotations

import numpy as np
import pytest

from memserve.embed.spans import TokenVectors, find_span, span_vector
from memserve.engine.token_stash import TokenStash


def tv(ids: list[int], dim: int = 4) -> TokenVectors:
    vecs = np.zeros((len(ids), dim), np.float16)
    for row, i in enumerate(ids):
        vecs[row, i % dim] = 1.0
    return TokenVectors(np.asarray(ids, np.int32), vecs)


def test_find_span_first_occurrence_or_minus_one() -> None:
    hay = np.asarray([5, 1, 2, 1, 2, 3], np.int32)
    assert find_span(hay, np.asarray([1, 2, 3], np.int32)) == 3
    assert find_span(hay, np.asarray([1, 2], np.int32)) == 1
    assert find_span(hay, np.asarray([2, 5], np.int32)) == -1
    assert find_span(hay, np.asarray([], np.int32)) == -1
    assert find_span(hay, np.arange(10, dtype=np.int32)) == -1  # longer than the text


def test_span_vector_is_the_unit_mean_of_the_span() -> None:
    tokens = tv([7, 1, 2, 9])
    vec = span_vector(tokens, np.asarray([1, 2], np.int32))
    assert vec is not None and vec.dtype == np.float32
    np.testing.assert_allclose(vec, np.asarray([0, 1, 1, 0]) / np.sqrt(2), atol=1e-6)
    assert span_vector(tokens, np.asarray([2, 1], np.int32)) is None  # out of order: not a span
    zero = TokenVectors(np.asarray([3], np.int32), np.zeros((1, 4), np.float16))
    assert span_vector(zero, np.asarray([3], np.int32)) is None  # no direction to give


def test_take_returns_matching_entries_once() -> None:
    stash = TokenStash(1 << 20)
    stash.put("ns", [(1, "alpha", tv([1])), (2, "beta", tv([2]))])
    got = stash.take("ns", {1: "alpha", 2: "beta", 3: "gamma"})
    assert sorted(got) == [1, 2] and got[1].ids.tolist() == [1]
    assert stash.take("ns", {1: "alpha"}) == {} and len(stash) == 0 and stash.nbytes == 0


def test_an_entry_for_another_text_is_never_applied() -> None:
    """A write that rolled back leaves its entry; a later episode that gets the same seq has another text."""
    stash = TokenStash(1 << 20)
    stash.put("ns", [(1, "rolled back", tv([1]))])
    assert stash.take("ns", {1: "the episode that got seq 1"}) == {}
    assert len(stash) == 0  # and it is gone


def test_namespaces_are_separate() -> None:
    stash = TokenStash(1 << 20)
    stash.put("a", [(1, "x", tv([1]))])
    assert stash.take("b", {1: "x"}) == {}
    assert list(stash.take("a", {1: "x"})) == [1]


def test_bounded_by_bytes_oldest_out_first() -> None:
    one = tv([1, 2, 3]).nbytes
    stash = TokenStash(3 * one)
    stash.put("ns", [(seq, f"t{seq}", tv([1, 2, 3])) for seq in range(5)])
    assert len(stash) == 3 and stash.nbytes == 3 * one and stash.evicted == 2
    assert sorted(stash.take("ns", {s: f"t{s}" for s in range(5)})) == [2, 3, 4]


def test_entry_larger_than_the_budget_is_not_kept_and_zero_keeps_nothing() -> None:
    stash = TokenStash(10)
    stash.put("ns", [(1, "big", tv(list(range(50))))])
    assert len(stash) == 0 and stash.nbytes == 0
    nothing = TokenStash(0)
    nothing.put("ns", [(1, "x", tv([1]))])
    assert len(nothing) == 0


def test_rewriting_a_seq_replaces_its_entry_and_its_bytes() -> None:
    stash = TokenStash(1 << 20)
    stash.put("ns", [(1, "x", tv([1, 2, 3]))])
    stash.put("ns", [(1, "y", tv([4]))])
    assert stash.nbytes == tv([4]).nbytes
    assert stash.take("ns", {1: "y"})[1].ids.tolist() == [4]


def test_forget_seqs_and_whole_namespace() -> None:
    stash = TokenStash(1 << 20)
    stash.put("a", [(1, "x", tv([1])), (2, "y", tv([2]))])
    stash.put("b", [(1, "x", tv([1]))])
    stash.forget("a", [1])
    assert sorted(stash.take("a", {1: "x", 2: "y"})) == [2]
    stash.put("a", [(3, "z", tv([3]))])
    stash.forget("a")
    assert stash.take("a", {3: "z"}) == {} and list(stash.take("b", {1: "x"})) == [1]
    assert stash.nbytes == 0


def test_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        TokenStash(-1)
