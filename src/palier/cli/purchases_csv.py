"""Reading purchases from CSV: one row per order line, order-level columns repeated on each row.

Rows of one order are consecutive (a row whose order_id is empty belongs to the order above it); the order's
member, channel, store, date, currency, shipping and tax are read from its first row. Values are validated by
the same models as the API, so a bad row gets the code the API would answer with, and the row number it came from.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from palier.activity.bulk import RowProblem
from palier.activity.models import PurchaseIn
from palier.cli.csv_problems import row_problem
from palier.errors import InvalidInput
from palier.text import mask_card_numbers

ORDER_COLUMNS = (
    "order_id", "member_id", "member_kind", "member_value", "channel", "store_id", "store_name",
    "occurred_at", "currency", "shipping", "tax",
)  # fmt: skip
LINE_COLUMNS = ("sku", "name", "category", "brand", "quantity", "unit_price", "discount", "line_kind")
COLUMNS = ORDER_COLUMNS + LINE_COLUMNS
REQUIRED = ("order_id", "channel", "occurred_at", "currency", "sku", "quantity", "unit_price")

HELP = """\
CSV format: one row per order line, header first, UTF-8 (or --encoding), comma-, semicolon- or tab-separated. \
Empty rows are skipped; quote a value holding the separator. The order's columns are repeated on each of its \
rows (or left empty after its first one, order_id too) and must agree; rows of one order must be consecutive. \
The whole file is checked before anything is written. \
Columns (* required):

\b
  order_id *     the order number, unique per program
  member_id      mem_…, or else member_kind and member_value:
  member_kind    card | email | phone | external | payment_card
  member_value   the card, e-mail, phone, customer id or card number
  channel *      web | store | phone | app | partner
  store_id       store_name: where, for in-store purchases
  occurred_at *  ISO 8601: 2026-03-02T09:15:00+01:00, or without the offset
                 (2026-03-02T09:15:00) in the program's time zone
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


def reading_encoding(encoding: str) -> str:
    """The codec to read a file said to be in ``encoding`` (UTF-8 also without its byte-order mark)."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise InvalidInput(
            "csv_unknown_encoding", f"Unknown encoding {encoding!r}: try utf-8 or cp1252.", field="--encoding"
        ) from None
    return "utf-8-sig" if name == "utf-8" else name


def check_file(path: Path, *, encoding: str) -> int:
    """Read the whole file once before anything is written, and return how many rows it holds.

    Refuses what would otherwise be found half-way, after some orders were imported: a header that does not
    fit, a row in another encoding (Excel's "CSV" is Windows-1252), a quote left open (it swallows the rows
    after it), the rows of one order split by another order (the second part would clash with the first)."""
    with path.open("rb") as binary:
        start = binary.read(8)
        if start.startswith(codecs.BOM_UTF8) and reading_encoding(encoding) != "utf-8-sig":
            raise InvalidInput(
                "csv_wrong_encoding",
                f'{path.name} is UTF-8: it begins with the mark Excel\'s "CSV UTF-8" writes. Run again without '
                "--encoding. Nothing was imported.",
                field="--encoding",
            )
        if start.startswith(_WORKBOOKS):
            raise InvalidInput(
                "csv_is_a_workbook",
                f"{path.name} is a spreadsheet workbook (.xlsx or .xls), not a CSV file: in Excel, save it with "
                '"Save as" › "CSV UTF-8", then import that file. Nothing was imported.',
                field="file",
            )
        binary.seek(0)
        lines = _decoded(binary, encoding)
        columns, delimiter = _columns(next(lines, ""))
        records = csv.reader(lines, delimiter=delimiter, strict=True)
        at = columns.index("order_id")
        seen: set[int] = set()  # hashes of the order ids met so far: an int each rather than the id's text
        previous, rows = None, 0
        while True:
            row = records.line_num + 2  # where the next record starts: the header is row 1
            try:
                record = next(records)
            except StopIteration:
                break
            except csv.Error as error:
                if "unexpected end of data" in str(error):
                    raise _refused("csv_unclosed_quote", row, _UNCLOSED) from None
                raise _refused("csv_malformed", records.line_num + 1, str(error)) from None
            if _blank(record):  # a blank line, or the separators alone Excel leaves under a sheet
                continue
            rows += 1
            if records.line_num + 1 > row:  # a value in quotes went on past the end of its line
                raise _refused("csv_unclosed_quote", row, _runs_on(records.line_num + 1))
            if _repeats_header(record, columns, at):  # rejected alone when read (not an order of the file)
                continue
            if _names_columns(record):
                raise _refused(
                    "csv_header_again",
                    row,
                    "it names the columns again, other ones or in another order (files joined one after the "
                    "other?): the rows after it would be read under the first header's columns. Join files whose "
                    "columns are the same, in the same order, or import them one by one",
                )
            order = (record[at].strip() if at < len(record) else "") or previous or ""  # empty: the order above
            if order != previous:
                if order and hash(order) in seen:
                    raise _refused(
                        "csv_order_rows_apart",
                        row,
                        f"it belongs to order {mask_card_numbers(order)!r}, whose first rows come earlier, "
                        "before other orders; the rows of an order must follow each other (sort the file by "
                        "order_id)",
                    )
                seen.add(hash(order))
                previous = order
    return rows


_WORKBOOKS = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")  # a zip (.xlsx, .ods), an OLE file (.xls)
_UNCLOSED = 'a quote (") opened in it is not closed on its line, so the rows after it would be read as part of it'


def _runs_on(last: int) -> str:
    return (
        f'a value in quotes runs on to row {last}: either a quote (") is left open there, swallowing the rows '
        "after it, or a cell holds a line break (typed with Alt+Enter), which this import does not read; close "
        "the quote, or put the cell's text on one line"
    )


def _refused(code: str, row: int, why: str) -> InvalidInput:
    return InvalidInput(code, f"Row {row}: {why}. Nothing was imported.", field=f"row {row}")


def _decoded(binary: Iterable[bytes], encoding: str) -> Iterator[str]:
    """The file's lines as text, each with its row number known for a refusal. UTF-16 is decoded as one stream,
    not line by line: its line ends on a byte that the split at b"\\n" leaves at the start of the next line."""
    codec = codecs.lookup(reading_encoding(encoding))
    # UTF-8, Windows-1252…: each line decodes alone (the fast way, and a row in another encoding is named even
    # in a file whose lines end with CR alone). UTF-8's codec here is utf-8-sig, which encodes "\n" after a BOM.
    if codec.name == "utf-8-sig" or codec.encode("\n")[0] == b"\n":
        for number, raw in enumerate(_split_at_lone_cr(binary), start=1):
            try:
                yield codec.decode(raw)[0]
            except UnicodeDecodeError as error:
                raise _wrong_encoding(number, raw, error, encoding) from None
        return
    decoder = codec.incrementaldecoder()
    pending, number = "", 1
    for raw in binary:
        try:
            text = pending + decoder.decode(raw)
        except UnicodeDecodeError as error:
            raise _wrong_encoding(number, raw, error, encoding) from None
        *lines, pending = text.split("\n")
        for line in lines:
            for part in _LONE_CR_TEXT.split(line + "\n") if "\r" in line[:-1] else (line + "\n",):
                yield part
                number += 1
    try:
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise _wrong_encoding(number, b"", error, encoding) from None
    if pending:
        yield from _LONE_CR_TEXT.split(pending)


# Lines may end with a CR alone (Excel for Mac's "CSV (Macintosh)", some tills), as the import's text reader
# (newline="") takes them: split there too, so that a row has the same number in the check and the import.
_LONE_CR = re.compile(rb"(?<=\r)(?!\n|\Z)")
_LONE_CR_TEXT = re.compile(r"(?<=\r)(?!\n|\Z)")


def _split_at_lone_cr(lines: Iterable[bytes]) -> Iterator[bytes]:
    """``lines`` (split at LF) split after each CR that does not end them; CR LF stays one line end."""
    for line in lines:
        if line.find(b"\r", 0, -2) != -1 or (line[-2:-1] == b"\r" and line[-1:] != b"\n"):
            yield from _LONE_CR.split(line)
        else:
            yield line


def _wrong_encoding(number: int, raw: bytes, error: UnicodeDecodeError, encoding: str) -> InvalidInput:
    if number == 1 and raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return InvalidInput(
            "csv_wrong_encoding",
            'This file is UTF-16 (what Excel saves as "Unicode text"): run again with --encoding utf-16.',
            field="row 1",
        )
    byte = error.object[error.start : error.start + 1].hex()
    return InvalidInput(
        "csv_wrong_encoding",
        f'Row {number} is not {encoding} (byte 0x{byte}). A file Excel saves as "CSV" is usually '
        'Windows-1252: run again with --encoding cp1252, or save it as "CSV UTF-8".',
        field=f"row {number}",
    )


def read_batches(stream: IO[str], *, size: int) -> Iterator[Batch]:
    """Batches of ``size`` orders (an order is never split over two batches)."""
    reader = _reader(stream)
    batch = Batch()
    width = len(reader.fieldnames or ())
    columns = list(reader.fieldnames or ())
    unnamed, at = [c for c in columns if c.startswith(_UNNAMED)], columns.index("order_id")
    numbered = ((reader.line_num + 1, row) for row in reader if not _blank(row.values()))  # +1: the header
    for order_id, group in groupby(_with_order_ids(numbered), key=lambda item: item[0]):
        lines = [(number, row) for _, number, row in group]
        batch.csv_rows += len(lines)
        first_row = lines[0][0]
        try:
            if _repeats_header([lines[0][1].get(c) for c in columns], columns, at):
                raise _Disagreement(RowProblem(first_row, None, "csv_header_again", _HEADER_AGAIN, None))
            _check_columns(order_id, lines, width, unnamed)
            head = _check_agreement(order_id, lines)
            batch.purchases.append(PurchaseIn.model_validate(_order(order_id, head, [row for _, row in lines])))
            batch.rows.append(first_row)
        except ValidationError as error:
            batch.problems.append(row_problem(error, order_id, [number for number, _ in lines]))
        except _Disagreement as found:
            batch.problems.append(found.problem)
        if len(batch.purchases) + len(batch.problems) >= size:
            yield batch
            batch = Batch()
    if batch.csv_rows:
        yield batch


def _blank(values: Iterable[Any]) -> bool:
    """A row with nothing in it: a blank line, or separators only (``,,,,``, as Excel saves empty rows)."""
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in values)


def _with_order_ids(
    numbered: Iterable[tuple[int, dict[str, Any]]],
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Each row with the order it belongs to: its own order_id, or, left empty, that of the order above it (an
    order's columns may be left empty after its first row, its number too)."""
    previous = ""
    for number, row in numbered:
        previous = (row.get("order_id") or "").strip() or previous
        yield previous, number, row


_UNNAMED = "\0unnamed "  # the key of a column the header gives no name, before its position
_HEADER_AGAIN = (
    "This row names the columns again, as the header does: files joined one after the other? It is not an order; "
    "the rows after it are read."
)


def _repeats_header(values: Sequence[str | None], columns: list[str], at: int) -> bool:
    """Whether a row is the header again (two exports joined; the second's may begin with a byte-order mark)."""
    if at >= len(values) or _name(values[at]) != "order_id":  # the quick test
        return False
    named = [(i, c) for i, c in enumerate(columns) if not c.startswith(_UNNAMED)]
    return all(i < len(values) and _name(values[i]) == c for i, c in named)


def _names_columns(values: Sequence[str]) -> bool:
    """Whether a row names the columns an import needs, in whatever order (the header of another export)."""
    if "order_id" not in values and "\ufefforder_id" not in values:  # the quick test, exactly as exports write it
        return False
    return set(REQUIRED) <= {_name(v) for v in values}


def _name(value: str | None) -> str:
    return (value or "").strip().lstrip("\ufeff").lower()


def _check_columns(order_id: str, lines: list[tuple[int, dict[str, Any]]], width: int, unnamed: list[str]) -> None:
    """A row with more values than the header names is refused rather than read short: its values have moved
    (a French decimal comma, 1,30, in a comma-separated file would be read as a price of 1). So is a value under
    a column with no name (those Excel leaves at the right of a sheet are empty)."""
    for row_number, row in lines:
        if any((row[column] or "").strip() for column in unnamed):
            raise _Disagreement(
                RowProblem(
                    row_number,
                    order_id or None,
                    "csv_unnamed_column",
                    f"Row {row_number} has a value under a column the header gives no name: name the column if it "
                    "is one of this import's, or clear it.",
                    None,
                )
            )
        extra = row.get(None)  # type: ignore[call-overload]  # csv.DictReader's key for values past the header
        if extra:
            raise _Disagreement(
                RowProblem(
                    row_number,
                    order_id or None,
                    "csv_too_many_values",
                    f"Row {row_number} has {width + len(extra)} values where the header names {width}: a value "
                    'holding the separator must be in quotes ("Lyon, Croix-Rousse"), and money is written in '
                    "cents (130, not 1,30), so no value is read in the wrong column.",
                    None,
                )
            )


def _reader(stream: IO[str]) -> csv.DictReader[str]:
    columns, delimiter = _columns(stream.readline())
    return csv.DictReader(stream, fieldnames=columns, delimiter=delimiter)


def _columns(header: str) -> tuple[list[str], str]:
    """The columns a header names and the delimiter it uses, or the refusal of a header that does not fit.

    Each column with no name gets a key of its own (``_UNNAMED`` and its position): under one shared key, a
    value under any but the last of them would not be seen."""
    if not header.strip():
        raise InvalidInput(
            "csv_empty",
            "The file's first line is empty: a CSV file to import starts with its header, the names of its columns "
            f"({','.join(REQUIRED[:3])},…), then one row per order line.",
            field="header",
        )
    delimiter = max((",", ";", "\t"), key=header.count)  # the one the header uses most; a comma on a tie
    columns = [c.strip().lower() for c in next(csv.reader([header], delimiter=delimiter), [])]
    unknown = sorted(set(columns) - set(COLUMNS) - {""})  # "": the empty columns Excel leaves at the right
    if unknown:
        raise InvalidInput("csv_unknown_columns", f"Unknown column(s): {', '.join(unknown)}.", field="header")
    twice = sorted({c for c in columns if c and columns.count(c) > 1})
    if twice:  # a reader would keep the values of one and drop the other's
        raise InvalidInput(
            "csv_duplicate_columns",
            f"Column(s) named more than once: {', '.join(twice)}. Keep one of each (delete or clear the other).",
            field="header",
        )
    columns = [c or f"{_UNNAMED}{n}" for n, c in enumerate(columns, start=1)]
    missing = [c for c in REQUIRED if c not in columns]
    if "member_id" not in columns and not {"member_kind", "member_value"} <= set(columns):
        missing.append("member_id (or member_kind and member_value)")
    if missing:
        raise InvalidInput("csv_missing_columns", f"Missing column(s): {', '.join(missing)}.", field="header")
    return columns, delimiter


def _present(row: dict[str, Any], columns: tuple[str, ...]) -> dict[str, str]:
    return {c: stripped for c in columns if (v := row.get(c)) and (stripped := v.strip())}


class _Disagreement(Exception):
    def __init__(self, problem: RowProblem) -> None:
        self.problem = problem


def _check_agreement(order_id: str, lines: list[tuple[int, dict[str, Any]]]) -> dict[str, str]:
    """The order's columns say the same on each of its rows (or are left empty after the first): rows of two
    orders sharing a number, or a shipping total typed twice, are refused rather than read from the first.
    Returns the order's columns, as its first row gives them."""
    first = _present(lines[0][1], ORDER_COLUMNS)
    for row_number, row in lines[1:]:
        for column, value in _present(row, ORDER_COLUMNS).items():
            if column != "order_id" and first.get(column) != value:
                raise _Disagreement(
                    RowProblem(
                        row_number,
                        order_id or None,
                        "order_rows_disagree",
                        f"Row {row_number} gives {column} {mask_card_numbers(value)!r} where the order's first row "
                        f"gives {mask_card_numbers(first.get(column, ''))!r}: an order's columns must agree on each "
                        "of its rows (or be left empty after the first).",
                        column,
                    )
                )
    return first


def _order(order_id: str, head: dict[str, str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The purchase, as the API takes it, from the order's columns (``head``, which it uses up) and rows."""
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
    who = {"member": member} if member else {}  # none: refused as member_required, as the import says
    return {**head, "order_id": order_id, **who, "lines": lines}
