"""Deterministic race helpers: fakes at the model boundary that stop at a gate until the test opens it.

A test arms a gate, starts the racing call, waits until the fake reports it has *entered* (an event, never
a sleep), checks what must or must not be possible meanwhile, then opens the gate. Every wait has a long
upper bound that only matters when the code under test is wrong (it then fails instead of hanging).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from memserve.domain.extraction import ExtractionResult
from memserve.embed import HashEmbedder
from memserve.extract import OfflineExtractor

LONG = 60.0  # seconds: only reached when the code under test is broken
# Bound of wait_until: that waits for work to finish (a backlog to drain, a worker's turn), which on a loaded
# 2-core machine can take minutes (a litellm import alone took 20 s), so the bound is higher than LONG.
SETTLE = 240.0


class Gate:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def pass_through(self) -> None:
        self.entered.set()
        if not self.opened.wait(LONG):
            raise TimeoutError("gate never opened")

    def wait_entered(self) -> None:
        assert self.entered.wait(LONG), "the gated call never started"

    def open(self) -> None:
        self.opened.set()


class GatedEmbedder(HashEmbedder):
    """HashEmbedder whose calls stop at ``gate`` when any text contains ``marker``."""

    def __init__(self, dim: int = 64, marker: str = "BLOCK") -> None:
        super().__init__(dim)
        self.name = f"hash-{dim}"
        self.marker = marker
        self.gate = Gate()
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            self.calls.append(list(texts))
        if any(self.marker in t for t in texts):
            self.gate.pass_through()
        return super().embed(texts)


class GatedExtractor:
    """The offline extractor, except that a text containing ``marker`` stops at ``gate`` (a slow LLM)
    and a text containing ``fail_marker`` fails (an LLM that keeps erroring)."""

    name = "gated-offline"

    def __init__(self, marker: str = "SLOWLLM", fail_marker: str = "FAILLLM") -> None:
        self.marker = marker
        self.fail_marker = fail_marker
        self.gate = Gate()
        self._inner = OfflineExtractor()

    def extract(self, texts: list[str]) -> list[ExtractionResult]:
        if any(self.marker in t for t in texts):
            self.gate.pass_through()
        out = []
        for text, result in zip(texts, self._inner.extract(texts), strict=True):
            out.append(ExtractionResult((), (), error="extractor down") if self.fail_marker in text else result)
        return out


def wait_until(predicate: Callable[[], bool], what: str, *, bound: float = SETTLE) -> None:
    """Poll a condition that another thread makes true (state, not time, decides when we go on)."""
    deadline = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.005)


def run_in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, dict]:
    """Start ``fn`` on a thread; the dict gets 'result' or 'error' and the event 'done' when it ends."""
    box: dict = {"done": threading.Event()}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc
        finally:
            box["done"].set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box
