"""Bulk import of purchases: a whole batch in a handful of set-based statements.

:func:`import_purchases` writes exactly the rows :func:`palier.activity.service.record_purchase`
would write for each purchase (event with redacted body and result, purchase lines, ledger
transaction, lot), but for a batch at once: one query finds the orders already received, one query
per identity kind resolves the buyers, one locks them, one reads their status, and each table gets
one multi-row insert. A batch is one database transaction (the caller's), so a crash loses at most
the batch in flight and a re-run skips what was committed: nothing is counted twice.

Per-purchase refusals (unknown member, future date, different content under a known order id…) are
collected as :class:`RowProblem` and the rest of the batch goes on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, cast

import psycopg
from sqlalchemy import ARRAY, ColumnElement, Connection, String, Table, bindparam, func, insert, select, true
from sqlalchemy.exc import IntegrityError

from palier.activity.earning import purchase_earning
from palier.activity.models import EventResult, PurchaseIn
from palier.activity.service import _occurred_at, _redacted, payload_hash, purchase_label
from palier.activity.tables import events, purchases
from palier.clock import Clock
from palier.db import Database
from palier.errors import Conflict, InvalidInput, NotFound, PalierError
from palier.ids import new_id
from palier.ledger import operations as ledger
from palier.ledger.locks import lock_members
from palier.ledger.lots import write_allocations
from palier.ledger.post import Entry, write
from palier.ledger.tables import accounts, lots
from palier.members.identities import Normalised, normalise
from palier.members.service import expiry_for
from palier.members.tables import identities, members
from palier.programs.models import Program
from palier.programs.service import get_program

_IN_CHUNK = 500  # ids per IN (…) list: well under SQLite's and PostgreSQL's parameter limits


@dataclass(frozen=True)
class RowProblem:
    """A purchase that was not imported, and why (``code`` is the API's error code)."""

    row: int
    order_id: str | None
    code: str
    detail: str
    field: str | None = None


@dataclass
class ImportStats:
    imported: int = 0  # new purchases credited to a member
    unclaimed: int = 0  # new purchases kept until their payment card is linked to a member
    skipped: int = 0  # already present with the same content (a re-run, a resend)
    points: int = 0  # points earned by the imported purchases
    rejected: list[RowProblem] = field(default_factory=list)

    @property
    def conflicts(self) -> int:
        """Orders already present with different content."""
        return sum(1 for p in self.rejected if p.code == "event_conflict")

    def add(self, other: ImportStats) -> None:
        self.imported += other.imported
        self.unclaimed += other.unclaimed
        self.skipped += other.skipped
        self.points += other.points
        self.rejected += other.rejected


@dataclass
class _Item:
    row: int
    purchase: PurchaseIn
    body_hash: str
    occurred_at: datetime | None = None
    member_id: str | None = None
    claim: tuple[str, str] | None = None


def import_purchases(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    purchases: Sequence[PurchaseIn],
    card_key: bytes,
    rows: Sequence[int] | None = None,
) -> ImportStats:
    """Record a batch of purchases as :func:`record_purchase` would, one after the other.

    ``rows`` names each purchase in problem reports (a CSV row number); by default its 1-based
    position. Runs in the caller's transaction: commit it to keep the batch, roll it back to drop it.
    """
    stats = ImportStats()
    now = clock.now()
    items = [
        _Item(row, p, payload_hash(p, key=card_key))
        for row, p in zip(rows or range(1, len(purchases) + 1), purchases, strict=True)
    ]
    items = _drop_known(conn, program, items, stats)
    items = _checked(items, program, now, stats)
    items = _resolved(conn, program, items, card_key, stats)
    lock_members(conn, {i.member_id for i in items if i.member_id})
    items = _active_only(conn, program, items, stats)
    items = _first_of_each_order(items, stats)
    _write(conn, program, now, items, stats)
    return stats


def import_batches(
    *,
    db: Database,
    clock: Clock,
    program_id: str,
    batches: Iterable[tuple[Sequence[PurchaseIn], Sequence[int]]],
    card_key: bytes,
    after_batch: Callable[[ImportStats], None] | None = None,
) -> ImportStats:
    """Import ``(purchases, row numbers)`` batches, each in its own transaction; the totals.

    A batch that collides with a concurrent writer of the same order ids (a unique-constraint
    violation) is retried once: the retry finds those orders already present and skips them.
    """
    total = ImportStats()
    for batch, rows in batches:
        for attempt in (1, 2):
            try:
                with db.write() as conn:
                    program = get_program(conn=conn, program_id=program_id)
                    stats = import_purchases(
                        conn=conn, clock=clock, program=program, purchases=batch, card_key=card_key, rows=rows
                    )
                break
            except (IntegrityError, psycopg.IntegrityError):  # the latter from COPY, below SQLAlchemy
                if attempt == 2:
                    raise
        total.add(stats)
        if after_batch is not None:
            after_batch(stats)
    return total


def _reject(stats: ImportStats, item: _Item, error: PalierError) -> None:
    stats.rejected.append(RowProblem(item.row, item.purchase.order_id, error.code, error.detail, error.field))


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    ordered = sorted(set(values))
    for start in range(0, len(ordered), _IN_CHUNK):
        yield ordered[start : start + _IN_CHUNK]


def _lookup(
    conn: Connection, key: ColumnElement[Any], value: ColumnElement[Any], keys: Iterable[str], *where: Any
) -> dict[Any, Any]:
    """``{key: value}`` for the rows whose ``key`` is among ``keys`` (one query per 500 keys).

    On PostgreSQL each key is looked up through a LATERAL subquery: one unique-index probe per key
    whatever the planner believes. A plain ``IN`` list is planned from statistics, which a bulk load
    leaves stale, and then filters every row of the program instead (10x slower on 20,000 orders).
    """
    found: dict[Any, Any] = {}
    for chunk in _chunks(keys):
        if conn.dialect.name == "postgresql":
            wanted = (
                func.unnest(bindparam("keys", chunk, type_=ARRAY(String))).table_valued("k").render_derived("wanted")
            )
            probe = select(value.label("v")).where(*where, key == wanted.c.k).limit(1).lateral()
            query = select(wanted.c.k, probe.c.v).select_from(wanted).join(probe, true())
        else:
            query = select(key, value).where(*where, key.in_(chunk))
        found.update((k, v) for k, v in conn.execute(query))
    return found


def _conflict(order_id: str) -> Conflict:
    return Conflict(
        "event_conflict",
        f"A purchase with id {order_id!r} was already received with different content. Use a new id for a new fact.",
        field="order_id",
    )


def _drop_known(conn: Connection, program: Program, items: list[_Item], stats: ImportStats) -> list[_Item]:
    """Orders already received: the same content is skipped, different content is a conflict."""
    where = (events.c.program_id == program.id, events.c.type == "purchase")
    known = _lookup(conn, events.c.external_id, events.c.payload_hash, (i.purchase.order_id for i in items), *where)
    fresh = []
    for item in items:
        stored = known.get(item.purchase.order_id)
        if stored is None:
            fresh.append(item)
        elif stored == item.body_hash:
            stats.skipped += 1
        else:
            _reject(stats, item, _conflict(item.purchase.order_id))
    return fresh


def _checked(items: list[_Item], program: Program, now: datetime, stats: ImportStats) -> list[_Item]:
    """Date and currency, checked in the same order as record_purchase does."""
    kept = []
    for item in items:
        try:
            item.occurred_at = _occurred_at(item.purchase.occurred_at, now)
            if item.purchase.currency != program.currency:
                raise InvalidInput(
                    "currency_mismatch",
                    f"This program counts in {program.currency}, not {item.purchase.currency}.",
                    field="currency",
                )
        except PalierError as error:
            _reject(stats, item, error)
        else:
            kept.append(item)
    return kept


def _resolved(
    conn: Connection, program: Program, items: list[_Item], card_key: bytes, stats: ImportStats
) -> list[_Item]:
    """Who bought: member ids as given; identities normalised, then looked up one query per kind."""
    for kind, by_value in _identities(program, items, card_key, stats).items():
        where = (identities.c.program_id == program.id, identities.c.kind == kind)
        owners = _lookup(conn, identities.c.value, identities.c.member_id, by_value, *where)
        for value, waiting in by_value.items():
            for item in waiting:
                if value in owners:
                    item.member_id = owners[value]
                elif kind == "payment_card":
                    item.claim = (kind, value)  # nobody has linked this card yet: unclaimed
                else:
                    _reject(stats, item, _unknown_identity(kind))
    for item in items:
        if item.purchase.member.member_id is not None:
            item.member_id = item.purchase.member.member_id
    return [i for i in items if i.member_id is not None or i.claim is not None]


def _identities(
    program: Program, items: list[_Item], card_key: bytes, stats: ImportStats
) -> dict[str, dict[str, list[_Item]]]:
    """The purchases found by an identity, by kind and normalised value (refusing malformed ones)."""
    wanted: dict[str, dict[str, list[_Item]]] = defaultdict(lambda: defaultdict(list))
    seen: dict[tuple[str, str], Normalised | PalierError] = {}  # a regular's card comes up again and again
    for item in items:
        kind, value = item.purchase.member.kind, item.purchase.member.value
        if kind is None or value is None:
            continue  # found by member id
        found = seen.get((kind, value))
        if found is None:
            try:
                found = normalise(
                    kind, value, field="member.value", card_key=card_key, default_country=program.default_country
                )
            except PalierError as error:
                found = error
            seen[(kind, value)] = found
        if isinstance(found, PalierError):
            _reject(stats, item, found)
        else:
            wanted[found.kind][found.value].append(item)
    return wanted


def _unknown_identity(kind: str) -> NotFound:
    return NotFound("member_not_found", f"No member has this {kind.replace('_', ' ')}.", field="member.value")


def _active_only(conn: Connection, program: Program, items: list[_Item], stats: ImportStats) -> list[_Item]:
    """Buyers must be members of this program that were not merged away (read under their lock)."""
    buyers = {i.member_id for i in items if i.member_id}
    status = _lookup(conn, members.c.id, members.c.status, buyers, members.c.program_id == program.id)
    gone = (m for m, state in status.items() if state != "active")
    merged_into = _lookup(conn, members.c.id, members.c.merged_into_id, gone)
    kept = []
    for item in items:
        member_id = item.member_id
        where = "member.member_id" if item.purchase.member.member_id else "member.value"
        if member_id is None or status.get(member_id) == "active":
            kept.append(item)
        elif member_id not in status:
            _reject(stats, item, NotFound("member_not_found", f"No member {member_id} in this program.", field=where))
        else:
            into = merged_into[member_id]
            merged = Conflict(
                "member_merged", f"Member {member_id} was merged into {into}.", field=where, merged_into_id=into
            )
            _reject(stats, item, merged)
    return kept


def _first_of_each_order(items: list[_Item], stats: ImportStats) -> list[_Item]:
    """An order id twice in one batch: the second is a resend of the first (skipped or a conflict)."""
    first: dict[str, str] = {}
    kept = []
    for item in items:
        order_id = item.purchase.order_id
        if order_id not in first:
            first[order_id] = item.body_hash
            kept.append(item)
        elif first[order_id] == item.body_hash:
            stats.skipped += 1
        else:
            _reject(stats, item, _conflict(order_id))
    return kept


@dataclass
class _Rows:
    entries: list[Entry] = field(default_factory=list)
    lots: list[dict[str, Any]] = field(default_factory=list)
    allocations: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    purchases: list[dict[str, Any]] = field(default_factory=list)


def _write(conn: Connection, program: Program, now: datetime, items: list[_Item], stats: ImportStats) -> None:
    rows = _Rows()
    debts = _debts(conn, program, now, items)
    for item in items:
        _rows_for(item, program, now, debts, rows, stats)
    # Order matters for the foreign keys: transactions, then lots, then what refers to lots.
    write(conn, rows.entries)
    _insert_rows(conn, lots, rows.lots)
    write_allocations(conn, rows.allocations)
    _insert_rows(conn, events, rows.events)
    _insert_rows(conn, purchases, rows.purchases)


@dataclass(frozen=True)
class _Insert:
    sql: str
    columns: list[str]  # in the statement's parameter order
    processors: list[tuple[int, Callable[[Any], Any]]]  # (position, bind processor) where there is one


_compiled: dict[tuple[str, str, tuple[str, ...]], _Insert] = {}


def _insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) in one ``executemany`` of the driver.

    The statement is compiled once per dialect and the values go through the columns' own bind
    processors (JSON, timestamps), exactly as ``conn.execute(insert(table), rows)`` would store
    them, minus its per-row bookkeeping, which dominates the cost of a large batch.
    """
    if not rows:
        return
    dialect = conn.dialect
    keys = tuple(rows[0])
    plan = _compiled.get((dialect.name, table.name, keys))
    if plan is None:
        statement = insert(table).compile(dialect=dialect, column_keys=list(keys))
        columns = list(statement.positiontup or []) if statement.positional else list(keys)
        processors: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(columns):
            process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((i, process))
        plan = _compiled[(dialect.name, table.name, keys)] = _Insert(statement.string, columns, processors)
    pick = itemgetter(*plan.columns)
    values = []
    for row in rows:
        value = list(pick(row))
        for i, convert in plan.processors:
            value[i] = convert(value[i])
        values.append(value)
    if dialect.name == "postgresql":
        _copy(conn, table, plan.columns, values)
    elif dialect.positional:
        conn.exec_driver_sql(plan.sql, [tuple(v) for v in values])
    else:
        conn.exec_driver_sql(plan.sql, [dict(zip(plan.columns, v, strict=True)) for v in values])


def _copy(conn: Connection, table: Table, columns: list[str], values: list[list[Any]]) -> None:
    """PostgreSQL: ``COPY … FROM STDIN`` in the command's transaction, several times faster than INSERTs."""
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    raw = cast(psycopg.Connection[Any], conn.connection.dbapi_connection)
    with raw.cursor() as cursor, cursor.copy(f"COPY {quote(table.name)} ({names}) FROM STDIN") as copy:
        for value in values:
            copy.write_row(value)


def _debts(conn: Connection, program: Program, now: datetime, items: list[_Item]) -> dict[str, int]:
    """Points owed by the members whose purchases are available at once (only those repay debt)."""
    window = timedelta(days=program.return_window_days)
    due = {i.member_id for i in items if i.member_id and i.occurred_at and i.occurred_at + window <= now}
    owed = _lookup(conn, accounts.c.id, accounts.c.balance, (f"{m}:debt" for m in due), accounts.c.balance < 0)
    return {account_id.removesuffix(":debt"): -int(balance) for account_id, balance in owed.items()}


def _rows_for(
    item: _Item, program: Program, now: datetime, debts: dict[str, int], rows: _Rows, stats: ImportStats
) -> None:
    """The rows record_purchase writes for one purchase, appended to ``rows``."""
    p, member_id, occurred_at = item.purchase, item.member_id, item.occurred_at
    assert occurred_at is not None
    earning = purchase_earning(p, program)
    label = purchase_label(p)
    event_id = new_id("event")
    result = EventResult(
        event_id=event_id,
        type="purchase",
        external_id=p.order_id,
        status="processed" if member_id else "unclaimed",
        member_id=member_id,
        points=earning.points,
        reason=label,
    )
    lot_id = None
    if member_id is not None and earning.points > 0:
        lot_id = _earn_rows(item, program, now, earning.points, label, event_id, debts, rows, result)
    rows.events.append(
        {
            "id": event_id,
            "program_id": program.id,
            "type": "purchase",
            "external_id": p.order_id,
            "member_id": member_id,
            "status": "processed" if item.claim is None else "unclaimed",
            "claim_kind": item.claim[0] if item.claim else None,
            "claim_value": item.claim[1] if item.claim else None,
            "channel": p.channel,
            "store_id": p.store_id,
            "occurred_at": occurred_at,
            "received_at": now,
            "payload_hash": item.body_hash,
            "body": _redacted(p),
            "result": result.model_dump(mode="json"),
        }
    )
    lines = [
        {"sku": line.sku, "quantity": line.quantity, "amount": line.amount, "points": points, "returned": 0}
        for line, points in zip(p.lines, earning.line_points, strict=True)
    ]
    rows.purchases.append(
        {
            "event_id": event_id,
            "program_id": program.id,
            "member_id": member_id,
            "order_id": p.order_id,
            "label": label,
            "total": earning.total,
            "eligible": earning.eligible,
            "points": earning.points,
            "lot_id": lot_id,
            "refunded": 0,
            "points_returned": 0,
            "lines": lines,
        }
    )
    if member_id is None:
        stats.unclaimed += 1
    else:
        stats.imported += 1
        stats.points += earning.points


def _earn_rows(
    item: _Item,
    program: Program,
    now: datetime,
    points: int,
    label: str,
    event_id: str,
    debts: dict[str, int],
    rows: _Rows,
    result: EventResult,
) -> str:
    """As ``ledger.earn``: a transaction and a lot, pending through the return window; points that are
    available at once (an old purchase) repay the member's debt first, pending points never do."""
    member_id, occurred_at = item.member_id, item.occurred_at
    assert member_id is not None and occurred_at is not None
    matures_at = occurred_at + timedelta(days=program.return_window_days)
    pending = matures_at > now
    repay = 0 if pending else min(points, debts.get(member_id, 0))
    debts[member_id] = debts.get(member_id, 0) - repay
    booking = ledger.Booking(
        program_id=program.id,
        member_id=member_id,
        kind="earn",
        reason=label,
        reason_code="purchase",
        now=now,
        effective_at=occurred_at,
        event_id=event_id,
        details={"order_id": item.purchase.order_id},
    )
    issued = ledger.program_posting(program.id, "issued", -points, member_id=member_id)
    entry = booking.entry([issued], extra={"debt_repaid": repay} if repay else None)
    if pending:
        entry.postings.append(ledger.member_posting(member_id, "pending", points))
    else:
        entry.postings += [
            ledger.member_posting(member_id, "debt", repay),
            ledger.member_posting(member_id, "available", points - repay),
        ]
    rows.entries.append(entry)
    lot_id = new_id("lot")
    rows.lots.append(
        {
            "id": lot_id,
            "program_id": program.id,
            "member_id": member_id,
            "transaction_id": entry.id,
            "event_id": event_id,
            "source": "purchase",
            "label": label,
            "amount": points,
            "remaining": points,
            "state": "pending" if pending else "active",
            "earned_at": occurred_at,
            "matures_at": matures_at,
            "expires_at": expiry_for(program, occurred_at),
        }
    )
    if repay:
        rows.allocations.append(
            {
                "transaction_id": entry.id,
                "program_id": program.id,
                "member_id": member_id,
                "lot_id": lot_id,
                "amount": repay,
                "purpose": "repay_debt",
            }
        )
        result.details["debt_repaid"] = repay
    result.transaction_id, result.pending = entry.id, pending
    result.matures_at = matures_at if pending else None
    return lot_id
