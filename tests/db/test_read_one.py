"""``Database.read_one``: a read of one statement, outside a transaction on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Connection, text

from palier.db import Database


def _two_clock_readings(conn: Connection) -> tuple[object, object]:
    first = conn.execute(text("SELECT now()")).scalar_one()
    conn.execute(text("SELECT pg_sleep(0.01)"))
    return first, conn.execute(text("SELECT now()")).scalar_one()


def test_read_one_runs_outside_a_transaction_and_gives_the_connection_back_transactional(db: Database) -> None:
    """``now()`` is the transaction's start: two statements of one transaction read the same time, two
    statements outside any read two. The pooled connection must go back to transactions afterwards, or
    the next write would commit statement by statement."""
    if not db.is_postgres:
        with db.read_one() as conn:  # SQLite: a plain read
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        return
    db.engine.pool.dispose()  # one pooled connection, used by both blocks below
    with db.read_one() as conn:
        first, second = _two_clock_readings(conn)
        assert first != second
    for _ in range(3):
        with db.write() as conn:
            first, second = _two_clock_readings(conn)
            assert first == second
