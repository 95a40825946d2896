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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import Connection, Dialect, Table, TextClause, bindparam, insert, text, update

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


Rows = Sequence[tuple[Table, Sequence[Mapping[str, Any]]]]  # (table, rows to insert), parents first


def write(conn: Connection, entries: Sequence[Entry]) -> None:
    """Write ``entries`` and move the cached balances of every account they touch, in bulk."""
    entries = _balanced(entries)
    if not entries:
        return
    conn.execute(_insert_transactions, [transaction_row(e) for e in entries])
    conn.execute(_insert_postings, posting_rows(entries))
    apply_deltas(conn, balance_deltas(entries))


def write_with(
    conn: Connection, entries: Sequence[Entry], *, rows: Rows = (), lots_taken: Mapping[str, int] | None = None
) -> None:
    """Write ``entries`` as :func:`write` does, and insert ``rows`` with them (lots, events, …).

    ``lots_taken``: points taken from each lot (``lots.remaining`` goes down), as the allocation rows
    among ``rows`` record."""
    prepare_write(conn.dialect, entries, rows=rows, lots_taken=lots_taken).run(conn)


class PreparedWrite(Protocol):
    def run(self, conn: Connection) -> None: ...


def prepare_write(
    dialect: Dialect, entries: Sequence[Entry], *, rows: Rows = (), lots_taken: Mapping[str, int] | None = None
) -> PreparedWrite:
    """:func:`write_with`'s statements with their parameters encoded, ready to run: build it before
    taking a lock (SQLite's write lock is the whole database's), run it once holding it.

    PostgreSQL: one statement, each insert and the balance update a CTE of it; the foreign keys are
    checked at its end. The rows travel as one JSON parameter per table, so the statement's text does
    not depend on how many rows there are (psycopg prepares it once; it would not with a parameter per
    value). SQLite: one statement per table, in the order given (it checks each foreign key at once),
    which costs no round trip there. Rows of one table share their columns.
    """
    entries = _balanced(entries)
    inserts: list[tuple[Table, Sequence[Mapping[str, Any]]]] = []
    if entries:
        inserts += [(ledger_transactions, [transaction_row(e) for e in entries]), (postings, posting_rows(entries))]
    inserts += [(table, table_rows) for table, table_rows in rows if table_rows]
    deltas = {account_id: delta for account_id, delta in balance_deltas(entries).items() if delta}
    ids = sorted(deltas)
    taken = {lot_id: amount for lot_id, amount in (lots_taken or {}).items() if amount}
    lot_ids = sorted(taken)
    shape = tuple((table, tuple(table_rows[0])) for table, table_rows in inserts)
    if dialect.name == "postgresql":
        params: dict[str, Any] = {f"rows_{i}": _as_json(table_rows) for i, (_, table_rows) in enumerate(inserts)}
        params.update(ids=ids, deltas=[deltas[account_id] for account_id in ids])
        if lot_ids:
            params.update(lot_ids=lot_ids, lot_amounts=[taken[lot_id] for lot_id in lot_ids])
        return _OneStatement(_one_statement(shape, takes_lots=bool(lot_ids)), params, moved=len(ids) + len(lot_ids))
    return _StatementPerTable(
        [
            (_insert_sql(table, columns), _encoded(dialect, table, columns, table_rows))
            for (table, columns), (_, table_rows) in zip(shape, inserts, strict=True)
        ],
        [(deltas[account_id], account_id) for account_id in ids],
        [(taken[lot_id], lot_id) for lot_id in lot_ids],
    )


@dataclass(frozen=True)
class _OneStatement:
    statement: TextClause
    params: dict[str, Any]
    moved: int  # accounts and lots the statement must find

    def run(self, conn: Connection) -> None:
        if conn.execute(self.statement, self.params).scalar_one() != self.moved:
            raise LookupError(
                f"postings or allocations name accounts or lots that do not exist: {self.params['ids']}"
                f" {self.params.get('lot_ids', [])}"
            )


@dataclass(frozen=True)
class _StatementPerTable:
    inserts: list[tuple[str, list[tuple[Any, ...]]]]
    moves: list[tuple[int, str]]  # (delta, account id), in account-id order
    takes: list[tuple[int, str]] = field(default_factory=list)  # (points taken, lot id), in lot-id order

    def run(self, conn: Connection) -> None:
        for sql, encoded_rows in self.inserts:
            conn.exec_driver_sql(sql, encoded_rows)
        if self.moves and conn.exec_driver_sql(_MOVE_BALANCE, self.moves).rowcount != len(self.moves):
            raise LookupError(f"postings name accounts that do not exist: {[i for _, i in self.moves]}")
        if self.takes and conn.exec_driver_sql(_TAKE_FROM_LOT, self.takes).rowcount != len(self.takes):
            raise LookupError(f"allocations name lots that do not exist: {[i for _, i in self.takes]}")


_MOVE_BALANCE = "UPDATE accounts SET balance = balance + ?, version = version + 1 WHERE id = ?"
_TAKE_FROM_LOT = "UPDATE lots SET remaining = remaining - ? WHERE id = ?"


@lru_cache(maxsize=64)
def _insert_sql(table: Table, columns: tuple[str, ...]) -> str:
    names = ", ".join(f'"{column}"' for column in columns)
    return f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" for _ in columns)})'


def _encoded(
    dialect: Dialect, table: Table, columns: tuple[str, ...], rows: Sequence[Mapping[str, Any]]
) -> list[tuple[Any, ...]]:
    """Rows as the driver takes them: each value through its column type's bind processor."""
    processors = _bind_processors(dialect, table, columns)
    return [
        tuple(row[column] if process is None else process(row[column]) for column, process in processors)
        for row in rows
    ]


@lru_cache(maxsize=64)
def _bind_processors(
    dialect: Dialect, table: Table, columns: tuple[str, ...]
) -> list[tuple[str, Callable[[Any], Any] | None]]:
    return [(column, table.c[column].type.dialect_impl(dialect).bind_processor(dialect)) for column in columns]


@lru_cache(maxsize=64)
def _one_statement(shape: tuple[tuple[Table, tuple[str, ...]], ...], *, takes_lots: bool = False) -> TextClause:
    """``WITH i0 AS (INSERT …), i1 AS (INSERT …), moved AS (UPDATE accounts …) SELECT count(*) FROM moved``
    (and ``taken AS (UPDATE lots …)``, counted with them, when points are taken from lots)."""
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
    if not takes_lots:
        return text("WITH " + ",\n".join(ctes) + "\nSELECT count(*) FROM moved")
    ctes.append(
        "taken AS (UPDATE lots SET"
        " remaining = lots.remaining"
        " - (CAST(:lot_amounts AS bigint[]))[array_position(CAST(:lot_ids AS text[]), lots.id)]"
        " WHERE lots.id = ANY(CAST(:lot_ids AS text[])) RETURNING lots.id)"
    )
    return text("WITH " + ",\n".join(ctes) + "\nSELECT (SELECT count(*) FROM moved) + (SELECT count(*) FROM taken)")


def _as_json(rows: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(rows, default=_json_value, separators=(",", ":"))


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _balanced(entries: Sequence[Entry]) -> list[Entry]:
    """The entries that move something, each checked to sum to zero."""
    entries = [e for e in entries if any(p.amount for p in e.postings)]
    for e in entries:
        check_balanced(e.postings)
    return entries


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
