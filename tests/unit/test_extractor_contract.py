"""Contract every Extractor must honour, run over all of them: the offline extractor, the LLM OpenIE extractor
through litellm's real client against the replay server (a deterministic stand-in model, and a model that is
down), and the HippoRAG cached-triples import. Broken extractors fed to the same clauses prove it catches them."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memserve.extract import (
    ExtractionResult,
    Extractor,
    HippoRAGCacheExtractor,
    LLMOpenIEExtractor,
    OfflineExtractor,
    Triple,
    normalize_phrase,
)
from tests.conftest import SHARED_DATA
from tests.fakes.broken_extractors import DroppingExtractor, RaisingExtractor, ReorderingExtractor, SilentExtractor
from tests.fakes.openai_replay import RecordedRequest, ReplayServer, Reply, overloaded_server, replay_llm_client

TEXTS = ["Jaws\nJaws is a 1975 film directed by Steven Spielberg.",
         "Steven Spielberg\nSteven Spielberg co-founded DreamWorks in 1994. He is married to Kate Capshaw.",
         "Lake Baikal lies in Siberia. UNESCO listed it in 1996.",
         "Bob is Alice's brother and lives in Paris."]
UNICODE = ["東京は日本の首都です。", "Émile Zola écrivit Germinal à Paris.", "Müller traf O\u2019Brien in Köln 🚀.",
           "مرحبا بالعالم"]
DEGENERATE = ["", "   ", "!!!", "a", "\n\n"]
HUGE = "Alice met Bob in Paris. " * 20_000  # 480k characters


# -- a deterministic stand-in for an OpenIE model, answering the two prompts of memserve/extract/prompts -----

_WORD = re.compile(r"[^\W\d_][\w'\u2019-]*|\S")


def capitalised_runs(passage: str) -> list[str]:
    """Runs of capitalised words within a line: the stand-in model's named entities."""
    names: list[str] = []
    for line in passage.splitlines():
        run: list[str] = []
        for word in [*_WORD.findall(line), "."]:
            if word[0].isupper():
                run.append(word)
            elif run:
                names.append(" ".join(run))
                run = []
    return list(dict.fromkeys(names))


def openie_model(request: RecordedRequest) -> Reply:
    message = request.last_user_message
    passage = message.split("Passage:\n", 1)[-1]
    if "\n\nNamed entities:\n" in passage:
        passage, listed = passage.split("\n\nNamed entities:\n", 1)
        entities = json.loads(listed)["named_entities"]
        return Reply.json({"triples": [[a, "related to", b] for a, b in itertools.pairwise(entities)]})
    return Reply.json({"named_entities": capitalised_runs(passage)[:50]})


@pytest.fixture(scope="module")
def model_server() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        server.responder = openie_model
        yield server


@pytest.fixture(scope="module")
def down_server() -> Iterator[ReplayServer]:
    with overloaded_server() as server:
        yield server


def llm_extractor(server: ReplayServer) -> LLMOpenIEExtractor:
    return LLMOpenIEExtractor(replay_llm_client(server, max_concurrency=4))


def write_hipporag_cache(path: Path) -> Path:
    """A cache file in HippoRAG's format (literal NaN at the top level included) covering TEXTS."""
    docs = []
    for text in TEXTS:
        title, _, body = text.partition("\n")
        result = OfflineExtractor().extract_one(text)
        docs.append({"passage": text, "title": title, "text": body,
                     "extracted_entities": list(result.entities),
                     "extracted_triples": [[t.subject, t.predicate, t.object] for t in result.triples]})
    path.write_text(json.dumps({"docs": docs, "avg_ent_chars": float("nan")}), encoding="utf-8")
    return path


@pytest.fixture(params=["offline", "llm", "llm-down", "hipporag-cache"])
def extractor(request: pytest.FixtureRequest, tmp_path: Path) -> Extractor:
    if request.param == "offline":
        return OfflineExtractor()
    if request.param == "llm":
        return llm_extractor(request.getfixturevalue("model_server"))
    if request.param == "llm-down":
        return llm_extractor(request.getfixturevalue("down_server"))
    return HippoRAGCacheExtractor.from_file(write_hipporag_cache(tmp_path / "openie.json"))


# -- the contract ---------------------------------------------------------------------------------------------

def well_formed(result: ExtractionResult) -> None:
    assert isinstance(result, ExtractionResult)
    assert isinstance(result.entities, tuple) and all(isinstance(e, str) and e for e in result.entities)
    assert isinstance(result.triples, tuple)
    for t in result.triples:
        assert isinstance(t, Triple)
        assert all(isinstance(part, str) and normalize_phrase(part) for part in (t.subject, t.predicate, t.object))
    assert result.dropped_triples >= 0
    if result.error is not None:  # a failed passage carries no facts, and says why
        assert isinstance(result.error, str) and result.error
        assert result.entities == () and result.triples == ()


def is_an_extractor(e: Extractor) -> None:
    assert isinstance(e, Extractor)
    assert isinstance(e.name, str) and e.name


def empty_batch(e: Extractor) -> None:
    assert e.extract([]) == []


def one_result_per_text_in_order(e: Extractor) -> None:
    texts = list(TEXTS)
    batch = e.extract(texts)
    assert texts == TEXTS, "the input list was modified"
    assert len(batch) == len(texts)
    for i, text in enumerate(texts):
        well_formed(batch[i])
        assert batch[i] == e.extract([text])[0], f"result {i} is not the result of text {i}"


def deterministic(e: Extractor) -> None:
    assert e.extract(TEXTS) == e.extract(TEXTS)


def duplicates_get_equal_results(e: Extractor) -> None:
    results = e.extract([TEXTS[0], TEXTS[1], TEXTS[0]])
    assert len(results) == 3 and results[0] == results[2]


def unicode_texts(e: Extractor) -> None:
    results = e.extract(UNICODE)
    assert len(results) == len(UNICODE)
    for result in results:
        well_formed(result)


def degenerate_texts_do_not_raise(e: Extractor) -> None:
    results = e.extract(DEGENERATE)
    assert len(results) == len(DEGENERATE)
    for result in results:
        well_formed(result)


def huge_input_is_bounded(e: Extractor) -> None:
    results = e.extract([HUGE])
    assert len(results) == 1
    result = results[0]
    well_formed(result)
    assert len(result.triples) <= 1_000 and len(result.entities) <= 10_000


CONTRACT = [is_an_extractor, empty_batch, one_result_per_text_in_order, deterministic,
            duplicates_get_equal_results, unicode_texts, degenerate_texts_do_not_raise, huge_input_is_bounded]


@pytest.mark.parametrize("clause", CONTRACT, ids=lambda c: c.__name__)
def test_contract(extractor: Extractor, clause: Callable[[Extractor], None]) -> None:
    clause(extractor)


def test_the_working_extractors_find_facts(model_server: ReplayServer, tmp_path: Path) -> None:
    """The contract holds vacuously for an extractor that fails everything; these must not."""
    for e in (OfflineExtractor(), llm_extractor(model_server),
              HippoRAGCacheExtractor.from_file(write_hipporag_cache(tmp_path / "openie.json"))):
        results = e.extract(TEXTS)
        assert all(r.ok and r.triples for r in results), e.name
        assert len({r.triples for r in results}) == len(TEXTS), e.name  # results depend on the text


def test_a_passage_missing_from_the_cache_fails_visibly(tmp_path: Path) -> None:
    e = HippoRAGCacheExtractor.from_file(write_hipporag_cache(tmp_path / "openie.json"))
    known, missing = e.extract([TEXTS[0], "A passage HippoRAG never saw."])
    assert known.ok and not missing.ok and "not in the cached" in (missing.error or "")


@pytest.mark.slow
def test_contract_on_the_real_musique_cache() -> None:
    path = SHARED_DATA / "musique" / "openie_musique_train_results_ner_gpt-3.5-turbo-1106_1890.json"
    if not path.exists():
        pytest.skip(f"{path} not found")
    e = HippoRAGCacheExtractor.from_file(path)
    passages = list(e._results)[:200]
    results = e.extract(passages)
    assert len(results) == len(passages) and all(r.ok for r in results)
    for result in results:
        well_formed(result)
    for clause in CONTRACT:
        clause(e)


# -- broken extractors: the contract must reject each of them -------------------------------------------------

class ErrorWithFacts:
    """Reports a failure but still returns facts: a caller would store half-extracted passages."""

    name = "broken-error-with-facts"

    def extract(self, texts: list[str]) -> list[ExtractionResult]:
        return [ExtractionResult(r.entities, r.triples, error="partial") for r in OfflineExtractor().extract(texts)]


class MutatesItsInput:
    name = "broken-mutating"

    def extract(self, texts: list[str]) -> list[ExtractionResult]:
        texts.sort()
        return OfflineExtractor().extract(texts)


@pytest.mark.parametrize("broken", [DroppingExtractor, SilentExtractor, ReorderingExtractor, RaisingExtractor,
                                    ErrorWithFacts, MutatesItsInput])
def test_the_contract_rejects_a_broken_extractor(broken: type) -> None:
    failed = []
    for clause in CONTRACT:
        try:
            clause(broken())
        except (AssertionError, RuntimeError):
            failed.append(clause.__name__)
    assert failed, f"{broken.__name__} passed every clause of the contract"
