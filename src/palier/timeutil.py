"""Calendar arithmetic for the ledger (point lifetimes in months, windows in days), and dates as people write them."""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta


def add_months(when: datetime, months: int) -> datetime:
    """``when`` plus ``months`` calendar months, the day clamped to the month's end (31 Jan + 1 = 28/29 Feb)."""
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


MONTHS = {
    "fr": (
        "janvier", "février", "mars", "avril", "mai", "juin",
        "juillet", "août", "septembre", "octobre", "novembre", "décembre",
    ),
    "en": (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
}  # fmt: skip


def long_date(value: date, language: str, *, year: bool = True) -> str:
    """'2 avril 2026' / '2 April 2026'; French writes the first of a month as an ordinal: '1er avril 2026'."""
    fr = language == "fr"
    first = "1er" if fr and value.day == 1 else str(value.day)
    written = f"{first} {MONTHS['fr' if fr else 'en'][value.month - 1]}"
    return f"{written} {value.year}" if year else written


def last_day(local: datetime, language: str) -> str:
    """The last day something lasts that ends at ``local`` (wall-clock time), for "until …" ("jusqu'au …"), which
    readers take as including that day: an end at midnight sharp is the day before, one at 23:59 is that day;
    an end within a day gives its time too ("5 janvier 2027, 00:31"), since the day alone would promise the
    rest of it."""
    if local.time() == time(0):
        return long_date(local - timedelta(days=1), language)
    if local.time() >= time(23, 59):
        return long_date(local, language)
    return f"{long_date(local, language)}, {local:%H:%M}"
