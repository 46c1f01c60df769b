"""A cached LLM completion: the record ``memserve.llm.LLMCache`` implementations keep (store/llm_cache_repo.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CachedResponse:
    """What is worth keeping of one completion (the cost is what it cost the first time)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
