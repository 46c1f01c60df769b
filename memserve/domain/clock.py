"""Time as a dependency.

Summaries stamp ``update_time`` and pruning ages episodes against "now"; both take a ``Clock`` (or a plain
``now``) instead of calling ``datetime.now`` so tests can move time with ``FakeClock`` rather than sleeping.
Every clock returns timezone-aware UTC datetimes: DuckDB stores TIMESTAMPTZ, and mixing naive and aware
datetimes raises at comparison time, far from the cause.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def as_utc(when: datetime) -> datetime:
    """``when`` as an aware UTC datetime; naive datetimes are taken to already be UTC (DuckDB's convention)."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


_DEFAULT_FAKE_START = datetime(2025, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to. Not thread-safe: tests drive it from one thread."""

    def __init__(self, start: datetime = _DEFAULT_FAKE_START) -> None:
        self._now = _require_aware(start)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = _require_aware(when)

    def advance(self, delta: timedelta | None = None, *, days: float = 0.0, seconds: float = 0.0) -> datetime:
        """Move forward by ``delta`` (or ``days``/``seconds``) and return the new time. Never moves backwards."""
        step = (delta or timedelta()) + timedelta(days=days, seconds=seconds)
        if step < timedelta():
            raise ValueError("FakeClock.advance cannot move time backwards; use set()")
        self._now = self._now + step
        return self._now


def _require_aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        # A naive start would silently compare wrong against DuckDB's aware timestamps.
        raise ValueError("FakeClock needs a timezone-aware datetime")
    return when.astimezone(UTC)
