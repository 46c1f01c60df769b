"""What an extractor produces for one passage."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Triple:
    subject: str
    predicate: str
    object: str


@dataclass(frozen=True)
class ExtractionResult:
    """Entities and triples of one passage, in surface form (normalise with ``normalize_phrase`` to match).

    ``error`` is set (and entities/triples are empty) when this passage's extraction failed, e.g. the LLM
    was unreachable after retries; the other passages of the batch are unaffected. Failed results should
    not be stored as "extracted": retry them later.
    """

    entities: tuple[str, ...]
    triples: tuple[Triple, ...]
    dropped_triples: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
