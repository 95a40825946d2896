"""Bulk import of purchases: a whole batch in a handful of set-based statements.

:func:`import_purchases` stores exactly what :func:`palier.activity.service.record_purchase` would
store for each purchase (but the outbox's ``points_earned``: past orders are no news to mail members), built by
the same functions (:mod:`palier.activity.purchase_rows`,
:func:`palier.ledger.earning_rows.earn_rows`), but for a batch at once: one query finds the orders
already received, one query per identity kind resolves the buyers, one locks them, one reads their
status, one their debts; then each table gets one multi-row insert (``COPY`` on PostgreSQL) and the
members' balances one set-based update (:mod:`palier.ledger.bulk_write`). A batch is one database
transaction (the caller's), so a crash loses at most the batch in flight and a re-run skips what was
committed: nothing is counted twice.

Per-purchase refusals (unknown member, future date, different content under a known order id…) are
collected as :class:`RowProblem` and the rest of the batch goes on.
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Connection, and_
from sqlalchemy.exc import DBAPIError

from palier.activity.earning import purchase_earning
from palier.activity.facts import checked_occurred_at, event_row, redact
from palier.activity.models import PurchaseIn, check_points_earned
from palier.activity.purchase_rows import (
    check_currency,
    note_earned,
    purchase_booking,
    purchase_result,
    purchase_row,
)
from palier.activity.service import Fingerprint, event_conflict, fingerprinted, purchase_label
from palier.activity.tables import events, purchases
from palier.clock import Clock
from palier.db import Database
from palier.db.bulk import GrowingTables, insert_many, lookup
from palier.db.engine import ATTEMPTS, transient
from palier.errors import Conflict, InvalidInput, NotFound, PalierError
from palier.ids import new_id
from palier.ledger.bulk_write import write_earnings
from palier.ledger.earning_rows import EarnRows, earn_rows
from palier.ledger.locks import lock_keys, lock_members
from palier.ledger.tables import accounts, ledger_transactions, lots, postings
from palier.members.identities import Normalised, card_claim_key, normalise
from palier.members.service import expiry_for
from palier.members.tables import identities, members
from palier.programs.models import Program
from palier.programs.service import get_program
from palier.rewards.payments import lock_orders
from palier.rewards.tables import order_payments


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
    expired: int = 0  # of those, points whose life was over when they were recorded (they expired at once)
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
        self.expired += other.expired
        self.rejected += other.rejected


@dataclass
class _Item:
    row: int
    purchase: PurchaseIn
    body_hash: Fingerprint  # payload_hash(purchase, timezone=program.timezone, key=card_key)
    body: dict[str, Any]  # the stored copy: redacted(purchase)
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
    with _without_cycle_collection():
        items = _fingerprinted(purchases, rows or range(1, len(purchases) + 1), program.timezone, card_key)
        items = _drop_known(conn, program, items, stats)
        items = _checked(items, program, now, stats)
        items = _resolved(conn, program, items, card_key, stats)
        lock_members(conn, {i.member_id for i in items if i.member_id})
        items = _active_only(conn, program, items, stats)
        items = _first_of_each_order(items, stats)
        # a points or credit payment of one of these orders, under way, commits before its payments are read
        lock_orders(conn, program_id=program.id, order_ids=[i.purchase.order_id for i in items])
        _write(conn, clock, program, now, items, stats, card_key)
    return stats


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """A batch allocates some 50 objects a purchase, none in a reference cycle (reference counting
    frees them all); left on, the cycle collector runs every few purchases and, now and then, walks
    every object alive in the process: 10 % of the time when the caller holds a large file in memory."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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

    A batch rolled back for a reason that running it again settles is run again, as the API runs its
    commands (:func:`palier.db.engine.transient`): one that collides with a concurrent writer of the same
    order ids (a unique-constraint violation) finds those orders already present and skips them; one that
    PostgreSQL chose as a deadlock's victim waits no more. Between
    batches the statistics of the tables written are refreshed once they have grown stale
    (:class:`palier.db.bulk.GrowingTables`), so the lookups stay index probes as the tables grow.
    """
    total = ImportStats()
    written = GrowingTables(db.engine, _WRITTEN)
    for batch, rows in batches:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with db.write() as conn:
                    program = get_program(conn=conn, program_id=program_id)
                    stats = import_purchases(
                        conn=conn, clock=clock, program=program, purchases=batch, card_key=card_key, rows=rows
                    )
                break
            except (DBAPIError, psycopg.Error) as error:  # the latter from COPY, below SQLAlchemy
                if attempt == ATTEMPTS or not _transient(error):
                    raise
                time.sleep(0.002 * attempt)
        written.grew(stats.imported + stats.unclaimed)
        total.add(stats)
        if after_batch is not None:
            after_batch(stats)
    return total


_WRITTEN = (events, purchases, ledger_transactions, postings, lots)  # by a batch, and read by the next


def _transient(error: DBAPIError | psycopg.Error) -> bool:
    """:func:`transient`, for psycopg's own errors too (COPY raises them below SQLAlchemy)."""
    if isinstance(error, DBAPIError):
        return transient(error)
    return isinstance(error, psycopg.errors.UniqueViolation) or error.sqlstate in ("40P01", "40001", "55P03")


def _reject(stats: ImportStats, item: _Item, error: PalierError) -> None:
    stats.rejected.append(RowProblem(item.row, item.purchase.order_id, error.code, error.detail, error.field))


def _fingerprinted(purchases: Sequence[PurchaseIn], rows: Iterable[int], timezone: str, card_key: bytes) -> list[_Item]:
    """Each purchase with its fingerprint and stored copy, from one dump (as payload_hash and redacted)."""
    items = []
    for row, p in zip(rows, purchases, strict=True):
        dump = p.model_dump(mode="json")
        items.append(_Item(row, p, fingerprinted(p, dump, timezone=timezone, key=card_key), redact(dump)))
    return items


def _drop_known(conn: Connection, program: Program, items: list[_Item], stats: ImportStats) -> list[_Item]:
    """Orders already received: the same content is skipped, different content is a conflict."""
    where = (events.c.program_id == program.id, events.c.type == "purchase")
    known = lookup(conn, events.c.external_id, events.c.payload_hash, (i.purchase.order_id for i in items), *where)
    fresh = []
    for item in items:
        stored = known.get(item.purchase.order_id)
        if stored is None:
            fresh.append(item)
        elif item.body_hash.matches(stored):
            stats.skipped += 1
        else:
            _reject(stats, item, event_conflict("purchase", item.purchase.order_id, "order_id"))
    return fresh


def _checked(items: list[_Item], program: Program, now: datetime, stats: ImportStats) -> list[_Item]:
    """Date and currency, checked in the same order as record_purchase does."""
    kept = []
    for item in items:
        try:
            item.occurred_at = checked_occurred_at(item.purchase.occurred_at, now, timezone=program.timezone)
            check_currency(item.purchase, program)
        except PalierError as error:
            if error.code == "occurred_in_future" and item.purchase.occurred_at.tzinfo is None:
                error.detail += (  # a till writing UTC without saying so, for a shop east of Greenwich
                    f" Without an offset, {item.purchase.occurred_at.isoformat()} is read in the program's time "
                    f"zone, {program.timezone}: write the offset the till's clock keeps (Z for UTC)."
                )
            _reject(stats, item, error)
        else:
            kept.append(item)
    return kept


def _resolved(
    conn: Connection, program: Program, items: list[_Item], card_key: bytes, stats: ImportStats
) -> list[_Item]:
    """Who bought: member ids as given; identities normalised, then looked up one query per kind.

    A payment card's claim lock is taken before its owner is looked up, as by record_purchase: the linking
    of the card, under way, commits first and its member gets the purchase, or waits for this batch and
    claims it; else the purchase would be kept unclaimed beside a card that is linked."""
    for kind, by_value in _identities(program, items, card_key, stats).items():
        if kind == "payment_card":
            lock_keys(conn, (card_claim_key(program.id, value) for value in by_value))
        where = (identities.c.program_id == program.id, identities.c.kind == kind)
        owners = lookup(conn, identities.c.value, identities.c.member_id, by_value, *where)
        for value, waiting in by_value.items():
            for item in waiting:
                if value in owners:
                    item.member_id = owners[value]
                elif kind == "payment_card":
                    item.claim = (kind, value)  # nobody has linked this card yet: unclaimed
                else:
                    _reject(stats, item, _unknown_identity(kind))
    for item in items:
        if item.purchase.member is None:
            _reject(stats, item, _anonymous())
        elif item.purchase.member.member_id is not None:
            item.member_id = item.purchase.member.member_id
    return [i for i in items if i.member_id is not None or i.claim is not None]


def _identities(
    program: Program, items: list[_Item], card_key: bytes, stats: ImportStats
) -> dict[str, dict[str, list[_Item]]]:
    """The purchases found by an identity, by kind and normalised value (refusing malformed ones)."""
    wanted: dict[str, dict[str, list[_Item]]] = defaultdict(lambda: defaultdict(list))
    seen: dict[tuple[str, str], Normalised | PalierError] = {}  # a regular's card comes up again and again
    for item in items:
        if item.purchase.member is None:
            continue  # refused by the caller
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


def _anonymous() -> InvalidInput:
    return InvalidInput(
        "member_required",
        "The bulk import loads members' purchases; send purchases by non-members to POST /v1/events/purchases.",
        field="member",
    )


def _unknown_identity(kind: str) -> NotFound:
    return NotFound("member_not_found", f"No member has this {kind.replace('_', ' ')}.", field="member.value")


def _active_only(conn: Connection, program: Program, items: list[_Item], stats: ImportStats) -> list[_Item]:
    """Buyers must be members of this program that were not merged away (read under their lock)."""
    buyers = {i.member_id for i in items if i.member_id}
    status = lookup(conn, members.c.id, members.c.status, buyers, members.c.program_id == program.id)
    gone = (m for m, state in status.items() if state != "active")
    merged_into = lookup(conn, members.c.id, members.c.merged_into_id, gone)
    kept = []
    for item in items:
        member_id = item.member_id
        where = "member.member_id" if item.purchase.member and item.purchase.member.member_id else "member.value"
        if member_id is None or status.get(member_id) == "active":
            kept.append(item)
        elif member_id not in status:
            _reject(stats, item, NotFound("member_not_found", f"No member {member_id} in this program.", field=where))
        elif status[member_id] == "erased":
            _reject(stats, item, Conflict("member_erased", f"Member {member_id} was erased.", field=where))
        else:
            into = merged_into[member_id]
            merged = Conflict(
                "member_merged", f"Member {member_id} was merged into {into}.", field=where, merged_into_id=into
            )
            _reject(stats, item, merged)
    return kept


def _first_of_each_order(items: list[_Item], stats: ImportStats) -> list[_Item]:
    """An order id twice in one batch: the second is a resend of the first (skipped or a conflict)."""
    first: dict[str, Fingerprint] = {}
    kept = []
    for item in items:
        order_id = item.purchase.order_id
        if order_id not in first:
            first[order_id] = item.body_hash
            kept.append(item)
        elif first[order_id].local == item.body_hash.local:  # the same instants, however written
            stats.skipped += 1
        else:
            _reject(stats, item, event_conflict("purchase", order_id, "order_id"))
    return kept


@dataclass
class _Rows:
    events: list[dict[str, Any]] = field(default_factory=list)
    purchases: list[dict[str, Any]] = field(default_factory=list)
    earnings: list[EarnRows] = field(default_factory=list)


def _write(
    conn: Connection,
    clock: Clock,
    program: Program,
    now: datetime,
    items: list[_Item],
    stats: ImportStats,
    card_key: bytes,
) -> None:
    items = _one_by_one(conn, clock, program, items, stats, card_key)
    rows = _Rows()
    debts = _debts(conn, program, now, items)
    for item in items:
        try:  # refused before any of its rows is added: a price typed with too many zeros (points_too_large)
            _rows_for(item, program, now, debts, rows, stats)
        except PalierError as error:
            _reject(stats, item, error)
    # Events first: a concurrent writer of the same order fails here, before the ledger is written.
    # The ledger last: it ends with the program slots, whose locks are then held only until the commit.
    insert_many(conn, events, rows.events)
    insert_many(conn, purchases, rows.purchases)
    write_earnings(conn, rows.earnings)


def _one_by_one(
    conn: Connection, clock: Clock, program: Program, items: list[_Item], stats: ImportStats, card_key: bytes
) -> list[_Item]:
    """Record through ``record_purchase`` the purchases the set-based rows cannot earn right; return the rest.

    That is every purchase of a program with earning rules, tiers, VIP plans or segments (what a purchase
    earns then depends on the member and on campaign budgets), and any order paid partly with points or
    store credit (points are earned on the part paid with money only).
    """
    if program.rules_version or program.status_version:
        ruled, rest = items, []
    else:
        paid = lookup(
            conn,
            order_payments.c.order_id,
            order_payments.c.state,
            (i.purchase.order_id for i in items),
            and_(order_payments.c.program_id == program.id, order_payments.c.state == "paid"),
        )
        ruled = [i for i in items if i.purchase.order_id in paid]
        rest = [i for i in items if i.purchase.order_id not in paid]
    from palier.activity.service import record_purchase

    for item in ruled:
        try:  # a refusal may come after the rules wrote (points_too_large once the step vouchers are given):
            with conn.begin_nested():  # undone with the row, not kept for an order that is not
                result, _ = record_purchase(
                    conn=conn, clock=clock, program=program, purchase=item.purchase, card_key=card_key
                )
        except PalierError as error:
            _reject(stats, item, error)
            continue
        if result.member_id is None:
            stats.unclaimed += 1
        else:
            stats.imported += 1
            stats.points += result.points
            stats.expired += result.details.get("expired", 0)
    return rest


def _debts(conn: Connection, program: Program, now: datetime, items: list[_Item]) -> dict[str, int]:
    """Points owed by the members whose purchases are available at once (only those repay debt)."""
    window = timedelta(days=program.return_window_days)
    due = {i.member_id for i in items if i.member_id and i.occurred_at and i.occurred_at + window <= now}
    owed = lookup(conn, accounts.c.id, accounts.c.balance, (f"{m}:debt" for m in due), accounts.c.balance < 0)
    return {account_id.removesuffix(":debt"): -int(balance) for account_id, balance in owed.items()}


def _rows_for(
    item: _Item, program: Program, now: datetime, debts: dict[str, int], rows: _Rows, stats: ImportStats
) -> None:
    """The rows record_purchase writes for one purchase, built by the same functions, added to ``rows``."""
    p, member_id, occurred_at = item.purchase, item.member_id, item.occurred_at
    assert occurred_at is not None
    earning = purchase_earning(p, program)
    check_points_earned(earning.points)  # as record_purchase does, before anything is kept
    label = purchase_label(p)
    event_id = new_id("event")
    result = purchase_result(event_id=event_id, purchase=p, member_id=member_id, points=earning.points, label=label)
    lot_id = None
    if member_id is not None and earning.points > 0:  # as ledger.earn: no points, no transaction
        matures_at = occurred_at + timedelta(days=program.return_window_days)
        booking = purchase_booking(
            program_id=program.id,
            member_id=member_id,
            purchase=p,
            label=label,
            now=now,
            occurred_at=occurred_at,
            event_id=event_id,
        )
        earned = earn_rows(
            booking,
            amount=earning.points,
            owed=debts.get(member_id, 0),
            source="purchase",
            label=label,
            matures_at=matures_at,
            expires_at=expiry_for(program, occurred_at),
        )
        debts[member_id] = debts.get(member_id, 0) - earned.repaid
        stats.expired += earned.expired
        note_earned(
            result,
            transaction_id=earned.entry.id,
            pending=earned.pending,
            matures_at=matures_at,
            repaid=earned.repaid,
            expired=earned.expired,
        )
        lot_id = earned.lot_id
        rows.earnings.append(earned)
    rows.events.append(
        event_row(
            event_id=event_id,
            program_id=program.id,
            type_="purchase",
            external_id=p.order_id,
            member_id=member_id,
            claim=item.claim,
            channel=p.channel,
            store_id=p.store_id,
            occurred_at=occurred_at,
            now=now,
            body_hash=item.body_hash.value,
            body=item.body,
            result=result,
        )
    )
    rows.purchases.append(
        purchase_row(
            event_id=event_id,
            program_id=program.id,
            member_id=member_id,
            purchase=p,
            earning=earning,
            label=label,
            lot_id=lot_id,
            shipping_earns=program.earn_on_shipping,
        )
    )
    if member_id is None:
        stats.unclaimed += 1
    else:
        stats.imported += 1
        stats.points += earning.points
