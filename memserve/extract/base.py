"""The extractor boundary."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from memserve.domain.extraction import ExtractionResult


@runtime_checkable
class Extractor(Protocol):
    """Turns passages into entities and triples. One result per input text, same order.

    Implementations must not raise for one bad passage: they return a result with ``error`` set.
    """

    name: str

    def extract(self, texts: list[str]) -> list[ExtractionResult]: ...
