"""Calendar arithmetic for the ledger (point lifetimes in months, windows in days), and dates as people write them."""

from __future__ import annotations

import calendar
from datetime import date, datetime


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
