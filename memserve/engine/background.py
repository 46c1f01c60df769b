"""Background workers: a few threads that process keys (namespaces, summary keys) as they are kicked.

Work is level-triggered: a kick marks a key dirty; a thread calls ``process(key)`` until it reports that
nothing is left (returns False), so kicks during processing are never lost and duplicate kicks coalesce.

Fairness: a key gets one ``process`` call (one batch) and then goes to the back of the queue, and no key is
ever processed by two threads at once, so with ``threads`` >= 2 one tenant's slow batch (an LLM call that
takes a minute) never holds up another tenant's.

Failure: a call that raises puts its key into back-off (1, 2, 4 ... s, capped) and the key still counts as
pending, so a waiter never mistakes a back-off for "caught up". After ``max_failures`` failures in a row the
key is *failed*: it is no longer retried, waiters are told so, and ``failed()`` lists it with the error, until
the next kick (new work) gives it a fresh start.

Waiters: ``wait_idle`` blocks a thread; ``when_settled`` registers a callback instead (the gRPC server
turns it into an asyncio future, so a client waiting for the graph holds no thread).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)


K = TypeVar("K", bound=Hashable)  # what a Worker is keyed by (a namespace, a (namespace, session) pair)


class Settled(enum.Enum):
    IDLE = "idle"  # nothing queued, running or backing off
    FAILED = "failed"  # gave up after max_failures; see Worker.failed()
    TIMEOUT = "timeout"  # the caller's deadline passed first


class Worker(Generic[K]):
    def __init__(self, name: str, process: Callable[[K], bool], *, threads: int = 2,
                 retry_delay_s: float = 1.0, max_retry_delay_s: float = 30.0, max_failures: int = 5) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.name = name
        self._process = process
        self._retry_delay_s = retry_delay_s
        self._max_retry_delay_s = max_retry_delay_s
        self._max_failures = max_failures
        self._dirty: dict[K, None] = {}  # insertion order = service order (round-robin)
        self._busy: set[K] = set()
        self._backoff: dict[K, float] = {}  # key -> monotonic time it may run again
        self._failures: dict[K, int] = {}
        self._failed: dict[K, str] = {}
        self._waiters: dict[K, list[Callable[[Settled], None]]] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._threads = [threading.Thread(target=self._run, name=f"memserve-{name}-{i}", daemon=True)
                         for i in range(threads)]
        self.errors = 0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def kick(self, key: K) -> None:
        with self._cond:
            self._failed.pop(key, None)
            if key not in self._backoff:
                self._dirty[key] = None
            self._cond.notify_all()

    def _pending(self, key: K) -> bool:
        return key in self._dirty or key in self._busy or key in self._backoff

    def pending(self, key: K) -> bool:
        with self._cond:
            return self._pending(key)

    def failed(self) -> dict[K, str]:
        """Keys that gave up, with the last error."""
        with self._cond:
            return dict(self._failed)

    def _status(self, key: K) -> Settled | None:
        if self._pending(key):
            return None
        return Settled.FAILED if key in self._failed else Settled.IDLE

    def wait_idle(self, key: K, timeout: float | None) -> Settled:
        """Block until ``key`` has no queued, running or backing-off work (or gave up), or ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (status := self._status(key)) is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return Settled.TIMEOUT
                self._cond.wait(remaining)
            return status

    def when_settled(self, key: K, callback: Callable[[Settled], None]) -> Settled | None:
        """The status now if ``key`` is settled (callback not kept); else None, and ``callback(status)`` runs
        later on a worker thread. It must be quick and must not call back into the worker."""
        with self._cond:
            status = self._status(key)
            if status is None:
                self._waiters.setdefault(key, []).append(callback)
            return status

    def forget_waiter(self, key: K, callback: Callable[[Settled], None]) -> None:
        with self._cond:
            waiters = self._waiters.get(key, [])
            if callback in waiters:
                waiters.remove(callback)

    def stop(self, timeout: float = 10.0) -> None:
        """Let running calls finish, for at most ``timeout`` seconds in all; queued work stays queued (it
        is persisted by the callers and resumed at the next start)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            waiters, self._waiters = self._waiters, {}
        for callbacks in waiters.values():
            for callback in callbacks:
                callback(Settled.TIMEOUT)

    # -- the threads -------------------------------------------------------------------------------------
    def _next_key(self) -> K | None:
        """Under the condition: the first dirty key nobody is processing, after promoting due back-offs."""
        now = time.monotonic()
        for key, due in list(self._backoff.items()):
            if due <= now:
                del self._backoff[key]
                self._dirty[key] = None
        for key in self._dirty:
            if key not in self._busy:
                del self._dirty[key]
                return key
        return None

    def _wait_time(self) -> float | None:
        if not self._backoff:
            return None
        return max(0.0, min(self._backoff.values()) - time.monotonic())

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (key := self._next_key()) is None:
                    self._cond.wait(self._wait_time())
                if self._stopping or key is None:  # key is set once the wait ends without stopping
                    return
                self._busy.add(key)
            more, error = False, None
            try:
                more = bool(self._process(key))
            except Exception as exc:  # the store stays consistent; back off and retry the key
                error = f"{type(exc).__name__}: {exc}"
                log.exception("%s worker failed on %r", self.name, key)
            self._finish(key, more, error)

    def _finish(self, key: K, more: bool, error: str | None) -> None:
        settled: list[Callable[[Settled], None]] = []
        with self._cond:
            self._busy.discard(key)
            if error is None:
                self._failures.pop(key, None)
                if more:
                    self._dirty[key] = None  # at the back: other keys get their turn first
            else:
                self.errors += 1
                n = self._failures[key] = self._failures.get(key, 0) + 1
                if n >= self._max_failures:
                    self._failures.pop(key, None)
                    self._dirty.pop(key, None)
                    self._failed[key] = error
                    log.error("%s worker gave up on %r after %d failures: %s", self.name, key, n, error)
                else:
                    self._dirty.pop(key, None)
                    delay = min(self._max_retry_delay_s, self._retry_delay_s * 2 ** (n - 1))
                    self._backoff[key] = time.monotonic() + delay
            status = self._status(key)
            if status is not None:
                settled = self._waiters.pop(key, [])
            self._cond.notify_all()
        for callback in settled:
            callback(status)  # type: ignore[arg-type]
