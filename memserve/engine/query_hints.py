"""Conversation hints read from a query's text (pure, deterministic).

Speaker: a query that names exactly one known speaker of the namespace ("What did Caroline research?")
prefers that speaker's turns. Names match case-insensitively as whole words (possessives included); a query
naming two speakers, or none, gets no hint (the question is about both, or about neither).
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def named_speaker(text: str, speakers: Iterable[str]) -> str | None:
    found = []
    for speaker in speakers:
        name = speaker.strip()
        if not name:
            continue
        if re.search(r"(?<![\w])" + re.escape(name) + r"(?![\w])", text, flags=re.IGNORECASE):
            found.append(name)
    # "Jo" inside a query that names "Jo Smith" is the same person: keep only maximal names.
    found = [n for n in found if not any(n != m and n.casefold() in m.casefold() for m in found)]
    return found[0] if len(found) == 1 else None
