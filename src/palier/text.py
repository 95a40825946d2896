"""Guards for free text: a card number pasted into a name field must never be stored."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# 12 to 19 digits, optionally grouped as card numbers are printed or pasted: by spaces, dashes, dots, slashes,
# underscores, plus signs or a URL's %20.
_DIGIT_RUN = re.compile(r"\d(?:(?:[ ._/+-]|%20)?\d){11,18}")


# Letters with accents and what they are without, for searches that ignore both (Élodie, élodie, Elodie).
# The same two strings feed PostgreSQL's translate() and, on SQLite, the function Palier registers under
# that name (palier.db.engine), so one SQL expression folds names alike on both engines.
ACCENTED = "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝŸàáâãäåçèéêëìíîïñòóôõöùúûüýÿ"
PLAIN = "AAAAAACEEEEIIIINOOOOOUUUUYYaaaaaaceeeeiiiinooooouuuuyy"
_UNACCENT = str.maketrans(ACCENTED, PLAIN)


def translate(value: str | None, source: str, target: str) -> str | None:
    """PostgreSQL's ``translate(value, from, to)``: each character of ``from`` replaced by the one at the
    same place in ``to``, or deleted when ``to`` is shorter."""
    if value is None:
        return None
    if (source, target) == (ACCENTED, PLAIN):
        return value.translate(_UNACCENT)
    kept = min(len(source), len(target))
    return value.translate(str.maketrans(source[:kept], target[:kept], source[kept:]))


def folded(value: str) -> str:
    """``value`` without accents and in lower case, as a name search compares it."""
    return value.translate(_UNACCENT).lower()


def points_word(count: int, points_name: str, language: str) -> str:
    """The program's name for points as it reads after ``count``: "1 point", "2 points" ("0 point" in
    French, where 0 and 1 are singular). A plural name loses its final s when singular (étoiles → étoile)."""
    singular = abs(count) == 1 or (language == "fr" and count == 0)
    return points_name[:-1] if singular and len(points_name) > 2 and points_name.endswith("s") else points_name


def counted(count: int, word: str, plural: str | None = None) -> str:
    """ "1 campaign", "2 campaigns", "1,200 orders": a count with its noun agreeing (English)."""
    return f"{count:,} {word if abs(count) == 1 else plural or word + 's'}"


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def contains_card_number(value: str) -> bool:
    return any(luhn_valid(digits_of(match.group())) for match in _DIGIT_RUN.finditer(value))


def no_card_number(value: str) -> str:
    """A validator for free text (names, labels, reasons): refuses any Luhn-valid run of 12 to 19 digits."""
    if contains_card_number(value):
        raise ValueError("card_number_in_text: this looks like a payment card number, never stored in free text")
    return value


PlainText = Annotated[str, AfterValidator(no_card_number)]
"""Free text a person types, which must never carry a payment card number."""


def no_card_shaped_number(value: str) -> str:
    """A validator for references a system makes (order ids, SKUs): refuses only what is shaped like a card
    number (see ``find_card_numbers``), so that ``20261123-0001234`` is not refused one time in ten."""
    if find_card_numbers(value):
        raise ValueError("card_number_in_text: this holds a payment card number, which is never stored")
    return value


Reference = Annotated[str, AfterValidator(no_card_shaped_number)]
"""An id or code another system made, which must never carry a payment card number."""


# What a leaked card number looks like in stored data or a log line: 12 to 19 digits, written in one run or
# printed in groups (4-4-4-4[-n], or the 4-6-5 of American Express; spaces also as a URL writes them),
# starting with a payment-network digit (2 to 6), and Luhn-valid. Stricter than the free-text guard above,
# which refuses any Luhn-valid run: a scan must not cry wolf at a hex digest, an E.164 phone (``+33…``),
# a decimal fraction or a date-stamped order id.
_CARD_SHAPED = re.compile(
    r"(?<![\w+.])"
    r"(?:\d{12,19}|\d{4}(?P<s>[ +-]|%20)\d{4}(?P=s)\d{4}(?:(?P=s)\d{1,7})?|\d{4}(?P<a>[ +-]|%20)\d{6}(?P=a)\d{4,5})"
    r"(?![\w]|\.\d)"
)


def digits_of(written: str) -> str:
    """The digits of a number as written (spaces, dashes, ``+`` or ``%20`` between its groups), in ASCII: a
    number typed in another script's digits (the full-width ４９７０… of a Japanese keyboard) is the same number."""
    return "".join(str(int(ch)) for ch in re.sub(r"\D", "", written.replace("%20", " ")))


def find_card_numbers(value: str) -> list[str]:
    """The payment card numbers written in ``value``, as written (empty when there are none)."""
    found = []
    for match in _CARD_SHAPED.finditer(value):
        digits = digits_of(match.group())
        if 12 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits):
            found.append(match.group())
    return found


def masked(card_number: str) -> str:
    """A card number as it may be shown or logged: ``****7890``."""
    return "****" + digits_of(card_number)[-4:]


def mask_card_numbers(value: str) -> str:
    """``value`` with every payment card number in it replaced by ``****`` and its last four digits."""
    if not any(ch.isdigit() for ch in value):
        return value
    return _CARD_SHAPED.sub(lambda m: masked(m.group()) if find_card_numbers(m.group()) else m.group(), value)
