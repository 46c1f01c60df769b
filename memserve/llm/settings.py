"""Typed settings for the one LLM boundary."""

from __future__ import annotations

from dataclasses import dataclass, field

from memserve.errors import ConfigError


@dataclass(frozen=True)
class LLMSettings:
    """How to reach one chat model through litellm.

    ``model`` is any litellm model string ("openai/gpt-4o-mini", "ollama/llama3", "hosted_vllm/x", ...);
    ``api_base`` points at a self-hosted OpenAI-compatible server when needed.
    """

    model: str
    api_base: str | None = None
    # repr=False: settings get logged; keys must not be.
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    max_concurrency: int = 8
    temperature: float = 0.0
    max_tokens: int | None = 2048
    # chat | completion | auto (memserve.llm.prompt_style): how messages reach the model.
    prompt_style: str = "auto"

    def __post_init__(self) -> None:
        if not self.model or not self.model.strip():
            raise ConfigError("LLM model must be a non-empty litellm model string", field="model")
        if self.timeout_s <= 0:
            raise ConfigError(f"timeout_s must be > 0, got {self.timeout_s}", field="timeout_s")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {self.max_retries}", field="max_retries")
        if self.backoff_base_s < 0 or self.backoff_cap_s < self.backoff_base_s:
            raise ConfigError("need 0 <= backoff_base_s <= backoff_cap_s", field="backoff_base_s")
        if self.max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {self.max_concurrency}", field="max_concurrency")
        if self.prompt_style not in ("auto", "chat", "completion"):
            raise ConfigError(f"prompt_style must be auto, chat or completion, got {self.prompt_style!r}",
                              field="prompt_style")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}", field="max_tokens")
