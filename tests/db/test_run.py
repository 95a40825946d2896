"""``Database.run``: a command in its own transaction, run again when the database rolled it back for a
reason that running it again cures (a deadlock, a concurrent insert of the same key)."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from palier.db import Database


class _Deadlock(Exception):
    sqlstate = "40P01"  # as psycopg reports PostgreSQL's deadlock_detected


def test_a_command_chosen_as_a_deadlock_victim_runs_again(db: Database) -> None:
    calls: list[int] = []

    def command(conn: Connection) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE accounts …", {}, _Deadlock())
        return 30

    assert db.run(command) == 30
    assert len(calls) == 2

    def broken(conn: Connection) -> int:
        raise OperationalError("SELECT 1", {}, Exception("connection lost"))

    with pytest.raises(OperationalError):  # anything else is not run again
        db.run(broken)


def test_two_commands_that_deadlock_on_postgresql_both_commit(postgresql_db: Database) -> None:
    """Each takes one row then the other's: PostgreSQL rolls one back, which runs again and commits.
    (SQLite runs one writer at a time: two commands cannot deadlock there.)"""
    db = postgresql_db
    table = f"run_test_{uuid.uuid4().hex[:12]}"
    with db.write() as conn:
        conn.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY, n int NOT NULL)"))
        conn.execute(text(f"INSERT INTO {table} VALUES (1, 0), (2, 0)"))
    both_hold_one = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def command(first: int, second: int) -> None:
        attempts = 0

        def take_both(conn: Connection) -> None:
            nonlocal attempts
            attempts += 1
            conn.execute(text(f"UPDATE {table} SET n = n + 1 WHERE id = :id"), {"id": first})
            if attempts == 1:
                both_hold_one.wait()
            conn.execute(text(f"UPDATE {table} SET n = n + 1 WHERE id = :id"), {"id": second})

        try:
            db.run(take_both)
        except BaseException as error:
            errors.append(error)

    try:
        threads = [threading.Thread(target=command, args=order) for order in ((1, 2), (2, 1))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        with db.read() as conn:
            assert dict(conn.execute(text(f"SELECT id, n FROM {table}")).all()) == {1: 2, 2: 2}
    finally:
        with db.write() as conn:
            conn.execute(text(f"DROP TABLE {table}"))
