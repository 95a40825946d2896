"""Coupon codes: 10 random Crockford base32 characters and a check character.

Crockford's alphabet has no I, L, O or U, so a code read aloud or typed from a receipt is hard to get
wrong, and typing O for 0 or I/L for 1 is forgiven. The check character (Luhn mod 32) catches every
single mistyped character and almost every swap of two neighbours before any database lookup, so
the till can say "mistyped" rather than "unknown". 50 random bits: guessing a live code among a
million is a one-in-a-billion shot, and a lookup needs an API key or a staff sign-in (it is not
rate-limited: a busy till checks many codes a minute).
"""

from __future__ import annotations

import secrets
import unicodedata

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BODY = 10
LENGTH = BODY + 1
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})
# what a phone or a word processor makes of the dashes the code is shown with: hyphens, en and em dashes, minus
_DASHES = frozenset("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63")


def check_character(body: str) -> str:
    """Luhn mod N over base 32: doubles every second value from the right, as card numbers do."""
    total = 0
    for position, char in enumerate(reversed(body)):
        value = _VALUE[char]
        if position % 2 == 0:
            value *= 2
            value = value // 32 + value % 32
        total += value
    return ALPHABET[(-total) % 32]


def new_code() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY))
    return body + check_character(body)


def normalise(typed: str) -> str:
    """Upper case, without spaces or dashes (typographic ones too), with O read as 0 and I, L as 1; full-width
    characters (an Asian keyboard's) read as the usual ones and invisible ones (a zero-width space) left out."""
    text = unicodedata.normalize("NFKC", typed)
    kept = (c for c in text if not c.isspace() and c not in _DASHES and unicodedata.category(c) != "Cf")
    return "".join(kept).upper().translate(_ALIASES)


def is_well_formed(code: str) -> bool:
    """Right length, right alphabet, right check character (``code`` already normalised)."""
    if len(code) != LENGTH or any(c not in _VALUE for c in code):
        return False
    return check_character(code[:BODY]) == code[BODY]


def display(code: str) -> str:
    """``ABCD-EFGH-JKM``: easier to read out and type; the portal, the till and the CLI all show it so."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))
