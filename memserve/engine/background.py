"""A small background worker: a thread that processes keys (e.g. namespaces) as they are kicked.

Work is level-triggered: a kick marks a key dirty; the worker calls ``process(key)`` until it reports that
nothing is left (returns False), so kicks during processing are never lost and duplicate kicks coalesce.
``wait_idle`` lets callers (a write with wait_for_graph, tests, shutdown) wait until a key is drained.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, name: str, process: Callable[[Hashable], bool], *, retry_delay_s: float = 2.0) -> None:
        self.name = name
        self._process = process
        self._retry_delay_s = retry_delay_s
        self._dirty: dict[Hashable, None] = {}
        self._busy: set[Hashable] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"memserve-{name}", daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def kick(self, key: Hashable) -> None:
        with self._cond:
            self._dirty[key] = None
            self._cond.notify_all()

    def pending(self, key: Hashable) -> bool:
        with self._cond:
            return key in self._dirty or key in self._busy

    def wait_idle(self, key: Hashable, timeout: float | None) -> bool:
        """True once ``key`` has no queued or running work; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while key in self._dirty or key in self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                key = next(iter(self._dirty))
                del self._dirty[key]
                self._busy.add(key)
            more, failed = False, False
            try:
                more = bool(self._process(key))
            except Exception:  # the store stays consistent; log, back off, retry the key later
                self.errors += 1
                failed = True
                log.exception("%s worker failed on %r; will retry", self.name, key)
            with self._cond:
                self._busy.discard(key)
                if more:
                    self._dirty[key] = None
                self._cond.notify_all()
            if failed:
                time.sleep(self._retry_delay_s)
                self.kick(key)
