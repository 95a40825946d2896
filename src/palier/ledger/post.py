"""Writing to the ledger: balanced transactions of postings, and the cached balances they move.

This is the only code that changes a balance. A transaction's postings sum to zero per asset;
transactions, postings and allocations are never updated or deleted (corrections are reversals).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, update

from palier.ids import new_id
from palier.ledger.accounts import POINTS
from palier.ledger.entry_rows import balance_deltas, posting_rows, transaction_row
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


# Built once: a statement built per call costs more in SQLAlchemy than the SQL itself costs the database.
_insert_transactions = insert(ledger_transactions)
_insert_postings = insert(postings)


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
    conn.execute(_insert_transactions, [transaction_row(e) for e in entries])
    conn.execute(_insert_postings, posting_rows(entries))
    apply_deltas(conn, balance_deltas(entries))


def post(conn: Connection, entry: Entry) -> str:
    """Write one transaction; returns its id."""
    write(conn, [entry])
    return entry.id


_move_balance = (
    update(accounts)
    .where(accounts.c.id == bindparam("account_id"))
    .values(balance=accounts.c.balance + bindparam("delta"), version=accounts.c.version + 1)
)


def apply_deltas(conn: Connection, deltas: Mapping[str, int]) -> None:
    """Add each delta to its account's cached balance and bump its version.

    Rows are updated in account-id order, which is also the order their row locks are taken in on
    PostgreSQL: two commands or batch jobs touching the same program slots can never deadlock.
    """
    ids = sorted(account_id for account_id, delta in deltas.items() if delta)
    if not ids:
        return
    result = conn.execute(_move_balance, [{"account_id": i, "delta": deltas[i]} for i in ids])
    if result.rowcount != len(ids):
        raise LookupError(f"postings name accounts that do not exist: {ids}")
