"""Reading console forms: money typed as '12,50', and validation errors as {field: message}."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from palier.api.problems import field_path, validation_code
from palier.errors import InvalidInput, error_location, validation_message
from palier.web import i18n

_MONEY = re.compile(r"^\s*(\d{1,9})(?:[.,](\d{1,3}))?\s*$")
# thousands grouped with one mark, the decimals after the other: never ambiguous, unlike "1,234"
_GROUPED = re.compile(r"(\d{1,3}(?:([,.])\d{3})+)(?!\2)[,.](\d{1,3})")


def whole(text: str) -> int | str:
    """``text`` as a whole number when it is written in the digits 0 to 9 ("-5" too), else as typed, for the
    check to refuse in words: "²" or "½" are digits to ``str.isdigit`` but no number ``int`` reads."""
    return int(text) if _WHOLE.fullmatch(text) else text


_WHOLE = re.compile(r"-?[0-9]+")


def parse_money(text: str, exponent: int, *, field: str) -> int:
    """'12,50' or '12.50' (or '12', '1 234,50', '1,234.50') → minor units; refused if malformed or with too
    many decimals."""
    compact = re.sub(r"[\s\u202f€]", "", text)  # "1 234,50 €" pasted from a French page
    if grouped := _GROUPED.fullmatch(compact):  # "€1,234.50" from an English one (or "1.234,50"): both marks
        compact = f"{re.sub(r'[,.]', '', grouped[1])}.{grouped[3]}"
    found = _MONEY.match(compact) if text else None
    if found is None or (found.group(2) and len(found.group(2)) > exponent):
        raise InvalidInput("invalid_amount", "Type an amount such as 12.50.", field=field)
    decimals = (found.group(2) or "").ljust(exponent, "0")
    units: int = int(found.group(1)) * 10**exponent + (int(decimals) if decimals else 0)
    return units


_BOUNDS = {  # pydantic's error type: the bound its context gives
    "greater_than": "gt",
    "greater_than_equal": "ge",
    "less_than": "lt",
    "less_than_equal": "le",
    "string_too_short": "min_length",
    "string_too_long": "max_length",
}

_NOT_AN_EMAIL = "value is not a valid email address"


def errors_by_field(error: ValidationError, language: str) -> dict[str, str]:
    """The first problem of each field, in the page's language, in the catalogue's words ("This field is
    required.", never pydantic's "String should match pattern …"); a bound says its figure ("Give at least 1")."""
    found: dict[str, str] = {}
    for e in error.errors():
        field = field_path(error_location(e)) or "form"
        if field in found:
            continue
        kind, context = str(e.get("type", "")), e.get("ctx") or {}
        if kind in ("too_short", "too_long") and isinstance(e.get("input"), str):  # a text checked after our validators
            kind = f"string_{kind}"
        if kind in _BOUNDS and _BOUNDS[kind] in context:
            limit = context[_BOUNDS[kind]]
            key = "refusal.bound.required" if kind == "string_too_short" and limit == 1 else f"refusal.bound.{kind}"
            found[field] = i18n.translate_count(language, key, limit, limit=i18n.grouped(limit, language))
            continue
        if kind == "value_error" and str(e.get("msg", "")).startswith(_NOT_AN_EMAIL):  # EmailStr: the e-mail
            found[field] = i18n.translate(language, "refusal.invalid_email")  # library's words are English only
            continue
        # pydantic's words (or a validator's note to developers) are English only and not meant for a
        # merchant: a form says the catalogue's words for the code in either language, when it has them
        code = validation_code(dict(e))
        words = i18n.catalogs()[language if language in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE]
        detail = validation_message(e).split(": ", 1)[-1]
        found[field] = words.get(f"refusal.{code}") or i18n.refusal(language, code, detail)
    return found


def text_or_none(form: Any, name: str) -> str | None:
    value = str(form.get(name, "")).strip()
    return value or None
