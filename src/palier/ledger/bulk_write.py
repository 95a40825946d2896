"""Writing many members' earnings at once: each table in one set-based statement.

The rows are those :func:`palier.ledger.operations.earn` writes one member at a time — both build them
with :func:`palier.ledger.earning_rows.earn_rows` — here for a whole batch: transactions, postings,
lots and debt repayments each in one multi-row insert (``COPY`` on PostgreSQL), the members' cached
balances in one ``UPDATE … FROM unnest(…)``, then the program slots.

Lock order, as for every command: the caller holds the members' locks (``locks.lock_members``); the
program slots are updated last, in id order (``post.apply_deltas``), right before the commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import ARRAY, BigInteger, Connection, String, bindparam, func, update

from palier.db.bulk import insert_many
from palier.ledger.earning_rows import EarnRows
from palier.ledger.entry_rows import balance_deltas, posting_rows, transaction_row
from palier.ledger.lots import write_allocations
from palier.ledger.post import apply_deltas, check_balanced
from palier.ledger.tables import accounts, ledger_transactions, lots, postings


def write_earnings(conn: Connection, earnings: Sequence[EarnRows]) -> None:
    """Write ``earnings`` (of members whose locks the caller holds) and move their balances."""
    if not earnings:
        return
    entries = [entry for e in earnings for entry in e.entries]
    for entry in entries:
        check_balanced(entry.postings)
    insert_many(conn, ledger_transactions, [transaction_row(e) for e in entries])
    insert_many(conn, postings, posting_rows(entries))
    insert_many(conn, lots, [e.lot for e in earnings])
    write_allocations(conn, [row for e in earnings for row in e.allocations])
    deltas = balance_deltas(entries)
    of_members = {p.account_id for e in entries for p in e.postings if p.member_id is not None}
    add_to_member_balances(conn, {a: d for a, d in deltas.items() if a in of_members})
    apply_deltas(conn, {a: d for a, d in deltas.items() if a not in of_members})


_moves = (
    func.unnest(bindparam("ids", type_=ARRAY(String)), bindparam("deltas", type_=ARRAY(BigInteger)))
    .table_valued("account_id", "delta")
    .render_derived("moves")
)
_add_to_balances = (
    update(accounts)
    .where(accounts.c.id == _moves.c.account_id)
    .values(balance=accounts.c.balance + _moves.c.delta, version=accounts.c.version + 1)
)


def add_to_member_balances(conn: Connection, deltas: Mapping[str, int]) -> None:
    """Add each delta to its member account's cached balance and bump its version.

    PostgreSQL: one ``UPDATE … FROM unnest(ids, deltas)``, in whatever order the plan visits the
    rows, which is safe only because the caller holds these members' locks (no other command or job
    writes their accounts meanwhile). SQLite: one prepared ``executemany``.
    """
    moved = {account_id: delta for account_id, delta in deltas.items() if delta}
    if conn.dialect.name != "postgresql":
        apply_deltas(conn, moved)
        return
    if moved:
        result = conn.execute(_add_to_balances, {"ids": list(moved), "deltas": list(moved.values())})
        if result.rowcount != len(moved):
            raise LookupError(f"postings name accounts that do not exist: {sorted(moved)}")
