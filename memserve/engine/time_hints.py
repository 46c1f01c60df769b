"""Time expressions in a query, resolved to an event-time window relative to ``now`` (pure, deterministic).

Absolute: "on October 13, 2023", "13 October 2023", "in May 2023", "May 2023", "in 2023", "in June" (the most
recent June at or before ``now``). Relative: "today", "yesterday", "last week" / "last weekend" / "last month" /
"last year" (the previous calendar unit), "N days|weeks|months|years ago" (that unit, N back). Anything else
("the day after the concert") gives no window: an event the memory itself would have to date first.

A window is [start, end) in UTC. The retriever lifts turns whose event time falls inside it (a soft preference,
never a filter: people talk about last month's trip today).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"], 1)}
MONTHS.update({m[:3]: i for m, i in list(MONTHS.items())})
MONTHS["sept"] = 9
_M = r"(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr" \
     r"|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
_Y = r"((?:19|20)\d\d)"
_D = r"(\d{1,2})(?:st|nd|rd|th)?"
_NUM = {"one": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
        "nine": 9, "ten": 10}

Window = tuple[datetime, datetime]


def _day(y: int, m: int, d: int) -> Window | None:
    try:
        start = datetime(y, m, d, tzinfo=UTC)
    except ValueError:
        return None
    return start, start + timedelta(days=1)


def _month(y: int, m: int) -> Window:
    start = datetime(y, m, 1, tzinfo=UTC)
    end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _year(y: int) -> Window:
    return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC)


def _midnight(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _months_back(y: int, m: int, n: int) -> tuple[int, int]:
    k = y * 12 + (m - 1) - n
    return k // 12, k % 12 + 1


def time_window(text: str, now: datetime) -> Window | None:
    t = text.lower()
    today = _midnight(now)
    if m := re.search(rf"\b{_M}\s+{_D},?\s+{_Y}\b", t):  # October 13, 2023
        return _day(int(m.group(3)), MONTHS[m.group(1)], int(m.group(2)))
    if m := re.search(rf"\b{_D}\s+(?:of\s+)?{_M},?\s+{_Y}\b", t):  # 13 October 2023
        return _day(int(m.group(3)), MONTHS[m.group(2)], int(m.group(1)))
    if m := re.search(rf"\b{_M},?\s+{_Y}\b", t):  # May 2023
        return _month(int(m.group(2)), MONTHS[m.group(1)])
    if m := re.search(r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten|a|an)\s+(day|week|month|year)s?"
                      r"\s+ago\b", t):
        n = int(m.group(1)) if m.group(1).isdigit() else _NUM[m.group(1)]
        unit = m.group(2)
        if unit == "day":
            return today - timedelta(days=n), today - timedelta(days=n - 1)
        if unit == "week":
            start = today - timedelta(days=today.weekday() + 7 * n)
            return start, start + timedelta(days=7)
        if unit == "month":
            return _month(*_months_back(today.year, today.month, n))
        return _year(today.year - n)
    if re.search(r"\byesterday\b", t):
        return today - timedelta(days=1), today
    if re.search(r"\btoday\b|\btonight\b|\bthis morning\b", t):
        return today, today + timedelta(days=1)
    if re.search(r"\blast weekend\b", t):
        saturday = today - timedelta(days=(today.weekday() - 5) % 7 or 7)
        return saturday, saturday + timedelta(days=2)
    if re.search(r"\blast week\b", t):
        start = today - timedelta(days=today.weekday() + 7)
        return start, start + timedelta(days=7)
    if re.search(r"\blast month\b", t):
        return _month(*_months_back(today.year, today.month, 1))
    if re.search(r"\blast year\b", t):
        return _year(today.year - 1)
    if m := re.search(rf"\b(?:in|during|since|of)\s+{_Y}\b", t):
        return _year(int(m.group(1)))
    if m := re.search(rf"\b(?:in|during|early|late|mid)\s+{_M}(?!\s*\d)", t):
        month = MONTHS[m.group(1)]
        year = today.year if month <= today.month else today.year - 1
        return _month(year, month)
    return None
