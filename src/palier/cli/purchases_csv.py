"""Reading purchases from CSV: one row per order line, order-level columns repeated on each row.

Rows of one order are consecutive; the order's member, channel, store, date, currency, shipping
and tax are read from its first row. Values are validated by the same models as the API, so a bad
row gets the code the API would answer with, and the row number it came from.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from palier.activity.bulk import RowProblem
from palier.activity.models import PurchaseIn
from palier.cli.common import from_validation
from palier.errors import InvalidInput

ORDER_COLUMNS = (
    "order_id", "member_id", "member_kind", "member_value", "channel", "store_id", "store_name",
    "occurred_at", "currency", "shipping", "tax",
)  # fmt: skip
LINE_COLUMNS = ("sku", "name", "category", "brand", "quantity", "unit_price", "discount", "line_kind")
COLUMNS = ORDER_COLUMNS + LINE_COLUMNS
REQUIRED = ("order_id", "channel", "occurred_at", "currency", "sku", "quantity", "unit_price")

HELP = """\
CSV format: one row per order line, header first, UTF-8, comma- or semicolon-separated. \
The order's columns are repeated on each of its rows and read from its first one; \
rows of one order must be consecutive. Columns (* required):

\b
  order_id *     the order number, unique per program
  member_id      mem_…, or else member_kind and member_value:
  member_kind    card | email | phone | external | payment_card
  member_value   the card, e-mail, phone, customer id or card number
  channel *      web | store | phone | app | partner
  store_id       store_name: where, for in-store purchases
  occurred_at *  ISO-8601 with a zone: 2026-03-02T09:15:00+01:00
  currency *     the program's currency, e.g. EUR
  sku *          name, category, brand: the item
  quantity *     units bought
  unit_price *   one unit, in minor units (cents): 130 = 1.30 €
  discount       on the line, minor units (default 0)
  line_kind      product | gift_card | service (default product)
  shipping, tax  order totals, minor units (first row of the order)

A payment card number finds the member (or keeps the purchase unclaimed until the card \
is linked) and is never stored: only its keyed hash and last four digits are."""


@dataclass
class Batch:
    purchases: list[PurchaseIn] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # the CSV row each purchase starts on
    problems: list[RowProblem] = field(default_factory=list)
    csv_rows: int = 0  # CSV rows read for this batch (for progress)


def count_rows(path: Path) -> int:
    with path.open("rb") as f:
        return max(sum(1 for _ in f) - 1, 0)


def read_batches(stream: IO[str], *, size: int) -> Iterator[Batch]:
    """Batches of ``size`` orders (an order is never split over two batches)."""
    reader = _reader(stream)
    batch = Batch()
    numbered = ((reader.line_num + 1, row) for row in reader)  # +1: the header was read before
    for order_id, group in groupby(numbered, key=lambda item: (item[1].get("order_id") or "").strip()):
        lines = list(group)
        batch.csv_rows += len(lines)
        first_row = lines[0][0]
        try:
            batch.purchases.append(PurchaseIn.model_validate(_order(order_id, [row for _, row in lines])))
            batch.rows.append(first_row)
        except ValidationError as error:
            batch.problems.append(_problem(error, order_id, first_row))
        if len(batch.purchases) + len(batch.problems) >= size:
            yield batch
            batch = Batch()
    if batch.csv_rows:
        yield batch


def _reader(stream: IO[str]) -> csv.DictReader[str]:
    header = stream.readline()
    delimiter = ";" if header.count(";") > header.count(",") else ","
    columns = [c.strip().lower() for c in next(csv.reader([header], delimiter=delimiter), [])]
    unknown = sorted(set(columns) - set(COLUMNS))
    if unknown:
        raise InvalidInput("csv_unknown_columns", f"Unknown column(s): {', '.join(unknown)}.", field="header")
    missing = [c for c in REQUIRED if c not in columns]
    if "member_id" not in columns and not {"member_kind", "member_value"} <= set(columns):
        missing.append("member_id (or member_kind and member_value)")
    if missing:
        raise InvalidInput("csv_missing_columns", f"Missing column(s): {', '.join(missing)}.", field="header")
    return csv.DictReader(stream, fieldnames=columns, delimiter=delimiter)


def _present(row: dict[str, Any], columns: tuple[str, ...]) -> dict[str, str]:
    return {c: v.strip() for c in columns if (v := row.get(c)) is not None and v.strip() != ""}


def _order(order_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    head = _present(rows[0], ORDER_COLUMNS)
    member: dict[str, str] = {}
    if "member_id" in head:
        member["member_id"] = head.pop("member_id")
    if "member_kind" in head or "member_value" in head:
        member["kind"] = head.pop("member_kind", "")
        member["value"] = head.pop("member_value", "")
    lines = []
    for row in rows:
        line: dict[str, Any] = _present(row, LINE_COLUMNS)
        if "line_kind" in line:
            line["kind"] = line.pop("line_kind")
        lines.append(line)
    return {**head, "order_id": order_id, "member": member, "lines": lines}


def _problem(error: ValidationError, order_id: str, first_row: int) -> RowProblem:
    problem = from_validation(error)
    row = first_row
    loc = error.errors()[0]["loc"]
    if len(loc) >= 2 and loc[0] == "lines" and isinstance(loc[1], int):
        row += loc[1]  # the line's own row
    return RowProblem(row, order_id or None, problem.code, problem.detail, problem.field)
