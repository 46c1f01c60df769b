"""LLMClient: the only place memserve talks to a language model (through litellm).

Synchronous on purpose: extraction and summaries run in a worker thread pool, and litellm's sync path is
thread-safe. litellm is imported lazily (its import costs ~2.6 s and, unless LITELLM_LOCAL_MODEL_COST_MAP=True
is set by the launcher first, tries to download a price list), so importing memserve stays cheap.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from memserve.errors import LLMError
from memserve.llm import prompt_style
from memserve.llm.cache import CachedResponse, LLMCache, cache_key
from memserve.llm.retry import backoff_delay_s, is_retryable, retry_after_s, status_of
from memserve.llm.settings import LLMSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LLMResponse:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cached: bool


class _EmptyCompletion(Exception):
    """The provider answered 200 with no text: usually transient (overloaded local servers do it)."""


_litellm_lock = threading.Lock()
_litellm: ModuleType | None = None


def _import_litellm() -> ModuleType:
    global _litellm
    with _litellm_lock:
        if _litellm is None:
            import litellm

            # Otherwise litellm prints "Give Feedback / Get Help" banners to stdout on every failure,
            # which would land in a server's stdout. This is litellm's own switch, not the environment.
            litellm.suppress_debug_info = True
            _litellm = litellm
        return _litellm


class LLMClient:
    """Chat completions with bounded concurrency, retries, a response cache and usage accounting."""

    def __init__(self, settings: LLMSettings, cache: LLMCache | None = None) -> None:
        self.settings = settings
        self._cache = cache
        self._slots = threading.BoundedSemaphore(settings.max_concurrency)
        self._usage_lock = threading.Lock()
        self._usage = {"calls": 0, "cached_calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                       "cost_usd": 0.0, "failed_calls": 0, "response_format_fallbacks": 0}
        self._style = prompt_style.resolve(settings.prompt_style, settings.model)
        # What response format the provider accepts: json_schema > json_object > none, lowered on rejection.
        self._format_level = "json_schema"
        self._output: dict[str, int] = {}
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    @property
    def max_concurrency(self) -> int:
        return self.settings.max_concurrency

    def note(self, kind: str, n: int = 1) -> None:
        """Count one repair or drop of model output (``kind``: e.g. ``repaired_json``, ``ungrounded_entity``):
        the parsers that read this client's answers report here, and the server exports it as metrics."""
        if n:
            with self._usage_lock:
                self._output[kind] = self._output.get(kind, 0) + n

    def output_counts(self) -> dict[str, int]:
        """What :meth:`note` counted since construction, by kind."""
        with self._usage_lock:
            return dict(self._output)

    def usage(self) -> dict[str, float | int]:
        """Counters since construction. ``calls`` counts every complete() (cached ones included)."""
        with self._usage_lock:
            return dict(self._usage)

    @property
    def prompt_style(self) -> str:
        """``chat`` or ``completion``: the resolved style (memserve.llm.prompt_style)."""
        return self._style

    def complete(self, messages: list[dict[str, Any]], *, json_mode: bool = False,
                 schema: Mapping[str, Any] | None = None) -> LLMResponse:
        """One completion; raises LLMError once retries are exhausted or on a non-retryable error.

        ``schema`` (a JSON Schema, implies ``json_mode``) constrains the answer on chat routes that support
        OpenAI's ``json_schema`` response format; a provider that rejects it is asked again with plain JSON
        mode, then with none, and the client remembers what the provider took (no retries are spent on it).
        The completion style sends no response format (the text-completions route has none): its few-shot
        prompts and the parser's repairs do that work.
        """
        json_mode = json_mode or schema is not None
        params = self._generation_params(json_mode, schema)
        key = cache_key(self.settings.model, messages, params)
        if self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                self._count(cached=True, response=None)
                return LLMResponse(hit.text, hit.prompt_tokens, hit.completion_tokens, hit.cost_usd, cached=True)

        try:
            response = self._call_with_retries(messages, params, schema)
        except LLMError:
            self._count_failure()
            raise
        if self._cache is not None:
            self._cache.put(key, self.settings.model, CachedResponse(
                response.text, response.prompt_tokens, response.completion_tokens, response.cost_usd))
        self._count(cached=False, response=response)
        return response

    # -- internals -------------------------------------------------------------------------------------------

    def _generation_params(self, json_mode: bool, schema: Mapping[str, Any] | None) -> dict[str, Any]:
        # Everything here goes into the cache key: change any of it and the cached answer no longer applies.
        # The style and schema are added only when they differ from the defaults, so chat-style keys written
        # before either existed stay valid.
        params: dict[str, Any] = {"temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens,
                                  "json_mode": json_mode}
        if self._style == "completion":
            params["prompt_style"] = "completion"
        elif schema is not None:
            params["schema"] = schema
        return params

    def _call_with_retries(self, messages: list[dict[str, Any]], params: dict[str, Any],
                           schema: Mapping[str, Any] | None = None) -> LLMResponse:
        attempts = self.settings.max_retries + 1
        attempt = 0
        while True:
            fmt = self._response_format(params["json_mode"], schema)
            try:
                # The slot is held only for the HTTP call, not while backing off, so one rate-limited
                # request does not idle a slot other requests could use.
                with self._slots:
                    return self._call_once(messages, params, fmt)
            except _EmptyCompletion as exc:
                last: BaseException = exc
            except Exception as exc:  # classified right below; anything unknown is re-raised untouched
                if fmt is not None and _rejects_response_format(exc):
                    self._downgrade_response_format(fmt, exc)
                    continue  # the same request without what the provider refused: not a retry
                if not _is_llm_transport_error(exc):
                    raise
                if not is_retryable(exc):
                    raise LLMError(self._describe(exc, attempt + 1, retryable=False)) from exc
                last = exc
            attempt += 1
            if attempt >= attempts:
                raise LLMError(self._describe(last, attempts, retryable=True)) from last
            delay = self._delay_before_retry(last, attempt - 1)
            logger.warning("LLM call failed (%s), retry %d/%d in %.2fs", _short(last), attempt,
                           self.settings.max_retries, delay)
            time.sleep(delay)

    def _response_format(self, json_mode: bool, schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if not json_mode or self._style == "completion":
            return None
        with self._usage_lock:
            level = self._format_level
        if schema is not None and level == "json_schema":
            name = str(schema.get("title") or "answer")
            return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema)}}
        if level in ("json_schema", "json_object"):
            return {"type": "json_object"}
        return None

    def _downgrade_response_format(self, sent: dict[str, Any], exc: BaseException) -> None:
        with self._usage_lock:
            before = self._format_level
            self._format_level = "json_object" if sent["type"] == "json_schema" else "none"
            self._usage["response_format_fallbacks"] += 1
        if before != self._format_level:
            logger.warning("%s rejected response_format %s (%s); continuing with %s", self.settings.model,
                           sent["type"], _short(exc, 160), self._format_level)

    def _call_once(self, messages: list[dict[str, Any]], params: dict[str, Any],
                   response_format: dict[str, Any] | None = None) -> LLMResponse:
        litellm = _import_litellm()
        kwargs: dict[str, Any] = {
            "temperature": params["temperature"],
            "timeout": self.settings.timeout_s,
            # We own retries (with jitter and accounting); the SDK's hidden retries would multiply them.
            "num_retries": 0,
            "max_retries": 0,
            # Providers that lack a parameter get it dropped instead of a 400.
            "drop_params": True,
        }
        if params["max_tokens"] is not None:
            kwargs["max_tokens"] = params["max_tokens"]
        if self.settings.api_base:
            kwargs["api_base"] = self.settings.api_base
        if self.settings.api_key:
            kwargs["api_key"] = self.settings.api_key

        if self._style == "completion":
            raw = litellm.text_completion(model=prompt_style.completion_model(self.settings.model),
                                          prompt=prompt_style.render(messages), stop=prompt_style.STOP, **kwargs)
            text = raw.choices[0].text if raw.choices else None
            # Deterministic (temperature 0): an empty answer would come back the same; no retry for it.
            text = (text or "").strip()
        else:
            if response_format is not None:
                kwargs["response_format"] = response_format
            raw = litellm.completion(model=self.settings.model, messages=messages, **kwargs)
            text = raw.choices[0].message.content if raw.choices else None
            if not text:
                raise _EmptyCompletion("provider returned an empty completion")
        usage = getattr(raw, "usage", None)
        return LLMResponse(
            text=text,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost_usd=self._cost(litellm, raw),
            cached=False,
        )

    def _cost(self, litellm: ModuleType, raw: Any) -> float:
        try:
            return float(litellm.completion_cost(completion_response=raw, model=self.settings.model) or 0.0)
        except Exception as exc:  # noqa: BLE001 - litellm raises bare Exception for models missing from its price map
            logger.debug("no price known for %s: %s", self.settings.model, _short(exc))
            return 0.0

    def _delay_before_retry(self, exc: BaseException, attempt: int) -> float:
        with self._rng_lock:
            delay = backoff_delay_s(attempt, self.settings.backoff_base_s, self.settings.backoff_cap_s, self._rng)
        asked = retry_after_s(exc)
        if asked is not None:
            delay = max(delay, min(asked, self.settings.backoff_cap_s))
        return delay

    def _describe(self, exc: BaseException, attempts: int, *, retryable: bool) -> str:
        status = status_of(exc)
        where = f" at {self.settings.api_base}" if self.settings.api_base else ""
        why = "gave up after" if retryable else "not retryable, failed on attempt"
        status_part = f" (HTTP {status})" if status is not None else ""
        return (f"LLM call to {self.settings.model}{where} failed{status_part}: {type(exc).__name__}: "
                f"{_short(exc)} — {why} {attempts} attempt(s)")

    def _count(self, *, cached: bool, response: LLMResponse | None) -> None:
        with self._usage_lock:
            self._usage["calls"] += 1
            if cached:
                self._usage["cached_calls"] += 1
            if response is not None:
                self._usage["prompt_tokens"] += response.prompt_tokens
                self._usage["completion_tokens"] += response.completion_tokens
                self._usage["cost_usd"] += response.cost_usd

    def _count_failure(self) -> None:
        with self._usage_lock:
            self._usage["calls"] += 1
            self._usage["failed_calls"] += 1


def _is_llm_transport_error(exc: BaseException) -> bool:
    """Errors that come from talking to the model (litellm/openai/httpx/socket), as opposed to bugs."""
    import httpx
    import openai

    return isinstance(exc, (openai.OpenAIError, httpx.HTTPError, TimeoutError, ConnectionError))


def _rejects_response_format(exc: BaseException) -> bool:
    """The provider refused the response format itself (a 400/422 naming it, litellm's UnsupportedParamsError,
    or an SDK TypeError about the keyword): asking again without it is the fix, not retrying."""
    text = str(exc).lower()
    if "response_format" not in text and "json_schema" not in text:
        return False
    status = status_of(exc)
    return status is None or status in (400, 422, 500) or isinstance(exc, TypeError)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
