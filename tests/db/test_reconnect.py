"""The database's connections as an operator restarts or cuts them: a pooled PostgreSQL connection the server
has ended (a restart, ``pg_terminate_backend``, a fail-over) is never handed to a request; a command whose
connection dropped before its COMMIT runs again, once; one that dropped during its COMMIT is not (nobody can
tell whether it was made: the client's retry with its ``Idempotency-Key`` settles it); and a server that
never answers is given up on instead of holding the request forever."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import OperationalError

from palier.api.app import create_app
from palier.config import Settings
from palier.db import Database, engine, make_database
from tests.api.conftest import CARD_KEY
from tests.waiting import PATIENCE, backend_pid


def end_sessions(admin: Database, *ended: int) -> None:
    """End these PostgreSQL sessions as a restart does, and wait until the server has let them go."""
    pids = list(ended)
    with admin.read_one() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid"), {"pids": pids})
    deadline = time.monotonic() + PATIENCE
    while True:
        with admin.read_one() as conn:
            left = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(CAST(:pids AS int[]))"), {"pids": pids}
            ).scalar_one()
        if not left:
            return
        assert time.monotonic() < deadline, f"sessions {pids} still there after {PATIENCE:.0f} s"
        time.sleep(0.01)


@pytest.fixture
def table(postgresql_db: Database) -> Iterator[str]:
    name = f"reconnect_{uuid.uuid4().hex[:12]}"
    with postgresql_db.write() as conn:
        conn.execute(text(f"CREATE TABLE {name} (id int PRIMARY KEY)"))
    yield name
    with postgresql_db.write() as conn:
        conn.execute(text(f"DROP TABLE {name}"))


def test_a_pooled_connection_the_server_ended_is_not_handed_to_a_request(
    postgresql_url: str, postgresql_db: Database
) -> None:
    """Right after a restart, the first request of each API process used to get a 503 from a connection the
    pool still held (it was idle for less than the time after which the pool checks)."""
    db = make_database(postgresql_url, pool_size=2)
    app = create_app(Settings(database_url=postgresql_url, card_hash_key=CARD_KEY), db=db)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/health").status_code == 200
            with db.read_one() as conn:
                pid = backend_pid(conn)
            end_sessions(postgresql_db, pid)
            answer = client.get("/health")
            assert answer.status_code == 200, answer.text
    finally:
        db.dispose()


def test_a_command_whose_connection_dropped_before_its_commit_runs_again_once(
    postgresql_db: Database, table: str
) -> None:
    calls: list[int] = []

    def command(conn: Connection) -> str:
        calls.append(1)
        conn.execute(text(f"INSERT INTO {table} VALUES (1)"))
        if len(calls) == 1:  # the server ends the session mid-transaction: nothing of it was kept
            conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return "done"

    assert postgresql_db.run(command) == "done"
    assert len(calls) == 2
    with postgresql_db.read() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 1


def test_a_command_whose_connection_dropped_during_its_commit_is_not_run_again(
    postgresql_db: Database, table: str
) -> None:
    """Whether a COMMIT the server may not have received was made cannot be known here: running the command
    again could make it twice, so the error goes to the caller (a 503 the client retries with its key)."""
    calls: list[int] = []

    def command(conn: Connection) -> None:
        calls.append(1)
        conn.execute(text(f"INSERT INTO {table} VALUES (1)"))
        pid = backend_pid(conn)
        event.listen(conn, "commit", lambda _conn: end_sessions(postgresql_db, pid), once=True)

    with pytest.raises(OperationalError):
        postgresql_db.run(command)
    assert len(calls) == 1
    with postgresql_db.read() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0  # ended before the COMMIT


def test_a_server_that_never_answers_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A database host that takes connections and says nothing (a hung server, a half-open link) ends in a
    database error the API answers with a 503, not in requests that wait for ever."""
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT", 1)
    outcome: list[BaseException | None] = []
    with closing(socket.create_server(("127.0.0.1", 0))) as silent:  # listens, never answers
        db = make_database(f"postgresql://palier@127.0.0.1:{silent.getsockname()[1]}/palier", pool_size=1)

        def connect() -> None:
            try:
                with db.read_one() as conn:
                    conn.execute(text("SELECT 1"))
                outcome.append(None)
            except BaseException as error:
                outcome.append(error)

        thread = threading.Thread(target=connect, daemon=True)
        thread.start()
        thread.join(PATIENCE)
        db.dispose()
    assert outcome, f"still connecting after {PATIENCE:.0f} s"
    assert isinstance(outcome[0], OperationalError)
