"""EncoderScheduler: queries jump bulk chunks, concurrent queries share one call, errors reach their callers.

Ordering is forced with events on a gated fake embedder, never with sleeps. Waits carry a generous timeout only
so a broken scheduler fails the test instead of hanging it.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from memserve.embed import Embedder, EncoderScheduler, HashEmbedder

WAIT = 10.0
DIM = 32


class GatedEmbedder:
    """HashEmbedder that records each call and can hold chosen calls (by index) until released."""

    def __init__(self, fail_on: frozenset[str] = frozenset()) -> None:
        self.reference = HashEmbedder(DIM)
        self.name, self.dim = "gated", DIM
        self.calls: list[list[str]] = []
        self.fail_on = fail_on
        self._gates: dict[int, tuple[threading.Event, threading.Event]] = {}
        self._lock = threading.Lock()

    def hold(self, index: int) -> tuple[threading.Event, threading.Event]:
        """Call number ``index`` sets the first event on entry, then waits for the second."""
        gate = (threading.Event(), threading.Event())
        self._gates[index] = gate
        return gate

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            index = len(self.calls)
            self.calls.append(list(texts))
        gate = self._gates.get(index)
        if gate is not None:
            gate[0].set()
            assert gate[1].wait(WAIT), "test never released the gate"
        bad = self.fail_on.intersection(texts)
        if bad:
            raise ValueError(f"cannot embed {sorted(bad)}")
        return self.reference.embed(texts)


def expected(texts: list[str]) -> np.ndarray:
    return HashEmbedder(DIM).embed(texts)


@pytest.fixture
def inner() -> GatedEmbedder:
    return GatedEmbedder(fail_on=frozenset({"bad"}))


@pytest.fixture
def sched(inner: GatedEmbedder):
    scheduler = EncoderScheduler(inner, chunk_size=4)
    yield scheduler
    scheduler.close()


def passages(n: int, prefix: str = "passage") -> list[str]:
    return [f"{prefix} {i:03d}" for i in range(n)]  # equal lengths: the length sort keeps this order


def test_query_overtakes_a_large_bulk_batch(sched: EncoderScheduler, inner: GatedEmbedder) -> None:
    entered0, release0 = inner.hold(0)
    entered2, release2 = inner.hold(2)
    texts = passages(40)  # 10 chunks of 4
    bulk = sched.submit(texts)
    assert entered0.wait(WAIT)
    query = sched.submit_query("where is the query")
    release0.set()
    assert np.allclose(query.result(WAIT), expected(["where is the query"])[0])
    assert entered2.wait(WAIT)
    assert not bulk.done()  # the query finished while the bulk batch still had chunks to go
    release2.set()
    assert np.allclose(bulk.result(WAIT), expected(texts))
    assert inner.calls[0] == texts[0:4]
    assert inner.calls[1] == ["where is the query"]
    assert inner.calls[2:] == [texts[i : i + 4] for i in range(4, 40, 4)]


def test_small_bulk_request_is_not_starved_by_a_large_one(sched: EncoderScheduler, inner: GatedEmbedder) -> None:
    entered, release = inner.hold(0)
    big, small = passages(20, "big"), passages(3, "small")
    big_future = sched.submit(big)
    assert entered.wait(WAIT)
    small_future = sched.submit(small)
    release.set()
    assert np.allclose(small_future.result(WAIT), expected(small))
    assert np.allclose(big_future.result(WAIT), expected(big))
    assert inner.calls[:2] == [big[0:4], small]


def test_concurrent_queries_share_one_inner_call(sched: EncoderScheduler, inner: GatedEmbedder) -> None:
    entered, release = inner.hold(0)
    busy = sched.submit(passages(4))
    assert entered.wait(WAIT)
    questions = [f"question number {i}" for i in range(6)]
    futures = [sched.submit_query(q) for q in questions]
    release.set()
    busy.result(WAIT)
    for question, future in zip(questions, futures, strict=True):
        assert np.allclose(future.result(WAIT), expected([question])[0])
    assert inner.calls[1] == questions
    assert sched.stats() == {"query_batches": 1, "queries": 6, "bulk_chunks": 1, "bulk_texts": 4}


def test_blocking_api_from_many_threads(sched: EncoderScheduler) -> None:
    questions = [f"who said {i}" for i in range(32)]
    batches = [passages(9, f"writer{i}") for i in range(4)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        query_results = list(pool.map(sched.embed_query, questions))
        bulk_results = list(pool.map(sched.embed, batches))
    for question, vector in zip(questions, query_results, strict=True):
        assert vector.shape == (DIM,) and vector.dtype == np.float32
        assert np.allclose(vector, expected([question])[0])
    for batch, vectors in zip(batches, bulk_results, strict=True):
        assert np.allclose(vectors, expected(batch))
    stats = sched.stats()
    assert stats["queries"] == 32 and stats["bulk_texts"] == 36 and stats["bulk_chunks"] == 12


def test_bulk_results_match_inner_in_original_order(sched: EncoderScheduler) -> None:
    # Mixed lengths (the scheduler sorts by length to chunk) and duplicates.
    texts = ["a", "a much longer passage about rivers and bridges", "mid length text", "a", "zz top",
             "mid length text", "rivers", "x" * 80, "the bridge over the river", "a"]
    vectors = sched.embed(texts)
    assert vectors.shape == (len(texts), DIM) and vectors.dtype == np.float32
    assert np.allclose(vectors, expected(texts), atol=1e-6)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input_does_not_touch_the_encoder(sched: EncoderScheduler, inner: GatedEmbedder) -> None:
    assert sched.embed([]).shape == (0, DIM)
    assert sched.submit([]).result(WAIT).shape == (0, DIM)
    assert inner.calls == []


def test_inner_errors_reach_their_callers_and_the_scheduler_keeps_working(
    sched: EncoderScheduler, inner: GatedEmbedder
) -> None:
    with pytest.raises(ValueError, match="bad"):
        sched.embed_query("bad")
    with pytest.raises(ValueError, match="bad"):
        sched.embed(["fine", "bad", "also fine"])
    assert np.allclose(sched.embed_query("good"), expected(["good"])[0])
    assert np.allclose(sched.embed(passages(6)), expected(passages(6)))


def test_failed_query_micro_batch_is_retried_per_query(sched: EncoderScheduler, inner: GatedEmbedder) -> None:
    entered, release = inner.hold(0)
    busy = sched.submit_query("occupy the encoder")
    assert entered.wait(WAIT)
    futures = {q: sched.submit_query(q) for q in ["alpha", "bad", "gamma"]}
    release.set()
    busy.result(WAIT)
    assert np.allclose(futures["alpha"].result(WAIT), expected(["alpha"])[0])
    assert np.allclose(futures["gamma"].result(WAIT), expected(["gamma"])[0])
    with pytest.raises(ValueError, match="bad"):
        futures["bad"].result(WAIT)
    assert inner.calls[1:] == [["alpha", "bad", "gamma"], ["alpha"], ["bad"], ["gamma"]]


def test_bulk_error_fails_only_its_own_request(sched: EncoderScheduler, inner: GatedEmbedder) -> None:
    entered, release = inner.hold(0)
    good_texts = passages(8)
    good = sched.submit(good_texts)
    assert entered.wait(WAIT)
    later = ["later one", "later two", "later six", "later ten"]  # longer than "bad": sorted after it
    doomed = sched.submit(["bad", "bad", "bad", "bad", *later])
    release.set()
    with pytest.raises(ValueError, match="bad"):
        doomed.result(WAIT)
    assert np.allclose(good.result(WAIT), expected(good_texts))
    assert later not in inner.calls  # the failed request's later chunks are dropped


def test_close_fails_pending_and_later_calls(inner: GatedEmbedder) -> None:
    sched = EncoderScheduler(inner, chunk_size=4)
    entered, release = inner.hold(0)
    bulk = sched.submit(passages(40))
    assert entered.wait(WAIT)
    query = sched.submit_query("too late")
    closer = threading.Thread(target=sched.close)
    closer.start()  # close() waits for the in-flight chunk, which is held
    with pytest.raises(RuntimeError, match="encoder is shut down"):
        query.result(WAIT)
    with pytest.raises(RuntimeError, match="encoder is shut down"):
        bulk.result(WAIT)  # its first chunk is still encoding: the caller is not kept waiting for it
    release.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert inner.calls == [passages(4)]
    with pytest.raises(RuntimeError, match="encoder is shut down"):
        sched.embed_query("after close")
    with pytest.raises(RuntimeError, match="encoder is shut down"):
        sched.embed(["after close"])
    sched.close()  # idempotent


def test_satisfies_the_embedder_protocol(sched: EncoderScheduler) -> None:
    assert isinstance(sched, Embedder)
    assert (sched.name, sched.dim) == ("gated", DIM)


def test_rejects_a_non_positive_chunk_size(inner: GatedEmbedder) -> None:
    with pytest.raises(ValueError):
        EncoderScheduler(inner, chunk_size=0)


def test_query_lane_never_waits_for_a_bulk_chunk(inner: GatedEmbedder) -> None:
    """With a query replica, a query completes while the bulk lane is stuck inside a chunk."""
    replica = GatedEmbedder()
    replica.name = inner.name
    sched = EncoderScheduler(inner, chunk_size=4, query_inner=replica)
    try:
        entered0, release0 = inner.hold(0)
        bulk = sched.submit(passages(12))
        assert entered0.wait(WAIT)
        first = sched.submit_query("first question")
        assert np.allclose(first.result(WAIT), expected(["first question"])[0])  # bulk chunk still held
        assert not bulk.done() and inner.calls == [passages(4)]
        # Queries that arrive while the query lane is busy still share one call.
        q_entered, q_release = replica.hold(1)
        second = sched.submit_query("second")
        assert q_entered.wait(WAIT)
        later = [sched.submit_query(f"q{i}") for i in range(3)]
        q_release.set()
        for i, fut in enumerate(later):
            assert np.allclose(fut.result(WAIT), expected([f"q{i}"])[0])
        assert second.result(WAIT).shape == (DIM,)
        assert replica.calls[2] == ["q0", "q1", "q2"]
        release0.set()
        assert np.allclose(bulk.result(WAIT), expected(passages(12)))
        assert all(len(call) <= 4 for call in inner.calls) and not any("q0" in c for c in inner.calls)
    finally:
        release0.set()
        sched.close()


def test_query_replica_must_match_the_model(inner: GatedEmbedder) -> None:
    with pytest.raises(ValueError, match="replica"):
        EncoderScheduler(inner, query_inner=HashEmbedder(DIM))


def test_close_is_bounded_while_a_call_is_stuck(inner: GatedEmbedder) -> None:
    entered, release = inner.hold(0)
    sched = EncoderScheduler(inner, chunk_size=4)
    pending = sched.submit(passages(8))
    assert entered.wait(WAIT)
    sched.close(timeout=0.01)  # returns although the inner call never finishes before it
    with pytest.raises(RuntimeError, match="shut down"):
        pending.result(WAIT)
    release.set()


# -- cost-bounded chunks -------------------------------------------------------------------------------------

def test_short_texts_share_a_chunk_within_the_cost_budget(inner: GatedEmbedder) -> None:
    """With ``chunk_chars``, a chunk holds as many texts as fit in chunk_size x chunk_chars padded characters."""
    sched = EncoderScheduler(inner, chunk_size=4, chunk_chars=20)  # budget: 80 padded characters
    try:
        short = [f"p{i:02d}" for i in range(30)]  # 3 characters: 26 fit in one 80-character chunk
        long = ["x" * 40 + f"{i:02d}" for i in range(6)]  # 42 characters: only chunk_size (4) per chunk
        np.testing.assert_allclose(sched.embed(short + long), expected(short + long))
        sizes = [len(call) for call in inner.calls]
        assert sizes[0] == 26 and sum(sizes) == 36
        assert max(sizes[1:]) <= 4  # from the first long text on, the count bound applies
    finally:
        sched.close()


def test_a_query_still_overtakes_between_cost_bounded_chunks(inner: GatedEmbedder) -> None:
    sched = EncoderScheduler(inner, chunk_size=4, chunk_chars=5)  # 20-character budget: 5 texts of 4 chars
    try:
        entered, release = inner.hold(0)
        texts = [f"t{i:03d}" for i in range(20)]
        bulk = sched.submit(texts)
        assert entered.wait(WAIT)
        query = sched.submit_query("question")
        release.set()
        assert np.allclose(query.result(WAIT), expected(["question"])[0])
        np.testing.assert_allclose(bulk.result(WAIT), expected(texts))
        assert inner.calls[1] == ["question"]  # right after the first chunk
        assert [len(c) for c in inner.calls if c != ["question"]] == [5, 5, 5, 5]
    finally:
        sched.close()


def test_rejects_bad_chunk_budgets(inner: GatedEmbedder) -> None:
    with pytest.raises(ValueError):
        EncoderScheduler(inner, chunk_size=4, chunk_chars=0)
    with pytest.raises(ValueError):
        EncoderScheduler(inner, chunk_size=4, max_chunk_texts=2)


class GatedTokenEmbedder(GatedEmbedder):
    """GatedEmbedder that also returns token vectors (HashEmbedder's), recording those calls as ("tokens", texts)."""

    def embed_with_tokens(self, texts: list[str]):
        vectors = self.embed(texts)  # gates, failures and the call record as for embed
        with self._lock:
            self.calls[-1] = ["tokens", *texts]
        return vectors, self.reference.embed_with_tokens(texts)[1]

    def phrase_token_ids(self, phrases: list[str]) -> list[np.ndarray]:
        return self.reference.phrase_token_ids(phrases)


def test_token_requests_are_chunked_in_order_and_a_query_still_overtakes() -> None:
    inner = GatedTokenEmbedder(fail_on=frozenset({"bad"}))
    with EncoderScheduler(inner, chunk_size=4) as sched:
        assert sched.supports_tokens
        entered, release = inner.hold(0)
        texts = [f"token passage {i} " + "x" * (i % 3) for i in range(10)]  # unequal lengths: sorted, then put back
        result: dict[str, object] = {}
        worker = threading.Thread(target=lambda: result.update(out=sched.embed_with_tokens(texts)))
        worker.start()
        assert entered.wait(WAIT)
        query = sched.submit_query("a query")
        release.set()
        assert np.allclose(query.result(WAIT), expected(["a query"])[0])
        worker.join(WAIT)
        vectors, tokens = result["out"]  # type: ignore[misc]
        assert np.allclose(vectors, expected(texts))
        want = HashEmbedder(DIM).embed_with_tokens(texts)[1]
        assert [t.ids.tolist() for t in tokens] == [t.ids.tolist() for t in want]
        assert inner.calls[1] == ["a query"] and all(c[0] == "tokens" for c in inner.calls[:1] + inner.calls[2:])
        assert sched.phrase_token_ids(["token passage"])[0].tolist() == want[0].ids[:2].tolist()


def test_a_failed_token_request_fails_its_caller_only() -> None:
    inner = GatedTokenEmbedder(fail_on=frozenset({"bad"}))
    with EncoderScheduler(inner, chunk_size=4) as sched:
        with pytest.raises(ValueError, match="bad"):
            sched.embed_with_tokens(["fine", "bad"])
        vectors, tokens = sched.embed_with_tokens(["fine again"])
        assert np.allclose(vectors, expected(["fine again"])) and len(tokens) == 1


def test_token_requests_need_a_token_embedder(sched: EncoderScheduler) -> None:
    assert not sched.supports_tokens
    with pytest.raises(TypeError, match="token vectors"):
        sched.embed_with_tokens(["x"])
    with pytest.raises(TypeError, match="token vectors"):
        sched.phrase_token_ids(["x"])
