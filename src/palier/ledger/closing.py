"""Closing a member's points accounts for good (an erasure): everything they hold leaves through the ledger.

Points available or still pending go to the program's ``adjusted`` account, taken from their lots like any
debit (allocations written, emptied pending lots marked reversed so the maturity job skips them); points the
member owed (``debt``) are written off against ``issued``, as a return whose shortfall the program writes off
would have booked them. Held points are not touched here: the caller cancels the coupons holding them first.
The caller holds the member's lock and the database transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from palier.ledger.catch_up import catch_up
from palier.ledger.lots import choose_lots
from palier.ledger.operations import (
    Booking,
    balances,
    mark_reversed_if_empty,
    member_posting,
    program_posting,
    settle_debt,
    write_allocating,
)


@dataclass(frozen=True)
class Closed:
    transaction_id: str | None
    available: int  # points taken out of available
    pending: int  # points taken out of pending
    debt_written_off: int
    debt_repaid: int  # owed points repaid from the member's own points first


def close_points(conn: Connection, booking: Booking) -> Closed:
    """Take every point out of the member's accounts in one transaction (after settling any debt they can
    repay from their own points). ``held`` must already be 0."""
    b = booking
    catch_up(conn, program_id=b.program_id, member_id=b.member_id, now=b.now)  # expired points leave as expired
    repaid = settle_debt(conn, b)
    amounts = balances(conn, member_id=b.member_id)
    if amounts.get("held", 0):
        raise ValueError("open holds: cancel the member's coupons first")
    available, pending, owed = amounts.get("available", 0), amounts.get("pending", 0), -amounts.get("debt", 0)
    if not (available or pending or owed):
        return Closed(None, 0, 0, 0, repaid)
    taken = choose_lots(
        conn, program_id=b.program_id, member_id=b.member_id, amount=available + pending, states=("active", "pending")
    )
    entry = b.entry(
        [
            member_posting(b.member_id, "available", -available),
            member_posting(b.member_id, "pending", -pending),
            program_posting(b.program_id, "adjusted", available + pending, member_id=b.member_id),
            # the debt is forgiven: the points it stood for stay issued, as a written-off shortfall does
            member_posting(b.member_id, "debt", owed),
            program_posting(b.program_id, "issued", -owed, member_id=b.member_id),
        ],
        extra={"from_available": available, "from_pending": pending, "debt_written_off": owed},
    )
    write_allocating(conn, entry, purpose="spend", parts=[(t.lot_id, t.amount) for t in taken])
    mark_reversed_if_empty(conn, [t.lot_id for t in taken if t.state == "pending"])
    return Closed(entry.id, available, pending, owed, repaid)
