"""How the console writes dates and rates (numbers and money come from ``palier.web.present``)."""

from __future__ import annotations

from datetime import date

from palier.timeutil import MONTHS, long_date


def day_of(value: date, language: str) -> str:
    """A calendar date: '2 mars 2026' / '2 March 2026' ('1er mars 2026')."""
    return long_date(value, language)


_SHORT_FR = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc.")


def short_day(value: date, language: str) -> str:
    """'2 mars', '15 déc.' / '2 Mar' (chart labels)."""
    if language == "fr":
        return f"{value.day} {_SHORT_FR[value.month - 1]}"
    return f"{value.day} {MONTHS['en'][value.month - 1][:3]}"


def percent(value: float | None, language: str) -> str:
    """0.2831 → '28,3 %' / '28.3%'; -0.05 → '−5,0 %' (the minus sign numbers are written with); None → '—'."""
    if value is None:
        return "—"
    text = f"{value * 100:.1f}"
    text = "0.0" if text == "-0.0" else text.replace("-", "\u2212")
    return text.replace(".", ",") + "\u202f%" if language == "fr" else text + "%"
