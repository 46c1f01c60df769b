"""RWLock: readers together, writers alone, a waiting writer holds back new readers. Events only."""

from __future__ import annotations

import threading

from memserve.engine.rwlock import RWLock
from tests.support.gates import LONG, run_in_thread, wait_until


def test_readers_share_the_lock():
    lock = RWLock()
    barrier = threading.Barrier(3, timeout=LONG)

    def reader():
        with lock.read():
            barrier.wait()  # all three inside at once, or this times out
        return True

    boxes = [run_in_thread(reader)[1] for _ in range(3)]
    for box in boxes:
        assert box["done"].wait(LONG) and box.get("result") is True, box.get("error")


def test_a_writer_excludes_readers_and_waits_for_them():
    lock = RWLock()
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def reader():
        with lock.read():
            inside.set()
            release.wait(LONG)
            order.append("reader out")

    def writer():
        with lock.write():
            order.append("writer in")

    _, r = run_in_thread(reader)
    inside.wait(LONG)
    _, w = run_in_thread(writer)
    wait_until(lambda: lock._writers_waiting == 1, "the writer to queue")
    assert not w["done"].is_set()
    release.set()
    assert w["done"].wait(LONG) and r["done"].wait(LONG)
    assert order == ["reader out", "writer in"]


def test_a_waiting_writer_holds_back_new_readers():
    lock = RWLock()
    first_in = threading.Event()
    release_first = threading.Event()
    order: list[str] = []

    def first_reader():
        with lock.read():
            first_in.set()
            release_first.wait(LONG)

    def writer():
        with lock.write():
            order.append("writer")

    def late_reader():
        with lock.read():
            order.append("late reader")

    _, a = run_in_thread(first_reader)
    first_in.wait(LONG)
    _, w = run_in_thread(writer)
    wait_until(lambda: lock._writers_waiting == 1, "the writer to queue")
    _, late = run_in_thread(late_reader)
    assert not late["done"].wait(0.05)  # held back (it would be in already if readers could overtake)
    release_first.set()
    for box in (a, w, late):
        assert box["done"].wait(LONG) and "error" not in box
    assert order == ["writer", "late reader"]
