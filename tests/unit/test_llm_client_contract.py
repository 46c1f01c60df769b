"""Contract of the one LLM boundary (``LLMClient.complete``, the ``Completer`` that extraction and summaries
use), run with every response cache behind it (none, the in-memory reference, DuckDB), through litellm's real
client against the replay server. The cache clauses are also run over broken caches to prove they catch them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memserve.engine.summary import Completer
from memserve.errors import LLMError
from memserve.llm import CachedResponse, InMemoryLLMCache, LLMCache, LLMClient, LLMSettings
from memserve.store.db import Database
from memserve.store.llm_cache_repo import DuckDBLLMCache
from tests.fakes.openai_replay import ReplayServer, Reply

MESSAGES = [{"role": "user", "content": "Name the capital of France."}]
UNICODE_PROMPT = [{"role": "user", "content": "東京 → Kyōto? Émile 🚀 «quote» \u200b"}]
UNICODE_REPLY = "京都です — Émile says «oui» 🚀"


@pytest.fixture()
def server() -> Iterator[ReplayServer]:
    with ReplayServer() as replay:
        yield replay


@pytest.fixture(params=["no-cache", "in-memory", "duckdb"])
def make_client(request: pytest.FixtureRequest, server: ReplayServer, tmp_path: Path
                ) -> Iterator[Callable[..., LLMClient]]:
    db: Database | None = None
    cache: LLMCache | None = None
    if request.param == "in-memory":
        cache = InMemoryLLMCache()
    elif request.param == "duckdb":
        db = Database(tmp_path / "m.duckdb")
        db.migrate()
        cache = DuckDBLLMCache(db)

    def make(**overrides: object) -> LLMClient:
        settings: dict[str, object] = dict(model=server.litellm_model, api_base=server.url, api_key="sk-test",
                                           timeout_s=10.0, max_retries=2, backoff_base_s=0.0, backoff_cap_s=0.0)
        settings.update(overrides)
        return LLMClient(LLMSettings(**settings), cache=cache)  # type: ignore[arg-type]

    make.cached = cache is not None  # type: ignore[attr-defined]
    yield make
    if db is not None:
        db.close()


def test_is_a_completer_and_returns_the_models_text(make_client: Callable[..., LLMClient],
                                                    server: ReplayServer) -> None:
    server.default = Reply.text("Paris", prompt_tokens=7, completion_tokens=1)
    client = make_client()
    response = client.complete(MESSAGES)
    assert response.text == "Paris" and not response.cached
    assert (response.prompt_tokens, response.completion_tokens) == (7, 1)
    assert client.usage()["calls"] == 1 and client.usage()["failed_calls"] == 0
    completer: Completer = client  # the slice summaries rely on (checked by mypy; Completer is static only)
    assert completer.complete(MESSAGES).text == "Paris"


def test_same_prompt_same_answer_and_the_cache_saves_the_call(make_client: Callable[..., LLMClient],
                                                              server: ReplayServer) -> None:
    server.default = Reply.text("Paris")
    client = make_client()
    first, second = client.complete(MESSAGES), client.complete(MESSAGES)
    assert first.text == second.text == "Paris"
    cached = make_client.cached  # type: ignore[attr-defined]
    assert second.cached is cached
    assert len(server.requests) == (1 if cached else 2)
    # json mode is part of the request, so it is part of the key: a different answer may come back.
    client.complete(MESSAGES, json_mode=True)
    assert server.requests[-1].body["response_format"] == {"type": "json_object"}
    assert len(server.requests) == (2 if cached else 3)


def test_unicode_round_trips(make_client: Callable[..., LLMClient], server: ReplayServer) -> None:
    server.default = Reply.text(UNICODE_REPLY)
    client = make_client()
    assert client.complete(UNICODE_PROMPT).text == UNICODE_REPLY
    assert server.requests[0].body["messages"][0]["content"] == UNICODE_PROMPT[0]["content"]
    assert client.complete(UNICODE_PROMPT).text == UNICODE_REPLY  # from the cache, where there is one


def test_a_client_error_is_not_retried_and_raises_llm_error(make_client: Callable[..., LLMClient],
                                                            server: ReplayServer) -> None:
    server.default = Reply.error(400, "bad request")
    client = make_client()
    with pytest.raises(LLMError) as err:
        client.complete(MESSAGES)
    assert len(server.requests) == 1
    assert server.litellm_model in err.value.message and "400" in err.value.message
    assert client.usage()["failed_calls"] == 1


def test_transient_errors_are_retried_then_succeed(make_client: Callable[..., LLMClient],
                                                   server: ReplayServer) -> None:
    server.on("capital", [Reply.error(503), Reply.error(429), Reply.text("Paris")])
    assert make_client().complete(MESSAGES).text == "Paris"
    assert len(server.requests) == 3


def test_persistent_failures_raise_after_the_retries(make_client: Callable[..., LLMClient],
                                                     server: ReplayServer) -> None:
    server.default = Reply.error(503)
    with pytest.raises(LLMError):
        make_client(max_retries=2).complete(MESSAGES)
    assert len(server.requests) == 3


def test_an_empty_completion_is_retried_and_never_cached(make_client: Callable[..., LLMClient],
                                                         server: ReplayServer) -> None:
    server.on("capital", [Reply.text(""), Reply.text("Paris")])
    client = make_client()
    assert client.complete(MESSAGES).text == "Paris"
    server.on("capital", Reply.text(""))  # the first rule still matches: it now repeats "Paris"
    assert client.complete(MESSAGES).text == "Paris"


def test_a_failure_is_not_cached(make_client: Callable[..., LLMClient], server: ReplayServer) -> None:
    server.on("capital", [Reply.error(400), Reply.text("Paris")])
    client = make_client()
    with pytest.raises(LLMError):
        client.complete(MESSAGES)
    assert client.complete(MESSAGES).text == "Paris"


# -- the cache contract, and broken caches it must reject ----------------------------------------------------

def check_cache(cache: LLMCache) -> None:
    assert isinstance(cache, LLMCache)
    assert cache.get("missing") is None
    response = CachedResponse(UNICODE_REPLY, 3, 4, 0.25)
    cache.put("k1", "m", response)
    assert cache.get("k1") == response
    cache.put("k2", "m", CachedResponse("other", 1, 1, 0.0))
    assert cache.get("k1") == response and cache.get("k2") == CachedResponse("other", 1, 1, 0.0)


def test_cache_contract(tmp_path: Path) -> None:
    check_cache(InMemoryLLMCache())
    db = Database(tmp_path / "m.duckdb")
    db.migrate()
    try:
        check_cache(DuckDBLLMCache(db))
    finally:
        db.close()


class OneSlotCache(InMemoryLLMCache):
    """Keeps only the last entry: a later put evicts an earlier key."""

    def put(self, key: str, model: str, response: CachedResponse) -> None:
        self.__init__()  # type: ignore[misc]
        super().put(key, model, response)


class LossyTextCache(InMemoryLLMCache):
    def get(self, key: str) -> CachedResponse | None:
        hit = super().get(key)
        return None if hit is None else CachedResponse(hit.text.encode("ascii", "replace").decode(),
                                                       hit.prompt_tokens, hit.completion_tokens, hit.cost_usd)


@pytest.mark.parametrize("broken", [OneSlotCache, LossyTextCache])
def test_the_cache_contract_rejects_a_broken_cache(broken: type[InMemoryLLMCache]) -> None:
    with pytest.raises(AssertionError):
        check_cache(broken())
