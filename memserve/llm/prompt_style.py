"""Prompt styles: how a chat transcript reaches the model.

``chat``: the messages go to the chat-completions route as they are. Right for instruction-tuned models with a
chat template (GPT-4o, Llama-3-Instruct, Qwen-Instruct, Gemma-IT on vLLM, Ollama or llama.cpp).

``completion``: the transcript is rendered as plain few-shot text and sent to the text-completions route
(``/v1/completions``). Right for base models with no chat template (e.g. Gemma 3 270M base), which answer a
chat request with nothing and an instruction with rambling, but continue a few-shot pattern well. Each
``user``/``assistant`` pair of a prompt becomes one worked example; the prompt ends with the last user turn and
an open ``Answer:``, and generation stops where the next example would begin.

``auto``: ``completion`` for litellm's text-completion model strings (``text-completion-openai/...``), else
``chat``. A base model served as ``openai/...`` or ``hosted_vllm/...`` needs ``completion`` set by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

STYLES = ("auto", "chat", "completion")
ANSWER = "Answer:"
_EXAMPLE_BREAK = "\n\n###\n\n"
# Where the next worked example would start: the model has finished its answer. "\n\n" also ends the
# rambling of a base model that keeps writing prose after a one-line answer.
STOP = ["\n\n", "\n###", "###"]
_TEXT_COMPLETION_PREFIXES = ("text-completion-openai/", "text-completion-codestral/")
# Providers whose OpenAI-compatible text-completions route litellm reaches as text-completion-openai.
_OPENAI_COMPATIBLE = ("openai/", "hosted_vllm/", "text-completion-openai/")


def resolve(style: str, model: str) -> str:
    """``chat`` or ``completion`` for this model string."""
    if style not in STYLES:
        raise ValueError(f"prompt style {style!r} is not one of {list(STYLES)}")
    if style != "auto":
        return style
    return "completion" if model.startswith(_TEXT_COMPLETION_PREFIXES) else "chat"


def completion_model(model: str) -> str:
    """The litellm model string that reaches the text-completions route of the same server.

    ``openai/x`` and ``hosted_vllm/x`` (self-hosted OpenAI-compatible servers) become
    ``text-completion-openai/x`` so litellm calls ``/v1/completions``; other providers (e.g. ``ollama/``, whose
    generate API is already prompt-based) are passed through.
    """
    for prefix in _OPENAI_COMPATIBLE:
        if model.startswith(prefix):
            return "text-completion-openai/" + model[len(prefix):]
    return model


def render(messages: Sequence[Mapping[str, Any]]) -> str:
    """The transcript as few-shot text: system text first, then ``<user>\\nAnswer: <assistant>`` examples
    separated by ``###``, ending with the last user turn and an open ``Answer:``."""
    head: list[str] = []
    blocks: list[str] = []
    for message in messages:
        role = message.get("role")
        content = _text(message.get("content"))
        if role == "system":
            head.append(content)
        elif role == "user":
            blocks.append(content)
        elif role == "assistant":
            if blocks:
                blocks[-1] = f"{blocks[-1]}\n{ANSWER} {content}"
            else:  # an answer with no question: keep it as context
                head.append(content)
    if not blocks or ANSWER in blocks[-1].rsplit("\n", 1)[-1]:
        blocks.append("")  # the transcript ended on an answer: ask for the next one
    blocks[-1] = f"{blocks[-1]}\n{ANSWER}".lstrip("\n")
    parts = ["\n".join(head).strip()] if any(h.strip() for h in head) else []
    return _EXAMPLE_BREAK.join(parts + blocks)


def _text(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict)).strip()
    return str(content or "").strip()
