"""Entity mention finding for the offline extractor: regexes and capitalisation, no models.

Mentions are (start, end, text) spans of one sentence. Kinds, in order of precedence when they overlap:
quoted titles > dates > capitalised name spans > years and numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|December|"
           "Jan\\.|Feb\\.|Mar\\.|Apr\\.|Jun\\.|Jul\\.|Aug\\.|Sep\\.|Sept\\.|Oct\\.|Nov\\.|Dec\\.")
_DATE = re.compile(
    rf"\b(?:\d{{1,2}}\s+(?:{_MONTHS})(?:,?\s+\d{{3,4}})?"        # 8 May 2023 / 8 May
    rf"|(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{3,4}}"  # May 8, 1990
    rf"|(?:{_MONTHS})\s+\d{{4}})(?!\w)"                           # January 1960
)
_NUMBER = re.compile(r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d{4}s|\d{2}0s|\d{2,})(?![\w])")
_QUOTED = re.compile(r"\"([^\"\n]{1,120})\"|“([^”\n]{1,120})”|``(.{1,120}?)''|«([^»\n]{1,120})»")
_TOKEN = re.compile(r"(?:[A-Za-z]\.){2,}|\w+(?:['’\-&]\w+)*\.?|&|\S")

# Lower-case words allowed inside a name when a capitalised word follows ("Bank of America", "Vincent van
# Gogh", "Council for Small Business").
_CONNECTORS = frozenset("of the de del della di da do dos das von van der den du la le les y al el bin ibn "
                        "for upon on-the &".split())
# Capitalised words that start sentences or names without being part of the name.
_LEADING_STOP = frozenset("""the a an in on at by for from with to of as and or but if so when while after before
during since until although though however following according despite this that these those there here it its he
his she her they their them we our you your i my me him who whom whose which what where why how all both each
every many most some several other another such no not one two three four five six seven eight nine ten first
second third last then thus also later today yesterday tomorrow mr mrs ms dr st sir saint prof""".split())
# Single-word "names" that are never entities on their own.
_LONE_STOP = _LEADING_STOP | frozenset(
    "january february march april may june july august september october november december monday tuesday "
    "wednesday thursday friday saturday sunday".split())
# Abbreviations after which a period does not end a sentence.
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr prof gen col lt sgt capt rev inc ltd co corp no vs etc fig "
                           "approx est dept univ mt ft ave".split())


_DEMONYM = re.compile(r"(?:ian|ese|ish|ean|can|ench|tch|ic|ani|eli|iot)$")


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    text: str
    kind: str  # "quoted" | "date" | "name" | "number"

    @property
    def is_value(self) -> bool:
        """Dates and numbers: good objects, poor subjects."""
        return self.kind in ("date", "number")


def split_sentences(text: str) -> list[tuple[int, str]]:
    """(offset, sentence) pairs. A period ends a sentence unless it closes an initial or a known abbreviation."""
    sentences: list[tuple[int, str]] = []
    start = 0
    for match in re.finditer(r"[.!?]+[\"')\]”’]*\s+(?=[\"'“(\[`A-Z0-9À-Þ])|\n+", text):
        before = text[start:match.start()].rsplit(None, 1)
        last_word = before[-1].rstrip(".").lower() if before else ""
        if match.group().startswith(".") and (len(last_word) == 1 or last_word in _ABBREVIATIONS):
            continue
        chunk = text[start:match.end()].strip()
        if chunk:
            sentences.append((start, chunk))
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append((start, tail))
    return sentences


def find_mentions(sentence: str, lowercase_words: frozenset[str]) -> list[Mention]:
    """Non-overlapping mentions in order. ``lowercase_words`` are words seen in lower case elsewhere in the
    passage: a capitalised sentence-initial word among them is an ordinary word ("Founded", "Located")."""
    candidates: list[Mention] = []
    for m in _QUOTED.finditer(sentence):
        group = next(i for i in range(1, 5) if m.group(i) is not None)
        inner = m.group(group).strip().strip(",.;: ")
        if inner and inner[0].isalnum() and len(inner.split()) <= 12:
            offset = m.start(group) + m.group(group).find(inner)
            candidates.append(Mention(offset, offset + len(inner), inner, "quoted"))
    candidates.extend(Mention(m.start(), m.end(), m.group(), "date") for m in _DATE.finditer(sentence))
    candidates.extend(_name_spans(sentence, lowercase_words))
    candidates.extend(Mention(m.start(), m.end(), m.group(), "number") for m in _NUMBER.finditer(sentence))
    return _resolve_overlaps(candidates)


_PRECEDENCE = {"quoted": 3, "date": 2, "name": 1, "number": 0}


def _resolve_overlaps(candidates: list[Mention]) -> list[Mention]:
    chosen: list[Mention] = []
    for cand in sorted(candidates, key=lambda c: (-_PRECEDENCE[c.kind], c.start - c.end, c.start)):
        if all(cand.end <= c.start or cand.start >= c.end for c in chosen):
            chosen.append(cand)
    chosen.sort(key=lambda c: c.start)
    return chosen


def _name_spans(sentence: str, lowercase_words: frozenset[str]) -> list[Mention]:
    tokens = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(sentence)]
    spans: list[Mention] = []
    i = 0
    n = len(tokens)
    while i < n:
        word = tokens[i][2]
        if not (word[0].isalpha() and word[0].isupper()):
            i += 1
            continue
        j = i + 1
        # Grow the span: capitalised words, small numbers after a name ("Apollo 11"), connectors that are
        # followed by a capitalised word. A word ending in "." closes the span unless it is an initial.
        while j < n and not _ends_span(tokens[j - 1][2]):
            nxt = tokens[j][2]
            if nxt[0].isalpha() and nxt[0].isupper():
                j += 1
            elif nxt.isdigit() and len(nxt) <= 3:
                j += 1
                break
            elif nxt.lower() in _CONNECTORS and j + 1 < n and tokens[j + 1][2][0].isupper() \
                    and tokens[j + 1][2][0].isalpha():
                j += 2
            else:
                break
        span = _trim(tokens[i:j], at_sentence_start=(i == 0), lowercase_words=lowercase_words)
        if span and len(span) == 1 and _DEMONYM.search(span[0][2]) and j < n and tokens[j][2][0].islower():
            span = []  # "American company", "French actor": an adjective, and a hub that links everything
        if span:
            start, end = span[0][0], span[-1][1]
            text = sentence[start:end].rstrip(".") if not _is_initial(span[-1][2]) else sentence[start:end]
            text = re.sub(r"['’]s?$", "", text)
            if text:
                spans.append(Mention(start, start + len(text), text, "name"))
        i = j
    return spans


def _is_initial(word: str) -> bool:
    return bool(re.fullmatch(r"(?:[A-Z]\.)+", word))


def _ends_span(word: str) -> bool:
    return word.endswith(".") and not _is_initial(word) and word.rstrip(".").lower() not in _ABBREVIATIONS


def _trim(tokens: list[tuple[int, int, str]], *, at_sentence_start: bool,
          lowercase_words: frozenset[str]) -> list[tuple[int, int, str]]:
    # A capitalised "The" inside a sentence belongs to the name ("by The Beatles"); at the start it does not.
    while tokens and tokens[0][2].rstrip(".").lower() in _LEADING_STOP and (
            at_sentence_start or tokens[0][2].lower() != "the" or len(tokens) == 1):
        tokens = tokens[1:]
        at_sentence_start = False
    while tokens and tokens[-1][2].lower() in _CONNECTORS:
        tokens = tokens[:-1]
    if not tokens:
        return []
    if len(tokens) == 1:
        word = tokens[0][2].rstrip(".")
        lower = word.lower()
        if lower in _LONE_STOP or len(word) < 2:
            return []
        # A lone capitalised word that the passage also uses in lower case is a sentence-initial common word.
        if at_sentence_start and (lower in lowercase_words or lower.endswith(("ed", "ing", "ly"))):
            return []
    return tokens
