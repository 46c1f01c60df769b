"""OfflineExtractor: entities and triples from regexes and capitalisation, for when no LLM is configured.

No network, no model, deterministic. It aims at what graph retrieval needs from extraction: the same surface
name in different passages becomes the same phrase node (so "film X → director D" in one passage meets the
passage titled "D"), and a passage's title is linked to everything the passage says about it.
"""

from __future__ import annotations

import itertools
import re

from memserve.domain.extraction import ExtractionResult, Triple
from memserve.extract.normalize import normalize_phrase
from memserve.extract.offline_spans import Mention, find_mentions, split_sentences

# Sentences that open with one of these talk about the passage's subject (its title).
_ANAPHORA = re.compile(r"^(?:(?:he|she|it|they|his|her|its|their)\b|the\s+[a-z][a-z\-]*\b(?=\s+(?:[a-z]|\()))",
                       re.IGNORECASE)
_DISAMBIGUATOR = re.compile(r"\s*\([^)]*\)\s*$")  # "Jaws (film)" → "Jaws"
_PRED_JUNK = re.compile(r"[\"“”«»()\[\]`]|''")
_LIST_GLUE = frozenset({"", ",", "and", ", and", "or", ", or", "&", ";"})
_WORD = re.compile(r"[a-z][a-z'’\-]*")

MAX_PREDICATE_WORDS = 6
MAX_TRIPLES = 60
TITLE_LINK = "related to"


class OfflineExtractor:
    name = "offline-regex-v1"

    def extract(self, texts: list[str]) -> list[ExtractionResult]:
        return [self.extract_one(text) for text in texts]

    def extract_one(self, text: str) -> ExtractionResult:
        title, body = _split_title(text)
        lowercase_words = frozenset(_WORD.findall(body))
        entities: dict[str, str] = {}  # normalised → first surface form
        triples: dict[tuple[str, str, str], Triple] = {}
        title_key = None
        if title:
            title_key = _add_entity(entities, title)

        for _, sentence in split_sentences(body):
            mentions = [_expand_short_name(m, entities) for m in find_mentions(sentence, lowercase_words)]
            for m in mentions:
                _add_entity(entities, m.text)
            subject, subject_end, rest = _sentence_subject(sentence, mentions, title)
            if subject is None:
                continue
            previous_predicate = ""
            previous_end = subject_end
            for m in rest:
                between = _predicate(sentence[previous_end:m.start]) if m.start >= previous_end else ""
                if m.start < subject_end:  # a value before the subject ("In 1990, X ...")
                    predicate = _predicate(sentence[max(0, m.start - 12):m.start]) or TITLE_LINK
                elif between in _LIST_GLUE and previous_predicate:
                    predicate = previous_predicate  # "sister publication of A, B and C"
                else:
                    predicate = _last_words(between) or TITLE_LINK
                    previous_predicate = predicate
                _add_triple(triples, subject, predicate, m.text)
                if m.start >= subject_end:
                    previous_end = m.end
            _chain_neighbours(triples, sentence, mentions, subject)

        if title_key is not None:
            _link_title(triples, entities, title_key)
        return ExtractionResult(entities=tuple(entities.values()), triples=tuple(list(triples.values())[:MAX_TRIPLES]),
                                dropped_triples=0)


def _split_title(text: str) -> tuple[str | None, str]:
    """HippoRAG indexes passages as "title\\ntext"; a short first line is taken as the title."""
    head, sep, rest = text.strip().partition("\n")
    if sep and rest.strip() and 0 < len(head.split()) <= 15:
        title = _DISAMBIGUATOR.sub("", head).strip()
        return (title or head.strip()), rest
    return None, text


def _expand_short_name(m: Mention, entities: dict[str, str]) -> Mention:
    """"Spielberg" after "Steven Spielberg" (or under that title) is the same node: map a one-word name to the
    earlier multi-word name it ends or starts."""
    if m.kind != "name" or " " in m.text:
        return m
    word = normalize_phrase(m.text)
    for key, surface in entities.items():
        parts = key.split()
        if len(parts) > 1 and (parts[-1] == word or parts[0] == word):
            return Mention(m.start, m.end, surface, m.kind)
    return m


def _add_entity(entities: dict[str, str], surface: str) -> str | None:
    key = normalize_phrase(surface)
    if not key:
        return None
    entities.setdefault(key, surface)
    return key


def _add_triple(triples: dict[tuple[str, str, str], Triple], s: str, p: str, o: str) -> None:
    key = (normalize_phrase(s), normalize_phrase(p), normalize_phrase(o))
    if key[0] and key[1] and key[2] and key[0] != key[2]:
        triples.setdefault(key, Triple(s, p, o))


def _sentence_subject(sentence: str, mentions: list[Mention],
                      title: str | None) -> tuple[str | None, int, list[Mention]]:
    """The sentence's subject, where it ends, and the mentions it relates to.

    A sentence opening with a pronoun or "The <noun>" is about the passage title; otherwise the subject is
    the first mention that is not a date or number."""
    anaphora = _ANAPHORA.match(sentence)
    first = mentions[0] if mentions else None
    if title and anaphora and (first is None or first.start >= anaphora.end()):
        return title, anaphora.end(), mentions
    for i, m in enumerate(mentions):
        if not m.is_value:
            return m.text, m.end, mentions[:i] + mentions[i + 1:]
    return None, 0, []


def _chain_neighbours(triples: dict[tuple[str, str, str], Triple], sentence: str, mentions: list[Mention],
                      subject: str) -> None:
    """Adjacent names joined by a short phrase ("Solomon from George Washington University") get their own
    triple: these are the second hops that subject-centred triples miss."""
    for left, right in itertools.pairwise(mentions):
        if left.is_value or left.text == subject:
            continue
        between = _predicate(sentence[left.end:right.start])
        if between not in _LIST_GLUE and len(between.split()) <= 4:
            _add_triple(triples, left.text, between, right.text)


def _link_title(triples: dict[tuple[str, str, str], Triple], entities: dict[str, str], title_key: str) -> None:
    """Every entity of the passage hangs off its title, unless a triple already connects them."""
    title = entities[title_key]
    linked = {k[2] for k in triples if k[0] == title_key} | {k[0] for k in triples if k[2] == title_key}
    for key, surface in entities.items():
        if key != title_key and key not in linked:
            _add_triple(triples, title, TITLE_LINK, surface)


def _predicate(text: str) -> str:
    cleaned = _PRED_JUNK.sub(" ", text)
    cleaned = " ".join(cleaned.split()).strip(" ,;:-–—").lower()
    return cleaned


def _last_words(predicate: str) -> str:
    """Long stretches between two names: the words next to the object carry the relation ("... directed by")."""
    words = predicate.replace(",", " ").split()
    return " ".join(words[-MAX_PREDICATE_WORDS:])
