from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memserve.engine.time_hints import time_window

NOW = datetime(2023, 10, 18, 15, 30, tzinfo=UTC)  # a Wednesday


def d(y: int, m: int, day: int) -> datetime:
    return datetime(y, m, day, tzinfo=UTC)


@pytest.mark.parametrize(("query", "want"), [
    ("What painting did Melanie show on October 13, 2023?", (d(2023, 10, 13), d(2023, 10, 14))),
    ("What did Gina find on 1 February, 2023?", (d(2023, 2, 1), d(2023, 2, 2))),
    ("What happened on the 3rd of May 2023?", (d(2023, 5, 3), d(2023, 5, 4))),
    ("What did Maria start in December 2023?", (d(2023, 12, 1), d(2024, 1, 1))),
    ("Plans for Sept 2022", (d(2022, 9, 1), d(2022, 10, 1))),
    ("How many beach trips in 2023?", (d(2023, 1, 1), d(2024, 1, 1))),
    ("When did Melanie go camping in June?", (d(2023, 6, 1), d(2023, 7, 1))),
    ("Where did they go in November?", (d(2022, 11, 1), d(2022, 12, 1))),  # the most recent November
    ("What did I eat yesterday?", (d(2023, 10, 17), d(2023, 10, 18))),
    ("What did I eat today?", (d(2023, 10, 18), d(2023, 10, 19))),
    ("Who called last week?", (d(2023, 10, 9), d(2023, 10, 16))),
    ("What did John do last weekend?", (d(2023, 10, 14), d(2023, 10, 16))),
    ("What happened last month?", (d(2023, 9, 1), d(2023, 10, 1))),
    ("Where did John road-trip last year?", (d(2022, 1, 1), d(2023, 1, 1))),
    ("What did she buy 3 days ago?", (d(2023, 10, 15), d(2023, 10, 16))),
    ("Who visited two weeks ago?", (d(2023, 10, 2), d(2023, 10, 9))),
    ("What did we plan a month ago?", (d(2023, 9, 1), d(2023, 10, 1))),
    ("Where did Caroline move from 4 years ago?", (d(2019, 1, 1), d(2020, 1, 1))),
    ("What is Caroline's favourite book?", None),
    ("What did they do the day after the concert?", None),
    ("Did she march in the parade?", None),  # "march" is a verb here
    ("I may go", None),
])
def test_time_window(query, want):
    assert time_window(query, NOW) == want


def test_relative_windows_follow_now():
    later = datetime(2024, 1, 3, tzinfo=UTC)
    assert time_window("what happened last month?", later) == (d(2023, 12, 1), d(2024, 1, 1))
    assert time_window("in December", later) == (d(2023, 12, 1), d(2024, 1, 1))
