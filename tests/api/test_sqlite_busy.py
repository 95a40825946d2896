"""SQLite while another process holds its write lock for long (a large import batch, a sweep, a stuck script):
the API's writes wait for it up to a bound, then answer ``503 database_unavailable`` with ``Retry-After`` and
write nothing; the same request sent again with its ``Idempotency-Key`` goes through once the lock is free.
Reads and ``/health`` are not held up meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from palier.api.app import THREADS
from palier.clock import FrozenClock
from palier.db import Database, engine, make_database
from tests.api.conftest import build_app, create_program
from tests.api.helpers import assert_problem, purchase_body
from tests.waiting import PATIENCE


@pytest.fixture
def hold_the_lock(sqlite_url: str) -> Iterator[Callable[[], threading.Event]]:
    """Starts another process's write transaction (as ``palier import`` runs one) and returns the event that
    ends it; the transaction ends with the test in any case."""
    taken, release = threading.Event(), threading.Event()
    other = make_database(sqlite_url, pool_size=0)
    threads: list[threading.Thread] = []

    def hold() -> None:
        with other.write() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
            taken.set()
            release.wait(PATIENCE)

    def start() -> threading.Event:
        threads.append(threading.Thread(target=hold, daemon=True))
        threads[0].start()
        assert taken.wait(PATIENCE)
        return release

    yield start
    release.set()
    for thread in threads:
        thread.join(PATIENCE)
    other.dispose()


def test_a_write_waits_for_the_lock_a_bounded_time_then_answers_503(
    sqlite_db: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    hold_the_lock: Callable[[], threading.Event],
) -> None:
    monkeypatch.setattr(engine, "WRITE_WAIT", 0.5)  # seconds; 30 by default
    with TestClient(build_app(sqlite_db, clock)) as client:
        program = create_program(client)
        member = program.enrol(first_name="Camille")
        body = purchase_body(member["id"])
        release = hold_the_lock()
        answers: list[httpx.Response] = []
        sender = threading.Thread(
            target=lambda: answers.append(
                program.call("POST", "/v1/events/purchases", json=body, idempotency_key="till-7-0042")
            ),
            daemon=True,
        )
        sender.start()
        sender.join(PATIENCE)
        try:
            assert answers, f"the write still waited after {PATIENCE:.0f} s"
            problem = assert_problem(answers[0], 503, "database_unavailable")
            assert "try again" in problem["detail"] and int(answers[0].headers["Retry-After"]) >= 1
            assert client.get("/health").status_code == 200  # the database answers reads all along
            assert program.balance(member["id"])["pending"] == 0  # nothing written
        finally:
            release.set()
        again = program.call("POST", "/v1/events/purchases", json=body, idempotency_key="till-7-0042")
        assert again.status_code == 201, again.text
        assert program.balance(member["id"])["pending"] == 10


def test_health_answers_while_every_request_thread_waits_for_the_lock(
    sqlite_db: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    hold_the_lock: Callable[[], threading.Event],
) -> None:
    """A load balancer's check is not queued behind requests that wait for the write lock."""
    monkeypatch.setattr(engine, "WRITE_WAIT", 3 * PATIENCE)  # longer than the test waits for anything
    with TestClient(build_app(sqlite_db, clock)) as client:
        program = create_program(client)
        member = program.enrol(first_name="Camille")
        release = hold_the_lock()
        answers: list[httpx.Response] = []

        def send() -> None:
            answers.append(program.call("POST", "/v1/events/purchases", json=purchase_body(member["id"])))

        senders = [threading.Thread(target=send, daemon=True) for _ in range(THREADS)]
        try:
            for sender in senders:
                sender.start()
            deadline = time.monotonic() + PATIENCE
            while sum(thread.name == "palier-writer-lock" for thread in threading.enumerate()) < THREADS:
                assert time.monotonic() < deadline, f"the {THREADS} writes did not all wait within {PATIENCE:.0f} s"
                time.sleep(0.01)
            checks: list[httpx.Response] = []
            checker = threading.Thread(target=lambda: checks.append(client.get("/health")), daemon=True)
            checker.start()
            checker.join(PATIENCE)
            assert checks and checks[0].json() == {"status": "ok"}, "the health check waited with the writes"
        finally:
            release.set()
        for sender in senders:
            sender.join(PATIENCE)
        assert sorted(answer.status_code for answer in answers) == [201] * THREADS
