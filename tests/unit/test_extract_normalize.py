"""normalize_phrase, clean_triples and repair_json."""

from __future__ import annotations

import pytest

from memserve.extract import Triple, clean_triples, normalize_phrase, repair_json


@pytest.mark.parametrize("raw, expected", [
    ("Journal of Mathematical Physics", "journal of mathematical physics"),
    ("  Wiley-Blackwell ", "wiley blackwell"),
    ("George T. Solomon", "george t solomon"),
    ("Émile  Zola!", "emile zola"),
    ("May 8, 1990", "may 8 1990"),
    ("snake_case", "snake case"),
    ("...", ""),
])
def test_normalize_phrase(raw: str, expected: str) -> None:
    assert normalize_phrase(raw) == expected


def test_clean_triples_arity_and_parts() -> None:
    raw = [
        ["A", "likes", "B"],
        ["A", "likes"],  # 2 elements
        ["A", "likes", "B", "C"],  # 4 elements
        ["A", "", "B"],  # empty part
        ["A", "rel", "..."],  # empty after normalisation
        ["A", None, "B"],  # non-string
        ["A", "rel", ["B"]],  # nested
        "A likes B",  # not a list
        ["X", "founded in", 1963],  # numbers are facts
        ["a", "LIKES", "b"],  # duplicate of the first after normalisation
        ("C", "  spaced   out ", "D"),
    ]
    triples, dropped = clean_triples(raw)
    assert triples == (Triple("A", "likes", "B"), Triple("X", "founded in", "1963"), Triple("C", "spaced out", "D"))
    assert dropped == 7


@pytest.mark.parametrize("text, expected", [
    ('{"a": [1, 2]}', {"a": [1, 2]}),
    ('```json\n{"a": 1}\n```', {"a": 1}),
    ('```\n["x"]\n```', ["x"]),
    ('Sure! Here it is: {"named_entities": ["A", "B"]} Hope this helps.', {"named_entities": ["A", "B"]}),
    # truncated inside a string: the half-written element is dropped, brackets closed
    ('{"named_entities": ["Lake Baikal", "Siberia", "Rus', {"named_entities": ["Lake Baikal", "Siberia"]}),
    # truncated after a comma
    ('{"triples": [["a", "b", "c"], ', {"triples": [["a", "b", "c"]]}),
    # truncated inside an inner list: the partial triple survives only as far as it is complete
    ('{"triples": [["a", "b", "c"], ["d", "e', {"triples": [["a", "b", "c"], ["d"]]}),
    ('["a", "b", "c"', ["a", "b", "c"]),
    ('```json\n{"triples": [["a", "b", "c"]', {"triples": [["a", "b", "c"]]}),
    ('{"named_entities": [', {"named_entities": []}),
    ('{"a": "x \\" y", "b": "unfinished', {"a": 'x " y'}),
    ('{{{{', {}),  # the longest valid prefix is the empty object
])
def test_repair_json(text: str, expected: object) -> None:
    assert repair_json(text) == expected


@pytest.mark.parametrize("text", ["", "no json here", "]", '"only a string'])
def test_repair_json_gives_up_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        repair_json(text)
