"""Response cache contract: identical prompts are answered once, then from storage.

The server implements :class:`LLMCache` over DuckDB; :class:`InMemoryLLMCache` is the reference.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from memserve.domain.llm import CachedResponse


@runtime_checkable
class LLMCache(Protocol):
    def get(self, key: str) -> CachedResponse | None: ...

    def put(self, key: str, model: str, response: CachedResponse) -> None: ...


def cache_key(model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> str:
    """sha256 over model + canonical JSON of messages and generation params.

    Canonical = sorted keys, no whitespace, UTF-8 kept as is, so the key is stable across processes and
    Python versions. Everything that can change the answer (temperature, max_tokens, json mode) is in params.
    """
    payload = json.dumps(
        {"model": model, "messages": list(messages), "params": dict(params)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class InMemoryLLMCache:
    """Thread-safe dict-backed cache; the reference implementation and the test double."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[str, CachedResponse]] = {}

    def get(self, key: str) -> CachedResponse | None:
        with self._lock:
            item = self._items.get(key)
        return item[1] if item is not None else None

    def put(self, key: str, model: str, response: CachedResponse) -> None:
        with self._lock:
            self._items[key] = (model, response)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
