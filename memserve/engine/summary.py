"""HEMA compact memory: a rolling summary per session and per namespace, with segment summaries.

HEMA keeps a one-sentence summary that is updated at every turn. Over a very long dialogue such a summary
drifts: each update only sees the previous summary, so an early mistake is copied forward forever. HEMA's
remedy is a second level: every ``segment_size`` episodes the segment is closed and summarised on its own, and a
*summary of the segment summaries* is recomputed from all of them (never from the previous summary-of-summaries),
so an error stays inside the segment that made it.

This module is pure: ``fold`` takes a state and a batch of ``(seq, text)`` episodes and returns the next state
plus the segments it closed. Storage is ``memserve.store.hema_repo``; scheduling is the server's.

Ordering contract (what makes a background worker crash-safe): episodes are folded strictly in ``seq`` order and
each exactly once. A state remembers ``last_seq``; ``fold`` sorts its batch and skips every seq ``<= last_seq``,
so re-delivered or overlapping batches are harmless. The summariser is called once per episode (HEMA updates
every turn), which also makes the result independent of how the episodes were batched. The caller must feed
episodes as "seq > state.last_seq, ascending" (``hema_repo.load_unfolded_episodes``): an episode with a seq
below one already folded is skipped, not inserted into the past.

Two levels share this code: a session's state has its ``session_id``; the namespace-level state has
``session_id == ""`` and is fed every episode of the namespace.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol, runtime_checkable

from memserve.domain.hema import FoldResult, SegmentSummary, SummaryState
from memserve.errors import LLMError

logger = logging.getLogger(__name__)

DEFAULT_SEGMENT_SIZE = 100


# ---------------------------------------------------------------------------------------------------------
# Summarisers


@runtime_checkable
class Summariser(Protocol):
    def update(self, previous: str, new_texts: list[str]) -> str:
        """The rolling summary after ``new_texts`` (oldest first) follow ``previous``."""
        ...

    def combine(self, summaries: list[str]) -> str:
        """One summary of several summaries (oldest first): a segment summary or the summary of segments."""
        ...


_STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are aren't as at be because been before being
    below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during
    each even ever few for from further get gets got had hadn't has hasn't have haven't having he he'd he'll he's
    her here here's hers herself him himself his how how's however i i'd i'll i'm i've if in into is isn't it
    it's its itself just let's like maybe me more most much must mustn't my myself no nor not now of off oh ok
    okay on once one only or other ought our ours ourselves out over own really right said same say says she
    she'd she'll she's should shouldn't so some such sure than thank thanks that that's the their theirs them
    themselves then there there's these they they'd they'll they're they've thing things think this those
    though through to too under until up us very want wants was wasn't we we'd we'll we're we've well were
    weren't what what's when when's where where's which while who who's whom why why's will with won't would
    wouldn't yeah yes yet you you'd you'll you're you've your yours yourself yourselves
    """.split()
)

# Sentence ends: ., !, ? (and CJK full-width forms) followed by space, or any line break.
_SENTENCE_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+|\s*\n+\s*")
# Unicode words; inner apostrophes/hyphens keep "don't" and "New-York" whole.
_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
_ELLIPSIS = "\u2026"


@dataclass(frozen=True)
class _Candidate:
    text: str
    position: int  # order of appearance; the later, the newer
    carried: bool  # came from the previous summary rather than from new turns
    recency: float  # 0..1 among new turns: 1 is the newest


class ExtractiveSummariser:
    """Offline, deterministic summariser: keeps the most salient sentence(s) seen so far, under a cap.

    Method (for ``update``): the previous summary and the new texts are split into sentences. Each content word
    (not a stop word; lower-cased) gets a weight: the number of candidate sentences it occurs in, counting a
    sentence of the previous summary ``carry_weight`` times (it stands for many earlier turns), doubled for
    proper nouns (capitalised other than as a sentence's first word, or all-caps acronyms) and x1.3 for numbers,
    which are what people ask about later. A sentence scores the sum of its distinct words' weights divided by
    the square root of their count (so long sentences do not win by length alone), multiplied by
    ``carry_factor`` if it comes from the previous summary, or by ``1 + recency_boost * recency`` if it is new.
    The best sentences are kept greedily while they fit ``max_chars`` (at most ``max_sentences``), then shown
    in their original order; a single sentence longer than the cap is cut at a word with an ellipsis.

    The effect: a sentence survives while the conversation keeps coming back to its words, and is displaced by
    newer sentences that add new salient terms. ``combine`` uses the same scoring with no recency preference,
    so the themes shared by many summaries win.
    """

    def __init__(
        self,
        *,
        max_chars: int = 300,
        max_sentences: int = 2,
        combine_max_chars: int = 600,
        combine_max_sentences: int = 4,
        carry_weight: float = 1.5,
        carry_factor: float = 0.9,
        recency_boost: float = 0.5,
    ) -> None:
        if max_chars < 8 or combine_max_chars < 8:
            raise ValueError("summary caps must be at least 8 characters")
        if max_sentences < 1 or combine_max_sentences < 1:
            raise ValueError("summaries keep at least one sentence")
        self.max_chars = max_chars
        self.max_sentences = max_sentences
        self.combine_max_chars = combine_max_chars
        self.combine_max_sentences = combine_max_sentences
        self.carry_weight = carry_weight
        self.carry_factor = carry_factor
        self.recency_boost = recency_boost

    def update(self, previous: str, new_texts: list[str]) -> str:
        candidates: list[_Candidate] = []
        for sentence in split_sentences(previous):
            candidates.append(_Candidate(sentence, len(candidates), carried=True, recency=0.0))
        texts = [t for t in new_texts if t and t.strip()]
        for i, text in enumerate(texts):
            recency = (i + 1) / len(texts)
            for sentence in split_sentences(text):
                candidates.append(_Candidate(sentence, len(candidates), carried=False, recency=recency))
        return self._select(candidates, self.max_chars, self.max_sentences, use_recency=True)

    def combine(self, summaries: list[str]) -> str:
        candidates: list[_Candidate] = []
        for summary in summaries:
            for sentence in split_sentences(summary):
                candidates.append(_Candidate(sentence, len(candidates), carried=False, recency=0.0))
        return self._select(candidates, self.combine_max_chars, self.combine_max_sentences, use_recency=False)

    def _select(self, candidates: list[_Candidate], max_chars: int, max_sentences: int, *, use_recency: bool) -> str:
        candidates = _dedupe_keep_newest(candidates)
        if not candidates:
            return ""
        terms = [_terms(c.text) for c in candidates]
        weights: dict[str, float] = {}
        for cand, (words, _proper) in zip(candidates, terms, strict=True):
            source = self.carry_weight if cand.carried else 1.0
            for word in words:
                weights[word] = weights.get(word, 0.0) + source
        proper_all = set().union(*(p for _, p in terms))
        for word in weights:
            if word in proper_all:
                weights[word] *= 2.0
            if any(ch.isdigit() for ch in word):
                weights[word] *= 1.3

        scored: list[tuple[float, int, _Candidate]] = []
        for cand, (words, _) in zip(candidates, terms, strict=True):
            base = sum(weights[w] for w in words) / math.sqrt(len(words)) if words else 0.0
            if use_recency:
                base *= self.carry_factor if cand.carried else 1.0 + self.recency_boost * cand.recency
            scored.append((base, cand.position, cand))
        # Best first; on equal scores the newer sentence wins, deterministically.
        scored.sort(key=lambda item: (-item[0], -item[1]))

        chosen: list[_Candidate] = []
        used = 0
        for _, _, cand in scored:
            if len(chosen) >= max_sentences:
                break
            extra = len(cand.text) + (1 if chosen else 0)
            if not chosen:
                chosen.append(replace(cand, text=trim_to_chars(cand.text, max_chars)))
                used = len(chosen[0].text)
            elif used + extra <= max_chars:
                chosen.append(cand)
                used += extra
        chosen.sort(key=lambda c: c.position)
        return " ".join(c.text for c in chosen)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` with whitespace collapsed; empty pieces dropped."""
    if not text:
        return []
    pieces = (" ".join(p.split()) for p in _SENTENCE_END.split(text))
    return [p for p in pieces if p]


def trim_to_chars(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters, at a word boundary where possible, with an ellipsis."""
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space >= max_chars // 2:  # a word boundary not too far back; otherwise cut mid-word
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + _ELLIPSIS


def _terms(sentence: str) -> tuple[frozenset[str], frozenset[str]]:
    """(content words, the subset that looked like proper nouns or acronyms), lower-cased."""
    words: set[str] = set()
    proper: set[str] = set()
    for index, match in enumerate(_WORD.finditer(sentence)):
        raw = match.group()
        low = raw.lower()
        if low in _STOPWORDS or (len(low) < 2 and not low.isdigit()):
            continue
        words.add(low)
        is_acronym = len(raw) >= 2 and raw.isupper()
        if is_acronym or (index > 0 and raw[0].isupper()):
            proper.add(low)
    return frozenset(words), frozenset(proper)


def _dedupe_keep_newest(candidates: list[_Candidate]) -> list[_Candidate]:
    # A sentence repeated from the summary in a new turn is one sentence, as new as its newest occurrence.
    newest: dict[str, _Candidate] = {}
    for cand in candidates:
        newest[cand.text.casefold()] = cand
    return sorted(newest.values(), key=lambda c: c.position)


# ---------------------------------------------------------------------------------------------------------
# LLM summariser

UPDATE_SYSTEM_PROMPT = (
    "You maintain the compact memory of a conversation: ONE sentence that states what the conversation is "
    "about so far: who is involved, the main topics, decisions, and facts likely to matter later. Keep facts "
    "from the current summary unless the new turns contradict them. Reply with the single sentence only, at "
    "most {max_words} words, with no preamble, quotes or markdown."
)
UPDATE_USER_TEMPLATE = "Current summary:\n{previous}\n\nNew turns (oldest first):\n{turns}\n\nUpdated one-sentence summary:"
COMBINE_SYSTEM_PROMPT = (
    "You are given summaries of consecutive parts of one long conversation, oldest first. Write ONE sentence "
    "that summarises the whole conversation, keeping the people, topics and facts that recur or matter most. "
    "Reply with the single sentence only, at most {max_words} words, with no preamble, quotes or markdown."
)
COMBINE_USER_TEMPLATE = "Summaries (oldest first):\n{summaries}\n\nOne-sentence summary of all of them:"

# Keep prompts small whatever the batch: a turn is cut to this many characters, and only the newest turns
# that fit the total are sent (the previous summary already stands for the rest).
_MAX_TURN_CHARS = 2_000
_MAX_PROMPT_CHARS = 12_000
_ANSWER_PREFIX = re.compile(r"^\s*(?:updated\s+)?(?:one-sentence\s+)?summary\s*:\s*", re.IGNORECASE)


class Completion(Protocol):
    @property
    def text(self) -> str: ...


class Completer(Protocol):
    """The slice of ``memserve.llm.LLMClient`` that summaries need (raises ``LLMError`` on failure)."""

    def complete(self, messages: list[dict[str, str]], *, json_mode: bool = False) -> Completion: ...


class LLMSummariser:
    """One-sentence summaries from an LLM; falls back to ``ExtractiveSummariser`` when the call fails.

    Sampling settings (temperature 0) belong to the ``LLMClient`` configuration: ``complete`` takes none, and
    its cache keys on the prompt, so identical prompts give identical summaries on replay.
    """

    def __init__(
        self,
        completer: Completer,
        *,
        fallback: Summariser | None = None,
        max_chars: int = 400,
        max_words: int = 40,
    ) -> None:
        self._completer = completer
        self._fallback = fallback or ExtractiveSummariser()
        self.max_chars = max_chars
        self.max_words = max_words

    def update(self, previous: str, new_texts: list[str]) -> str:
        turns = _newest_that_fit([t.strip()[:_MAX_TURN_CHARS] for t in new_texts if t and t.strip()])
        if not turns:
            return previous
        messages = [
            {"role": "system", "content": UPDATE_SYSTEM_PROMPT.format(max_words=self.max_words)},
            {
                "role": "user",
                "content": UPDATE_USER_TEMPLATE.format(
                    previous=previous.strip() or "(empty: this is the start of the conversation)",
                    turns="\n".join(f"- {t}" for t in turns),
                ),
            },
        ]
        answer = self._ask(messages, "update")
        return answer if answer is not None else self._fallback.update(previous, new_texts)

    def combine(self, summaries: list[str]) -> str:
        parts = _newest_that_fit([s.strip()[:_MAX_TURN_CHARS] for s in summaries if s and s.strip()])
        if not parts:
            return ""
        if len(parts) == 1:
            return trim_to_chars(parts[0], self.max_chars)
        messages = [
            {"role": "system", "content": COMBINE_SYSTEM_PROMPT.format(max_words=self.max_words)},
            {
                "role": "user",
                "content": COMBINE_USER_TEMPLATE.format(summaries="\n".join(f"{i + 1}. {s}" for i, s in enumerate(parts))),
            },
        ]
        answer = self._ask(messages, "combine")
        return answer if answer is not None else self._fallback.combine(summaries)

    def _ask(self, messages: list[dict[str, str]], what: str) -> str | None:
        """The cleaned answer, or None (logged) when the LLM failed or said nothing usable."""
        try:
            response = self._completer.complete(messages)
        except LLMError as err:
            logger.warning("summary %s: LLM call failed (%s: %s); using the extractive summariser", what, err.reason, err.message)
            self._note("summary_fallback")
            return None
        text = clean_llm_sentence(response.text, self.max_chars)
        if not text:
            logger.warning("summary %s: LLM returned an empty summary; using the extractive summariser", what)
            self._note("summary_fallback")
            return None
        return text

    def _note(self, kind: str) -> None:
        note = getattr(self._completer, "note", None)  # LLMClient counts it; other completers need not
        if note is not None:
            note(kind)


def clean_llm_sentence(raw: str, max_chars: int) -> str:
    """Strip the wrappers models add ("Summary:", quotes, line breaks) and enforce the length cap."""
    text = " ".join((raw or "").split())
    text = _ANSWER_PREFIX.sub("", text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return trim_to_chars(text, max_chars) if text else ""


def _newest_that_fit(texts: list[str]) -> list[str]:
    kept: list[str] = []
    total = 0
    for text in reversed(texts):
        if kept and total + len(text) > _MAX_PROMPT_CHARS:
            break
        kept.append(text)
        total += len(text)
    kept.reverse()
    return kept


# ---------------------------------------------------------------------------------------------------------
# State and folding


def fold(
    state: SummaryState,
    new_episodes: Iterable[tuple[int, str]],
    summariser: Summariser,
    *,
    now: datetime,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    segments: Sequence[SegmentSummary] = (),
    notes_every: int | None = None,
) -> FoldResult:
    """Fold ``new_episodes`` (``(seq, text)``, any order, duplicates allowed) into ``state``.

    ``segments`` are this state's already-closed segments; they are only read when a segment closes, to
    recompute the summary of segments from all of them, and must then be complete (idx 0..segment_count-1).
    """
    if segment_size < 1:
        raise ValueError("segment_size must be at least 1")
    every = notes_every if notes_every is not None else max(1, segment_size // 10)
    if every < 1:
        raise ValueError("notes_every must be at least 1")

    all_segments = sorted(segments, key=lambda s: s.idx)
    closed: list[SegmentSummary] = []
    s = state
    for seq, text in sorted(new_episodes, key=lambda item: item[0]):
        if seq <= s.last_seq:
            continue  # already folded: a re-delivered batch, or a duplicate inside this one
        rolling = summariser.update(s.text, [text]) if text and text.strip() else s.text
        open_count = s.open_count + 1
        notes = s.open_notes
        if open_count % every == 0 and rolling and (not notes or notes[-1] != rolling):
            notes = (*notes, rolling)
        s = replace(
            s,
            text=rolling,
            episode_count=s.episode_count + 1,
            last_seq=seq,
            open_first_seq=s.open_first_seq if s.open_first_seq is not None else seq,
            open_count=open_count,
            open_notes=notes,
            update_time=now,
        )
        if open_count >= segment_size:
            segment, s = _close_segment(s, summariser, all_segments, now)
            closed.append(segment)
            all_segments.append(segment)
    return FoldResult(state=s, closed_segments=tuple(closed))


def _close_segment(
    s: SummaryState, summariser: Summariser, prior: list[SegmentSummary], now: datetime
) -> tuple[SegmentSummary, SummaryState]:
    if [seg.idx for seg in prior] != list(range(s.segment_count)):
        raise ValueError(
            f"closing segment {s.segment_count} of {s.namespace!r}/{s.session_id!r} needs all earlier segments; "
            f"got indexes {[seg.idx for seg in prior]}"
        )
    material = list(s.open_notes)
    if s.text and (not material or material[-1] != s.text):
        material.append(s.text)
    assert s.open_first_seq is not None  # an open segment with episodes always has a first seq
    segment = SegmentSummary(
        namespace=s.namespace,
        session_id=s.session_id,
        idx=s.segment_count,
        first_seq=s.open_first_seq,
        last_seq=s.last_seq,
        text=summariser.combine(material),
        update_time=now,
    )
    # Recomputed from every segment, never from the previous summary of segments: errors must not cascade.
    segments_summary = summariser.combine([seg.text for seg in prior] + [segment.text])
    return segment, replace(
        s,
        segments_summary=segments_summary,
        segment_count=s.segment_count + 1,
        open_first_seq=None,
        open_count=0,
        open_notes=(),
    )
