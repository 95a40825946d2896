"""Calendar questions in the program's time zone: limit periods, birthdays and membership anniversaries."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant a local day starts."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def period(per: str, when: datetime, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """[start, end) in UTC of the day, week (Monday first) or month holding ``when``; (None, None) for ever."""
    day = when.astimezone(tz).date()
    if per == "ever":
        return None, None
    if per == "day":
        first, after = day, day + timedelta(days=1)
    elif per == "week":
        first = day - timedelta(days=day.weekday())
        after = first + timedelta(days=7)
    elif per == "month":
        first = day.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown period {per!r}")
    return local_midnight(first, tz), local_midnight(after, tz)


def birthday_in(year: int, birthday: date) -> date:
    """The day a birthday falls on in ``year``: 29 February is celebrated on 28 February in other years."""
    if birthday.month == 2 and birthday.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return birthday.replace(year=year)


def month_days_celebrated_on(today: date) -> list[tuple[int, int]]:
    """The (month, day) birthdays celebrated on ``today``: itself, and 29 February on 28 February of other years."""
    days = [(today.month, today.day)]
    if today.month == 2 and today.day == 28 and not calendar.isleap(today.year):
        days.append((2, 29))
    return days


def anniversary_windows(today: date, since: date, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """UTC [start, end) of the local days, in earlier years since ``since``, whose anniversary is ``today``."""
    windows = []
    for year in range(since.year, today.year):
        for month, day in month_days_celebrated_on(today):
            if month == 2 and day == 29 and not calendar.isleap(year):
                continue
            then = date(year, month, day)
            windows.append((local_midnight(then, tz), local_midnight(then + timedelta(days=1), tz)))
    return windows
