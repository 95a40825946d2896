"""PostgreSQL while another session holds a member's lock for long (a psql session left in a transaction, a
script, a migration): a write waits for it up to a bound, then answers ``503 database_unavailable`` with
``Retry-After`` at once (not after waiting that long again for each retry) and writes nothing; the same request
sent again with its ``Idempotency-Key`` goes through once the lock is free. As on SQLite (test_sqlite_busy.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from palier.clock import FrozenClock
from palier.db import Database, engine, make_database
from palier.ledger.accounts import member_account
from tests.api.conftest import build_app, create_program
from tests.api.helpers import assert_problem, purchase_body
from tests.services.factories import statements_run
from tests.waiting import PATIENCE


@pytest.fixture
def short_wait_db(postgresql_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setattr(engine, "WRITE_WAIT", 0.5)  # seconds; 30 by default
    database = make_database(postgresql_url, pool_size=2)
    yield database
    database.dispose()


def test_a_write_waits_for_a_member_lock_a_bounded_time_then_answers_503_without_retrying(
    short_wait_db: Database, postgresql_url: str, clock: FrozenClock
) -> None:
    with TestClient(build_app(short_wait_db, clock)) as client:
        program = create_program(client)
        member = program.enrol(first_name="Camille")
        body = purchase_body(member["id"])
        other = make_database(postgresql_url, pool_size=1)
        taken, release = threading.Event(), threading.Event()

        def hold() -> None:  # someone's session: the member's lock taken, the transaction left open
            with other.write() as conn:
                lock = text("SELECT balance FROM accounts WHERE id = :id FOR UPDATE")
                conn.execute(lock, {"id": member_account(member["id"], "available")})
                taken.set()
                release.wait(PATIENCE)

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        try:
            assert taken.wait(PATIENCE)
            answers: list[httpx.Response] = []
            with statements_run(short_wait_db) as statements:
                sender = threading.Thread(
                    target=lambda: answers.append(
                        program.call("POST", "/v1/events/purchases", json=body, idempotency_key="till-7-0042")
                    ),
                    daemon=True,
                )
                sender.start()
                sender.join(PATIENCE)
            assert answers, f"the write still waited after {PATIENCE:.0f} s"
            problem = assert_problem(answers[0], 503, "database_unavailable")
            assert "try again" in problem["detail"] and int(answers[0].headers["Retry-After"]) >= 1
            locks = [s for s in statements if "FOR UPDATE" in s]
            assert len(locks) == 1, f"the command ran {len(locks)} times, each waiting for the lock again"
            assert program.balance(member["id"])["pending"] == 0  # nothing written
        finally:
            release.set()
            holder.join(PATIENCE)
            other.dispose()
        again = program.call("POST", "/v1/events/purchases", json=body, idempotency_key="till-7-0042")
        assert again.status_code == 201, again.text
        assert program.balance(member["id"])["pending"] == 10
