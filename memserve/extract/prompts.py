"""Prompt files: chat transcripts in ``prompts/*.txt``, sections headed ``### system|user|assistant``,
placeholders in ``string.Template`` syntax ($passage) so JSON braces need no escaping."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from string import Template

_DIR = Path(__file__).with_name("prompts")
_HEADER = re.compile(r"^### (system|user|assistant)[ \t]*$", re.MULTILINE)


@cache
def _load(name: str) -> tuple[tuple[str, str], ...]:
    text = (_DIR / f"{name}.txt").read_text(encoding="utf-8")
    parts = _HEADER.split(text)
    if parts[0].strip():
        raise ValueError(f"prompt {name}: text before the first '### role' header")
    return tuple((role, body.strip()) for role, body in zip(parts[1::2], parts[2::2], strict=True))


def render(name: str, **values: str) -> list[dict[str, str]]:
    """The prompt as chat messages with placeholders filled (a missing value raises KeyError)."""
    return [{"role": role, "content": Template(body).substitute(values)} for role, body in _load(name)]
