"""Reading console forms: money typed as '12,50', and validation errors as {field: message}."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from palier.api.problems import field_path, validation_code
from palier.errors import InvalidInput, validation_message
from palier.web import i18n

_MONEY = re.compile(r"^\s*(\d{1,9})(?:[.,](\d{1,3}))?\s*$")


def parse_money(text: str, exponent: int, *, field: str) -> int:
    """'12,50' or '12.50' (or '12') → minor units; refused if malformed or with too many decimals."""
    found = _MONEY.match(text.replace("\u202f", "").replace(" ", "").replace("€", "")) if text else None
    if found is None or (found.group(2) and len(found.group(2)) > exponent):
        raise InvalidInput("invalid_amount", "Type an amount such as 12.50.", field=field)
    decimals = (found.group(2) or "").ljust(exponent, "0")
    units: int = int(found.group(1)) * 10**exponent + (int(decimals) if decimals else 0)
    return units


def errors_by_field(error: ValidationError, language: str) -> dict[str, str]:
    """The first problem of each field, in the page's language."""
    found: dict[str, str] = {}
    for e in error.errors():
        field = field_path(tuple(e["loc"])) or "form"
        detail = validation_message(e).split(": ", 1)[-1]
        found.setdefault(field, i18n.refusal(language, validation_code(dict(e)), detail))
    return found


def text_or_none(form: Any, name: str) -> str | None:
    value = str(form.get(name, "")).strip()
    return value or None
