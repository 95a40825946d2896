"""How the console writes dates and rates (numbers and money come from ``palier.web.present``)."""

from __future__ import annotations

from datetime import date

from palier.web.present import _MONTHS


def day_of(value: date, language: str) -> str:
    """A calendar date: '2 mars 2026' / '2 March 2026'."""
    return f"{value.day} {_MONTHS[language if language in _MONTHS else 'en'][value.month - 1]} {value.year}"


def short_day(value: date, language: str) -> str:
    """'2 mars' / '2 Mar' (chart labels)."""
    month = _MONTHS[language if language in _MONTHS else "en"][value.month - 1]
    return f"{value.day} {month[:4].rstrip('.') if language == 'fr' else month[:3]}"


def percent(value: float | None, language: str) -> str:
    """0.2831 → '28,3 %' / '28.3%'; None → '—'."""
    if value is None:
        return "—"
    text = f"{value * 100:.1f}"
    return text.replace(".", ",") + "\u202f%" if language == "fr" else text + "%"
