"""An injectable clock: services take ``clock`` so tests and simulations can move time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Protocol
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The real time, always timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to (tests, simulations, demo history)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when


def utc(value: datetime) -> datetime:
    """Normalise to aware UTC; naive values (SQLite hands them back) are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def in_zone(value: datetime, timezone: str) -> datetime:
    """``value`` in UTC; a value sent without an offset ("2026-11-23T08:12:00", as tills and spreadsheets write
    it) is wall-clock time in ``timezone``, the program's, where the shop is."""
    return utc(value.replace(tzinfo=ZoneInfo(timezone)) if value.tzinfo is None else value)


EARLIEST, TOO_LATE = datetime(1970, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    """A moment a loyalty program can mean: 1970 to 2999 once in UTC (an offset on year 1 or 9999 would not
    even convert). Naive values pass through as they are (a campaign's are wall-clock time)."""
    try:
        moment = utc(value)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment < TOO_LATE:
        raise ValueError("date_out_of_range: a date between 1970 and 2999 is expected")
    return value


_NUMERIC = re.compile(r"\s*[+-]?\d+(\.\d*)?\s*")


def _not_a_number(value: Any) -> Any:
    """Refuse a number, or digits in a string, where a date goes: pydantic would read ``0`` as 1970-01-01,
    ``1764900000`` as seconds and ``1764900000000`` as milliseconds since then, quietly dating a purchase
    wrongly when a till sends a counter, a price or a timestamp in the wrong unit."""
    if isinstance(value, int | float | Decimal) or (isinstance(value, str) and _NUMERIC.fullmatch(value)):
        raise ValueError(
            "invalid_type: a date and time in ISO 8601 is expected (2026-11-23T08:12:00+01:00, …Z, or without "
            "an offset in the program's time zone), not a number"
        )
    return value


# Every date and time an API client, a CLI file or an import sends. (The before-validator is listed second so
# it runs first: pydantic applies the metadata from the outside in.)
Moment = Annotated[datetime, AfterValidator(_in_range), BeforeValidator(_not_a_number)]
