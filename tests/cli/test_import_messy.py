"""``palier import purchases`` on files as spreadsheets and tills write them, on SQLite and PostgreSQL: a row
with a value more than the header names (a French decimal comma in a comma-separated file), the empty rows
Excel leaves at the end (separators only), an order's rows with its number given on the first one only."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from palier.activity.tables import purchases
from palier.cli import imports
from palier.cli.common import console, err_console
from palier.db import Database
from palier.ledger.verify import verify
from tests.cli.test_import import cli_shop, event_count, run_import, summary
from tests.services.factories import luhn_card

HEADER = "order_id,member_id,channel,occurred_at,currency,sku,quantity,unit_price"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 250)
    monkeypatch.setattr(err_console, "width", 250)


@pytest.fixture
def cli_db(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The session's database of either engine, as the command finds it."""
    monkeypatch.setenv("PALIER_DATABASE_URL", db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("PALIER_CARD_KEY", "6" * 64)
    return db


def written(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def totals(db: Database, program_id: str) -> dict[str, int]:
    with db.read() as conn:
        query = select(purchases.c.order_id, purchases.c.total).where(
            purchases.c.program_id == program_id, purchases.c.order_id.like("ORD-%")
        )
        return {order: total for order, total in conn.execute(query).all()}


def sound(db: Database, program_id: str) -> None:
    with db.read() as conn:
        assert verify(conn, program_id=program_id) == []


def row(order: str, member: str, when: datetime, tail: str) -> str:
    return f"{order},{member},store,{when.strftime('%Y-%m-%dT%H:%M:%S')},EUR,{tail}"


def test_a_row_with_more_values_than_the_header_is_rejected_not_read_short(cli_db: Database, tmp_path: Path) -> None:
    """ "1,30" typed in a comma-separated file is two values: the price must not be read as 1 cent."""
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    path = written(
        tmp_path / "orders.csv",
        [row("ORD-E1", member, when, "CRO,2,1,30"), row("ORD-E2", member, when, "CRO,2,130")],
    )
    result = run_import(path, shop)
    assert result.exit_code == 1, result.output
    assert summary(result.output) == {"imported": 1, "unclaimed": 0, "already present": 0, "rejected": 1}
    assert re.search(r"2\s*│\s*ORD-E1\s*│\s*csv_too_many_values\s*│", result.output), result.output
    assert "quote" in result.output
    assert totals(cli_db, shop.program.id) == {"ORD-E2": 260}
    sound(cli_db, shop.program.id)


def test_rows_of_separators_only_are_skipped_like_blank_lines(cli_db: Database, tmp_path: Path) -> None:
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    empty = "," * (HEADER.count(","))
    path = written(
        tmp_path / "orders.csv",
        [row("ORD-F1", member, when, "CRO,1,130"), empty, "", row("ORD-F2", member, when, "CRO,1,150"), empty, empty],
    )
    result = run_import(path, shop)
    assert result.exit_code == 0, result.output
    assert summary(result.output) == {"imported": 2, "unclaimed": 0, "already present": 0, "rejected": 0}
    assert totals(cli_db, shop.program.id) == {"ORD-F1": 130, "ORD-F2": 150}


def test_an_order_number_left_empty_after_the_first_row_keeps_the_line_in_that_order(
    cli_db: Database, tmp_path: Path
) -> None:
    """The help says an order's columns may be left empty after its first row: order_id is one of them."""
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    path = written(
        tmp_path / "orders.csv",
        [
            row("ORD-G1", member, when, "CRO,1,130"),
            ",,,,,PAC,2,150",
            row("ORD-G2", member, when, "CAF,1,320"),
            ",,,,,CRO,1,130",
        ],
    )
    result = run_import(path, shop)
    assert result.exit_code == 0, result.output
    assert totals(cli_db, shop.program.id) == {"ORD-G1": 430, "ORD-G2": 450}
    assert event_count(cli_db, shop) == 2
    again = run_import(path, shop)
    assert summary(again.output) == {"imported": 0, "unclaimed": 0, "already present": 2, "rejected": 0}
    sound(cli_db, shop.program.id)


def test_a_first_row_without_an_order_number_is_rejected(cli_db: Database, tmp_path: Path) -> None:
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    rows = [row("", member, when, "CRO,1,130"), row("ORD-H1", member, when, "CRO,1,9")]
    path = written(tmp_path / "orders.csv", rows)
    result = run_import(path, shop)
    assert result.exit_code == 1, result.output
    assert re.search(r"2\s*│\s*│\s*\w+\s*│\s*order_id\s*│", result.output), result.output
    assert totals(cli_db, shop.program.id) == {"ORD-H1": 9}


@pytest.mark.parametrize("note", ["CRO,1,150,,note", "CRO,1,150,note,"], ids=["last", "first"])
def test_the_empty_columns_excel_adds_at_the_right_are_ignored_and_a_value_under_one_is_rejected(
    cli_db: Database, tmp_path: Path, note: str
) -> None:
    """A sheet saved with cells touched right of the data: "…;unit_price;;" and ";;" after each row."""
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    lines = [
        f"{HEADER},,",
        row("ORD-J1", member, when, "CRO,2,130,,"),
        row("ORD-J2", member, when, note),
    ]
    path = tmp_path / "orders.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_import(path, shop)
    assert result.exit_code == 1, result.output
    assert summary(result.output) == {"imported": 1, "unclaimed": 0, "already present": 0, "rejected": 1}
    assert re.search(r"3\s*│\s*ORD-J2\s*│\s*csv_unnamed_column\s*│", result.output), result.output
    assert totals(cli_db, shop.program.id) == {"ORD-J1": 260}
    sound(cli_db, shop.program.id)


def test_a_header_naming_a_column_twice_is_refused_whole_not_read_from_one_of_them(
    cli_db: Database, tmp_path: Path
) -> None:
    """Two quantity columns: reading the last one alone would import 1 where the first says 5."""
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    path = tmp_path / "orders.csv"
    lines = [
        f"{HEADER},Quantity",
        row("ORD-N1", member, when, "CRO,5,130,"),
        row("ORD-N2", member, when, "CRO,5,130,1"),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    refused = run_import(path, shop)
    assert refused.exit_code == 2 and "error csv_duplicate_columns" in refused.output, refused.output
    assert "quantity" in refused.output
    assert event_count(cli_db, shop) == 0


def test_a_tab_separated_file_is_read_like_a_comma_separated_one(cli_db: Database, tmp_path: Path) -> None:
    """Excel's "Text (tab-delimited)": not refused with a header read as one unknown column."""
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    lines = [HEADER, row("ORD-K1", member, when, "CRO,2,130"), row("ORD-K2", member, when, "PAC,1,150")]
    path = tmp_path / "orders.txt"
    path.write_text("\n".join(line.replace(",", "\t") for line in lines) + "\n", encoding="utf-8")
    result = run_import(path, shop)
    assert result.exit_code == 0, result.output
    assert totals(cli_db, shop.program.id) == {"ORD-K1": 260, "ORD-K2": 150}


def test_excel_unicode_text_in_utf_16_is_read_with_its_encoding_and_named_without_it(
    cli_db: Database, tmp_path: Path
) -> None:
    """Excel's "Unicode text" is UTF-16 with tabs: without --encoding the refusal says which to give."""
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    lines = [HEADER, row("ORD-L1", member, when, "CRO,2,130"), row("ORD-L2", member, when, "PAC,1,150")]
    path = tmp_path / "orders.txt"
    path.write_text("\r\n".join(line.replace(",", "\t") for line in lines) + "\r\n", encoding="utf-16")
    refused = run_import(path, shop)
    assert refused.exit_code == 2 and "--encoding utf-16" in refused.output, refused.output
    assert event_count(cli_db, shop) == 0
    result = run_import(path, shop, "--encoding", "utf-16")
    assert result.exit_code == 0, result.output
    assert totals(cli_db, shop.program.id) == {"ORD-L1": 260, "ORD-L2": 150}


@pytest.mark.parametrize("magic", [b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"], ids=["xlsx", "xls"])
def test_an_excel_workbook_given_instead_of_its_csv_is_refused_saying_so(
    cli_db: Database, tmp_path: Path, magic: bytes
) -> None:
    """Not "Row 1 is not utf-8… run again with --encoding cp1252", which then reads the zip as a header."""
    shop = cli_shop(cli_db)
    path = tmp_path / "orders.xlsx"
    path.write_bytes(magic + bytes(range(256)) * 4)
    for extra in ((), ("--encoding", "cp1252")):
        refused = run_import(path, shop, *extra)
        assert refused.exit_code == 2, refused.output
        assert "error csv_is_a_workbook" in refused.output and "CSV UTF-8" in refused.output, refused.output
    assert event_count(cli_db, shop) == 0


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_file_whose_lines_end_with_a_carriage_return_alone_is_read_with_its_row_numbers(
    cli_db: Database, tmp_path: Path, encoding: str
) -> None:
    """Excel for Mac's "CSV (Macintosh)" and some tills end lines with CR alone: read as lines, not a traceback."""
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    lines = [HEADER, row("ORD-M1", member, when, "CRO,2,130"), row("ORD-M2", member, when, "PAC,1,1.50")]
    path = tmp_path / "orders.csv"
    path.write_bytes("\r".join([*lines, row("ORD-M3", member, when, "CAF,1,320")]).encode(encoding))
    result = run_import(path, shop, "--encoding", encoding)
    assert result.exit_code == 1, result.output
    assert summary(result.output) == {"imported": 2, "unclaimed": 0, "already present": 0, "rejected": 1}
    assert re.search(r"3\s*│\s*ORD-M2\s*│\s*invalid_type\s*│\s*unit_price", result.output), result.output
    assert totals(cli_db, shop.program.id) == {"ORD-M1": 260, "ORD-M3": 320}
    sound(cli_db, shop.program.id)


def test_a_cell_holding_a_line_break_is_refused_naming_the_rows_it_runs_over(cli_db: Database, tmp_path: Path) -> None:
    """A product name typed on two lines (Alt+Enter) is quoted and closed: not "a quote not closed on its line"."""
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    lines = [f"{HEADER},name", row("ORD-P1", member, when, "CRO,2,130,Croissant")]
    lines += [row("ORD-P2", member, when, 'PAC,1,150,"Pain\r\nau chocolat"'), row("ORD-P3", member, when, "CRO,1,130,")]
    path = tmp_path / "orders.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    refused = run_import(path, shop)
    assert refused.exit_code == 2 and "error csv_unclosed_quote" in refused.output, refused.output
    message = " ".join(refused.output.split())
    assert "Row 3: a value in quotes runs on to row 4" in message and "line break" in message, message
    assert event_count(cli_db, shop) == 0


def test_a_refund_line_of_a_till_export_is_rejected_saying_returns_are_recorded_apart(
    cli_db: Database, tmp_path: Path
) -> None:
    """A till's export lists refunds as negative quantities or prices: "should be greater than or equal to 1"
    tells a merchant nothing of what to do with them."""
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    refunds = [row("ORD-R2", member, when, "CRO,-1,130"), row("ORD-R3", member, when, "CRO,1,-130")]
    result = run_import(written(tmp_path / "orders.csv", [row("ORD-R1", member, when, "CRO,2,130"), *refunds]), shop)
    assert result.exit_code == 1, result.output
    assert summary(result.output) == {"imported": 1, "unclaimed": 0, "already present": 0, "rejected": 2}
    message = " ".join(result.output.split())
    for order, column in (("ORD-R2", "quantity"), ("ORD-R3", "unit_price")):
        assert re.search(rf"{order}\s*│\s*out_of_range\s*│\s*{column}\s*│", result.output), result.output
    assert message.count("POST /v1/events/returns") == 2, message
    assert totals(cli_db, shop.program.id) == {"ORD-R1": 260}


def test_every_rejected_row_can_be_listed_in_a_file_when_the_table_shows_the_first_ones(
    cli_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file with thousands of bad rows: the table shows the first ones and says where to find them all."""
    monkeypatch.setattr(imports, "SHOWN_PROBLEMS", 2)
    shop, card = cli_shop(cli_db), luhn_card()
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    bad = [row(f"ORD-S{n}", member, when, "CRO,-1,130") for n in range(1, 4)] + [row(card, member, when, "CRO,1,1.5")]
    path = written(tmp_path / "orders.csv", [row("ORD-S0", member, when, "CRO,2,130"), *bad])
    shown = run_import(path, shop)
    assert shown.exit_code == 1 and "… and 2 more: run again with --rejected" in shown.output, shown.output

    listed = run_import(path, shop, "--rejected", str(tmp_path / "rejected.csv"))
    assert listed.exit_code == 1, listed.output
    with (tmp_path / "rejected.csv").open(encoding="utf-8-sig", newline="") as report:
        rows = list(csv.DictReader(report))
    assert [(r["row"], r["order_id"], r["code"], r["column"]) for r in rows] == [
        ("3", "ORD-S1", "out_of_range", "quantity"),
        ("4", "ORD-S2", "out_of_range", "quantity"),
        ("5", "ORD-S3", "out_of_range", "quantity"),
        ("6", f"****{card[-4:]}", "card_number_in_text", "order_id"),
    ], rows
    assert "POST /v1/events/returns" in rows[0]["detail"]
    assert card not in (tmp_path / "rejected.csv").read_text(encoding="utf-8-sig")


def test_a_csv_utf_8_file_read_with_encoding_cp1252_is_refused_saying_to_drop_the_option(
    cli_db: Database, tmp_path: Path
) -> None:
    """Excel's "CSV UTF-8" starts with a byte-order mark: read as Windows-1252 it made "ï»¿order_id" unknown."""
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    path = tmp_path / "orders.csv"
    path.write_text("\n".join([HEADER, row("ORD-U1", member, when, "CRO,2,130")]) + "\n", encoding="utf-8-sig")
    refused = run_import(path, shop, "--encoding", "cp1252")
    assert refused.exit_code == 2 and "error csv_wrong_encoding" in refused.output, refused.output
    assert "without --encoding" in refused.output and "ï»¿" not in refused.output, refused.output
    assert run_import(path, shop).exit_code == 0
    assert totals(cli_db, shop.program.id) == {"ORD-U1": 260}


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\r\n\r\n"], ids=["empty", "mark only", "blank lines"])
def test_an_empty_file_is_refused_as_empty_not_as_missing_every_column(
    cli_db: Database, tmp_path: Path, content: bytes
) -> None:
    shop = cli_shop(cli_db)
    path = tmp_path / "orders.csv"
    path.write_bytes(content)
    refused = run_import(path, shop)
    assert refused.exit_code == 2 and "error csv_empty" in refused.output, refused.output
    assert "Missing column" not in refused.output


def test_a_row_in_another_encoding_is_named_in_a_file_whose_lines_end_with_a_carriage_return_alone(
    cli_db: Database, tmp_path: Path
) -> None:
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    lines = [f"{HEADER},name", row("ORD-V1", member, when, "CRO,2,130,Croissant"), row("ORD-V2", member, when, "")]
    path = tmp_path / "orders.csv"
    path.write_bytes(("\r".join(lines) + "ECL,1,250,Éclair\r").encode("cp1252"))
    refused = run_import(path, shop)
    assert refused.exit_code == 2 and "Row 3 is not utf-8" in refused.output, refused.output
    assert run_import(path, shop, "--encoding", "cp1252").exit_code == 0
    assert totals(cli_db, shop.program.id) == {"ORD-V1": 260, "ORD-V2": 250}


def test_a_time_without_offset_read_as_future_says_which_time_zone_it_was_read_in(
    cli_db: Database, tmp_path: Path
) -> None:
    """A till that writes UTC without saying so, for a shop east of it: its last orders are "in the future"."""
    shop = cli_shop(cli_db)
    member, soon = shop.members[0].id, datetime.now(UTC) + timedelta(hours=3)
    result = run_import(written(tmp_path / "orders.csv", [row("ORD-W1", member, soon, "CRO,2,130")]), shop)
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert "occurred_in_future" in message and "Europe/Paris" in message and "offset" in message, message


def test_a_bad_line_after_an_empty_row_inside_its_order_is_named_by_its_own_row(
    cli_db: Database, tmp_path: Path
) -> None:
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    path = written(tmp_path / "orders.csv", [row("ORD-X1", member, when, "CRO,2,130"), ",,,,,,,", ",,,,,PAC,1,1.5"])
    result = run_import(path, shop)
    assert result.exit_code == 1, result.output
    assert re.search(r"4\s*│\s*ORD-X1\s*│\s*invalid_type\s*│\s*unit_price", result.output), result.output


def test_the_header_of_a_file_joined_after_another_is_rejected_as_such_and_the_orders_after_it_imported(
    cli_db: Database, tmp_path: Path
) -> None:
    """Three days' exports joined with cat, each with its header (the second and third "CSV UTF-8", with the mark)."""
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    days = [[HEADER, row(f"ORD-Y{n}", member, when, "CRO,2,130")] for n in (1, 2, 3)]
    path = tmp_path / "orders.csv"
    path.write_bytes(
        b"".join(("\ufeff" if n else "").encode() + ("\n".join(d) + "\n").encode() for n, d in enumerate(days))
    )
    result = run_import(path, shop)
    assert result.exit_code == 1, result.output
    assert summary(result.output) == {"imported": 3, "unclaimed": 0, "already present": 0, "rejected": 2}
    for at in (3, 5):
        assert re.search(rf"{at}\s*│\s*│\s*csv_header_again\s*│", result.output), result.output
    assert totals(cli_db, shop.program.id) == {"ORD-Y1": 260, "ORD-Y2": 260, "ORD-Y3": 260}


@pytest.mark.parametrize(
    "second", [HEADER.replace("quantity,unit_price", "unit_price,quantity"), "name," + HEADER], ids=["order", "more"]
)
def test_a_file_joined_after_one_with_its_columns_in_another_order_is_refused_whole(
    cli_db: Database, tmp_path: Path, second: str
) -> None:
    """Read under the first header, the second file's prices would be taken for quantities."""
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    lines = [HEADER, row("ORD-Z1", member, when, "CRO,2,130"), second, row("ORD-Z2", member, when, "CRO,130,2")]
    path = tmp_path / "orders.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    refused = run_import(path, shop)
    assert refused.exit_code == 2 and "error csv_header_again" in refused.output, refused.output
    assert "Row 3:" in refused.output and "another order" in refused.output, refused.output
    assert event_count(cli_db, shop) == 0


def test_a_price_with_a_decimal_comma_in_a_semicolon_file_is_rejected_saying_what_it_is_in_cents(
    cli_db: Database, tmp_path: Path
) -> None:
    """French Excel writes 1,30 € as 1,30: the import reads cents, and says what to write instead."""
    shop = cli_shop(cli_db)
    member, when = shop.members[0].id, datetime.now(UTC) - timedelta(days=1)
    lines = [HEADER, row("ORD-F1", member, when, "CRO,2,130"), row("ORD-F2", member, when, "PAC,1,1|5")]
    path = tmp_path / "orders.csv"
    path.write_text("\n".join(lines).replace(",", ";").replace("|", ",") + "\n", encoding="utf-8")
    result = run_import(path, shop)
    assert result.exit_code == 1, result.output
    assert re.search(r"3\s*│\s*ORD-F2\s*│\s*invalid_type\s*│\s*unit_price", result.output), result.output
    assert "'1,5' is 150" in " ".join(result.output.split()), result.output
    assert totals(cli_db, shop.program.id) == {"ORD-F1": 260}
