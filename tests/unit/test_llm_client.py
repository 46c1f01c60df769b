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
