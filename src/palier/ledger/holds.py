"""Two-phase spending: hold points, then capture them or void the hold.

A redemption first moves points ``available -> held`` and takes them from the member's lots at once
(soonest-expiring first, as any debit), so the points cannot be spent twice. Using the coupon
*captures* the hold (``held -> redeemed``). Cancelling or letting the coupon expire *voids* it: each
point goes back to the lot it came from, unless that lot has expired in the meantime, in which case
the point expires too (``held -> expired``).

The caller holds the member's lock (``locks.lock_members``) and the database transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, select, update

from palier.ids import new_id
from palier.ledger.catch_up import catch_up
from palier.ledger.lots import allocation_rows, choose_lots
from palier.ledger.operations import (
    Booking,
    InsufficientPoints,
    balances,
    member_posting,
    outcome,
    program_posting,
    settle_debt,
)
from palier.ledger.post import Entry, write
from palier.ledger.stand_ins import ComingBack, sort_out, write_restoring
from palier.ledger.tables import allocations, holds, lots


@dataclass(frozen=True)
class Hold:
    id: str
    member_id: str
    amount: int
    state: str  # open, captured, voided
    transaction_id: str


@dataclass(frozen=True)
class Voided:
    transaction_id: str
    restored: int  # points back in their lots, available again
    expired: int  # points whose lots expired while they were held


class HoldClosed(Exception):
    """The hold was already captured or voided."""

    def __init__(self, state: str) -> None:
        super().__init__(f"hold is {state}")
        self.state = state


@dataclass(frozen=True)
class HoldPlan:
    """A hold ready to write (``post.write_with(conn, entries, rows=rows, lots_taken=lots_taken)``), and the
    member's balances before it (``balances_before``: available, pending, held, debt)."""

    hold: Hold
    entries: list[Entry]
    rows: list[tuple[Table, list[dict[str, Any]]]]
    lots_taken: dict[str, int]
    balances_before: dict[str, int]


def prepare_hold(conn: Connection, booking: Booking, *, amount: int) -> HoldPlan:
    """A hold of ``amount`` available points, planned from the member's balances and lots (the lots locked);
    raises :class:`InsufficientPoints` if there are not enough. Write it with ``post.write_with``, adding
    rows of your own (a redemption writes its coupon with it, in one statement)."""
    b = booking
    if amount <= 0:
        raise ValueError("a hold is for a positive number of points")
    catch_up(conn, program_id=b.program_id, member_id=b.member_id, now=b.now)  # expired points are not held
    before = balances(conn, member_id=b.member_id)
    if amount > before["available"]:
        raise InsufficientPoints(amount, before["available"])
    taken = [t for t in choose_lots(conn, program_id=b.program_id, member_id=b.member_id, amount=amount) if t.amount]
    hold_id = new_id("hold")
    entry = b.entry(
        [member_posting(b.member_id, "available", -amount), member_posting(b.member_id, "held", amount)],
        extra={"hold_id": hold_id},
    )
    hold_row = {
        "id": hold_id,
        "program_id": b.program_id,
        "member_id": b.member_id,
        "transaction_id": entry.id,
        "amount": amount,
        "state": "open",
        "created_at": b.now,
    }
    parts = allocation_rows(b.program_id, b.member_id, entry.id, "hold", [(t.lot_id, t.amount) for t in taken])
    return HoldPlan(
        hold=Hold(hold_id, b.member_id, amount, "open", entry.id),
        entries=[entry],
        # the hold refers to its transaction, each allocation to the transaction and its lot
        rows=[(holds, [hold_row]), (allocations, parts)],
        lots_taken={t.lot_id: t.amount for t in taken},
        balances_before=before,
    )


def get_hold(conn: Connection, *, hold_id: str) -> Hold:
    row = conn.execute(_select_hold, {"hold_id": hold_id}).one()
    return Hold(row.id, row.member_id, int(row.amount), row.state, row.transaction_id)


def capture(conn: Connection, booking: Booking, *, hold_id: str) -> str:
    """The held points are spent for good: ``held -> redeemed``. Returns the transaction id."""
    b = booking
    held = _open(conn, hold_id)
    entry = b.entry(
        [
            member_posting(held.member_id, "held", -held.amount),
            program_posting(b.program_id, "redeemed", held.amount, member_id=held.member_id),
        ],
        extra={"hold_id": hold_id},
    )
    write(conn, [entry])
    _close(conn, hold_id, "captured", b.now)
    return entry.id


def void(conn: Connection, booking: Booking, *, hold_id: str) -> Voided:
    """Give the held points back to the lots they came from; those of lots expired since expire."""
    b = booking
    held = _open(conn, hold_id)
    parts = conn.execute(_hold_parts, {"transaction_id": held.transaction_id}).all()
    coming = [ComingBack(p.lot_id, int(p.amount), p.state, p.expires_at) for p in parts]
    restoring = sort_out(conn, member_id=held.member_id, coming=coming, now=b.now)
    restored, lapsed = restoring.restored, restoring.lapsed
    b = replace(b, reason=b.reason + outcome(restored, lapsed))
    entry = b.entry(
        [
            member_posting(held.member_id, "held", -held.amount),
            *restoring.postings(program_id=b.program_id, member_id=held.member_id),
        ],
        extra={"hold_id": hold_id, "restored": restored, "expired": lapsed},
    )
    write_restoring(conn, entry, restoring, member_id=held.member_id)
    _close(conn, hold_id, "voided", b.now)
    settle_debt(conn, replace(b, member_id=held.member_id))
    return Voided(entry.id, restored=restored, expired=lapsed)


def _open(conn: Connection, hold_id: str) -> Hold:
    held = get_hold(conn, hold_id=hold_id)
    if held.state != "open":
        raise HoldClosed(held.state)
    return held


def _close(conn: Connection, hold_id: str, state: str, now: datetime) -> None:
    conn.execute(update(holds).where(holds.c.id == hold_id).values(state=state, closed_at=now))


_select_hold = select(holds.c.id, holds.c.member_id, holds.c.amount, holds.c.state, holds.c.transaction_id).where(
    holds.c.id == bindparam("hold_id")
)
_hold_parts = (
    select(allocations.c.lot_id, allocations.c.amount, lots.c.state, lots.c.expires_at)
    .join(lots, lots.c.id == allocations.c.lot_id)
    .where(allocations.c.transaction_id == bindparam("transaction_id"))
    .order_by(allocations.c.lot_id)
    .with_for_update(of=lots)  # lots before any account row: the order every writer keeps
)
