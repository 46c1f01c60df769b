from __future__ import annotations

import pytest

from memserve.engine.query_hints import named_speaker

SPEAKERS = ["Caroline", "Melanie", "Jo", "Jo Smith"]


@pytest.mark.parametrize(("query", "want"), [
    ("What did Caroline research?", "Caroline"),
    ("what did caroline research?", "Caroline"),
    ("When did Melanie's kids go camping?", "Melanie"),
    ("MELANIE: where?", "Melanie"),
    ("What do Caroline and Melanie both like?", None),  # about both: no preference
    ("What is the weather like?", None),
    ("Did Carolines sister call?", None),  # not the name as a word
    ("Where did Jo Smith travel?", "Jo Smith"),  # the longest name that matches
    ("Where did Jo travel?", "Jo"),
    ("Joseph went where?", None),
])
def test_named_speaker(query, want):
    assert named_speaker(query, SPEAKERS) == want


def test_no_known_speakers_means_no_hint():
    assert named_speaker("What did Caroline research?", []) is None
    assert named_speaker("What did Caroline research?", ["", "  "]) is None
