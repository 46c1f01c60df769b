"""LLMClient against a local OpenAI-compatible replay server, through litellm's real client."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before anything imports litellm

import pytest

from memserve.errors import ConfigError, LLMError
from memserve.llm import InMemoryLLMCache, LLMClient, LLMSettings, cache_key
from tests.fakes.openai_replay import ReplayServer, Reply, replay_server  # noqa: F401  (fixture)
from tests.support.gates import wait_until

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hi"}]


def make_client(server: ReplayServer, cache: InMemoryLLMCache | None = None, **overrides: object) -> LLMClient:
    settings = dict(model=server.litellm_model, api_base=server.url, api_key="sk-test", timeout_s=5.0,
                    max_retries=3, backoff_base_s=0.01, backoff_cap_s=0.05)
    settings.update(overrides)
    return LLMClient(LLMSettings(**settings), cache=cache)  # type: ignore[arg-type]


def test_importing_memserve_llm_does_not_import_litellm() -> None:
    import subprocess
    import sys

    code = "import sys, memserve.llm, memserve.extract; print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.stdout.strip() == "False"


def test_happy_path_returns_text_and_usage(replay_server: ReplayServer) -> None:
    replay_server.on("say hi", Reply.text("hi", prompt_tokens=7, completion_tokens=1))
    client = make_client(replay_server)
    response = client.complete(MESSAGES)
    assert response.text == "hi"
    assert (response.prompt_tokens, response.completion_tokens, response.cached) == (7, 1, False)
    assert response.cost_usd == 0.0  # unknown model: no price, no crash
    sent = replay_server.requests[0].body
    assert sent["messages"] == MESSAGES and sent["temperature"] == 0
    assert "response_format" not in sent
    usage = client.usage()
    assert usage["calls"] == 1 and usage["prompt_tokens"] == 7 and usage["completion_tokens"] == 1
    assert usage["failed_calls"] == 0 and usage["cached_calls"] == 0


def test_json_mode_sends_response_format(replay_server: ReplayServer) -> None:
    replay_server.default = Reply.json({"ok": True})
    make_client(replay_server).complete(MESSAGES, json_mode=True)
    assert replay_server.requests[0].body["response_format"] == {"type": "json_object"}


def test_cached_prompt_makes_no_second_http_call(replay_server: ReplayServer) -> None:
    replay_server.default = Reply.text("hello", prompt_tokens=3, completion_tokens=2)
    cache = InMemoryLLMCache()
    client = make_client(replay_server, cache=cache)
    first = client.complete(MESSAGES)
    second = client.complete(MESSAGES)
    assert len(replay_server.requests) == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.text == "hello" and second.prompt_tokens == 3
    usage = client.usage()
    assert usage["calls"] == 2 and usage["cached_calls"] == 1 and usage["prompt_tokens"] == 3
    # json mode is part of the key: a different request, so a new call
    client.complete(MESSAGES, json_mode=True)
    assert len(replay_server.requests) == 2
    # a second client sharing the cache (e.g. after a restart) reuses it too
    make_client(replay_server, cache=cache).complete(MESSAGES)
    assert len(replay_server.requests) == 2


def test_cache_key_is_canonical() -> None:
    a = cache_key("m", [{"role": "user", "content": "x"}], {"temperature": 0, "max_tokens": 5})
    b = cache_key("m", [{"content": "x", "role": "user"}], {"max_tokens": 5, "temperature": 0})
    assert a == b and len(a) == 64
    assert a != cache_key("m2", [{"role": "user", "content": "x"}], {"temperature": 0, "max_tokens": 5})


def test_429_once_then_success(replay_server: ReplayServer) -> None:
    replay_server.on("say hi", [Reply.error(429, "slow down"), Reply.text("hi")])
    client = make_client(replay_server)
    assert client.complete(MESSAGES).text == "hi"
    assert len(replay_server.requests) == 2  # exactly one retry: the SDK's own retries are off
    assert client.usage()["failed_calls"] == 0


def test_500_then_success(replay_server: ReplayServer) -> None:
    replay_server.enqueue(Reply.error(500, "boom"), Reply.error(503, "busy"))
    replay_server.default = Reply.text("hi")
    assert make_client(replay_server).complete(MESSAGES).text == "hi"
    assert len(replay_server.requests) == 3


def test_timeout_then_success(replay_server: ReplayServer) -> None:
    never = threading.Event()  # the first answer is held until the test ends: that attempt can only time out
    replay_server.on("say hi", [Reply.text("late").held(never), Reply.text("on time")])
    client = make_client(replay_server, timeout_s=1.0)
    assert client.complete(MESSAGES).text == "on time"
    assert not never.is_set()  # the client gave up on the held attempt instead of waiting for it
    # 2 requests; one more per retry if a loaded machine also kept "on time" past the 1 s timeout.
    assert 2 <= len(replay_server.requests) <= 4


def test_persistent_429_raises_llm_error_after_retries(replay_server: ReplayServer) -> None:
    replay_server.default = Reply.error(429, "quota")
    client = make_client(replay_server, max_retries=2)
    with pytest.raises(LLMError) as info:
        client.complete(MESSAGES)
    assert len(replay_server.requests) == 3
    assert "429" in info.value.message and "gave up after 3" in info.value.message
    assert client.usage()["failed_calls"] == 1


@pytest.mark.parametrize("status", [400, 401])
def test_client_errors_are_not_retried(replay_server: ReplayServer, status: int) -> None:
    replay_server.default = Reply.error(status, "nope")
    with pytest.raises(LLMError) as info:
        make_client(replay_server).complete(MESSAGES)
    assert len(replay_server.requests) == 1
    assert "not retryable" in info.value.message


def test_malformed_http_body_is_an_llm_error(replay_server: ReplayServer) -> None:
    replay_server.default = Reply.raw(b'{"choices": [{"message": {"content": "tru')
    with pytest.raises(LLMError):
        make_client(replay_server, max_retries=1).complete(MESSAGES)


def test_connection_refused_is_retried_then_llm_error() -> None:
    with ReplayServer() as server:
        url, model = server.url, server.litellm_model
    client = LLMClient(LLMSettings(model=model, api_base=url, api_key="k", timeout_s=2, max_retries=1,
                                   backoff_base_s=0.01, backoff_cap_s=0.01))
    with pytest.raises(LLMError) as info:
        client.complete(MESSAGES)
    assert "gave up after 2" in info.value.message


def test_concurrency_is_bounded(replay_server: ReplayServer) -> None:
    gate = threading.Event()  # every answer waits here, so the calls overlap whatever the machine's speed
    replay_server.default = Reply.text("ok").held(gate)
    client = make_client(replay_server, max_concurrency=2)
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    original = client._call_once

    def spy(*args: object, **kwargs: object) -> object:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            return original(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                in_flight -= 1

    client._call_once = spy  # type: ignore[method-assign]
    threads = [threading.Thread(target=client.complete,
                                args=([{"role": "user", "content": f"q{i}"}],)) for i in range(6)]
    for t in threads:
        t.start()
    wait_until(lambda: len(replay_server.requests) == 2, "two calls to reach the LLM")
    assert in_flight == 2  # the other four wait for a slot (they would be in flight too without the bound)
    gate.set()
    for t in threads:
        t.join()
    assert peak == 2 and len(replay_server.requests) == 6
    assert client.usage()["calls"] == 6


def test_settings_validation() -> None:
    with pytest.raises(ConfigError):
        LLMSettings(model="")
    with pytest.raises(ConfigError):
        LLMSettings(model="openai/x", max_concurrency=0)
    assert "sk-secret" not in repr(LLMSettings(model="openai/x", api_key="sk-secret"))


# -- prompt styles and response formats (issue 15) ---------------------------------------------------------------

FEW_SHOT = [{"role": "system", "content": "List the names."},
            {"role": "user", "content": "Passage: Ada met Alan."}, {"role": "assistant", "content": '["Ada", "Alan"]'},
            {"role": "user", "content": "Passage: Bo met Cy."}]


def test_completion_style_renders_few_shot_text_on_the_completions_route(replay_server: ReplayServer) -> None:
    replay_server.default = Reply.text(' ["Bo", "Cy"]')
    client = make_client(replay_server, prompt_style="completion")
    assert client.prompt_style == "completion"
    response = client.complete(FEW_SHOT, json_mode=True, schema={"type": "array"})
    assert response.text == '["Bo", "Cy"]'
    sent = replay_server.requests[0]
    assert sent.path.endswith("/completions") and not sent.path.endswith("/chat/completions")
    assert "response_format" not in sent.body and "messages" not in sent.body  # the route has no such field
    assert sent.body["prompt"] == ('List the names.\n\n###\n\nPassage: Ada met Alan.\nAnswer: ["Ada", "Alan"]'
                                   '\n\n###\n\nPassage: Bo met Cy.\nAnswer:')
    assert "\n\n" in sent.body["stop"]
    assert client.usage()["failed_calls"] == 0


def test_completion_style_empty_answer_is_not_retried(replay_server: ReplayServer) -> None:
    replay_server.default = Reply.text("")
    client = make_client(replay_server, prompt_style="completion")
    assert client.complete(FEW_SHOT).text == ""
    assert len(replay_server.requests) == 1  # temperature 0: the same prompt would answer the same


def test_auto_style_picks_completion_for_text_completion_models() -> None:
    from memserve.llm import prompt_style

    assert prompt_style.resolve("auto", "text-completion-openai/gemma") == "completion"
    assert prompt_style.resolve("auto", "openai/gpt-4o-mini") == "chat"
    assert prompt_style.resolve("completion", "hosted_vllm/base") == "completion"
    assert prompt_style.completion_model("hosted_vllm/base") == "text-completion-openai/base"
    assert prompt_style.completion_model("ollama/gemma3") == "ollama/gemma3"
    with pytest.raises(ConfigError):
        LLMSettings(model="openai/x", prompt_style="few-shot")


def test_schema_is_sent_as_json_schema_response_format(replay_server: ReplayServer) -> None:
    replay_server.default = Reply.json({"named_entities": []})
    schema = {"title": "entities", "type": "object"}
    make_client(replay_server).complete(MESSAGES, schema=schema)
    assert replay_server.requests[0].body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "entities", "schema": schema}}


def test_rejected_response_format_falls_back_without_spending_retries(replay_server: ReplayServer) -> None:
    # A llama.cpp-style server: json_schema refused (422), json_object refused (400), plain answers work.
    replay_server.enqueue(Reply.error(422, "body.response_format.type: Input should be 'text' or 'json_object'"),
                          Reply.error(400, "response_format is not supported"))
    replay_server.default = Reply.json({"ok": True})
    client = make_client(replay_server, max_retries=0)  # no retries at all: the fallback must not need them
    assert client.complete(MESSAGES, schema={"type": "object"}).text == '{"ok": true}'
    kinds = [r.body.get("response_format", {}).get("type") for r in replay_server.requests]
    assert kinds == ["json_schema", "json_object", None]
    assert client.usage()["response_format_fallbacks"] == 2
    # remembered: the next call goes straight to what the provider accepts
    client.complete([{"role": "user", "content": "again"}], json_mode=True)
    assert "response_format" not in replay_server.requests[-1].body and len(replay_server.requests) == 4


def test_other_400s_are_still_not_retried(replay_server: ReplayServer) -> None:
    replay_server.default = Reply.error(400, "context length exceeded")
    client = make_client(replay_server)
    with pytest.raises(LLMError, match="not retryable"):
        client.complete(MESSAGES, schema={"type": "object"})
    assert len(replay_server.requests) == 1
    assert client.usage()["response_format_fallbacks"] == 0


def test_note_counts_output_repairs(replay_server: ReplayServer) -> None:
    client = make_client(replay_server)
    client.note("repaired_json")
    client.note("ungrounded_entity", 3)
    client.note("ungrounded_entity", 0)
    assert client.output_counts() == {"repaired_json": 1, "ungrounded_entity": 3}
