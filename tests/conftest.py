"""Test harness: migrated databases on both engines, a frozen clock, and the CI rule against skips.

``db`` runs a test on SQLite (always: a temp file per session and xdist worker) and on PostgreSQL
(when ``PALIER_TEST_DATABASE_URL`` is set: database ``<name>_<worker>`` under xdist, created if missing).
Each is migrated once per session with the packaged migrations and reused across runs: tests isolate
themselves by creating their own program, so nothing is truncated. Under CI (``CI=true``) a PostgreSQL
or Chromium test that does not run fails the session instead of being quietly skipped.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from palier.clock import FrozenClock
from palier.db import Database, make_database
from palier.db.migrate import MIGRATIONS_DIR, upgrade
from tests.receiver import receiver

__all__ = ["receiver"]  # a fixture for every test

PG_ENV = "PALIER_TEST_DATABASE_URL"
ENGINES = ["sqlite", "postgresql"]


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def postgres_base_url() -> URL:
    """The configured PostgreSQL URL; without one, skip the test (or fail it under CI)."""
    raw = os.environ.get(PG_ENV)
    if not raw:
        if under_ci():
            pytest.fail(f"{PG_ENV} is not set: under CI the PostgreSQL tests must run", pytrace=False)
        pytest.skip(f"PostgreSQL not configured: set {PG_ENV} to run the PostgreSQL variant")
    url = make_url(raw)
    return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url


def render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


@contextmanager
def admin_connection(url: URL) -> Iterator[Connection]:
    """A connection to the ``postgres`` database, outside any transaction (for CREATE / DROP DATABASE)."""
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            yield conn
    finally:
        admin.dispose()


def create_pg_database(url: URL) -> None:
    try:
        with admin_connection(url) as conn:
            conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    except DBAPIError as error:  # already there (reused from an earlier run, or made by a parallel one)
        if "already exists" not in str(error) and "duplicate key" not in str(error):
            raise


def drop_pg_database(url: URL) -> None:
    with admin_connection(url) as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))


@contextmanager
def own_database(engine: str, tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Database]:
    """A migrated database of its own on ``engine`` (``sqlite`` or ``postgresql``), for tests that must not share
    the session's: what they do to it stays there, and what they read of it is theirs alone. Dropped after."""
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'palier.db'}"
        upgrade(url)
        database = make_database(url)
        try:
            yield database
        finally:
            database.dispose()
        return
    base = postgres_base_url()
    pg_url = base.set(database=f"{base.database}_{name}_{uuid.uuid4().hex[:8]}")
    create_pg_database(pg_url)
    try:
        upgrade(render(pg_url))
        database = make_database(render(pg_url), pool_size=2)
        try:
            yield database
        finally:
            database.dispose()
    finally:
        drop_pg_database(pg_url)


def migrations_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(MIGRATIONS_DIR.rglob("*.py")):
        digest.update(path.read_bytes())
    return f"palier migrations {digest.hexdigest()[:16]}"


def _migrated_pg_url(url: URL) -> str:
    """Create the database if missing, mark it with the migrations that build it, and migrate it.

    A database marked otherwise (an earlier draft of a revision, or no mark) is dropped and built again:
    upgrading it would be a no-op, and the tests would run on a schema the code no longer describes.
    """
    marker = migrations_fingerprint()
    with admin_connection(url) as conn:
        found = conn.execute(
            text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :name"),
            {"name": url.database},
        ).first()
    if found is not None and found[0] != marker:
        drop_pg_database(url)
    create_pg_database(url)
    with admin_connection(url) as conn:
        conn.execute(text(f"COMMENT ON DATABASE \"{url.database}\" IS '{marker}'"))
    upgrade(render(url))  # one transaction: if it fails, the next run starts it again
    return render(url)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'palier.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgresql_url() -> str:
    url = postgres_base_url()
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1…: one database each
    if worker:
        url = url.set(database=f"{url.database}_{worker}")
    return _migrated_pg_url(url)


@pytest.fixture(scope="session")
def sqlite_db(sqlite_url: str) -> Iterator[Database]:
    database = make_database(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def postgresql_db(postgresql_url: str) -> Iterator[Database]:
    database = make_database(postgresql_url, pool_size=4)
    yield database
    database.dispose()


@pytest.fixture(params=ENGINES)
def db(request: pytest.FixtureRequest) -> Database:
    """A migrated database, shared by the session: create your own program in it."""
    database: Database = request.getfixturevalue(f"{request.param}_db")
    return database


@pytest.fixture(params=ENGINES)
def empty_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a brand-new database with no tables (dropped afterwards on PostgreSQL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('empty') / 'palier.db'}"
        return
    base = postgres_base_url()
    url = base.set(database=f"{base.database}_empty_{uuid.uuid4().hex[:8]}")
    create_pg_database(url)
    try:
        yield render(url)
    finally:
        drop_pg_database(url)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


# --- Under CI, a PostgreSQL or Chromium test that was skipped fails the run (belt and braces). ---

_MUST_RUN = re.compile(r"postgres|chromium", re.IGNORECASE)
_skipped_must_run: list[str] = []


def _note_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
    if _MUST_RUN.search(reason):
        _skipped_must_run.append(f"{report.nodeid}: {reason}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _note_skip(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _note_skip(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller decides
        return
    if under_ci() and _skipped_must_run and session.exitstatus in (0, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if under_ci() and _skipped_must_run:
        terminalreporter.write_sep("=", "CI: these PostgreSQL / Chromium tests were skipped and must run", red=True)
        for line in _skipped_must_run:
            terminalreporter.write_line(line)
