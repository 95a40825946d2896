"""Bulk import of purchases: the same rows as record_purchase, idempotent re-runs, conflicts, crashes.

Service-level tests run on SQLite and PostgreSQL (``db``); the CLI tests drive ``palier import
purchases`` through Typer's runner on a fresh SQLite file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from palier.activity import bulk
from palier.activity.bulk import ImportStats, import_purchases
from palier.activity.models import PurchaseIn
from palier.activity.service import record_purchase
from palier.activity.tables import events, purchases
from palier.cli.common import console, err_console
from palier.cli.main import app
from palier.cli.purchases_csv import read_batches
from palier.clock import FrozenClock
from palier.config import load_settings
from palier.db import Database, make_database
from palier.db.bulk import GrowingTables, lookup_query
from palier.db.migrate import upgrade
from palier.errors import PalierError
from palier.ledger.verify import verify
from palier.rewards import payments
from palier.rewards import service as rewards
from palier.rewards.models import PaymentIn
from tests.cli.shop import Shop, csv_row, for_twin, lapsed_row, open_shop, order_rows, problem_rows, snapshot, to_csv
from tests.services import factories as f
from tests.services.test_concurrency import beside, linking
from tests.services.test_rules import BASE, counters_of, with_ten_for_every_hundred

runner = CliRunner()


def parsed(rows: list[dict[str, Any]], size: int = 1000) -> tuple[list[PurchaseIn], list[int], dict[str, str]]:
    """Purchases from CSV rows as the CLI reads them, and the codes of the rows that failed validation."""
    purchases: list[PurchaseIn] = []
    numbers: list[int] = []
    invalid: dict[str, str] = {}
    for batch in read_batches(io.StringIO(to_csv(rows)), size=size):
        purchases += batch.purchases
        numbers += batch.rows
        invalid |= {p.order_id or "": p.code for p in batch.problems}
    return purchases, numbers, invalid


def bulk_import(db: Database, clock: FrozenClock, shop: Shop, purchases: list[PurchaseIn], size: int) -> ImportStats:
    total = ImportStats()
    for start in range(0, len(purchases), size):
        with db.write() as conn:
            total.add(
                import_purchases(
                    conn=conn,
                    clock=clock,
                    program=shop.program,
                    purchases=purchases[start : start + size],
                    card_key=f.CARD_KEY,
                )
            )
    return total


def one_by_one(
    db: Database, clock: FrozenClock, shop: Shop, purchases: list[PurchaseIn], card_key: bytes = f.CARD_KEY
) -> dict[str, tuple[str, str | None]]:
    """record_purchase for each, in its own transaction; the code and field of those it refused."""
    refused: dict[str, tuple[str, str | None]] = {}
    for purchase in purchases:
        try:
            with db.write() as conn:
                record_purchase(conn=conn, clock=clock, program=shop.program, purchase=purchase, card_key=card_key)
        except PalierError as error:
            refused[purchase.order_id] = (error.code, error.field)
    return refused


def assert_sound(db: Database, program_id: str) -> None:
    with db.read() as conn:
        assert verify(conn, program_id=program_id) == []


@pytest.mark.parametrize("batch_size", [7, 1000])
def test_bulk_writes_exactly_what_record_purchase_writes(db: Database, clock: FrozenClock, batch_size: int) -> None:
    cards = [f.luhn_card() for _ in range(3)]
    by_bulk, by_service = open_shop(db, clock, cards=cards), open_shop(db, clock, cards=cards)
    rows = [*order_rows(by_bulk, clock.now()), lapsed_row(by_bulk, clock.now()), *problem_rows(by_bulk, clock.now())]
    purchases, _, invalid = parsed(rows)
    twin_purchases, _, _ = parsed(for_twin(rows, by_bulk, by_service))
    stats = bulk_import(db, clock, by_bulk, purchases, batch_size)
    refused = one_by_one(db, clock, by_service, twin_purchases)

    assert {p.order_id: (p.code, p.field) for p in stats.rejected} == refused
    codes = {order_id: code for order_id, (code, _) in refused.items()} | invalid
    assert codes == {r["order_id"]: r["code"] for r in problem_rows(by_bulk, clock.now())}
    assert stats.imported + stats.unclaimed == len(purchases) - len(refused)
    assert stats.unclaimed == 5  # every order paid with the card nobody has linked
    assert snapshot(db, by_bulk) == snapshot(db, by_service)
    assert snapshot(db, by_bulk)["events"]["ORD-LAPSED"]["result"]["details"] == {"expired": 25}
    assert stats.expired == 25  # the summary says so, next to the points credited
    balances = snapshot(db, by_bulk)["balances"]
    assert balances["m5:debt"] == 0 and balances["m5:available"] > 0  # older purchases repaid the debt
    assert balances["m0:pending"] > 0 and balances["m0:available"] > 0
    assert_sound(db, by_bulk.program.id)
    assert_sound(db, by_service.program.id)


def test_an_order_imported_below_what_points_paid_for_is_rejected_alone(db: Database, clock: FrozenClock) -> None:
    shop = open_shop(db, clock)
    payer = shop.members[0]
    f.adjust(db, clock, shop.program, payer, 5_000)
    for order_id in ("PAID-LOW", "PAID-OK"):
        data = PaymentIn.model_validate({"kind": "points", "order_id": order_id, "order_total": 5_000, "points": 2_500})
        with db.write() as conn:
            payments.pay(conn=conn, clock=clock, program=shop.program, member_id=payer.id, data=data)
    rows = [
        csv_row("PAID-LOW", {"member_id": payer.id}, clock.now(), unit_price=2_000),
        csv_row("PAID-OK", {"member_id": payer.id}, clock.now(), unit_price=5_000),
    ]
    purchases, _, _ = parsed(rows)
    stats = bulk_import(db, clock, shop, purchases, 10)
    assert [(p.order_id, p.code, p.field) for p in stats.rejected] == [
        ("PAID-LOW", "order_total_below_payment", "order_id")
    ]
    assert (stats.imported, stats.points) == (1, 25)  # on the €25 of PAID-OK paid with money
    assert_sound(db, shop.program.id)


def test_a_bulk_import_is_what_the_api_would_replay(db: Database, clock: FrozenClock) -> None:
    shop = open_shop(db, clock)
    purchases, _, _ = parsed(order_rows(shop, clock.now(), orders=12))
    bulk_import(db, clock, shop, purchases, 5)
    with db.write() as conn:
        for purchase in purchases:
            result, replayed = record_purchase(
                conn=conn, clock=clock, program=shop.program, purchase=purchase, card_key=f.CARD_KEY
            )
            assert replayed and result.external_id == purchase.order_id


def local(moment: str, timezone: str) -> str:
    return datetime.fromisoformat(moment).astimezone(ZoneInfo(timezone)).replace(tzinfo=None).isoformat()


def test_rerun_skips_everything_and_a_changed_order_is_a_conflict(db: Database, clock: FrozenClock) -> None:
    shop = open_shop(db, clock)
    rows = order_rows(shop, clock.now(), orders=20)
    purchases, _, _ = parsed(rows)
    first = bulk_import(db, clock, shop, purchases, 6)
    before = snapshot(db, shop)

    again = bulk_import(db, clock, shop, purchases, 6)
    assert (again.imported, again.unclaimed, again.skipped, again.rejected) == (0, 0, len(purchases), [])
    assert snapshot(db, shop) == before

    # the same orders exported again with their times in Paris, without an offset (as a spreadsheet does)
    in_paris = [
        {**r, "occurred_at": local(r["occurred_at"], shop.program.timezone)} if "occurred_at" in r else r for r in rows
    ]
    assert in_paris[0]["occurred_at"] != rows[0]["occurred_at"]
    purchases, _, _ = parsed(in_paris)
    again = bulk_import(db, clock, shop, purchases, 6)
    assert (again.imported, again.unclaimed, again.skipped, again.rejected) == (0, 0, len(purchases), [])
    assert snapshot(db, shop) == before

    changed = [{**r, "quantity": 9} if r["order_id"] == "ORD-0003" else r for r in rows]
    purchases, _, _ = parsed(changed)
    third = bulk_import(db, clock, shop, purchases, 6)
    assert [(p.order_id, p.code, p.field) for p in third.rejected] == [("ORD-0003", "event_conflict", "order_id")]
    assert third.skipped == len(purchases) - 1
    assert snapshot(db, shop) == before
    assert first.imported + first.unclaimed == len(purchases)


def test_an_order_twice_in_one_batch(db: Database, clock: FrozenClock) -> None:
    shop = open_shop(db, clock)
    rows = order_rows(shop, clock.now(), orders=3)
    same = [r for r in rows if r["order_id"] == "ORD-0001"]
    changed = [{**r, "unit_price": 999} for r in same]
    unknown_card = problem_rows(shop, clock.now())[1]
    purchases, _, _ = parsed([*rows, *same, unknown_card, *changed])  # not consecutive: three orders
    stats = bulk_import(db, clock, shop, purchases, 100)
    assert stats.skipped == 1
    assert [(p.order_id, p.code) for p in stats.rejected] == [
        ("BAD-CARD", "member_not_found"),
        ("ORD-0001", "event_conflict"),
    ]


def test_a_batch_racing_another_writer_is_retried_and_skips_what_it_sent(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = open_shop(db, clock)
    purchases, rows, _ = parsed(order_rows(shop, clock.now(), orders=8))
    bulk_import(db, clock, shop, purchases[:3], 10)  # "the other writer" got these in first
    real, calls = bulk._drop_known, 0

    def blind_first_time(*args: Any) -> Any:  # as if the orders arrived between our check and our insert
        nonlocal calls
        calls += 1
        return args[2] if calls == 1 else real(*args)

    monkeypatch.setattr(bulk, "_drop_known", blind_first_time)
    stats = bulk.import_batches(
        db=db, clock=clock, program_id=shop.program.id, batches=[(purchases, rows)], card_key=f.CARD_KEY
    )
    assert calls == 2
    assert (stats.skipped, stats.imported + stats.unclaimed, stats.rejected) == (3, len(purchases) - 3, [])
    assert_sound(db, shop.program.id)


def test_a_batch_chosen_as_a_deadlock_victim_is_run_again_not_a_crash(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL rolls back one of two commands locking the same rows in opposite orders (a card linked to a
    member of the batch, say): the API runs its command again, and so must the import, not stop with a traceback."""

    class Deadlock(Exception):
        sqlstate = "40P01"

    shop = open_shop(db, clock)
    purchases, rows, _ = parsed(order_rows(shop, clock.now(), orders=6))
    real, calls = bulk.import_purchases, 0

    def victim_first_time(**kwargs: Any) -> ImportStats:
        nonlocal calls
        calls += 1
        stats = real(**kwargs)
        if calls == 1:
            raise OperationalError("SELECT pg_advisory_xact_lock(…)", {}, Deadlock("deadlock detected"))
        return stats

    monkeypatch.setattr(bulk, "import_purchases", victim_first_time)
    stats = bulk.import_batches(
        db=db, clock=clock, program_id=shop.program.id, batches=[(purchases, rows)], card_key=f.CARD_KEY
    )
    assert calls == 2 and (stats.imported + stats.unclaimed, stats.skipped, stats.rejected) == (len(purchases), 0, [])
    assert_sound(db, shop.program.id)


@pytest.mark.parametrize("held", ["import", "link"])
def test_a_card_linked_while_its_purchase_is_being_imported_still_earns(
    db: Database, clock: FrozenClock, held: str
) -> None:
    """As through the API: the import and the linking of the card take turns, so the member linking it gets the
    purchase whichever commits first, not a purchase left unclaimed beside a card that is linked."""
    program, card = f.make_program(db, clock), f.luhn_card()
    member = f.enrol(db, clock, program)
    body = f.purchase_body(program, ("payment_card", card), clock=clock, amount=2500)

    def importing(conn: Any) -> ImportStats:
        return import_purchases(conn=conn, clock=clock, program=program, purchases=[body], card_key=f.CARD_KEY)

    if held == "import":
        stats, _ = beside(db, importing, lambda: f.add_identity(db, clock, program, member, "payment_card", card))
        assert stats.unclaimed == 1
    else:
        _, stats = beside(db, linking(clock, program, member, card), lambda: db_write(db, importing))
        assert isinstance(stats, ImportStats) and stats.imported == 1, stats
    assert f.balance(db, program, member).pending == 25
    assert_sound(db, program.id)


def db_write(db: Database, command: Callable[[Any], Any]) -> Any:
    with db.write() as conn:
        return command(conn)


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_a_long_import_keeps_probing_order_ids_by_their_index(empty_database_url: str, clock: FrozenClock) -> None:
    """Statistics taken while a new program's tables were nearly empty would have each batch look its
    order ids up through the program's purchases by date, slower with every batch; the import refreshes
    them as it grows the tables."""
    upgrade(empty_database_url)
    db = make_database(empty_database_url)
    try:
        shop = open_shop(db, clock)
        with db.engine.connect() as conn:  # as autovacuum's first pass leaves a new program's tables
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        purchases, rows, _ = parsed(order_rows(shop, clock.now(), orders=2500))
        batches = [(purchases[at : at + 500], rows[at : at + 500]) for at in range(0, len(purchases), 500)]
        stats = bulk.import_batches(
            db=db, clock=clock, program_id=shop.program.id, batches=batches, card_key=f.CARD_KEY
        )
        assert (stats.imported + stats.unclaimed, stats.rejected) == (len(purchases), [])
        probe = lookup_query(
            "postgresql",
            events.c.external_id,
            events.c.payload_hash,
            ["ORD-0001", "ORD-2400"],
            events.c.program_id == shop.program.id,
            events.c.type == "purchase",
        ).compile(dialect=db.engine.dialect)
        with db.read() as conn:
            plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {probe}", probe.params).scalars())
        assert "uq_events_program_id_type_external_id" in plan, plan
        assert_sound(db, shop.program.id)
    finally:
        db.dispose()


def test_only_postgresql_tables_are_analysed(sqlite_db: Database) -> None:
    assert GrowingTables(sqlite_db.engine, [events]).grew(1_000_000) == []


# --- the command ---


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as they need: rows are matched in the output."""
    monkeypatch.setattr(console, "width", 250)
    monkeypatch.setattr(err_console, "width", 250)


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'palier.db'}"
    monkeypatch.setenv("PALIER_DATABASE_URL", url)
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    yield url


@pytest.fixture
def cli_db(database_url: str) -> Iterator[Database]:
    database = make_database(database_url)
    yield database
    database.dispose()


def cli_shop(db: Database, cards: list[str] | None = None) -> Shop:
    """A shop whose members were enrolled a month ago, with the card key the CLI uses."""
    clock = FrozenClock(datetime.now(UTC) - timedelta(days=31))
    f.CARD_KEY, saved = load_settings().card_hash_key, f.CARD_KEY
    try:
        return open_shop(db, clock, cards=cards)
    finally:
        f.CARD_KEY = saved


def run_import(path: Path, shop: Shop, *extra: str) -> Any:
    return runner.invoke(app, ["import", "purchases", str(path), "--program", shop.program.id, *extra])


def event_count(db: Database, shop: Shop) -> int:
    """Purchases from the CSV files (every order id there starts with ORD-)."""
    with db.read() as conn:
        query = select(func.count()).where(
            events.c.program_id == shop.program.id, events.c.type == "purchase", events.c.external_id.like("ORD-%")
        )
        return int(conn.execute(query).scalar_one())


def summary(output: str) -> dict[str, int]:
    found = re.findall(r"^│ (imported|unclaimed|already present|rejected)\s*│\s*([\d,]+) │", output, re.MULTILINE)
    return {name: int(count.replace(",", "")) for name, count in found}


def test_import_command(cli_db: Database, tmp_path: Path) -> None:
    cards = [f.luhn_card() for _ in range(3)]
    shop, twin = cli_shop(cli_db, cards), cli_shop(cli_db, cards)
    now = datetime.now(UTC)
    rows = order_rows(shop, now, orders=50) + problem_rows(shop, now)
    path = tmp_path / "orders.csv"
    to_csv(rows, path)

    result = run_import(path, shop, "--batch-size", "8")
    assert result.exit_code == 1, result.output  # some rows were rejected
    assert summary(result.output) == {"imported": 46, "unclaimed": 5, "already present": 0, "rejected": 6}
    for row in problem_rows(shop, now):
        assert re.search(rf"\d+\s*│\s*{row['order_id']}\s*│\s*{row['code']}", result.output), row
    assert event_count(cli_db, shop) == 51

    again = run_import(path, shop)
    assert summary(again.output) == {"imported": 0, "unclaimed": 0, "already present": 51, "rejected": 6}
    assert event_count(cli_db, shop) == 51

    # the same orders through record_purchase, one by one, leave the same balances
    purchases, _, _ = parsed(for_twin(rows, shop, twin))
    one_by_one(cli_db, FrozenClock(datetime.now(UTC)), twin, purchases, load_settings().card_hash_key)
    assert snapshot(cli_db, shop)["balances"] == snapshot(cli_db, twin)["balances"]
    assert_sound(cli_db, shop.program.id)


def test_a_card_number_pasted_as_an_order_id_is_rejected_and_shown_masked(cli_db: Database, tmp_path: Path) -> None:
    shop, card = cli_shop(cli_db), f.luhn_card()
    rows = order_rows(shop, datetime.now(UTC), orders=2)
    to_csv([*rows, {**rows[0], "order_id": card}], tmp_path / "orders.csv")
    result = run_import(tmp_path / "orders.csv", shop)
    assert summary(result.output)["rejected"] == 1, result.output
    assert f"****{card[-4:]}" in result.output and "card_number_in_text" in result.output, result.output
    assert card not in result.output.replace(" ", "").replace("│", "").replace("\n", "")


def test_a_file_excel_saved_in_windows_1252_is_refused_whole_then_read_with_its_encoding(
    cli_db: Database, tmp_path: Path
) -> None:
    shop = cli_shop(cli_db)
    rows = order_rows(shop, datetime.now(UTC), orders=6)
    rows[-1] = {**rows[-1], "name": "Éclair café"}
    path = tmp_path / "excel.csv"
    path.write_text(to_csv(rows), encoding="cp1252")
    refused = run_import(path, shop)
    assert refused.exit_code == 2, refused.output
    first = 1 + next(n for n, line in enumerate(to_csv(rows).splitlines()) if not line.isascii())
    assert "csv_wrong_encoding" in refused.output and f"Row {first} " in refused.output, refused.output
    assert "--encoding cp1252" in refused.output
    assert event_count(cli_db, shop) == 0  # refused before the first order was written

    read = run_import(path, shop, "--encoding", "cp1252")
    assert read.exit_code == 0, read.output
    with cli_db.read() as conn:
        query = select(events.c.body).where(events.c.program_id == shop.program.id, events.c.type == "purchase")
        bodies = conn.execute(query).scalars()
        names = {line.get("name") for body in bodies for line in body["lines"]}
    assert "Éclair café" in names


@pytest.mark.parametrize(
    ("spoil", "code", "row"),
    [
        (lambda text: text.replace("ORD-0003,", '"ORD-0003,', 1), "csv_unclosed_quote", "ORD-0003"),
        (
            lambda text: text.replace("ORD-0003,", 'ORD-0003,"', 1).replace("ORD-0005,", 'ORD-0005",', 1),
            "csv_unclosed_quote",
            "ORD-0003",
        ),
        (lambda text: text + text.splitlines()[1] + "\n", "csv_order_rows_apart", "end"),
        (lambda text: text.replace("order_id", "order_number", 1), "csv_unknown_columns", "header"),
    ],
    ids=["quote left open", "quote closed rows later", "order rows apart", "no order_id column"],
)
def test_a_spoilt_file_is_refused_whole_before_any_order_is_written(
    cli_db: Database, tmp_path: Path, spoil: Callable[[str], str], code: str, row: str
) -> None:
    shop = cli_shop(cli_db)
    text = to_csv(order_rows(shop, datetime.now(UTC), orders=8))
    path = tmp_path / "orders.csv"
    path.write_text(spoil(text), encoding="utf-8")
    refused = run_import(path, shop)
    assert refused.exit_code == 2 and f"error {code}" in refused.output, refused.output
    if row == "ORD-0003":
        first = 1 + next(n for n, line in enumerate(text.splitlines()) if line.startswith("ORD-0003,"))
        assert f"Row {first}:" in refused.output, refused.output
    if row == "end":
        assert f"Row {len(text.splitlines()) + 1}:" in refused.output and "sort the file" in refused.output
    assert event_count(cli_db, shop) == 0


def test_import_reports_a_conflicting_row_and_goes_on(cli_db: Database, tmp_path: Path) -> None:
    shop = cli_shop(cli_db)
    rows = order_rows(shop, datetime.now(UTC), orders=10)
    to_csv(rows, tmp_path / "first.csv")
    assert run_import(tmp_path / "first.csv", shop).exit_code == 0
    changed = [{**r, "quantity": 7} if r["order_id"] == "ORD-0004" else r for r in rows]
    changed += [r for r in order_rows(shop, datetime.now(UTC), orders=12) if r["order_id"] == "ORD-0011"]
    to_csv(changed, tmp_path / "second.csv")
    result = run_import(tmp_path / "second.csv", shop)
    assert result.exit_code == 1
    assert "event_conflict" in result.output and "ORD-0004" in result.output
    assert summary(result.output) == {"imported": 1, "unclaimed": 0, "already present": 10, "rejected": 1}
    assert event_count(cli_db, shop) == 12


def test_an_order_whose_rows_disagree_or_without_a_member_is_rejected_alone(cli_db: Database, tmp_path: Path) -> None:
    shop = cli_shop(cli_db)
    now, ann = datetime.now(UTC) - timedelta(days=1), {"member_id": shop.members[0].id}
    rows = [
        csv_row("ORD-C9", ann, now, shipping=0),
        csv_row("ORD-C9", ann, now, sku="PAIN", shipping=500),  # two orders sharing a number, or a typo
        csv_row("ORD-C10", ann, now, shipping=490),
        csv_row("ORD-C10", {"member_id": ""}, now, sku="PAIN", shipping=""),  # left empty after the first: fine
        csv_row("ORD-C11", {"member_id": ""}, now),
    ]
    to_csv(rows, tmp_path / "orders.csv")
    result = run_import(tmp_path / "orders.csv", shop)
    assert result.exit_code == 1
    assert "order_rows_disagree" in result.output and "shipping" in result.output, result.output
    assert "member_required" in result.output, result.output
    assert summary(result.output) == {"imported": 1, "unclaimed": 0, "already present": 0, "rejected": 2}
    with cli_db.read() as conn:
        kept = conn.execute(select(purchases.c.shipping).where(purchases.c.order_id == "ORD-C10")).scalar_one()
    assert kept == 490


@pytest.mark.parametrize("crash", [RuntimeError, KeyboardInterrupt])
def test_an_import_killed_mid_way_counts_every_order_once_after_a_rerun(
    cli_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash: type[BaseException]
) -> None:
    shop = cli_shop(cli_db)
    rows = order_rows(shop, datetime.now(UTC), orders=50)
    path = tmp_path / "orders.csv"
    to_csv(rows, path)
    real = bulk.import_purchases
    calls = 0

    def crash_in_the_third_batch(**kwargs: Any) -> ImportStats:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise crash("power cut")
        return real(**kwargs)

    monkeypatch.setattr(bulk, "import_purchases", crash_in_the_third_batch)
    crashed = run_import(path, shop, "--batch-size", "10")
    if crash is KeyboardInterrupt:  # Ctrl-C: told how to resume
        assert crashed.exit_code == 130 and "20 orders committed" in crashed.output
    else:
        assert isinstance(crashed.exception, RuntimeError)
    assert event_count(cli_db, shop) == 20  # two batches committed, the third rolled back

    monkeypatch.setattr(bulk, "import_purchases", real)
    rerun = run_import(path, shop, "--batch-size", "10")
    assert rerun.exit_code == 0, rerun.output
    assert summary(rerun.output) == {"imported": 28, "unclaimed": 3, "already present": 20, "rejected": 0}
    assert event_count(cli_db, shop) == 51
    with cli_db.read() as conn:
        counted = conn.execute(
            select(events.c.external_id, func.count())
            .where(events.c.program_id == shop.program.id)
            .group_by(events.c.external_id)
            .having(func.count() > 1)
        ).all()
    assert counted == []
    assert_sound(cli_db, shop.program.id)


def test_rejected_rows_name_the_csv_column_and_a_bad_date_says_what_to_write(cli_db: Database, tmp_path: Path) -> None:
    shop = cli_shop(cli_db)
    now, ann = datetime.now(UTC) - timedelta(days=1), {"member_id": shop.members[0].id}
    rows = [
        csv_row("ORD-D1", ann, now.replace(tzinfo=None), unit_price=130),  # no offset: the program's time zone
        csv_row("ORD-D2", ann, now, occurred_at="02/10/2026"),
        csv_row("ORD-D3", ann, now, unit_price="1.50"),
        csv_row("ORD-D4", ann, now, line_kind="thing"),
        csv_row("ORD-D5", {"member_kind": "bogus", "member_value": "x"}, now),
    ]
    to_csv(rows, tmp_path / "orders.csv")
    result = run_import(tmp_path / "orders.csv", shop)
    assert result.exit_code == 1, result.output
    assert summary(result.output) == {"imported": 1, "unclaimed": 0, "already present": 0, "rejected": 4}
    assert "credited to members: 1 point " in result.output, result.output  # not "1 points"
    for order, column in (("ORD-D2", "occurred_at"), ("ORD-D3", "unit_price"), ("ORD-D4", "line_kind")):
        assert re.search(rf"{order}\s*│\s*\w+\s*│\s*{column}\s*│", result.output), (order, result.output)
    assert re.search(r"ORD-D5\s*│\s*invalid_choice\s*│\s*member_kind\s*│", result.output), result.output
    assert "lines[0]" not in result.output and "member.kind" not in result.output
    assert "'02/10/2026' is not a date and time this import reads" in result.output
    assert "invalid character in year" not in result.output
    helped = runner.invoke(app, ["import", "purchases", "--help"], env={"COLUMNS": "200"})
    assert "with a zone" not in helped.output and "program's time zone" in helped.output, helped.output


def test_an_order_refused_for_earning_too_many_points_gives_no_step_voucher(db: Database, clock: FrozenClock) -> None:
    """A price typed with too many zeros is rejected alone: the step vouchers the rules gave it before the refusal,
    the spend they counted and the stock they took are undone with it (they went to an order never recorded)."""
    program = with_ten_for_every_hundred(db, clock, f.make_program(db, clock), stock=5)
    with db.read() as conn:
        [voucher] = rewards.list_rewards(conn=conn, program_id=program.id)
    hundred_a_euro = BASE | {"effect": {"type": "points_per_amount", "points": 100, "per_amount": 100}}
    step = {
        "id": "ten-for-hundred",
        "name": {"en": "€10 for every €100"},
        "event": "purchase",
        "effect": {"type": "spend_step", "step": 10000, "reward_id": voucher.id},
    }
    program = f.apply_rules(db, clock, program, {"rules": [hundred_a_euro, step]})
    member = f.enrol(db, clock, program)
    typo = f.purchase_body(program, member, clock=clock, order_id="TYPO", lines=[f.line("TV", 2 * 10**9)])
    fine = f.purchase_body(program, member, clock=clock, order_id="FINE", lines=[f.line("TV", 10000)])
    with db.write() as conn:
        stats = import_purchases(conn=conn, clock=clock, program=program, purchases=[typo, fine], card_key=f.CARD_KEY)
    assert [(p.order_id, p.code) for p in stats.rejected] == [("TYPO", "points_too_large")]
    with db.read() as conn:
        given = rewards.member_coupons(conn=conn, program_id=program.id, member_id=member.id)
        left = rewards.get_reward(conn=conn, program_id=program.id, reward_id=voucher.id).stock_left
        kept = counters_of(conn, program, member.id)
    assert (len(given), left) == (1, 4)  # FINE's €100 gave one voucher; the refused order none (it took all 5)
    assert kept == {"spend:ten-for-hundred": 10000, "steps:ten-for-hundred": 1}
    assert_sound(db, program.id)


def test_an_order_earning_too_many_points_is_rejected_by_the_import_as_by_the_api(
    db: Database, clock: FrozenClock
) -> None:
    """5 points per euro and a price typed with three zeros too many: 5 billion points. The API refuses it
    (points_too_large); the import, which earns the base rate without a request each, must too."""
    program = f.make_program(db, clock, earn_points=5)
    member = f.enrol(db, clock, program)
    typo = f.purchase_body(program, member, clock=clock, order_id="TYPO", lines=[f.line("TV", 10**11)])
    fine = f.purchase_body(program, member, clock=clock, order_id="FINE", lines=[f.line("TV", 10000)])
    with pytest.raises(PalierError) as caught, db.write() as conn:
        record_purchase(conn=conn, clock=clock, program=program, purchase=typo, card_key=f.CARD_KEY)
    assert (caught.value.code, caught.value.field) == ("points_too_large", "lines")
    with db.write() as conn:
        stats = import_purchases(conn=conn, clock=clock, program=program, purchases=[typo, fine], card_key=f.CARD_KEY)
    assert [(p.order_id, p.code, p.field) for p in stats.rejected] == [("TYPO", "points_too_large", "lines")]
    assert (stats.imported, stats.points) == (1, 500)
    assert f.balance(db, program, member).pending == 500
    assert_sound(db, program.id)
