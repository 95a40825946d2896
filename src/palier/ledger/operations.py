"""The ledger's operations on one member: earn, take back, spend, expire and merge.

Each builds one balanced :class:`Entry`, moves lots with allocations, and writes it. The caller
holds the member's lock (``locks.lock_members``) and the database transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Table, bindparam, func, select

from palier.ledger.accounts import MEMBER_KINDS, member_account, program_account
from palier.ledger.lots import Taken, add_lot, choose_lots, lot_row, record_allocations, set_state
from palier.ledger.post import Entry, Posting, write, write_with
from palier.ledger.tables import accounts, allocations, lots


@dataclass(frozen=True)
class Booking:
    """What a ledger transaction is about, as the member will read it."""

    program_id: str
    member_id: str
    kind: str
    reason: str
    reason_code: str
    now: datetime
    effective_at: datetime
    event_id: str | None = None
    details: dict[str, Any] | None = None

    def entry(self, postings: list[Posting], *, extra: dict[str, Any] | None = None) -> Entry:
        details = {**(self.details or {}), **(extra or {})} or None
        return Entry(
            program_id=self.program_id,
            kind=self.kind,
            reason=self.reason,
            reason_code=self.reason_code,
            postings=postings,
            created_at=self.now,
            effective_at=self.effective_at,
            member_id=self.member_id,
            event_id=self.event_id,
            details=details,
        )


def member_posting(member_id: str, kind: str, amount: int) -> Posting:
    return Posting(member_account(member_id, kind), amount, member_id=member_id)


def program_posting(program_id: str, kind: str, amount: int, *, member_id: str) -> Posting:
    return Posting(program_account(program_id, kind, for_member=member_id), amount)


def balances(conn: Connection, *, member_id: str) -> dict[str, int]:
    """The member's points balances by account kind (available, pending, held, debt): four key lookups."""
    ids = [member_account(member_id, kind) for kind in MEMBER_KINDS]
    rows = conn.execute(_read_balances, {"ids": ids})
    return {kind: int(balance) for kind, balance in rows}


_read_balances = select(accounts.c.kind, accounts.c.balance).where(accounts.c.id.in_(bindparam("ids", expanding=True)))


@dataclass(frozen=True)
class Earned:
    transaction_id: str | None
    lot_id: str | None
    pending: bool
    repaid_debt: int = 0


@dataclass(frozen=True)
class EarnPlan:
    """An earn ready to write: its transaction, its lot (and the allocation that repays debt), its outcome."""

    earned: Earned
    entries: list[Entry]
    rows: list[tuple[Table, list[dict[str, Any]]]]


def earn(
    conn: Connection,
    booking: Booking,
    *,
    amount: int,
    source: str,
    label: str,
    matures_at: datetime | None,
    expires_at: datetime | None,
) -> Earned:
    """Issue ``amount`` points to the member as a new lot.

    Pending until ``matures_at`` if that is still ahead; otherwise available at once, after repaying
    any debt first (points earned later repay debt before they become spendable).
    """
    if amount <= 0:
        return Earned(None, None, pending=False)
    plan = plan_earn(
        booking,
        amount=amount,
        source=source,
        label=label,
        matures_at=matures_at,
        expires_at=expires_at,
        owed_debt=debt_owed(conn, booking, matures_at=matures_at),
    )
    write_with(conn, plan.entries, rows=plan.rows)
    return plan.earned


def plan_earn(
    booking: Booking,
    *,
    amount: int,
    source: str,
    label: str,
    matures_at: datetime | None,
    expires_at: datetime | None,
    owed_debt: int = 0,
) -> EarnPlan:
    """What :func:`earn` writes, built without I/O; write it with ``post.write_with`` (adding rows of your own).

    ``owed_debt`` is what the member owes (:func:`debt_owed`); points available at once repay it first.
    """
    b = booking
    if amount <= 0:
        return EarnPlan(Earned(None, None, pending=False), [], [])
    pending = earns_pending(matures_at, b.now)
    repay = 0 if pending else min(amount, owed_debt)
    entry = b.entry(
        [program_posting(b.program_id, "issued", -amount, member_id=b.member_id)],
        extra={"debt_repaid": repay} if repay else None,
    )
    if pending:
        entry.postings.append(member_posting(b.member_id, "pending", amount))
    else:
        entry.postings += [
            member_posting(b.member_id, "debt", repay),
            member_posting(b.member_id, "available", amount - repay),
        ]
    lot = lot_row(
        program_id=b.program_id,
        member_id=b.member_id,
        transaction_id=entry.id,
        event_id=b.event_id,
        source=source,
        label=label,
        amount=amount,
        remaining=amount - repay,  # the repaid part is allocated away at once, below
        state="pending" if pending else "active",
        earned_at=b.effective_at,
        matures_at=matures_at,
        expires_at=expires_at,
    )
    repaid = [
        {
            "transaction_id": entry.id,
            "program_id": b.program_id,
            "member_id": b.member_id,
            "lot_id": lot["id"],
            "amount": repay,
            "purpose": "repay_debt",
        }
    ]
    return EarnPlan(
        Earned(entry.id, lot["id"], pending=pending, repaid_debt=repay),
        [entry],
        [(lots, [lot]), (allocations, repaid if repay else [])],
    )


def earns_pending(matures_at: datetime | None, now: datetime) -> bool:
    """Points earned now stay pending until ``matures_at`` (a purchase's return window) if it is ahead."""
    return matures_at is not None and matures_at > now


def debt_owed(conn: Connection, booking: Booking, *, matures_at: datetime | None) -> int:
    """The debt points earned now would repay first: 0 without a read when they stay pending."""
    if earns_pending(matures_at, booking.now):
        return 0
    return -balances_of(conn, booking.member_id, "debt")


def balances_of(conn: Connection, member_id: str, kind: str) -> int:
    value = conn.execute(select(accounts.c.balance).where(accounts.c.id == member_account(member_id, kind))).scalar()
    return int(value or 0)


def add_lot_for(conn: Connection, b: Booking, transaction_id: str, **lot: Any) -> str:
    """A new lot made by ``transaction_id`` (written before it: lots refer to their transaction)."""
    return add_lot(
        conn,
        program_id=b.program_id,
        member_id=b.member_id,
        transaction_id=transaction_id,
        event_id=b.event_id,
        earned_at=b.effective_at,
        **lot,
    )


@dataclass
class TakenBack:
    transaction_id: str | None = None
    from_pending: int = 0
    from_available: int = 0
    to_debt: int = 0
    written_off: int = 0
    lots: list[str] = field(default_factory=list)

    @property
    def recovered(self) -> int:
        return self.from_pending + self.from_available + self.to_debt


def take_back(
    conn: Connection,
    booking: Booking,
    *,
    amount: int,
    own_lot_id: str | None,
    shortfall: Literal["debt", "write_off"],
) -> TakenBack:
    """Take back ``amount`` points that should not have been issued (a return).

    From the purchase's own lot first (still pending, or available), then from other available
    points soonest-expiring first; what is missing goes to ``debt`` or is written off, and is
    recorded either way.
    """
    result = TakenBack()
    if amount <= 0:
        return result
    b = booking
    taken: list[Taken] = []
    if own_lot_id is not None:
        taken += choose_lots(
            conn,
            program_id=b.program_id,
            member_id=b.member_id,
            amount=amount,
            states=("pending", "active"),
            only_lot_id=own_lot_id,
        )
    taken += choose_lots(
        conn,
        program_id=b.program_id,
        member_id=b.member_id,
        amount=amount - sum(t.amount for t in taken),
        exclude=[t.lot_id for t in taken],
    )
    result.from_pending = sum(t.amount for t in taken if t.state == "pending")
    result.from_available = sum(t.amount for t in taken if t.state == "active")
    missing = amount - result.from_pending - result.from_available
    if shortfall == "debt":
        result.to_debt = missing
    else:
        result.written_off = missing
    result.lots = [t.lot_id for t in taken]
    entry = b.entry(
        [
            member_posting(b.member_id, "pending", -result.from_pending),
            member_posting(b.member_id, "available", -result.from_available),
            member_posting(b.member_id, "debt", -result.to_debt),
            program_posting(b.program_id, "issued", result.recovered, member_id=b.member_id),
        ],
        extra={
            "from_pending": result.from_pending,
            "from_available": result.from_available,
            "to_debt": result.to_debt,
            "written_off": result.written_off,
        },
    )
    if result.recovered:
        write(conn, [entry])
        record_allocations(
            conn,
            program_id=b.program_id,
            member_id=b.member_id,
            transaction_id=entry.id,
            purpose="return",
            parts=[(t.lot_id, t.amount) for t in taken],
        )
        result.transaction_id = entry.id
        emptied = [t.lot_id for t in taken if t.state == "pending"]
        _mark_reversed_if_empty(conn, emptied)
    return result


def _mark_reversed_if_empty(conn: Connection, lot_ids: list[str]) -> None:
    from palier.ledger.tables import lots

    if lot_ids:
        empty = conn.execute(select(lots.c.id).where(lots.c.id.in_(lot_ids), lots.c.remaining == 0)).scalars().all()
        set_state(conn, lot_ids=list(empty), state="reversed")


class InsufficientPoints(Exception):
    def __init__(self, needed: int, available: int) -> None:
        super().__init__(f"needs {needed} points, {available} available")
        self.needed = needed
        self.available = available


def spend(conn: Connection, booking: Booking, *, amount: int, sink: str) -> str:
    """Move ``amount`` available points to the program account ``sink`` (adjusted, redeemed…)."""
    b = booking
    available = balances_of(conn, b.member_id, "available")
    if amount > available:
        raise InsufficientPoints(amount, available)
    taken = choose_lots(conn, program_id=b.program_id, member_id=b.member_id, amount=amount)
    entry = b.entry(
        [
            member_posting(b.member_id, "available", -amount),
            program_posting(b.program_id, sink, amount, member_id=b.member_id),
        ]
    )
    write(conn, [entry])
    record_allocations(
        conn,
        program_id=b.program_id,
        member_id=b.member_id,
        transaction_id=entry.id,
        purpose="spend",
        parts=[(t.lot_id, t.amount) for t in taken],
    )
    return entry.id


def move_member(conn: Connection, booking: Booking, *, source_id: str) -> tuple[str | None, dict[str, int], int]:
    """Move all of ``source_id``'s points, lots and open holds to ``booking.member_id`` (a merge).

    One transaction: for each account kind, source ``-balance`` and target ``+balance``.
    Returns the transaction id (None if there was nothing to move), the amounts moved and lots moved.
    """
    from palier.ledger.tables import holds, lots

    b = booking
    moved = {kind: amount for kind, amount in balances(conn, member_id=source_id).items() if amount}
    transaction_id = None
    if moved:
        postings: list[Posting] = []
        for kind, amount in sorted(moved.items()):
            postings += [member_posting(source_id, kind, -amount), member_posting(b.member_id, kind, amount)]
        entry = b.entry(postings, extra={"source_member_id": source_id, "moved": moved})
        write(conn, [entry])
        transaction_id = entry.id
    lots_moved = conn.execute(lots.update().where(lots.c.member_id == source_id).values(member_id=b.member_id)).rowcount
    conn.execute(holds.update().where(holds.c.member_id == source_id).values(member_id=b.member_id))
    return transaction_id, moved, int(lots_moved)


class NotReversible(Exception):
    """The transaction cannot be undone exactly (its points were already used, or it is not a correction)."""


def reverse(conn: Connection, booking: Booking, *, original_id: str) -> str:
    """Undo a manual credit or debit with a new transaction that references it.

    A credit is reversible while its lot is untouched. A debit gives the points back to the lots it
    took them from; the share of lots that have expired since goes to ``expired`` instead.
    """
    from palier.ledger.tables import allocations, ledger_transactions, lots, postings

    b = booking
    original = conn.execute(
        select(ledger_transactions.c.kind, ledger_transactions.c.member_id).where(
            ledger_transactions.c.id == original_id, ledger_transactions.c.program_id == b.program_id
        )
    ).first()
    if original is None or original.member_id != b.member_id:
        raise LookupError(original_id)
    if original.kind not in ("adjust", "welcome"):
        raise NotReversible("only manual adjustments and welcome points are reversed; returns correct purchases")
    moved = conn.execute(
        select(postings.c.account_id, postings.c.amount, postings.c.member_id).where(
            postings.c.transaction_id == original_id
        )
    ).all()
    created = conn.execute(
        select(lots.c.id, lots.c.amount, lots.c.remaining, lots.c.state).where(lots.c.transaction_id == original_id)
    ).first()
    entry = b.entry([], extra={"reverses": original_id})
    entry.reverses_id = original_id
    if created is not None:  # a credit: take the whole lot back
        if created.remaining != created.amount or created.state not in ("active", "pending"):
            raise NotReversible("these points were already used or have expired; debit them with an adjustment")
        entry.postings = [Posting(p.account_id, -p.amount, member_id=p.member_id) for p in moved]
        write(conn, [entry])
        record_allocations(
            conn,
            program_id=b.program_id,
            member_id=b.member_id,
            transaction_id=entry.id,
            purpose="reverse",
            parts=[(created.id, created.amount)],
        )
        set_state(conn, lot_ids=[created.id], state="reversed")
        return entry.id
    taken = conn.execute(
        select(allocations.c.lot_id, allocations.c.amount, lots.c.state)
        .join(lots, lots.c.id == allocations.c.lot_id)
        .where(allocations.c.transaction_id == original_id)
    ).all()
    back = sum(int(t.amount) for t in taken if t.state == "active")
    lapsed = sum(int(t.amount) for t in taken) - back
    sink = next(p for p in moved if p.member_id is None)
    entry.postings = [
        Posting(sink.account_id, -int(sink.amount)),
        member_posting(b.member_id, "available", back),
        program_posting(b.program_id, "expired", lapsed, member_id=b.member_id),
    ]
    write(conn, [entry])
    record_allocations(
        conn,
        program_id=b.program_id,
        member_id=b.member_id,
        transaction_id=entry.id,
        purpose="restore",
        parts=[(t.lot_id, -int(t.amount)) for t in taken if t.state == "active"],
    )
    return entry.id


def balances_moved(conn: Connection, *, transaction_id: str, member_id: str) -> int:
    """How many points a transaction added to (or took from) the member, all accounts together."""
    from palier.ledger.tables import postings

    total = conn.execute(
        select(func.coalesce(func.sum(postings.c.amount), 0)).where(
            postings.c.transaction_id == transaction_id, postings.c.member_id == member_id
        )
    ).scalar()
    return int(total or 0)
