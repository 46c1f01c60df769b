from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta

import pytest

from memserve.domain.clock import FakeClock
from memserve.engine.summary import (
    ExtractiveSummariser,
    LLMSummariser,
    SegmentSummary,
    SummaryState,
    fold,
)
from memserve.errors import LLMError

TURNS = [
    "Alice is planning a trip to Japan in April.",
    "She wants to see the cherry blossoms in Kyoto.",
    "Bob suggested booking the Shinkansen from Tokyo to Kyoto early.",
    "Alice asked whether the JR Pass still covers the Nozomi trains.",
    "The budget for the whole Japan trip is 3000 dollars.",
    "Bob recommended a ryokan near Kyoto station.",
]


def episodes(n: int, start: int = 1, step: int = 3) -> list[tuple[int, str]]:
    # Seqs are global in the store, so a session's seqs have gaps: step > 1 keeps the test honest about that.
    return [(start + i * step, f"{TURNS[i % len(TURNS)]} Turn {i}.") for i in range(n)]


class RecordingSummariser:
    """Deterministic and order-revealing: the summary is the history of what it was fed."""

    def __init__(self) -> None:
        self.updates = 0

    def update(self, previous: str, new_texts: list[str]) -> str:
        self.updates += 1
        return (previous + "|" + "+".join(new_texts)).lstrip("|")

    def combine(self, summaries: list[str]) -> str:
        return "{" + ";".join(summaries) + "}"


# --- extractive summariser ---------------------------------------------------------------------------------


def test_extractive_is_deterministic_and_capped():
    s = ExtractiveSummariser(max_chars=120)
    summary = ""
    for turn in TURNS * 5:
        summary = s.update(summary, [turn])
        assert len(summary) <= 120
    again = ""
    for turn in TURNS * 5:
        again = s.update(again, [turn])
    assert summary == again


def test_extractive_tracks_the_recurring_topic():
    s = ExtractiveSummariser()
    summary = ""
    for turn in TURNS:
        summary = s.update(summary, [turn])
    before = summary
    # The recurring place survives; small talk that shares nothing does not take over.
    summary = s.update(summary, ["Thanks, that sounds good."])
    assert "Kyoto" in summary and "Thanks" not in summary
    assert summary == before


def test_extractive_moves_on_when_the_conversation_does():
    s = ExtractiveSummariser(max_sentences=1)
    summary = s.update("", ["Alice is planning a trip to Japan in April."])
    for _ in range(3):
        summary = s.update(summary, ["Carol's Python service on Kubernetes keeps crashing with OOM errors in Postgres."])
    assert "Kubernetes" in summary


def test_extractive_trims_a_long_sentence_with_ellipsis():
    s = ExtractiveSummariser(max_chars=40)
    out = s.update("", ["Alice " + "really " * 30 + "likes Kyoto."])
    assert len(out) <= 40 and out.endswith("\u2026")


def test_extractive_empty_inputs():
    s = ExtractiveSummariser()
    assert s.update("", []) == ""
    assert s.update("Keep me.", ["   "]) == "Keep me."
    assert s.combine([]) == ""


def test_extractive_combine_prefers_shared_themes():
    s = ExtractiveSummariser(combine_max_sentences=1)
    out = s.combine(["Alice plans a Japan trip to Kyoto.", "The weather was grey.", "Kyoto hotels in Japan are booked by Alice."])
    assert "Kyoto" in out and "weather" not in out


# --- LLM summariser ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeResponse:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False


class FakeCompleter:
    def __init__(self, answers: list[str | Exception]) -> None:
        self.answers = list(answers)
        self.calls: list[list[dict[str, str]]] = []

    def complete(self, messages, *, json_mode=False):
        self.calls.append(messages)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return FakeResponse(answer)


def test_llm_summariser_asks_for_one_sentence_and_cleans_the_answer():
    completer = FakeCompleter(['Summary: "Alice plans an April trip to Kyoto."\n'])
    out = LLMSummariser(completer).update("Alice plans a trip.", ["She wants to see Kyoto in April."])
    assert out == "Alice plans an April trip to Kyoto."
    system, user = completer.calls[0]
    assert "ONE sentence" in system["content"]
    assert "Alice plans a trip." in user["content"] and "Kyoto in April" in user["content"]


def test_llm_summariser_combine():
    completer = FakeCompleter(["Alice and Bob plan a Japan trip."])
    out = LLMSummariser(completer).combine(["Alice plans Japan.", "Bob books trains."])
    assert out == "Alice and Bob plan a Japan trip."
    assert "1. Alice plans Japan." in completer.calls[0][1]["content"]


def test_llm_summariser_falls_back_on_llm_error(caplog):
    completer = FakeCompleter([LLMError("rate limited"), LLMError("down")])
    llm = LLMSummariser(completer)
    extractive = ExtractiveSummariser()
    with caplog.at_level(logging.WARNING, logger="memserve.engine.summary"):
        out = llm.update("", [TURNS[0]])
        combined = llm.combine(["Alice plans Japan.", "Bob books trains."])
    assert out == extractive.update("", [TURNS[0]])
    assert combined == extractive.combine(["Alice plans Japan.", "Bob books trains."])
    assert "extractive" in caplog.text and "LLM_FAILED" in caplog.text


def test_llm_summariser_falls_back_on_empty_answer():
    out = LLMSummariser(FakeCompleter(["  "])).update("", [TURNS[0]])
    assert out == ExtractiveSummariser().update("", [TURNS[0]])


def test_llm_summariser_does_not_swallow_bugs():
    with pytest.raises(ZeroDivisionError):
        LLMSummariser(FakeCompleter([ZeroDivisionError()])).update("", ["x"])


# --- folding -------------------------------------------------------------------------------------------------


def run_in_order(eps, segment_size=4):
    clock = FakeClock()
    result = fold(SummaryState("ns", "s"), eps, RecordingSummariser(), now=clock.now(), segment_size=segment_size)
    return result


def worker_fold(batches, segment_size=4):
    """What the background worker does: fold batch after batch, persisting state and segments in between."""
    clock = FakeClock()
    state = SummaryState("ns", "s")
    segments: list[SegmentSummary] = []
    for batch in batches:
        result = fold(state, batch, RecordingSummariser(), now=clock.now(), segment_size=segment_size, segments=segments)
        state = result.state
        segments.extend(result.closed_segments)
    return state, segments


def test_fold_is_batching_and_redelivery_safe():
    eps = episodes(23)
    expected = run_in_order(eps)
    rng = random.Random(7)
    for _ in range(50):
        # Contiguous batches (the worker reads "seq > last_seq ORDER BY seq"), shuffled inside, some repeated,
        # some overlapping the previous one.
        batches = []
        i = 0
        while i < len(eps):
            j = min(len(eps), i + rng.randint(1, 6))
            start = max(0, i - rng.randint(0, 3))
            batch = eps[start:j]
            rng.shuffle(batch)
            batches.append(batch + rng.sample(batch, k=min(2, len(batch))))
            if rng.random() < 0.3:
                batches.append(list(batch))
            i = j
        state, segments = worker_fold(batches)
        assert state == expected.state
        assert tuple(segments) == expected.closed_segments


def test_fold_skips_already_folded_and_each_episode_once():
    summariser = RecordingSummariser()
    state = fold(SummaryState("ns"), episodes(3), summariser, now=FakeClock().now()).state
    assert summariser.updates == 3
    again = fold(state, episodes(3), summariser, now=FakeClock().now()).state
    assert again == state and summariser.updates == 3
    assert state.episode_count == 3 and state.last_seq == 7


def test_fold_closes_segments_every_n_and_recomputes_summary_of_segments():
    clock = FakeClock()
    eps = [(i, f"t{i}") for i in range(1, 11)]
    result = fold(SummaryState("ns"), eps, RecordingSummariser(), now=clock.now(), segment_size=4, notes_every=2)
    segs = result.closed_segments
    assert [(s.idx, s.first_seq, s.last_seq) for s in segs] == [(0, 1, 4), (1, 5, 8)]
    # Segment material: the rolling-summary snapshots taken every 2 episodes inside the segment.
    assert segs[0].text == "{t1|t2;t1|t2|t3|t4}"
    # The second level is rebuilt from all segment texts, not from its previous value.
    assert result.state.segments_summary == "{" + segs[0].text + ";" + segs[1].text + "}"
    s = result.state
    assert (s.segment_count, s.open_first_seq, s.open_count, s.episode_count, s.last_seq) == (2, 9, 2, 10, 10)
    assert s.open_notes == ("t1|t2|t3|t4|t5|t6|t7|t8|t9|t10",)


def test_fold_closing_a_segment_needs_the_earlier_segments():
    first = fold(SummaryState("ns"), [(1, "a"), (2, "b")], RecordingSummariser(), now=FakeClock().now(), segment_size=2)
    with pytest.raises(ValueError, match="earlier segments"):
        fold(first.state, [(3, "c"), (4, "d")], RecordingSummariser(), now=FakeClock().now(), segment_size=2)
    ok = fold(
        first.state, [(3, "c"), (4, "d")], RecordingSummariser(), now=FakeClock().now(), segment_size=2,
        segments=first.closed_segments,
    )
    assert ok.state.segment_count == 2


def test_fold_stamps_update_time_only_when_something_changed():
    clock = FakeClock()
    state = fold(SummaryState("ns"), [(1, "hello there")], ExtractiveSummariser(), now=clock.now()).state
    assert state.update_time == clock.now()
    clock.advance(timedelta(hours=1))
    assert fold(state, [(1, "hello there")], ExtractiveSummariser(), now=clock.now()).state.update_time != clock.now()


def test_fold_with_the_extractive_summariser_end_to_end():
    eps = episodes(250, step=1)
    result = fold(SummaryState("ns", ""), eps, ExtractiveSummariser(), now=FakeClock().now())
    assert result.state.episode_count == 250 and result.state.segment_count == 2
    assert len(result.closed_segments) == 2 and result.state.segments_summary
    assert "Kyoto" in result.state.segments_summary or "Japan" in result.state.segments_summary
