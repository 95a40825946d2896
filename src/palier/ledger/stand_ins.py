"""Points coming back to their lots, and the stand-ins a return took for an order's points that were out.

A return takes an order's points back from the order's own lot first. When some of them are out — paying
another order, held by a coupon, debited — it takes other points in their place, or books a debt: these
are *stand-ins*, recorded per lot. If the lot's points come back later (the other order returned, the
coupon cancelled, the debit reversed), they have already left the member once, through their stand-ins:
they go back there (to the lots taken, or cancel the debt) rather than to the order's lot, which may have
expired meanwhile. So nothing is taken twice, and what the member keeps lasts as long as it would have.

Points coming back to a lot that is still live go back into it; to a lot that has expired since, they
expire (an ``expire`` allocation on that lot, so that a later return of its order excuses them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select

from palier.clock import utc
from palier.ledger.accounts import member_account, program_account
from palier.ledger.lots import record_allocations
from palier.ledger.post import Entry, Posting, write
from palier.ledger.tables import accounts, lots, stand_ins


def lot_is_live(state: str, expires_at: datetime | None, now: datetime) -> bool:
    """A lot points can go back to: active, and not past its expiry (the expiry job may not have run yet)."""
    return state == "active" and (expires_at is None or utc(expires_at) > now)


@dataclass(frozen=True)
class ComingBack:
    """``points`` coming back to lot ``lot_id`` (in the state and with the expiry read under its lock)."""

    lot_id: str
    points: int
    state: str
    expires_at: datetime | None


@dataclass
class Restoring:
    """Points coming back, sorted out: to live lots (``back``), to lots expired since (``gone``), and the
    member's debt they cancel (``debt``), each (lot id, points); ``used`` the stand-ins they undo."""

    back: list[tuple[str, int]] = field(default_factory=list)
    gone: list[tuple[str, int]] = field(default_factory=list)
    debt: int = 0
    used: list[tuple[str, str | None, int]] = field(default_factory=list)  # (lot, stand-in lot or None, points)

    @property
    def restored(self) -> int:
        """Points the member has back: available again, or owed no more."""
        return sum(points for _, points in self.back) + self.debt

    @property
    def lapsed(self) -> int:
        return sum(points for _, points in self.gone)

    def postings(self, *, program_id: str, member_id: str) -> list[Posting]:
        """The member's side of the transaction that gives them back (the other side is the caller's)."""
        back = sum(points for _, points in self.back)
        return [
            Posting(member_account(member_id, "available"), back, member_id=member_id),
            Posting(member_account(member_id, "debt"), self.debt, member_id=member_id),
            Posting(program_account(program_id, "expired", for_member=member_id), self.lapsed),
        ]


def sort_out(conn: Connection, *, member_id: str, coming: Sequence[ComingBack], now: datetime) -> Restoring:
    """Where points coming back to lots go: first in place of the stand-ins a return of the lot's order took
    (the debt it booked, while still owed, then the lots it took, longest-lasting first), then to the lot
    itself. Reads and locks; writes nothing (see :func:`write_restoring`)."""
    result = Restoring()
    owed = _stand_ins(conn, [c.lot_id for c in coming if c.points > 0])
    owes = any(from_lot is None for rows in owed.values() for from_lot, *_ in rows)
    debt_owed = -_debt(conn, member_id) if owes else 0
    for c in coming:
        left = c.points
        for row in owed.get(c.lot_id, []):
            from_lot, amount, state, expires_at = row
            if left <= 0:
                break
            if from_lot is None:
                part = min(left, amount, debt_owed)
                debt_owed -= part
                result.debt += part
            else:
                part = min(left, amount)
                (result.back if lot_is_live(state, expires_at, now) else result.gone).append((from_lot, part))
            if part:
                row[1] -= part
                left -= part
                result.used.append((c.lot_id, from_lot, part))
        if left > 0:
            (result.back if lot_is_live(c.state, c.expires_at, now) else result.gone).append((c.lot_id, left))
    return result


def write_restoring(conn: Connection, entry: Entry, restoring: Restoring, *, member_id: str) -> None:
    """Write ``entry`` (its postings include :meth:`Restoring.postings`), its allocations (``restore`` on every
    lot points come back to, ``expire`` on those expired since) and the stand-ins it undoes."""
    write(conn, [entry])
    parts = restoring.back + restoring.gone
    record_allocations(
        conn,
        program_id=entry.program_id,
        member_id=member_id,
        transaction_id=entry.id,
        purpose="restore",
        parts=[(lot_id, -points) for lot_id, points in parts],
    )
    # given back to their lots first, so that the lots' remaining does not move; a later return of the order
    # that earned them then knows they expired, and takes nothing else for them
    record_allocations(
        conn,
        program_id=entry.program_id,
        member_id=member_id,
        transaction_id=entry.id,
        purpose="expire",
        parts=restoring.gone,
    )
    undone = [(lot_id, from_lot, -points) for lot_id, from_lot, points in restoring.used]
    record(conn, entry, member_id=member_id, rows=undone)


def record(conn: Connection, entry: Entry, *, member_id: str, rows: Sequence[tuple[str, str | None, int]]) -> None:
    """Stand-in rows of ``entry``: (lot, stand-in lot or None for debt, points; negative when undone)."""
    values = [
        {
            "program_id": entry.program_id,
            "member_id": member_id,
            "lot_id": lot_id,
            "from_lot_id": from_lot,
            "transaction_id": entry.id,
            "amount": points,
        }
        for lot_id, from_lot, points in rows
        if points
    ]
    if values:
        conn.execute(insert(stand_ins), values)


def _stand_ins(conn: Connection, lot_ids: list[str]) -> dict[str, list[list[Any]]]:
    """Outstanding stand-ins of ``lot_ids``: per lot, [stand-in lot or None, points, its state, its expiry],
    debt first, then the longest-lasting lots first; the stand-in lots locked (lots before accounts)."""
    if not lot_ids:
        return {}
    rows = conn.execute(
        select(stand_ins.c.lot_id, stand_ins.c.from_lot_id, func.sum(stand_ins.c.amount))
        .where(stand_ins.c.lot_id.in_(bindparam("lot_ids", expanding=True)))
        .group_by(stand_ins.c.lot_id, stand_ins.c.from_lot_id)
        .having(func.sum(stand_ins.c.amount) > 0),
        {"lot_ids": sorted(set(lot_ids))},
    ).all()
    if not rows:
        return {}
    taken = {row.from_lot_id for row in rows if row.from_lot_id is not None}
    found = {
        lot.id: lot
        for lot in conn.execute(
            select(lots.c.id, lots.c.state, lots.c.expires_at, lots.c.earned_at)
            .where(lots.c.id.in_(bindparam("ids", expanding=True)))
            .order_by(lots.c.id)
            .with_for_update(),
            {"ids": sorted(taken)},
        )
    }
    owed: dict[str, list[list[Any]]] = {}
    order: dict[str | None, tuple[Any, ...]] = {None: (0,)}  # debt first
    for lot_id, from_lot, amount in rows:
        lot = found.get(from_lot) if from_lot is not None else None
        state, expires_at = (lot.state, lot.expires_at) if lot is not None else ("", None)
        if lot is not None:  # then the lots lasting longest (never-expiring first), the newest first
            last = utc(lot.expires_at).timestamp() if lot.expires_at else float("inf")
            order[from_lot] = (1, -last, -utc(lot.earned_at).timestamp(), lot.id)
        owed.setdefault(lot_id, []).append([from_lot, int(amount), state, expires_at])
    for entries in owed.values():
        entries.sort(key=lambda e: order.get(e[0], (2,)))
    return owed


def _debt(conn: Connection, member_id: str) -> int:
    value = conn.execute(select(accounts.c.balance).where(accounts.c.id == member_account(member_id, "debt"))).scalar()
    return int(value or 0)
