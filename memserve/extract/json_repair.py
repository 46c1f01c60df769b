"""Recover JSON from what a model actually returned: code fences, chatter around the object, and output cut
off at max_tokens (the usual failure on long passages with many triples)."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)(?:```|$)", re.DOTALL)
_CLOSER = {"{": "}", "[": "]"}
_MAX_CUT_TRIES = 400  # bounds the worst case on pathological text; real outputs need a handful


def repair_json(text: str) -> Any:
    """Parse ``text`` as JSON, repairing it if needed; raise ValueError if nothing can be recovered.

    Order: as is → inside a ``` fence → the first object/array in the text (trailing chatter ignored) →
    truncation repair: cut back to the last complete element and close the open brackets, so a truncated
    list keeps its longest valid prefix. A half-written element is dropped rather than closed, because a
    truncated entity name ("Barack Ob") is worse than a missing one; only if no complete element exists is an
    open string closed.
    """
    candidates = [text.strip()]
    fenced = _FENCE.search(text)
    if fenced:
        candidates.insert(0, fenced.group(1).strip())
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
    for candidate in candidates:
        start = _first_container(candidate)
        if start is None:
            continue
        body = candidate[start:]
        try:
            value, _ = json.JSONDecoder().raw_decode(body)
            return value
        except json.JSONDecodeError:
            pass
        repaired = _repair_truncated(body)
        if repaired is not None:
            return repaired[0]
    raise ValueError(f"no JSON value could be recovered from {text[:80]!r}")


def _first_container(text: str) -> int | None:
    positions = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    return min(positions) if positions else None


def _repair_truncated(body: str) -> tuple[Any] | None:
    """Try prefixes ending at element boundaries, longest first, each closed with the brackets open there."""
    cuts: list[tuple[int, str]] = []  # (end index of prefix, closers needed)
    stack: list[str] = []
    in_string = False
    escaped = False
    for i, ch in enumerate(body):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                cuts.append((i + 1, _closers(stack)))
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
            cuts.append((i + 1, _closers(stack)))
        elif ch in "}]":
            if stack and _CLOSER[stack[-1]] == ch:
                stack.pop()
            cuts.append((i + 1, _closers(stack)))
            if not stack:
                break  # the first top-level value is complete; raw_decode failed on something inside it
        elif ch == ",":
            cuts.append((i, _closers(stack)))
    for end, closers in reversed(cuts[-_MAX_CUT_TRIES:]):
        try:
            return (json.loads(body[:end] + closers),)
        except json.JSONDecodeError:
            continue
    if in_string:  # nothing complete to keep: close the string itself as a last resort
        try:
            return (json.loads(body + '"' + _closers(stack)),)
        except json.JSONDecodeError:
            return None
    return None


def _closers(stack: list[str]) -> str:
    return "".join(_CLOSER[c] for c in reversed(stack))
