"""LLMOpenIEExtractor through litellm's real client against the local replay server."""

from __future__ import annotations

import json
import os
import threading

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before anything imports litellm

from memserve.extract import Extractor, LLMOpenIEExtractor, Triple
from memserve.extract.prompts import render
from memserve.llm import InMemoryLLMCache, LLMClient, LLMSettings
from tests.fakes.openai_replay import ReplayServer, Reply, replay_server  # noqa: F401  (fixture)

BAIKAL = "Lake Baikal\nLake Baikal lies in Siberia. UNESCO listed it in 1996."
NER = {"named_entities": ["Lake Baikal", "Siberia", "UNESCO", "1996"]}
TRIPLES = {"triples": [["Lake Baikal", "lies in", "Siberia"], ["UNESCO", "listed", "Lake Baikal"],
                       ["Lake Baikal", "listed in", "1996"]]}


def script(server: ReplayServer, passage: str, ner: Reply | list[Reply], triples: Reply | list[Reply]) -> None:
    # The triple prompt repeats the passage, so its (more specific) rule goes first.
    server.on(f"{passage}\n\nNamed entities:", triples)
    server.on(passage, ner)


def make_extractor(server: ReplayServer, cache: InMemoryLLMCache | None = None, **overrides: object
                   ) -> LLMOpenIEExtractor:
    settings = dict(model=server.litellm_model, api_base=server.url, api_key="sk-test", timeout_s=5.0,
                    max_retries=2, backoff_base_s=0.01, backoff_cap_s=0.05, max_concurrency=4)
    settings.update(overrides)
    return LLMOpenIEExtractor(LLMClient(LLMSettings(**settings), cache=cache))  # type: ignore[arg-type]


def test_prompts_render_and_fill_placeholders() -> None:
    ner = render("ner", passage=BAIKAL)
    assert [m["role"] for m in ner] == ["system", "user", "assistant", "user"]
    assert ner[-1]["content"].endswith(BAIKAL)
    json.loads(ner[2]["content"])  # the one-shot answer is itself valid JSON
    triples = render("triples", passage=BAIKAL, named_entities=json.dumps(NER))
    assert json.dumps(NER) in triples[-1]["content"] and "$" not in triples[-1]["content"]
    json.loads(triples[2]["content"])


def test_happy_path(replay_server: ReplayServer) -> None:
    script(replay_server, BAIKAL, Reply.json(NER), Reply.json(TRIPLES))
    extractor = make_extractor(replay_server)
    assert isinstance(extractor, Extractor)
    (result,) = extractor.extract([BAIKAL])
    assert result.ok and result.dropped_triples == 0
    assert result.entities == ("Lake Baikal", "Siberia", "UNESCO", "1996")
    assert result.triples[0] == Triple("Lake Baikal", "lies in", "Siberia") and len(result.triples) == 3
    ner_request, triple_request = replay_server.requests
    assert ner_request.body["response_format"]["type"] == "json_schema" and ner_request.body["temperature"] == 0
    # step two is conditioned on step one's entities
    assert json.dumps({"named_entities": NER["named_entities"]}) in triple_request.last_user_message


def test_malformed_json_is_repaired_and_bad_triples_counted(replay_server: ReplayServer) -> None:
    truncated_ner = '```json\n{"named_entities": ["Lake Baikal", "Siberia", "UNES'
    truncated_triples = ('{"triples": [["Lake Baikal", "lies in", "Siberia"], ["UNESCO", "listed"], '
                         '["Lake Baikal", "listed in", "1996", "by UNESCO"], ["Lake Baikal", "is", null], '
                         '["UNESCO", "listed", "Lake Baik')
    script(replay_server, BAIKAL, Reply.text(truncated_ner), Reply.text(truncated_triples))
    (result,) = make_extractor(replay_server).extract([BAIKAL])
    assert result.ok
    assert result.entities == ("Lake Baikal", "Siberia")
    assert result.triples == (Triple("Lake Baikal", "lies in", "Siberia"),)
    assert result.dropped_triples == 4  # 2-element, 4-element, null object, truncated ["UNESCO", "listed"]


def test_unrecoverable_output_gives_empty_result_not_error(replay_server: ReplayServer) -> None:
    script(replay_server, BAIKAL, Reply.text("I cannot help with that."), Reply.text("nope"))
    (result,) = make_extractor(replay_server).extract([BAIKAL])
    assert result.ok and result.entities == () and result.triples == ()


def test_429_then_success(replay_server: ReplayServer) -> None:
    script(replay_server, BAIKAL, [Reply.error(429, "rate limited"), Reply.json(NER)], Reply.json(TRIPLES))
    extractor = make_extractor(replay_server)
    (result,) = extractor.extract([BAIKAL])
    assert result.ok and len(result.triples) == 3
    assert len(replay_server.requests) == 3
    assert extractor.llm.usage()["failed_calls"] == 0


def test_timeout_then_success(replay_server: ReplayServer) -> None:
    never = threading.Event()  # the first NER answer is held until the test ends: that attempt can only time out
    script(replay_server, BAIKAL, [Reply.json(NER).held(never), Reply.json(NER)], Reply.json(TRIPLES))
    (result,) = make_extractor(replay_server, timeout_s=1.0).extract([BAIKAL])
    assert result.ok and len(result.triples) == 3
    assert not never.is_set()
    assert len(replay_server.requests) >= 3  # held NER + NER retry + triples (more only if a retry timed out too)


def test_cache_reuse_makes_no_http_request(replay_server: ReplayServer) -> None:
    script(replay_server, BAIKAL, Reply.json(NER), Reply.json(TRIPLES))
    cache = InMemoryLLMCache()
    first = make_extractor(replay_server, cache=cache).extract([BAIKAL])
    assert len(replay_server.requests) == 2
    again = make_extractor(replay_server, cache=cache)  # e.g. after a restart, same cache store
    second = again.extract([BAIKAL])
    assert second == first
    assert len(replay_server.requests) == 2
    assert again.llm.usage()["cached_calls"] == 2


def test_one_failing_passage_does_not_sink_the_batch(replay_server: ReplayServer) -> None:
    other = "Mount Elbrus\nMount Elbrus is in Russia."
    script(replay_server, BAIKAL, Reply.json(NER), Reply.json(TRIPLES))
    script(replay_server, other, Reply.error(503, "down"), Reply.json({"triples": []}))
    passages = [BAIKAL, other, BAIKAL.replace("1996", "1997")]
    script(replay_server, passages[2], Reply.json(NER), Reply.json(TRIPLES))
    results = make_extractor(replay_server, max_retries=1).extract(passages)
    assert [r.ok for r in results] == [True, False, True]
    failed = results[1]
    assert failed.entities == () and failed.triples == ()
    assert failed.error is not None and "503" in failed.error and "gave up after 2" in failed.error
    assert len(replay_server.requests_matching(other)) == 2  # the NER call and its one retry; no triple call


def test_many_passages_in_parallel_keep_order(replay_server: ReplayServer) -> None:
    passages = [f"Place {i}\nPlace {i} is in Country {i}." for i in range(12)]
    for i, passage in enumerate(passages):
        script(replay_server, passage, Reply.json({"named_entities": [f"Place {i}", f"Country {i}"]}).after(0.05),
               Reply.json({"triples": [[f"Place {i}", "is in", f"Country {i}"]]}))
    results = make_extractor(replay_server, max_concurrency=4).extract(passages)
    assert [r.triples[0].object for r in results] == [f"Country {i}" for i in range(12)]


def test_small_model_output_is_repaired_or_dropped_and_counted(replay_server: ReplayServer) -> None:
    # What a 270M base model actually does: prose around the JSON, an entity copied from the prompt's example
    # ("Russia" is not in this passage), a dict-shaped triple, a four-part triple, a triple about the example.
    ner = 'Sure! Here are the entities:\n{"named_entities": ["Lake Baikal", "Siberia", "Russia", "UNESCO"]} Hope it helps'
    triples = ('{"triples": [{"subject": "UNESCO", "predicate": "listed", "object": "Lake Baikal"}, '
               '["Lake Baikal", "lies in", "Siberia", "Asia"], ["Irkutsk Oblast", "borders", "Lake Baikal"], '
               '["Lake Baikal", "lies in", "Siberia"]')  # and the array is never closed
    script(replay_server, BAIKAL, Reply.text(ner), Reply.text(triples))
    extractor = make_extractor(replay_server)
    (result,) = extractor.extract([BAIKAL])
    assert result.ok
    assert result.entities == ("Lake Baikal", "Siberia", "UNESCO")
    assert set(result.triples) == {Triple("UNESCO", "listed", "Lake Baikal"), Triple("Lake Baikal", "lies in", "Siberia")}
    assert result.dropped_triples == 2  # the four-part one and the ungrounded one
    assert extractor.llm.output_counts() == {"repaired_json": 2, "ungrounded_entity": 1, "malformed_triple": 1,
                                             "ungrounded_triple": 1}


def test_unparseable_output_is_counted(replay_server: ReplayServer) -> None:
    script(replay_server, BAIKAL, Reply.text("Lake Baikal, Siberia and UNESCO."), Reply.text("no idea"))
    extractor = make_extractor(replay_server)
    (result,) = extractor.extract([BAIKAL])
    assert result.ok and result.entities == () and result.triples == ()
    assert extractor.llm.output_counts() == {"unparseable_output": 2}


def test_completion_style_extracts_through_the_completions_route(replay_server: ReplayServer) -> None:
    script(replay_server, BAIKAL, Reply.text(json.dumps(NER)), Reply.text(json.dumps(TRIPLES) + "\nParagraph"))
    extractor = make_extractor(replay_server, prompt_style="completion")
    (result,) = extractor.extract([BAIKAL])
    assert result.ok and len(result.triples) == 3 and result.entities == tuple(NER["named_entities"])
    assert all(r.path.endswith("/v1/completions") for r in replay_server.requests)
    assert replay_server.requests[0].body["prompt"].endswith(f"Passage:\n{BAIKAL}\nAnswer:")
