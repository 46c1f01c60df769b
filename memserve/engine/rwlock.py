"""A readers-writer lock: many readers at once, one writer alone, writers preferred.

Queries read a namespace's index and graph; writes, deletes and the background workers change them. A plain
mutex served one query per namespace at a time. Writers are preferred (a waiting writer holds back new
readers) so a stream of queries can never starve an ingest; writer sections are kept short by design
(docs/CONCURRENCY.md), so readers wait at most one of them.

Not reentrant: a thread that holds the lock must not take it again (a reader that re-reads while a writer
waits would deadlock). Every use is a ``with`` block that calls nothing that takes the same lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RWLock:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()

    @property
    def readers(self) -> int:
        """Readers inside right now (tests synchronise on it)."""
        with self._cond:
            return self._readers
