"""Many rows at once: key lookups and multi-row inserts, a handful of statements per batch.

For batch work (the bulk import, the tier and segment jobs): :func:`lookup` finds the rows of thousands
of keys in one query per chunk, :func:`insert_many` writes thousands of rows in one statement —
``COPY … FROM STDIN`` on PostgreSQL, one prepared ``executemany`` on SQLite — and :func:`update_many`
changes thousands of rows by key in one statement; all in the caller's transaction. Between batches,
:class:`GrowingTables` keeps PostgreSQL's view of the tables it grows current.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

import psycopg
from sqlalchemy import (
    ARRAY,
    JSON,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Select,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

_CHUNK = 10_000  # keys per query, all in one parameter (an array, or a JSON list on SQLite)


def upsert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` into ``table`` in the connection's dialect, which can say ``ON CONFLICT …``."""
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def _chunks(values: Iterable[str], size: int) -> Iterator[list[str]]:
    ordered = sorted(set(values))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def lookup(
    conn: Connection, key: ColumnElement[Any], value: ColumnElement[Any], keys: Iterable[str], *where: Any
) -> dict[Any, Any]:
    """``{key: value}`` for the rows (matching ``where``) whose ``key`` is among ``keys``.

    On PostgreSQL each key is looked up through a LATERAL subquery: one index probe per key. A plain
    ``IN`` list is planned from the table's size, which a bulk load leaves stale, and then filters every
    row of the program instead (10x slower on 20,000 orders). Statistics taken while the table was empty
    mislead even the probe (through another index of the same prefix, plus a filter): a bulk load keeps
    them current with :class:`GrowingTables`.
    """
    found: dict[Any, Any] = {}
    for chunk in _chunks(keys, _CHUNK):
        found.update((k, v) for k, v in conn.execute(lookup_query(conn.dialect.name, key, value, chunk, *where)))
    return found


def lookup_query(
    dialect: str, key: ColumnElement[Any], value: ColumnElement[Any], keys: list[str], *where: Any
) -> Select[Any]:
    """The query :func:`lookup` runs for one chunk of ``keys``."""
    if dialect == "postgresql":
        wanted = func.unnest(bindparam("keys", keys, type_=ARRAY(String))).table_valued("k").render_derived("wanted")
        probe = select(value.label("v")).where(*where, key == wanted.c.k).limit(1).lateral()
        return select(wanted.c.k, probe.c.v).select_from(wanted).join(probe, true())
    # one JSON parameter rather than an IN list of bind parameters that SQLAlchemy expands each time
    listed = func.json_each(bindparam("keys", json.dumps(keys))).table_valued("value")
    return select(key, value).where(*where, key.in_(select(listed.c.value)))


@dataclass(frozen=True)
class _Insert:
    sql: str
    columns: list[str]  # in the statement's parameter order
    processors: list[tuple[int, Callable[[Any], Any]]]  # (position, bind processor) where there is one


_compiled: dict[tuple[str, str, tuple[str, ...]], _Insert] = {}


_memos: dict[tuple[str, str, bool], Callable[[Any], Any]] = {}


def _memoised(process: Callable[[Any], Any], key: tuple[str, str, bool]) -> Callable[[Any], Any]:
    """One cache per kind of timestamp, for every table: a batch repeats the same few instants (its
    "now", a purchase's date on its event, transaction and lot), and formatting one costs microseconds."""
    if key not in _memos:
        _memos[key] = functools.lru_cache(maxsize=8192)(process)
    return _memos[key]


def _plan(conn: Connection, table: Table, keys: tuple[str, ...]) -> _Insert:
    dialect = conn.dialect
    plan = _compiled.get((dialect.name, table.name, keys))
    if plan is None:
        statement = insert(table).compile(dialect=dialect, column_keys=list(keys))
        columns = list(statement.positiontup or []) if statement.positional else list(keys)
        processors: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(columns):
            type_ = table.c[name].type.dialect_impl(dialect)
            process: Callable[[Any], Any] | None = type_.bind_processor(dialect)
            if dialect.name == "postgresql" and isinstance(type_, JSON):  # COPY takes the JSON text as it is
                process = _json_text
            elif process is not None and isinstance(type_, DateTime):
                process = _memoised(process, (dialect.name, type(type_).__name__, type_.timezone))
            if process is not None:
                processors.append((i, process))
        plan = _compiled[(dialect.name, table.name, keys)] = _Insert(statement.string, columns, processors)
    return plan


def insert_many(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) in one statement.

    The values go through the columns' own bind processors (JSON, timestamps), so they are stored
    exactly as ``conn.execute(insert(table), rows)`` would store them, minus its per-row bookkeeping,
    which dominates the cost of a large batch.
    """
    if not rows:
        return
    plan = _plan(conn, table, tuple(rows[0]))
    pick = itemgetter(*plan.columns)
    values = []
    for row in rows:
        value = list(pick(row))
        for i, convert in plan.processors:
            value[i] = convert(value[i])
        values.append(value)
    if conn.dialect.name == "postgresql":
        _copy(conn, table, plan.columns, values)
    elif conn.dialect.positional:
        conn.exec_driver_sql(plan.sql, [tuple(v) for v in values])
    else:
        conn.exec_driver_sql(plan.sql, [dict(zip(plan.columns, v, strict=True)) for v in values])


def _copy(conn: Connection, table: Table, columns: list[str], values: list[list[Any]]) -> None:
    """PostgreSQL: ``COPY … FROM STDIN`` in the caller's transaction, several times faster than INSERTs."""
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    raw = cast(psycopg.Connection[Any], conn.connection.dbapi_connection)
    with raw.cursor() as cursor, cursor.copy(f"COPY {quote(table.name)} ({names}) FROM STDIN") as copy:
        for value in values:
            copy.write_row(value)


def update_many(conn: Connection, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """Set the other columns of each row of ``rows`` on the row of ``table`` whose ``key`` column matches.

    PostgreSQL: one ``UPDATE … FROM`` the rows sent as one JSON parameter, instead of a statement per row
    (each costs a round trip's bookkeeping, even pipelined) or an array per column (psycopg builds arrays
    element by element in Python). SQLite: one prepared ``executemany``.
    """
    if not rows:
        return
    columns = [c for c in rows[0] if c != key]
    if not columns:
        return
    if conn.dialect.name != "postgresql":
        statement = update(table).where(table.c[key] == bindparam("key_")).values({c: bindparam(c) for c in columns})
        conn.execute(statement, [{"key_": row[key], **{c: row[c] for c in columns}} for row in rows])
        return
    quote = conn.dialect.identifier_preparer.quote
    names = [key, *columns]
    pick = itemgetter(*names)
    payload = json.dumps([pick(row) for row in rows], default=_plain)
    fields = ", ".join(
        f"(r->>{i})::{table.c[name].type.compile(dialect=conn.dialect)} AS {quote(name)}"
        for i, name in enumerate(names)
    )
    assignments = ", ".join(f"{quote(c)} = v.{quote(c)}" for c in columns)
    conn.exec_driver_sql(
        f"UPDATE {quote(table.name)} AS t SET {assignments} "
        f"FROM (SELECT {fields} FROM jsonb_array_elements(%(rows)s::jsonb) AS r) AS v "
        f"WHERE t.{quote(key)} = v.{quote(key)}",
        {"rows": payload},
    )


def _plain(value: Any) -> Any:
    """A value JSON has no type for, as JSON carries it: timestamps as ISO 8601 text, which PostgreSQL
    casts back exactly (``json.dumps`` asks only for these)."""
    if isinstance(value, datetime):
        return _iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_text(value: Any) -> str | None:
    """A JSON column's value as the text COPY loads (what the column's own bind processor would send)."""
    return None if value is JSON.NULL else json.dumps(value)


@functools.lru_cache(maxsize=8192)  # a batch repeats the same few instants
def _iso(value: datetime) -> str:
    return value.isoformat()


class GrowingTables:
    """PostgreSQL: keeps the statistics of tables a bulk load grows current, between its batches.

    The planner picks indexes from these statistics: a table analysed while it was (nearly) empty keeps
    looking empty, and the lookups of the next batches are then planned as a prefix scan of another index
    plus a filter (an order id probed through the program's purchases by date), which makes each batch
    slower than the one before. Autovacuum catches up within a minute or so where it runs; this keeps a
    long import fast from its first batches. A table is analysed again once the load has added at least
    as many rows as it held at its last analysis (and at least 1,000). SQLite: nothing to do.
    """

    def __init__(self, engine: Engine, tables: Sequence[Table]) -> None:
        self.engine = engine
        self.added = {t.name: 0 for t in tables} if engine.dialect.name == "postgresql" else {}

    def grew(self, rows: int) -> list[str]:
        """Each table got about ``rows`` more rows; analyse those that have outgrown their statistics."""
        for name in self.added:
            self.added[name] += rows
        grown = [name for name, added in self.added.items() if added >= _WORTH_ANALYSING]
        if not grown:
            return []
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            held: dict[str, float] = dict(
                conn.exec_driver_sql(
                    "SELECT relname, reltuples FROM pg_class "
                    "WHERE relnamespace = current_schema()::regnamespace AND relname = ANY(%(names)s)",
                    {"names": grown},
                ).all()
            )
            stale = sorted(name for name in grown if self.added[name] >= held.get(name, 0))
            if stale:
                quote = conn.dialect.identifier_preparer.quote
                conn.exec_driver_sql(f"ANALYZE {', '.join(quote(name) for name in stale)}")
        for name in stale:
            self.added[name] = 0
        return stale


_WORTH_ANALYSING = 1000  # rows added before a table's statistics are worth refreshing
