"""Writing to the ledger: balanced transactions of postings, and the cached balances they move.

This is the only code that changes a balance. A transaction's postings sum to zero per asset;
transactions, postings and allocations are never updated or deleted (corrections are reversals).

:func:`write` serves batches (jobs, imports): one statement per table. :func:`write_with` serves one
command: its transaction, postings, balance moves and the rows that go with them (a lot, the event…)
in a single statement on PostgreSQL, so a purchase costs one round trip to write, not seven.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Executable, Table, TextClause, bindparam, insert, text, update

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


Rows = Sequence[tuple[Table, Sequence[Mapping[str, Any]]]]  # (table, rows to insert), parents first


def write(conn: Connection, entries: Sequence[Entry]) -> None:
    """Write ``entries`` and move the cached balances of every account they touch, in bulk."""
    entries = _balanced(entries)
    if not entries:
        return
    conn.execute(_insert_transactions, _transaction_rows(entries))
    conn.execute(_insert_postings, _posting_rows(entries))
    apply_deltas(conn, _deltas(entries))


def write_with(conn: Connection, entries: Sequence[Entry], *, rows: Rows = ()) -> None:
    """Write ``entries`` as :func:`write` does, and insert ``rows`` with them (lots, events, …).

    PostgreSQL: one statement, each insert and the balance update a CTE of it; the foreign keys are
    checked at its end. The rows travel as one JSON parameter per table, so the statement's text does
    not depend on how many rows there are (psycopg prepares it once; it would not with a parameter per
    value). SQLite: one statement per table, in the order given (it checks each foreign key at once),
    which costs no round trip there. Rows of one table share their columns.
    """
    entries = _balanced(entries)
    inserts: list[tuple[Table, Sequence[Mapping[str, Any]]]] = []
    if entries:
        inserts += [(ledger_transactions, _transaction_rows(entries)), (postings, _posting_rows(entries))]
    inserts += [(table, table_rows) for table, table_rows in rows if table_rows]
    deltas = {account_id: delta for account_id, delta in _deltas(entries).items() if delta}
    if conn.dialect.name != "postgresql":
        for table, table_rows in inserts:
            conn.execute(_insert_into(table), table_rows)
        apply_deltas(conn, deltas)
        return
    shape = tuple((table, tuple(table_rows[0])) for table, table_rows in inserts)
    params: dict[str, Any] = {f"rows_{i}": _as_json(table_rows) for i, (_, table_rows) in enumerate(inserts)}
    params["ids"] = sorted(deltas)
    params["deltas"] = [deltas[account_id] for account_id in params["ids"]]
    moved = conn.execute(_one_statement(shape), params).scalar_one()
    if moved != len(deltas):
        raise LookupError(f"postings name accounts that do not exist: {sorted(deltas)}")


@lru_cache(maxsize=64)
def _one_statement(shape: tuple[tuple[Table, tuple[str, ...]], ...]) -> TextClause:
    """``WITH i0 AS (INSERT …), i1 AS (INSERT …), moved AS (UPDATE accounts …) SELECT count(*) FROM moved``."""
    ctes = []
    for i, (table, columns) in enumerate(shape):
        names = ", ".join(f'"{column}"' for column in columns)
        ctes.append(
            f'i{i} AS (INSERT INTO "{table.name}" ({names}) '
            f'SELECT {names} FROM jsonb_populate_recordset(NULL::"{table.name}", CAST(:rows_{i} AS jsonb)))'
        )
    # `id = ANY(…)` is an index scan in key order: the rows are locked in account-id order, as
    # apply_deltas() locks them. (A join to the list would be planned as a scan of every account.)
    ctes.append(
        "moved AS (UPDATE accounts SET"
        " balance = accounts.balance + (CAST(:deltas AS bigint[]))[array_position(CAST(:ids AS text[]), accounts.id)],"
        " version = accounts.version + 1"
        " WHERE accounts.id = ANY(CAST(:ids AS text[])) RETURNING accounts.id)"
    )
    return text("WITH " + ",\n".join(ctes) + "\nSELECT count(*) FROM moved")


def _as_json(rows: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(rows, default=_json_value, separators=(",", ":"))


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


@lru_cache(maxsize=32)
def _insert_into(table: Table) -> Executable:
    return insert(table)


def _balanced(entries: Sequence[Entry]) -> list[Entry]:
    """The entries that move something, each checked to sum to zero."""
    entries = [e for e in entries if any(p.amount for p in e.postings)]
    for e in entries:
        check_balanced(e.postings)
    return entries


def _transaction_rows(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    return [
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
    ]


def _posting_rows(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    return [
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


def _deltas(entries: Sequence[Entry]) -> dict[str, int]:
    deltas: dict[str, int] = defaultdict(int)
    for e in entries:
        for p in e.postings:
            deltas[p.account_id] += p.amount
    return deltas


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
