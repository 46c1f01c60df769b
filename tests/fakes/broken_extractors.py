"""Extractors that break the one-result-per-text contract on purpose: the contract test must reject them,
and the graph job path must not mark an episode done that got no result (issue 13)."""

from __future__ import annotations

from memserve.extract import ExtractionResult, OfflineExtractor


class DroppingExtractor:
    """Loses the last result of every batch of two or more texts (a batching bug); single texts are fine."""

    name = "broken-dropping"

    def __init__(self) -> None:
        self._inner = OfflineExtractor()

    def extract(self, texts: list[str]) -> list[ExtractionResult]:
        results = self._inner.extract(texts)
        return results[:-1] if len(results) > 1 else results


class SilentExtractor:
    """Returns nothing at all."""

    name = "broken-silent"

    def extract(self, texts: list[str]) -> list[ExtractionResult]:
        return []


class ReorderingExtractor:
    """One result per text, but in reverse order: the count is right and the pairing wrong."""

    name = "broken-reordering"

    def __init__(self) -> None:
        self._inner = OfflineExtractor()

    def extract(self, texts: list[str]) -> list[ExtractionResult]:
        return self._inner.extract(texts)[::-1]


class RaisingExtractor:
    """Raises for a passage instead of returning a result with ``error`` set."""

    name = "broken-raising"

    def extract(self, texts: list[str]) -> list[ExtractionResult]:
        raise RuntimeError("extractor crashed")
