"""Writing to the ledger: balanced transactions of postings, and the cached balances they move.

This is the only code that changes a balance. A transaction's postings sum to zero per asset;
transactions, postings and allocations are never updated or deleted (corrections are reversals).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, insert, select, update

from palier.ids import new_id
from palier.ledger.accounts import POINTS
from palier.ledger.tables import accounts, ledger_transactions, postings


class UnbalancedTransaction(ValueError):
    """A programming error: postings that would create or destroy value."""


@dataclass(frozen=True)
class Posting:
    account_id: str
    amount: int
    member_id: str | None = None  # whose account this is (None for program accounts)
    asset: str = POINTS


@dataclass
class Entry:
    """One ledger transaction, ready to write."""

    program_id: str
    kind: str
    reason: str
    reason_code: str
    postings: list[Posting]
    created_at: datetime
    effective_at: datetime
    member_id: str | None = None
    event_id: str | None = None
    reverses_id: str | None = None
    details: dict[str, Any] | None = None
    id: str = field(default_factory=lambda: new_id("transaction"))


def check_balanced(items: Sequence[Posting]) -> None:
    totals: dict[str, int] = defaultdict(int)
    for p in items:
        totals[p.asset] += p.amount
    unbalanced = {asset: total for asset, total in totals.items() if total != 0}
    if unbalanced:
        raise UnbalancedTransaction(f"postings do not sum to zero: {unbalanced}")


def write(conn: Connection, entries: Sequence[Entry]) -> None:
    """Write ``entries`` and move the cached balances of every account they touch, in bulk."""
    entries = [e for e in entries if any(p.amount for p in e.postings)]
    if not entries:
        return
    for e in entries:
        check_balanced(e.postings)
    conn.execute(
        insert(ledger_transactions),
        [
            {
                "id": e.id,
                "program_id": e.program_id,
                "member_id": e.member_id,
                "kind": e.kind,
                "reason": e.reason,
                "reason_code": e.reason_code,
                "event_id": e.event_id,
                "reverses_id": e.reverses_id,
                "created_at": e.created_at,
                "effective_at": e.effective_at,
                "details": e.details,
            }
            for e in entries
        ],
    )
    rows = [
        {
            "transaction_id": e.id,
            "program_id": e.program_id,
            "member_id": p.member_id,
            "account_id": p.account_id,
            "asset": p.asset,
            "amount": p.amount,
        }
        for e in entries
        for p in e.postings
        if p.amount
    ]
    conn.execute(insert(postings), rows)
    deltas: dict[str, int] = defaultdict(int)
    for e in entries:
        for p in e.postings:
            deltas[p.account_id] += p.amount
    apply_deltas(conn, deltas)


def post(conn: Connection, entry: Entry) -> str:
    """Write one transaction; returns its id."""
    write(conn, [entry])
    return entry.id


_CHUNK = 500


def apply_deltas(conn: Connection, deltas: Mapping[str, int]) -> None:
    """Add each delta to its account's cached balance and bump its version.

    Several program-account slots in one command are locked in id order first, so two batch jobs
    can never deadlock on them (member accounts are already serialised by ``locks.lock_members``).
    """
    ids = sorted(account_id for account_id, delta in deltas.items() if delta)
    if conn.dialect.name == "postgresql" and sum(1 for i in ids if i.count(":") == 2) > 1:
        for chunk in _chunks(ids, _CHUNK):
            conn.execute(
                select(accounts.c.id).where(accounts.c.id.in_(chunk)).order_by(accounts.c.id).with_for_update()
            )
    for chunk in _chunks(ids, _CHUNK):
        result = conn.execute(
            update(accounts)
            .where(accounts.c.id.in_(chunk))
            .values(
                balance=accounts.c.balance + case({i: deltas[i] for i in chunk}, value=accounts.c.id, else_=0),
                version=accounts.c.version + 1,
            )
        )
        if result.rowcount != len(chunk):
            raise LookupError(f"postings name accounts that do not exist: {chunk}")


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
