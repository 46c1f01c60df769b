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
from memserve.extract.normalize import clean_triples, normalize_phrase, unique_phrases
from memserve.llm import LLMClient

logger = logging.getLogger(__name__)


class LLMOpenIEExtractor:
    """Two LLM calls per passage (temperature from the client's settings, JSON schema where the provider takes
    it, few-shot text in the completion prompt style), passages in parallel up
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
        """Extract one passage; raises LLMError if the model cannot be reached after retries.

        Small models answer with prose around the JSON, half-closed arrays, triples of two or four parts and
        entities that are nowhere in the passage (often copied from the prompt's example). The JSON is
        repaired where it can be; entities and triples not grounded in the passage are dropped; malformed
        triples are dropped. Every repair and drop is counted on the client (``LLMClient.note``), and dropped
        triples also in the result's ``dropped_triples``.
        """
        grounding = _Grounding(text)
        entities = self._named_entities(text, grounding)
        triples_reply = self.llm.complete(
            prompts.render("triples", passage=text,
                           named_entities=json.dumps({"named_entities": list(entities)}, ensure_ascii=False)),
            schema=TRIPLES_SCHEMA,
        ).text
        raw_triples = self._field(triples_reply, "triples", what="triples")
        triples, malformed = clean_triples(_triple_lists(raw_triples))
        grounded = tuple(t for t in triples if grounding.has(t.subject) and grounding.has(t.object))
        self.llm.note("malformed_triple", malformed)
        self.llm.note("ungrounded_triple", len(triples) - len(grounded))
        return ExtractionResult(entities=entities, triples=grounded,
                                dropped_triples=malformed + len(triples) - len(grounded))

    def _extract_or_error(self, text: str) -> ExtractionResult:
        try:
            return self.extract_one(text)
        except LLMError as exc:
            logger.warning("OpenIE failed for a passage (%d chars): %s", len(text), exc.message)
            return ExtractionResult(entities=(), triples=(), dropped_triples=0, error=exc.message)

    def _named_entities(self, text: str, grounding: _Grounding) -> tuple[str, ...]:
        reply = self.llm.complete(prompts.render("ner", passage=text), schema=NER_SCHEMA).text
        found = unique_phrases(self._field(reply, "named_entities", what="entities"))
        kept = tuple(e for e in found if grounding.has(e))
        self.llm.note("ungrounded_entity", len(found) - len(kept))
        return kept

    def _field(self, reply: str, key: str, *, what: str) -> list[Any]:
        """The list under ``key`` (or a bare list), from possibly broken JSON. Unrecoverable output yields an
        empty list, not an error: the response is cached, so retrying the passage would return the same text."""
        try:
            value, repaired = _parse(reply)
        except ValueError:
            logger.warning("unparseable %s output from the LLM: %.120r", what, reply)
            self.llm.note("unparseable_output")
            return []
        if repaired:
            self.llm.note("repaired_json")
        if isinstance(value, dict):
            value = value.get(key, [])
        if not isinstance(value, list):
            logger.warning("LLM %s output is not a list: %.120r", what, reply)
            self.llm.note("unparseable_output")
            return []
        return value


NER_SCHEMA: dict[str, Any] = {
    "title": "named_entities", "type": "object", "required": ["named_entities"],
    "properties": {"named_entities": {"type": "array", "items": {"type": "string"}}},
}
TRIPLES_SCHEMA: dict[str, Any] = {
    "title": "triples", "type": "object", "required": ["triples"],
    "properties": {"triples": {"type": "array", "items": {
        "type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3}}},
}


class _Grounding:
    """Whether a phrase is in the passage: every word of its normalised form is a word of the passage (so word
    order and punctuation may differ, but an entity the passage never mentions is caught)."""

    def __init__(self, text: str) -> None:
        self._words = frozenset(normalize_phrase(text).split())

    def has(self, phrase: str) -> bool:
        words = normalize_phrase(phrase).split()
        return bool(words) and all(w in self._words for w in words)


def _parse(reply: str) -> tuple[Any, bool]:
    """The JSON value and whether it needed repair (anything beyond surrounding whitespace)."""
    try:
        return json.loads(reply), False
    except json.JSONDecodeError:
        return repair_json(reply), True


def _triple_lists(raw: list[Any]) -> list[Any]:
    """``{"subject": .., "predicate": .., "object": ..}`` objects (a common variant) as lists; the rest as is."""
    out: list[Any] = []
    for item in raw:
        if isinstance(item, dict) and {"subject", "predicate", "object"} <= item.keys():
            out.append([item["subject"], item["predicate"], item["object"]])
        else:
            out.append(item)
    return out
