"""Lots: every credit of member points, traced from earning to spending, return or expiry.

Debits take from lots soonest-expiring first and write one allocation row per lot touched, so
``lot.remaining == lot.amount - Σ allocations`` always holds (``palier verify`` checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Select, bindparam, insert, select, update

from palier.ids import new_id
from palier.ledger.tables import allocations, lots


@dataclass(frozen=True)
class Taken:
    lot_id: str
    amount: int
    state: str  # the lot's state when taken (pending or active)


_insert_lot = insert(lots)
_insert_allocations = insert(allocations)


def add_lot(conn: Connection, **lot: Any) -> str:
    """Insert a new lot (its fields: :func:`lot_row`); returns its id."""
    row = lot_row(**lot)
    conn.execute(_insert_lot, row)
    return str(row["id"])


def lot_row(
    *,
    program_id: str,
    member_id: str,
    transaction_id: str,
    source: str,
    label: str,
    amount: int,
    state: str,
    earned_at: datetime,
    matures_at: datetime | None,
    expires_at: datetime | None,
    event_id: str | None = None,
    remaining: int | None = None,
) -> dict[str, Any]:
    """A new lot's row (a new id), to insert; ``remaining`` is ``amount`` unless allocations take some."""
    return dict(
        id=new_id("lot"),
        program_id=program_id,
        member_id=member_id,
        transaction_id=transaction_id,
        event_id=event_id,
        source=source,
        label=label,
        amount=amount,
        remaining=amount if remaining is None else remaining,
        state=state,
        earned_at=earned_at,
        matures_at=matures_at,
        expires_at=expires_at,
    )


def choose_lots(
    conn: Connection,
    *,
    program_id: str,
    member_id: str,
    amount: int,
    states: Sequence[str] = ("active",),
    only_lot_id: str | None = None,
    exclude: Sequence[str] = (),
) -> list[Taken]:
    """Which lots a debit of up to ``amount`` points takes from (may total less); writes nothing.

    Soonest-expiring first, never-expiring last, older before newer. The caller has locked the
    member, then writes the transaction and :func:`record_allocations` for the result.
    """
    if amount <= 0:
        return []
    params: dict[str, Any] = {"program_id": program_id, "member_id": member_id, "states": list(states)}
    if only_lot_id is not None:
        params["lot_id"] = only_lot_id
    if exclude:
        params["exclude"] = list(exclude)
    query = _lots_to_take(one_lot=only_lot_id is not None, excluding=bool(exclude))
    taken: list[Taken] = []
    left = amount
    for lot_id, remaining, state in conn.execute(query, params):
        part = min(left, int(remaining))
        taken.append(Taken(lot_id=lot_id, amount=part, state=state))
        left -= part
        if left == 0:
            break
    return taken


@lru_cache(maxsize=4)
def _lots_to_take(*, one_lot: bool, excluding: bool) -> Select[str, int, str]:
    """:func:`choose_lots`'s query, built once per variant (a debit runs it under the member's lock)."""
    query = select(lots.c.id, lots.c.remaining, lots.c.state).where(
        lots.c.program_id == bindparam("program_id"),
        lots.c.member_id == bindparam("member_id"),
        lots.c.state.in_(bindparam("states", expanding=True)),
        lots.c.remaining > 0,
    )
    if one_lot:
        query = query.where(lots.c.id == bindparam("lot_id"))
    if excluding:
        query = query.where(lots.c.id.not_in(bindparam("exclude", expanding=True)))
    order = [lots.c.expires_at.is_(None), lots.c.expires_at, lots.c.earned_at, lots.c.id]
    # Lock the lots before the command touches any program slot: a sweep job may hold a lot and
    # wait on a slot, never the other way round (see jobs/sweeps.py).
    return query.order_by(*order).with_for_update()


_reduce_lot = (
    update(lots).where(lots.c.id == bindparam("lot_id")).values(remaining=lots.c.remaining - bindparam("delta"))
)


def record_allocations(
    conn: Connection,
    *,
    program_id: str,
    member_id: str,
    transaction_id: str,
    purpose: str,
    parts: Sequence[tuple[str, int]],
) -> None:
    """Write allocation rows and move the lots' ``remaining`` (positive takes, negative gives back)."""
    write_allocations(conn, allocation_rows(program_id, member_id, transaction_id, purpose, parts))


def allocation_rows(
    program_id: str, member_id: str, transaction_id: str, purpose: str, parts: Sequence[tuple[str, int]]
) -> list[dict[str, object]]:
    """The ``allocations`` rows of ``parts`` ((lot id, points) pairs) in one transaction."""
    return [
        {
            "transaction_id": transaction_id,
            "program_id": program_id,
            "member_id": member_id,
            "lot_id": lot_id,
            "amount": amount,
            "purpose": purpose,
        }
        for lot_id, amount in parts
    ]


def write_allocations(conn: Connection, rows: Sequence[dict[str, object]]) -> None:
    """Allocation rows (transaction_id, program_id, member_id, lot_id, amount, purpose), in bulk."""
    rows = [row for row in rows if row["amount"]]
    if rows:
        conn.execute(_insert_allocations, rows)
        conn.execute(_reduce_lot, [{"lot_id": row["lot_id"], "delta": row["amount"]} for row in rows])


def set_state(conn: Connection, *, lot_ids: Sequence[str], state: str) -> None:
    if lot_ids:
        conn.execute(update(lots).where(lots.c.id.in_(lot_ids)).values(state=state))
