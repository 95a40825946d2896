"""The ledger's operations on one member: earn, take back, spend, expire and merge.

Each builds one balanced :class:`Entry`, moves lots with allocations, and writes it. The caller
holds the member's lock (``locks.lock_members``) and the database transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Table, bindparam, func, select

from palier.ledger.accounts import MEMBER_KINDS, POINTS, member_account, program_account
from palier.ledger.catch_up import catch_up
from palier.ledger.earning_rows import earn_rows, is_pending
from palier.ledger.lots import Taken, choose_lots, record_allocations, set_state
from palier.ledger.post import Entry, Posting, write, write_with
from palier.ledger.stand_ins import ComingBack, sort_out, write_restoring
from palier.ledger.stand_ins import record as record_stand_ins
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


def write_allocating(conn: Connection, entry: Entry, *, purpose: str, parts: Sequence[tuple[str, int]]) -> None:
    """Write ``entry`` and its allocations: ``parts`` are (lot id, points) its member's lots give (a negative
    number gives points back to the lot)."""
    assert entry.member_id is not None
    write(conn, [entry])
    record_allocations(
        conn,
        program_id=entry.program_id,
        member_id=entry.member_id,
        transaction_id=entry.id,
        purpose=purpose,
        parts=parts,
    )


def outcome(restored: int, lapsed: int) -> str:
    """How a history line ends when points come back: ", points returned", ", 40 points expired meanwhile"."""
    if not lapsed:
        return ", points returned"
    gone = f"{lapsed} point{'s' if lapsed != 1 else ''} expired meanwhile"
    return f", {gone}" if not restored else f", {restored} point{'s' if restored != 1 else ''} returned, {gone}"


def member_posting(member_id: str, kind: str, amount: int) -> Posting:
    return Posting(member_account(member_id, kind), amount, member_id=member_id)


def program_posting(program_id: str, kind: str, amount: int, *, member_id: str, asset: str = POINTS) -> Posting:
    return Posting(program_account(program_id, kind, for_member=member_id), amount, asset=asset)


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
    expired: int = 0  # recorded after their life had ended: issued and expired at once


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
    plan = prepare_earn(
        conn, booking, amount=amount, source=source, label=label, matures_at=matures_at, expires_at=expires_at
    )
    write_with(conn, plan.entries, rows=plan.rows)
    return plan.earned


def prepare_earn(
    conn: Connection,
    booking: Booking,
    *,
    amount: int,
    source: str,
    label: str,
    matures_at: datetime | None,
    expires_at: datetime | None,
) -> EarnPlan:
    """What :func:`earn` writes, the member's debt read: write it with ``post.write_with``, adding rows of
    your own (a purchase writes its event with it, in one statement)."""
    owed = debt_owed(conn, booking, matures_at=matures_at) if amount > 0 else 0
    return plan_earn(
        booking, amount=amount, source=source, label=label, matures_at=matures_at, expires_at=expires_at, owed_debt=owed
    )


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
    """What :func:`earn` writes, built without I/O (the rows of ``earning_rows.earn_rows``, as the bulk
    import builds them); write it with ``post.write_with``, adding rows of your own.

    ``owed_debt`` is what the member owes (:func:`debt_owed`); points available at once repay it first.
    """
    if amount <= 0:
        return EarnPlan(Earned(None, None, pending=False), [], [])
    rows = earn_rows(
        booking, amount=amount, owed=owed_debt, source=source, label=label, matures_at=matures_at, expires_at=expires_at
    )
    taken = sum(int(row["amount"]) for row in rows.allocations)
    lot = rows.lot | {"remaining": rows.lot["amount"] - taken}  # written with its allocations, at once
    return EarnPlan(
        Earned(rows.entry.id, rows.lot_id, pending=rows.pending, repaid_debt=rows.repaid, expired=rows.expired),
        rows.entries,
        [(lots, [lot]), (allocations, rows.allocations)],
    )


def debt_owed(conn: Connection, booking: Booking, *, matures_at: datetime | None) -> int:
    """The debt points earned now would repay first: 0 without a read when they stay pending."""
    if is_pending(matures_at, booking.now):
        return 0
    return -balances_of(conn, booking.member_id, "debt")


_read_balance = select(accounts.c.balance).where(accounts.c.id == bindparam("account_id"))


def balances_of(conn: Connection, member_id: str, kind: str) -> int:
    value = conn.execute(_read_balance, {"account_id": member_account(member_id, kind)}).scalar()
    return int(value or 0)


@dataclass
class TakenBack:
    transaction_id: str | None = None
    from_pending: int = 0
    from_available: int = 0
    to_debt: int = 0
    written_off: int = 0
    excused: int = 0  # of the purchase's own points that had already expired: gone once, not taken again
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
    lapsed: int = 0,
) -> TakenBack:
    """Take back ``amount`` points that should not have been issued (a return).

    From the purchase's own lot first (still pending, or available); then, up to ``lapsed`` (points
    of that lot which expired and no earlier return excused), nothing: those points already left the
    member when they expired and are not taken twice. The rest from other available points
    soonest-expiring first; what is missing goes to ``debt`` or is written off, recorded either way.
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
    result.excused = min(lapsed, amount - sum(t.amount for t in taken))
    taken += choose_lots(
        conn,
        program_id=b.program_id,
        member_id=b.member_id,
        amount=amount - result.excused - sum(t.amount for t in taken),
        exclude=[t.lot_id for t in taken],
    )
    result.from_pending = sum(t.amount for t in taken if t.state == "pending")
    result.from_available = sum(t.amount for t in taken if t.state == "active")
    missing = amount - result.excused - result.from_pending - result.from_available
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
            **({"excused_expired": result.excused} if result.excused else {}),
        },
    )
    if result.recovered:
        write_allocating(conn, entry, purpose="return", parts=[(t.lot_id, t.amount) for t in taken])
        result.transaction_id = entry.id
        if own_lot_id is not None:  # what stood in for the own lot's points that were out (see stand_ins)
            instead = [(own_lot_id, t.lot_id, t.amount) for t in taken if t.lot_id != own_lot_id]
            record_stand_ins(conn, entry, member_id=b.member_id, rows=[*instead, (own_lot_id, None, result.to_debt)])
        emptied = [t.lot_id for t in taken if t.state == "pending"]
        mark_reversed_if_empty(conn, emptied)
    return result


def mark_reversed_if_empty(conn: Connection, lot_ids: list[str]) -> None:
    from palier.ledger.tables import lots

    if lot_ids:
        empty = conn.execute(select(lots.c.id).where(lots.c.id.in_(lot_ids), lots.c.remaining == 0)).scalars().all()
        set_state(conn, lot_ids=list(empty), state="reversed")


class InsufficientPoints(Exception):
    def __init__(self, needed: int, available: int) -> None:
        super().__init__(f"needs {needed} points, {available} available")
        self.needed = needed
        self.available = available


def spend(conn: Connection, booking: Booking, *, amount: int, sink: str, also: Sequence[Posting] = ()) -> str:
    """Move ``amount`` available points to the program account ``sink`` (adjusted, redeemed…).

    ``also``: more postings of the same transaction, balanced on their own (the store credit a
    redemption buys, in money). Points past their expiry expire first: they are not there to spend."""
    b = booking
    catch_up(conn, program_id=b.program_id, member_id=b.member_id, now=b.now)
    available = balances_of(conn, b.member_id, "available")
    if amount > available:
        raise InsufficientPoints(amount, available)
    taken = choose_lots(conn, program_id=b.program_id, member_id=b.member_id, amount=amount)
    entry = b.entry(
        [
            member_posting(b.member_id, "available", -amount),
            program_posting(b.program_id, sink, amount, member_id=b.member_id),
            *also,
        ]
    )
    write_allocating(conn, entry, purpose="spend", parts=[(t.lot_id, t.amount) for t in taken])
    return entry.id


def move_member(conn: Connection, booking: Booking, *, source_id: str) -> tuple[str | None, dict[str, int], int]:
    """Move all of ``source_id``'s points, lots and open holds to ``booking.member_id`` (a merge).

    The source's due lots are first matured and expired, as the jobs would (the caller holds both members'
    locks). One transaction: for each account kind, source ``-balance`` and target ``+balance``. The caller then
    settles the merged member's debt (:func:`settle_debt`): one account may have owed points the other
    could spend. Returns the transaction id (None if there was nothing to move), the amounts moved and
    lots moved.
    """
    from palier.ledger.tables import holds, lots, stand_ins

    b = booking
    # points past their expiry expire on the account they expired on, dated then; only what is left moves
    catch_up(conn, program_id=b.program_id, member_id=source_id, now=b.now)
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
    conn.execute(stand_ins.update().where(stand_ins.c.member_id == source_id).values(member_id=b.member_id))
    return transaction_id, moved, int(lots_moved)


def settle_debt(conn: Connection, booking: Booking) -> int:
    """A member who owes points and has some to spend repays the debt from them now, soonest-expiring
    first, in a transaction of its own ("12 points owed repaid"): after a merge, or when points come back
    to a member in debt (a coupon cancelled, a payment returned, a debit reversed). A member never owes
    points while holding some to spend. Returns the points repaid."""
    b = booking
    if balances_of(conn, b.member_id, "debt") >= 0:
        return 0
    catch_up(conn, program_id=b.program_id, member_id=b.member_id, now=b.now)  # maturing points repay it too
    owed = -balances_of(conn, b.member_id, "debt")
    repay = min(owed, balances_of(conn, b.member_id, "available")) if owed > 0 else 0
    if repay <= 0:
        return 0
    taken = choose_lots(conn, program_id=b.program_id, member_id=b.member_id, amount=repay)
    entry = replace(
        b,
        kind="repay",
        reason=f"{repay} points owed repaid",
        reason_code="debt_repaid",
        event_id=None,
        details=None,
    ).entry(
        [member_posting(b.member_id, "available", -repay), member_posting(b.member_id, "debt", repay)],
        extra={"debt_repaid": repay},
    )
    write_allocating(conn, entry, purpose="repay_debt", parts=[(t.lot_id, t.amount) for t in taken])
    return repay


class NotReversible(Exception):
    """The transaction cannot be undone exactly (its points were already used, or it is not a correction)."""


class AlreadyReversed(NotReversible):
    """The transaction was reversed before: a second reversal would give or take the points twice."""


def transaction_member(conn: Connection, *, program_id: str, transaction_id: str) -> str | None:
    """The member a transaction of the program was booked to (None if there is no such transaction)."""
    from palier.ledger.tables import ledger_transactions

    return conn.execute(
        select(ledger_transactions.c.member_id).where(
            ledger_transactions.c.id == transaction_id, ledger_transactions.c.program_id == program_id
        )
    ).scalar()


def reverse(conn: Connection, booking: Booking, *, original_id: str, booked_to: str | None = None) -> str:
    """Undo a manual credit or debit with a new transaction that references it.

    A credit is reversible while its lot is untouched. A debit gives the points back to the lots it
    took them from; the share of lots that have expired since goes to ``expired`` instead.

    ``booked_to``: the member the original was booked to, when it is not ``booking.member_id``: an account
    merged into it since, whose lots (and so the points to take or give back) are now the booking member's.
    """
    from palier.ledger.tables import allocations, ledger_transactions, lots, postings

    b = booking
    original = conn.execute(
        select(ledger_transactions.c.kind, ledger_transactions.c.member_id).where(
            ledger_transactions.c.id == original_id, ledger_transactions.c.program_id == b.program_id
        )
    ).first()
    if original is None or original.member_id != (booked_to or b.member_id):
        raise LookupError(original_id)
    if original.kind not in ("adjust", "welcome"):
        raise NotReversible("only manual adjustments and welcome points are reversed; returns correct purchases")
    reversed_by = select(ledger_transactions.c.id).where(ledger_transactions.c.reverses_id == original_id)
    if conn.execute(reversed_by).first() is not None:
        raise AlreadyReversed(original_id)
    moved = conn.execute(
        select(postings.c.account_id, postings.c.amount, postings.c.member_id, accounts.c.kind)
        .join(accounts, accounts.c.id == postings.c.account_id)
        .where(postings.c.transaction_id == original_id)
    ).all()
    created = conn.execute(  # lots are locked before any account row: the order every writer keeps
        select(lots.c.id, lots.c.amount, lots.c.remaining, lots.c.state)
        .where(lots.c.transaction_id == original_id)
        .with_for_update()
    ).first()
    entry = b.entry([], extra={"reverses": original_id})
    entry.reverses_id = original_id
    if created is not None:  # a credit: take the whole lot back
        if created.remaining != created.amount or created.state not in ("active", "pending"):
            raise NotReversible("these points were already used or have expired; debit them with an adjustment")
        entry.postings = [  # the member's side on the booking member's account: a merge moved its lot there
            Posting(p.account_id, -p.amount) if p.member_id is None else member_posting(b.member_id, p.kind, -p.amount)
            for p in moved
        ]
        write_allocating(conn, entry, purpose="reverse", parts=[(created.id, created.amount)])
        set_state(conn, lot_ids=[created.id], state="reversed")
        return entry.id
    taken = conn.execute(
        select(allocations.c.lot_id, allocations.c.amount, lots.c.state, lots.c.expires_at)
        .join(lots, lots.c.id == allocations.c.lot_id)
        .where(allocations.c.transaction_id == original_id)
        .order_by(allocations.c.lot_id)
        .with_for_update(of=lots)
    ).all()
    coming = [ComingBack(t.lot_id, int(t.amount), t.state, t.expires_at) for t in taken]
    restoring = sort_out(conn, member_id=b.member_id, coming=coming, now=b.now)
    sink = next(p for p in moved if p.member_id is None)
    entry.postings = [
        Posting(sink.account_id, -int(sink.amount)),
        *restoring.postings(program_id=b.program_id, member_id=b.member_id),
    ]
    write_restoring(conn, entry, restoring, member_id=b.member_id)
    settle_debt(conn, b)
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


@dataclass(frozen=True)
class GivenBack:
    transaction_id: str | None
    restored: int  # back in their lots, available again
    expired: int  # their lots expired meanwhile


def give_back(
    conn: Connection, booking: Booking, *, original_id: str, amount: int, already: int, sink: str
) -> GivenBack:
    """Return ``amount`` of the points that transaction ``original_id`` spent into program account ``sink``.

    Points go back to the lots they came from, longest-lasting lots first; ``already`` points of it were
    given back before (the order is fixed, so each call continues where the last stopped). Points whose
    lot has expired since expire instead.
    """
    from palier.ledger.tables import allocations, lots

    b = booking
    if amount <= 0:
        return GivenBack(None, 0, 0)
    parts = conn.execute(
        select(allocations.c.lot_id, allocations.c.amount, lots.c.state, lots.c.expires_at)
        .join(lots, lots.c.id == allocations.c.lot_id)
        .where(allocations.c.transaction_id == original_id)
        .order_by(lots.c.expires_at.is_(None).desc(), lots.c.expires_at.desc(), lots.c.id)
        .with_for_update(of=lots)
    ).all()
    coming: list[ComingBack] = []
    skip, left = already, amount
    for lot_id, taken, state, expires_at in parts:
        taken = int(taken)
        used = min(skip, taken)
        skip -= used
        part = min(left, taken - used)
        if part <= 0:
            continue
        left -= part
        coming.append(ComingBack(lot_id, part, state, expires_at))
    given = amount - left
    restoring = sort_out(conn, member_id=b.member_id, coming=coming, now=b.now)
    restored, lapsed = restoring.restored, restoring.lapsed
    b = replace(b, reason=b.reason + outcome(restored, lapsed))
    entry = b.entry(
        [
            program_posting(b.program_id, sink, -given, member_id=b.member_id),
            *restoring.postings(program_id=b.program_id, member_id=b.member_id),
        ],
        extra={"gives_back": original_id, "restored": restored, "expired": lapsed},
    )
    write_restoring(conn, entry, restoring, member_id=b.member_id)
    settle_debt(conn, b)
    return GivenBack(entry.id if given else None, restored, lapsed)
