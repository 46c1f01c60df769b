"""Contract every Summariser must honour, run over the extractive summariser and the LLM summariser (through
litellm's real client against the replay server: a deterministic stand-in model, and a model that is down, so
the fallback path is held to the same contract). Broken summarisers prove the clauses catch them."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from memserve.engine.summary import ExtractiveSummariser, LLMSummariser, Summariser
from tests.fakes.openai_replay import RecordedRequest, ReplayServer, Reply, overloaded_server, replay_llm_client

TURNS = ["Alice is planning a trip to Kyoto in April.", "She wants to see the cherry blossoms with Bob.",
         "Bob booked the Shinkansen tickets from Tokyo."]
PREVIOUS = "Alice and Bob plan a spring trip to Japan."
UNICODE = ["東京から京都まで新幹線で行きます。", "Émile a réservé l'hôtel à Kyōto.", "Bob 🚀 loves ramen."]
HUGE = "Alice talks about her garden and the tomatoes she grows there. " * 15_000  # ~960k characters
BOUND = 600  # no summary, rolling or combined, is longer than this


def summary_model(request: RecordedRequest) -> Reply:
    """A deterministic stand-in: the rolling summary is the newest turn; a combination joins the parts'
    first words. Answers carry the wrappers real models add, which the summariser must strip."""
    message = request.last_user_message
    if "New turns (oldest first):" in message:
        turns = [line[2:] for line in message.splitlines() if line.startswith("- ")]
        return Reply.text(f"Summary: {' '.join(turns[-1].split()[:30])}")
    parts = [line.split(". ", 1)[-1] for line in message.splitlines() if line[:1].isdigit()]
    return Reply.text(f'"{"; ".join(" ".join(p.split()[:6]) for p in parts)}"')


@pytest.fixture(scope="module")
def model_server() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        server.responder = summary_model
        yield server


@pytest.fixture(scope="module")
def down_server() -> Iterator[ReplayServer]:
    with overloaded_server() as server:
        yield server


def llm_summariser(server: ReplayServer) -> LLMSummariser:
    return LLMSummariser(replay_llm_client(server))


@pytest.fixture(params=["extractive", "llm", "llm-down"])
def summariser(request: pytest.FixtureRequest) -> Summariser:
    if request.param == "extractive":
        return ExtractiveSummariser()
    server = request.getfixturevalue("model_server" if request.param == "llm" else "down_server")
    return llm_summariser(server)


# -- the contract ---------------------------------------------------------------------------------------------

def _words(text: str) -> set[str]:
    return {w.strip(".,;:!?\"'").lower() for w in text.split()} - {""}


def is_a_summariser(s: Summariser) -> None:
    assert isinstance(s, Summariser)


def update_summarises_the_new_turns(s: Summariser) -> None:
    out = s.update(PREVIOUS, TURNS)
    assert isinstance(out, str) and out.strip()
    assert 0 < len(out) <= BOUND and "\n" not in out
    assert _words(out) & (_words(" ".join(TURNS)) | _words(PREVIOUS)), out


def no_new_turns_keep_the_summary(s: Summariser) -> None:
    assert s.update(PREVIOUS, []) == PREVIOUS
    assert s.update(PREVIOUS, ["", "   "]) == PREVIOUS
    assert s.update("", []) == ""


def deterministic(s: Summariser) -> None:
    assert len({s.update(PREVIOUS, TURNS) for _ in range(5)}) == 1
    assert s.combine([PREVIOUS, TURNS[2]]) == s.combine([PREVIOUS, TURNS[2]])


def combine_is_bounded_and_handles_edges(s: Summariser) -> None:
    assert s.combine([]) == ""
    assert s.combine([PREVIOUS]) == PREVIOUS  # one short summary is its own combination
    out = s.combine([PREVIOUS, *TURNS] * 20)
    assert out.strip() and len(out) <= BOUND and "\n" not in out


def unicode_is_kept(s: Summariser) -> None:
    out = s.update("", UNICODE)
    assert out.strip() and len(out) <= BOUND
    assert any(ch in out for ch in "東京都新幹線Éé🚀ō"), out
    assert "\ufffd" not in out  # nothing was mangled on the way


def huge_input_is_bounded(s: Summariser) -> None:
    out = s.update("", [HUGE])
    assert out.strip() and len(out) <= BOUND
    out = s.combine([HUGE, HUGE])
    assert out.strip() and len(out) <= BOUND


CONTRACT = [is_a_summariser, update_summarises_the_new_turns, no_new_turns_keep_the_summary, deterministic,
            combine_is_bounded_and_handles_edges, unicode_is_kept, huge_input_is_bounded]


@pytest.mark.parametrize("clause", CONTRACT, ids=lambda c: c.__name__)
def test_contract(summariser: Summariser, clause: Callable[[Summariser], None]) -> None:
    clause(summariser)


def test_the_llm_prompt_is_bounded_whatever_the_input(model_server: ReplayServer) -> None:
    before = len(model_server.requests)
    llm_summariser(model_server).update("", [HUGE] * 10)
    (request,) = model_server.requests[before:]
    assert sum(len(m["content"]) for m in request.body["messages"]) < 20_000


# -- broken summarisers: the contract must reject each of them ------------------------------------------------

class Concatenates:
    """Appends every turn: grows without bound."""

    def update(self, previous: str, new_texts: list[str]) -> str:
        return " ".join([previous, *new_texts]).strip()

    def combine(self, summaries: list[str]) -> str:
        return " ".join(summaries)


class ForgetsOnEmptyUpdate(ExtractiveSummariser):
    def update(self, previous: str, new_texts: list[str]) -> str:
        return super().update(previous, new_texts) if new_texts else ""


class Sampling(ExtractiveSummariser):
    """Picks a random turn, like an LLM at temperature 1."""

    def update(self, previous: str, new_texts: list[str]) -> str:
        texts = [t for t in new_texts if t.strip()]
        return random.choice(texts)[:300] if texts else previous


class AsciiOnly(ExtractiveSummariser):
    def update(self, previous: str, new_texts: list[str]) -> str:
        return super().update(previous, new_texts).encode("ascii", "replace").decode().replace("?", "\ufffd")


class RaisesOnHugeInput(ExtractiveSummariser):
    def update(self, previous: str, new_texts: list[str]) -> str:
        if sum(map(len, new_texts)) > 100_000:
            raise MemoryError("turn too long")
        return super().update(previous, new_texts)


@pytest.mark.parametrize("broken", [Concatenates, ForgetsOnEmptyUpdate, Sampling, AsciiOnly, RaisesOnHugeInput])
def test_the_contract_rejects_a_broken_summariser(broken: type) -> None:
    random.seed(0)
    failed = []
    for clause in CONTRACT:
        try:
            clause(broken())
        except (AssertionError, MemoryError):
            failed.append(clause.__name__)
    assert failed, f"{broken.__name__} passed every clause of the contract"
