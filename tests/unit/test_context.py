from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from memserve.engine.context import (
    DEFAULT_TOKEN_BUDGET,
    ContextHit,
    TiktokenCounter,
    Utf8ByteCounter,
    build_context,
    load_token_counter,
)

ALPHABET = [*list("abcdefghij klmnop qrstuvwxyz  ,.!?0123456789\n"), "Kyoto", " 東京", "🎉", "é", "ß", "—", "<|endoftext|>"]


def random_text(rng: random.Random, max_len: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, max_len)))


def random_hits(rng: random.Random) -> list:
    hits = []
    for rank in rng.sample(range(1, 30), k=rng.randint(0, 8)):
        facts = tuple(
            (random_text(rng, 8), random_text(rng, 5), random_text(rng, 8)) if rng.random() < 0.5 else random_text(rng, 20)
            for _ in range(rng.randint(0, 3))
        )
        when = datetime(2025, 1, rng.randint(1, 28), tzinfo=UTC) if rng.random() < 0.5 else None
        hits.append((rank, random_text(rng, 300), random_text(rng, 6), random_text(rng, 6), when, facts))
    return hits


@pytest.fixture(scope="module")
def tiktoken_counter():
    counter = load_token_counter()
    if not isinstance(counter, TiktokenCounter):
        pytest.skip("cl100k_base not available offline here")
    return counter


def test_loads_cl100k_offline(tiktoken_counter):
    assert tiktoken_counter.name == "tiktoken:cl100k_base"
    assert tiktoken_counter.count("hello world") == 2


@pytest.mark.parametrize("which", ["tiktoken", "bytes"])
def test_budget_is_never_exceeded(which, request):
    counter = request.getfixturevalue("tiktoken_counter") if which == "tiktoken" else Utf8ByteCounter()
    rng = random.Random(1234)
    for _ in range(400):
        summary = random_text(rng, 200)
        hits = random_hits(rng)
        budget = rng.choice([0, 1, 2, 3, 5, 10, 20, 50, 100, 300, 1000, DEFAULT_TOKEN_BUDGET])
        text, used = build_context(summary, hits, budget, counter)
        assert used == counter.count(text)
        assert used <= budget, (summary, hits, budget, text)


def test_byte_counter_never_undercounts_cl100k(tiktoken_counter):
    rng = random.Random(99)
    for _ in range(300):
        text = random_text(rng, 200)
        assert tiktoken_counter.count(text) <= Utf8ByteCounter().count(text)


def test_layout_and_rank_order_when_everything_fits():
    when = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    hits = [
        ContextHit(2, "Bob booked the ryokan.", "bob", "s1", None, (("Bob", "booked", "ryokan"),)),
        (1, "Alice loves Kyoto.", "alice", "s1", when, ["Alice loves Kyoto", ("Bob", "booked", "ryokan")]),
    ]
    text, used = build_context("Alice and Bob plan a Japan trip.", hits, counter=Utf8ByteCounter())
    assert text == (
        "Summary of the conversation so far:\nAlice and Bob plan a Japan trip.\n\n"
        "Relevant memories:\n"
        "[1] (2025-03-01 09:30 UTC, session s1, alice) Alice loves Kyoto.\n"
        "[2] (session s1, bob) Bob booked the ryokan.\n\n"
        "Supporting facts:\n- Alice loves Kyoto\n- Bob booked ryokan"
    )
    assert used == len(text.encode())


def test_a_hit_is_truncated_with_an_ellipsis_and_packing_stops(tiktoken_counter):
    long = " ".join(f"word{i}" for i in range(500))
    hits = [(1, "short first hit", "", "", None, ()), (2, long, "", "", None, ()), (3, "never shown", "", "", None, ())]
    text, used = build_context("", hits, 120, tiktoken_counter)
    assert used <= 120
    assert "[1] short first hit" in text
    assert "[2] word0 word1" in text and text.endswith("\u2026")
    assert "never shown" not in text


def test_no_label_only_hits():
    text, _ = build_context("s", [(1, "x" * 100, "speaker", "session", None, ())], 60, Utf8ByteCounter())
    assert "[1]" not in text


def test_empty_inputs_and_invalid_budget():
    assert build_context("", [], 100, Utf8ByteCounter()) == ("", 0)
    assert build_context("anything", [(1, "hit", "", "", None, ())], 0, Utf8ByteCounter()) == ("", 0)
    with pytest.raises(ValueError):
        build_context("", [], -1, Utf8ByteCounter())


def test_byte_counter_truncate_keeps_valid_utf8():
    c = Utf8ByteCounter()
    assert c.truncate("東京", 4) == "東"
    assert c.count(c.truncate("🎉🎉", 5)) <= 5
