"""Holding a transaction open until another command is seen waiting on it, on PostgreSQL.

A fixed sleep ("the other one now waits on the lock") is a guess that a loaded machine can make wrong:
the other command may not have reached the lock yet, and the test then checks the commands one after the
other instead of side by side. PostgreSQL says who waits on whom (``pg_blocking_pids``); SQLite, whose
writers queue on a file lock, does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, text

from palier.db import Database

PATIENCE = 60.0  # seconds: far more than a loaded CI machine takes to start a request and reach a lock


def backend_pid(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def waiting_on(db: Database, pid: int) -> int:
    """How many PostgreSQL sessions are waiting on a lock that backend ``pid`` holds."""
    with db.read_one() as conn:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
        return int(conn.execute(query, {"pid": pid}).scalar_one())


def until_waited_on(db: Database, pid: int, *, finished: Callable[[], bool]) -> bool:
    """Poll until a session waits on backend ``pid`` (True), or the other command ``finished()`` without
    waiting (False). A deadline passing is a failure of the test, not a reason to go on."""
    deadline = time.monotonic() + PATIENCE
    while not finished():
        if waiting_on(db, pid):
            return True
        assert time.monotonic() < deadline, f"nothing waited on backend {pid} within {PATIENCE:.0f} s"
        time.sleep(0.01)
    return False
