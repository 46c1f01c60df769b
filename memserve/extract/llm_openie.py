"""HippoRAG-style OpenIE through an LLM: named entities first, then triples conditioned on them."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from memserve.domain.extraction import ExtractionResult
from memserve.errors import LLMError
from memserve.extract import prompts
from memserve.extract.json_repair import repair_json
from memserve.extract.normalize import clean_triples, unique_phrases
from memserve.llm import LLMClient

logger = logging.getLogger(__name__)


class LLMOpenIEExtractor:
    """Two LLM calls per passage (temperature from the client's settings, JSON mode), passages in parallel up
    to the client's ``max_concurrency``. Responses are cached by the client, so re-extracting a passage is free.
    """

    def __init__(self, llm: LLMClient) -> None:
        self.llm = llm
        self.name = f"llm-openie:{llm.settings.model}"

    def extract(self, texts: list[str]) -> list[ExtractionResult]:
        """One result per text. A passage whose LLM calls fail after retries gets a result with ``error`` set;
        the others are still returned."""
        if not texts:
            return []
        workers = min(self.llm.max_concurrency, len(texts))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openie") as pool:
            return list(pool.map(self._extract_or_error, texts))

    def extract_one(self, text: str) -> ExtractionResult:
        """Extract one passage; raises LLMError if the model cannot be reached after retries."""
        entities = self._named_entities(text)
        triples_reply = self.llm.complete(
            prompts.render("triples", passage=text,
                           named_entities=json.dumps({"named_entities": list(entities)}, ensure_ascii=False)),
            json_mode=True,
        ).text
        raw_triples = _field(triples_reply, "triples", what="triples")
        triples, dropped = clean_triples(raw_triples)
        return ExtractionResult(entities=entities, triples=triples, dropped_triples=dropped)

    def _extract_or_error(self, text: str) -> ExtractionResult:
        try:
            return self.extract_one(text)
        except LLMError as exc:
            logger.warning("OpenIE failed for a passage (%d chars): %s", len(text), exc.message)
            return ExtractionResult(entities=(), triples=(), dropped_triples=0, error=exc.message)

    def _named_entities(self, text: str) -> tuple[str, ...]:
        reply = self.llm.complete(prompts.render("ner", passage=text), json_mode=True).text
        return unique_phrases(_field(reply, "named_entities", what="entities"))


def _field(reply: str, key: str, *, what: str) -> list[Any]:
    """The list under ``key`` (or a bare list), from possibly broken JSON. Unrecoverable output yields an
    empty list, not an error: the response is cached, so retrying the passage would return the same text."""
    try:
        value = repair_json(reply)
    except ValueError:
        logger.warning("unparseable %s output from the LLM: %.120r", what, reply)
        return []
    if isinstance(value, dict):
        value = value.get(key, [])
    if not isinstance(value, list):
        logger.warning("LLM %s output is not a list: %.120r", what, reply)
        return []
    return value
