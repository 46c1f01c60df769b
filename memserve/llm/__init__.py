"""The one LLM boundary: every model call goes through :class:`LLMClient` (litellm underneath).

Importing this package does not import litellm; the first call does.
"""

from memserve.domain.llm import CachedResponse
from memserve.llm.cache import InMemoryLLMCache, LLMCache, cache_key
from memserve.llm.client import LLMClient, LLMResponse
from memserve.llm.settings import LLMSettings

__all__ = ["CachedResponse", "InMemoryLLMCache", "LLMCache", "LLMClient", "LLMResponse", "LLMSettings", "cache_key"]
