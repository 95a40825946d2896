"""What a rejected CSV row says: the API's code, the row of the line at fault, the CSV column, and a reason a
spreadsheet user can act on (a date to write in ISO 8601, a price in cents, a refund to record as a return)."""

from __future__ import annotations

import re

from pydantic import ValidationError

from palier.activity.bulk import RowProblem
from palier.cli.common import from_validation
from palier.errors import error_location
from palier.text import mask_card_numbers

_DATE_ERRORS = {"datetime_parsing", "datetime_from_date_parsing", "datetime_type", "date_from_datetime_parsing"}


def row_problem(error: ValidationError, order_id: str, rows: list[int]) -> RowProblem:
    """The refusal of an order, on the row of the line at fault (``rows``: the row of each of its lines)."""
    problem = from_validation(error)
    first = error.errors()[0]
    row = rows[0]
    loc = error_location(first)
    if len(loc) >= 2 and loc[0] == "lines" and isinstance(loc[1], int) and loc[1] < len(rows):
        row = rows[loc[1]]  # the line's own row (an empty row may stand between two lines of the order)
    detail = problem.detail
    if first["type"] in _DATE_ERRORS:  # pydantic's "invalid character in year" tells a spreadsheet user nothing
        detail = (
            f"{mask_card_numbers(str(first.get('input', '')))!r} is not a date and time this import reads: write "
            "it in ISO 8601, 2026-10-02T18:30:00+02:00, or 2026-10-02T18:30:00 for the program's time zone."
        )
    elif loc and loc[-1] in _MONEY and (cents := _in_cents(first.get("input"))) is not None:
        detail = f"money is written in cents (minor units), without a decimal separator: {first['input']!r} is {cents}."
    elif first["type"] == "greater_than_equal" and _below_zero(first.get("input")):  # a till's refund line
        detail = (
            f"{first['input']} is below zero: this import loads purchases only. Leave the refund out of the file "
            "and record it as a return of its order (POST /v1/events/returns)."
        )
    return RowProblem(row, order_id or None, problem.code, detail, csv_column(problem.field))


_MONEY = ("unit_price", "discount", "shipping", "tax")
_DECIMAL = re.compile(r"\s*(\d{1,9})[.,](\d{1,2})\s*")  # 1,30 (a French spreadsheet) or 1.30


def _in_cents(value: object) -> int | None:
    """An amount written with a decimal separator, in cents (1,5 is 150); None for anything else."""
    found = _DECIMAL.fullmatch(value) if isinstance(value, str) else None
    return None if found is None else int(found[1]) * 100 + int(found[2].ljust(2, "0"))


def _below_zero(value: object) -> bool:
    try:
        return int(str(value).strip()) < 0
    except ValueError:
        return False


_MEMBER_COLUMNS = {"member.kind": "member_kind", "member.value": "member_value", "member.member_id": "member_id"}


def csv_column(field: str | None) -> str | None:
    """The CSV column a field of the purchase comes from: ``lines[0].unit_price`` is ``unit_price``,
    ``lines[1].kind`` is ``line_kind``, ``member.value`` is ``member_value``; other fields keep their name."""
    if field is None:
        return None
    if field in _MEMBER_COLUMNS:
        return _MEMBER_COLUMNS[field]
    if field.startswith("lines[") and "]." in field:
        column = field.partition("].")[2]
        return "line_kind" if column == "kind" else column
    return field
