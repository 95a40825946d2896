"""Mature and expire points in batches: set-based statements, safe with several workers at once.

Lock order (PostgreSQL): a batch locks its lots with ``FOR UPDATE SKIP LOCKED``, then their members'
rows with ``SKIP LOCKED`` (so a job never waits on a member's command and two workers never share
work), then program slots in id order. Member commands lock member, then lots, then slots. Nobody
waits on a lock while holding one that the other side needs next, so there is no deadlock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from palier.clock import Clock
from palier.db import Database
from palier.ledger.locks import try_lock_members
from palier.ledger.lots import write_allocations
from palier.ledger.operations import member_posting, program_posting
from palier.ledger.post import Entry, write
from palier.ledger.tables import accounts, lots

BATCH = 2000


@dataclass
class SweepResult:
    lots: int = 0
    points: int = 0
    batches: int = 0


Progress = Callable[[int], None]


def mature(
    db: Database,
    clock: Clock,
    *,
    batch_size: int = BATCH,
    program_id: str | None = None,
    progress: Progress | None = None,
) -> SweepResult:
    """Pending points whose return window has closed become available (repaying any debt first).

    All programs, or only ``program_id``."""
    return _sweep(db, clock, _mature_batch, batch_size, program_id, progress)


def expire(
    db: Database,
    clock: Clock,
    *,
    batch_size: int = BATCH,
    program_id: str | None = None,
    progress: Progress | None = None,
) -> SweepResult:
    """Active lots past their expiry date give up what remains of them (all programs, or ``program_id``)."""
    return _sweep(db, clock, _expire_batch, batch_size, program_id, progress)


BatchFn = Callable[[Connection, datetime, int, str | None], tuple[int, int, int]]


def _sweep(
    db: Database, clock: Clock, batch: BatchFn, size: int, program_id: str | None, progress: Progress | None
) -> SweepResult:
    result = SweepResult()
    now = clock.now()
    while True:
        with db.write() as conn:
            selected, done, points = batch(conn, now, size, program_id)
        result.lots += done
        result.points += points
        result.batches += 1
        if progress and done:
            progress(done)
        if selected < size or done == 0:
            return result


def _due(
    conn: Connection, condition: list[object], order: object, size: int, program_id: str | None
) -> list[tuple[str, str, str, int, str]]:
    if program_id is not None:
        condition = [*condition, lots.c.program_id == program_id]
    query = (
        select(lots.c.id, lots.c.program_id, lots.c.member_id, lots.c.remaining, lots.c.label)
        .where(*condition)  # type: ignore[arg-type]
        .order_by(order)  # type: ignore[arg-type]
        .limit(size)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [tuple(row) for row in conn.execute(query)]


def _mature_batch(conn: Connection, now: datetime, size: int, program_id: str | None) -> tuple[int, int, int]:
    rows = _due(conn, [lots.c.state == "pending", lots.c.matures_at <= now], lots.c.matures_at, size, program_id)
    locked = try_lock_members(conn, {r[2] for r in rows})
    todo = [r for r in rows if r[2] in locked]
    debts = _debts(conn, {r[2] for r in todo})
    entries, allocations = [], []
    for lot_id, program_id, member_id, remaining, label in todo:
        repay = min(remaining, debts.get(member_id, 0))
        debts[member_id] = debts.get(member_id, 0) - repay
        entry = Entry(
            program_id=program_id,
            kind="mature",
            reason=f"{label}: points now available",
            reason_code="matured",
            created_at=now,
            effective_at=now,
            member_id=member_id,
            postings=[
                member_posting(member_id, "pending", -remaining),
                member_posting(member_id, "available", remaining - repay),
                member_posting(member_id, "debt", repay),
            ],
            details={"lot_id": lot_id, "debt_repaid": repay} if repay else {"lot_id": lot_id},
        )
        entries.append(entry)
        allocations.append(
            {
                "transaction_id": entry.id,
                "program_id": program_id,
                "member_id": member_id,
                "lot_id": lot_id,
                "amount": repay,
                "purpose": "repay_debt",
            }
        )
    write(conn, entries)
    write_allocations(conn, allocations)
    _set_state(conn, [r[0] for r in todo], "active")
    return len(rows), len(todo), sum(r[3] for r in todo)


def _expire_batch(conn: Connection, now: datetime, size: int, program_id: str | None) -> tuple[int, int, int]:
    rows = _due(conn, [lots.c.state == "active", lots.c.expires_at <= now], lots.c.expires_at, size, program_id)
    locked = try_lock_members(conn, {r[2] for r in rows})
    todo = [r for r in rows if r[2] in locked]
    entries, allocations = [], []
    for lot_id, program_id, member_id, remaining, label in todo:
        if remaining == 0:
            continue  # fully spent: only its state changes
        entry = Entry(
            program_id=program_id,
            kind="expire",
            reason=f"{remaining} points from {label} expired",
            reason_code="expired",
            created_at=now,
            effective_at=now,
            member_id=member_id,
            postings=[
                member_posting(member_id, "available", -remaining),
                program_posting(program_id, "expired", remaining, member_id=member_id),
            ],
            details={"lot_id": lot_id},
        )
        entries.append(entry)
        allocations.append(
            {
                "transaction_id": entry.id,
                "program_id": program_id,
                "member_id": member_id,
                "lot_id": lot_id,
                "amount": remaining,
                "purpose": "expire",
            }
        )
    write(conn, entries)
    write_allocations(conn, allocations)
    _set_state(conn, [r[0] for r in todo], "expired")
    return len(rows), len(todo), sum(r[3] for r in todo)


def _debts(conn: Connection, member_ids: set[str]) -> dict[str, int]:
    """Points owed by each of these members (positive), for those who owe any."""
    if not member_ids:
        return {}
    rows = conn.execute(
        select(accounts.c.member_id, accounts.c.balance).where(
            accounts.c.id.in_([f"{m}:debt" for m in member_ids]), accounts.c.balance < 0
        )
    )
    return {member_id: -int(balance) for member_id, balance in rows}


def _set_state(conn: Connection, lot_ids: list[str], state: str) -> None:
    for start in range(0, len(lot_ids), 500):
        conn.execute(update(lots).where(lots.c.id.in_(lot_ids[start : start + 500])).values(state=state))
