"""One encoder thread in front of an embedder, so latency-critical queries never queue behind bulk writes.

A single lock around ``model.encode`` let one 256-text write batch hold every query for its whole encode. Here
one thread owns the inner embedder and, each time it is free, first encodes *all* waiting queries in one call
(concurrent queries share a forward pass), and only when no query waits encodes one chunk of at most
``chunk_size`` bulk texts. A query therefore waits for at most one bulk chunk.

Bulk requests are sorted by text length before chunking (the padding win the inner embedder gets from sorting
one call would otherwise be lost across chunks) and served round-robin, a request going to the back of the line
after each of its chunks, so one huge batch does not starve a small write.

Chunks are bounded by cost, not only by count: a chunk takes ``chunk_size`` texts, and more while the padded
size of the call (texts x longest text, in characters) stays within ``chunk_size x chunk_chars``. Graph phrases
and facts ("barack obama", "obama born in hawaii") are a tenth of a passage's length, so a chunk of them holds
~10x as many texts for the same forward-pass cost: a query still waits for at most one chunk's worth of work,
and short texts stop paying one encoder call (and its fixed overhead) per 16 strings.

Errors: an exception from the inner embedder fails exactly the requests whose texts were in that call. A failed
micro-batch of several queries is retried one query at a time, so one bad text fails only its own caller.

Threads: on CPU, torch already spreads one forward pass over its intra-op threads (every core), so a single
encoder thread loses no throughput; concurrent forwards would only contend for the same cores.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Self

import numpy as np

from .base import Embedder, cost_bounded_stop
from .spans import TokenVectors, supports_tokens

__all__ = ["EncoderScheduler"]

_SHUT_DOWN = "encoder is shut down"


class _BulkJob:
    __slots__ = ("future", "next", "order", "out", "sorted_lengths", "texts", "tokens")

    def __init__(self, texts: list[str], dim: int, tokens: bool = False) -> None:
        self.texts = texts
        # Per text, its token vectors (embed/spans.py), when the caller asked for them.
        self.tokens: list[TokenVectors | None] | None = [None] * len(texts) if tokens else None
        lengths = np.fromiter((len(t) for t in texts), np.int64, len(texts))
        self.order = np.argsort(lengths, kind="stable")
        self.sorted_lengths = lengths[self.order]
        self.out = np.empty((len(texts), dim), dtype=np.float32)
        self.next = 0
        self.future: Future[np.ndarray] = Future()


class EncoderScheduler:
    """An ``Embedder`` that serialises all calls to ``inner`` on one thread, queries first."""

    def __init__(self, inner: Embedder, *, chunk_size: int = 16, query_inner: Embedder | None = None,
                 chunk_chars: int | None = None, max_chunk_texts: int = 512) -> None:
        """``query_inner``: a second replica of the same model for queries only, on its own thread. Then a
        query never waits for a bulk chunk at all (on 2 CPU cores a 16-turn chunk takes ~10x a query encode,
        so "at most one chunk" is still 10x); both forwards share the cores instead."""
        """``chunk_chars``: characters per text the cost budget of a chunk allows (None: chunks are exactly
        ``chunk_size`` texts); ``max_chunk_texts`` caps a chunk of very short texts."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if chunk_chars is not None and chunk_chars < 1:
            raise ValueError("chunk_chars must be >= 1 or None")
        if max_chunk_texts < chunk_size:
            raise ValueError("max_chunk_texts must be >= chunk_size")
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.chunk_size = chunk_size
        self.chunk_chars = chunk_chars
        self.max_chunk_texts = max_chunk_texts
        self._cond = threading.Condition()
        self._queries: list[tuple[str, Future[np.ndarray]]] = []
        self._bulk: deque[_BulkJob] = deque()
        self._inflight: _BulkJob | None = None  # off the deque while encoding, yet close() must still fail it
        self._closed = False
        self._stats = {"query_batches": 0, "queries": 0, "bulk_chunks": 0, "bulk_texts": 0}
        self._thread = threading.Thread(target=self._run, name="memserve-encoder", daemon=True)
        self._query_thread: threading.Thread | None = None
        self.query_inner: Embedder | None = None
        if query_inner is not None:
            self.start_query_lane(query_inner)
        self._thread.start()

    def start_query_lane(self, replica: Embedder) -> None:
        """Serve queries from ``replica`` on their own thread from now on (the server loads the replica in
        the background after start-up, so it never delays SERVING; until then queries jump the bulk queue)."""
        if replica.dim != self.dim or replica.name != self.name:
            raise ValueError("the query replica must be a replica of inner (same name and dim)")
        with self._cond:
            self._check_open()
            if self.query_inner is not None:
                raise RuntimeError("the query lane is already running")
            self.query_inner = replica
            self._query_thread = threading.Thread(target=self._run_queries, name="memserve-encoder-query",
                                                  daemon=True)
            self._query_thread.start()
            self._cond.notify_all()

    # -- callers -------------------------------------------------------------------------------------------

    def submit_query(self, text: str) -> Future[np.ndarray]:
        """Queue one latency-critical text; the future gives its (dim,) vector. Lets async callers avoid
        blocking a thread (``asyncio.wrap_future``) and tests know the request is queued when this returns."""
        future: Future[np.ndarray] = Future()
        with self._cond:
            self._check_open()
            self._queries.append((text, future))
            self._cond.notify_all()  # two threads may wait on this condition: wake the right one too
        return future

    def submit(self, texts: list[str]) -> Future[np.ndarray]:
        """Queue a bulk request; the future gives its (len(texts), dim) vectors in the original order."""
        return self._submit(_BulkJob(list(texts), self.dim)).future

    def _submit(self, job: _BulkJob) -> _BulkJob:
        if not job.texts:
            job.future.set_result(job.out)
            return job
        with self._cond:
            self._check_open()
            self._bulk.append(job)
            self._cond.notify_all()
        return job

    @property
    def supports_tokens(self) -> bool:
        """The inner embedder returns token vectors too (``embed_with_tokens``; embed/spans.py)."""
        return supports_tokens(self.inner)

    def embed_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        """A bulk request that also returns each text's token vectors from the same forward pass (requires
        ``supports_tokens``). Chunked and scheduled like ``embed``."""
        if not self.supports_tokens:
            raise TypeError(f"embedder {self.name} does not return token vectors")
        job = self._submit(_BulkJob(list(texts), self.dim, tokens=True))
        vectors = job.future.result()
        assert job.tokens is not None and all(t is not None for t in job.tokens)
        return vectors, [t for t in job.tokens if t is not None]

    def phrase_token_ids(self, phrases: list[str]) -> list[np.ndarray]:
        """The inner embedder's ``phrase_token_ids`` (a tokenizer call, no forward pass: not queued)."""
        if not self.supports_tokens:
            raise TypeError(f"embedder {self.name} does not return token vectors")
        return self.inner.phrase_token_ids(phrases)  # type: ignore[attr-defined]

    def embed_query(self, text: str) -> np.ndarray:
        return self.submit_query(text).result()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.submit(texts).result()

    def stats(self) -> dict[str, int]:
        with self._cond:
            return dict(self._stats)

    def close(self, timeout: float | None = None) -> None:
        """Fail every pending request (a bulk request mid-way included), then wait for the in-flight call (at
        most one chunk) to finish, for at most ``timeout`` s (a daemon thread stuck in the model must not hold
        up shutdown); queries already in that call still get their vectors."""
        with self._cond:
            self._closed = True
            self._fail_pending()
            self._cond.notify_all()
        for thread in (self._thread, self._query_thread):
            if thread is not None and threading.current_thread() is not thread:
                thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(_SHUT_DOWN)

    def _fail_pending(self) -> None:
        # Caller holds the lock. One exception object per caller: raising a shared one from several threads
        # would splice their tracebacks together.
        pending = [f for _, f in self._queries] + [job.future for job in self._bulk]
        if self._inflight is not None:
            pending.append(self._inflight.future)
        self._queries.clear()
        self._bulk.clear()
        self._inflight = None
        for future in pending:
            if not future.done():
                future.set_exception(RuntimeError(_SHUT_DOWN))

    # -- encoder thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not (self._closed or (self.query_inner is None and self._queries) or self._bulk):
                        self._cond.wait()
                    if self._closed:
                        return
                    if self.query_inner is None and self._queries:
                        batch, self._queries = self._queries, []
                        job = None
                    else:
                        job = self._inflight = self._bulk.popleft()
                if job is None:
                    self._encode_queries(batch)
                else:
                    self._encode_chunk(job)
        finally:
            # Reached on close, or if something escaped the per-call handlers (BaseException): nobody may be
            # left waiting on a thread that is gone.
            with self._cond:
                self._closed = True
                self._fail_pending()

    def _run_queries(self) -> None:
        """The query lane (with ``query_inner``): micro-batches of queries, never a bulk chunk."""
        try:
            while True:
                with self._cond:
                    while not (self._closed or self._queries):
                        self._cond.wait()
                    if self._closed:
                        return
                    batch, self._queries = self._queries, []
                self._encode_queries(batch)
        finally:
            with self._cond:
                self._closed = True
                self._fail_pending()

    def _encode_queries(self, batch: list[tuple[str, Future[np.ndarray]]]) -> None:
        model = self.query_inner or self.inner
        try:
            vectors = model.embed([text for text, _ in batch])
        except Exception as exc:  # noqa: BLE001 - any failure belongs to the callers, not to this thread
            if len(batch) == 1:
                self._fail(batch[0][1], exc)
            else:
                for item in batch:
                    self._encode_queries([item])
            return
        with self._cond:
            self._stats["query_batches"] += 1
            self._stats["queries"] += len(batch)
        for row, (_, future) in enumerate(batch):
            self._resolve(future, np.array(vectors[row], dtype=np.float32))

    def _encode_chunk(self, job: _BulkJob) -> None:
        start = job.next
        stop = self._chunk_stop(job)
        rows = job.order[start:stop]
        try:
            texts = [job.texts[i] for i in rows]
            if job.tokens is None:
                vectors = self.inner.embed(texts)
            else:
                vectors, tokens = self.inner.embed_with_tokens(texts)  # type: ignore[attr-defined]
                for i, tv in zip(rows.tolist(), tokens, strict=True):
                    job.tokens[i] = tv
        except Exception as exc:  # noqa: BLE001 - as above
            with self._cond:
                self._inflight = None
            self._fail(job.future, exc)
            return
        job.out[rows] = vectors
        job.next = stop
        with self._cond:
            self._stats["bulk_chunks"] += 1
            self._stats["bulk_texts"] += stop - start
            mine = self._inflight is job  # if not, close() took it and already failed the caller
            if mine:
                self._inflight = None
                if stop < len(job.texts):
                    self._bulk.append(job)  # to the back: other waiting requests get the next chunk
                    return
        if mine:
            self._resolve(job.future, job.out)

    def _chunk_stop(self, job: _BulkJob) -> int:
        """End of the next chunk of ``job``: ``chunk_size`` texts, then more (up to ``max_chunk_texts``) while
        texts x longest text stays within the budget. Texts are sorted by length, so the next one is the longest."""
        if self.chunk_chars is None:
            return min(job.next + self.chunk_size, len(job.texts))
        return cost_bounded_stop(job.sorted_lengths, job.next, self.chunk_size, self.chunk_size * self.chunk_chars,
                                 self.max_chunk_texts)

    def _resolve(self, future: Future[np.ndarray], result: np.ndarray) -> None:
        with self._cond:  # close() may resolve the same future from another thread
            if not future.done():
                future.set_result(result)

    def _fail(self, future: Future[np.ndarray], exc: BaseException) -> None:
        with self._cond:
            if not future.done():
                future.set_exception(exc)
