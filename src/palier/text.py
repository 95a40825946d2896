"""Guards for free text: a card number pasted into a name field must never be stored."""

from __future__ import annotations

import re

from palier.errors import InvalidInput

# 12 to 19 digits, optionally grouped by spaces or dashes, as card numbers are printed.
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){11,18}")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def contains_card_number(value: str) -> bool:
    for match in _DIGIT_RUN.finditer(value):
        digits = re.sub(r"\D", "", match.group())
        if luhn_valid(digits):
            return True
    return False


def reject_card_numbers(value: str, *, field: str) -> str:
    """Return ``value`` unless it holds something that looks like a payment card number."""
    if contains_card_number(value):
        raise InvalidInput(
            "card_number_in_text",
            "This text looks like a payment card number; card numbers are never stored in free text.",
            field=field,
        )
    return value
