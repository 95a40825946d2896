"""Engines and transactions for SQLite (the embedded default) and PostgreSQL.

Every command runs in one transaction opened with :meth:`Database.write`. On SQLite that is
``BEGIN IMMEDIATE``: the write lock is taken up front, so two commands never interleave and never
fail on a lock upgrade. On PostgreSQL it is a READ COMMITTED transaction in which member rows are
locked with ``SELECT … FOR UPDATE`` (see ``ledger/locks.py``).

SQLite, two details that decide how many writers per second one file takes:

* ``BEGIN`` is sent with the transaction's first statement, not when the transaction object is made,
  so a command's pure Python work (validation, earning, building rows) done before its first
  statement runs outside the write lock.
* Writers of this process and of every other Palier process queue on an OS file lock
  (``<database>-writer``) before ``BEGIN IMMEDIATE``. SQLite's own busy handler makes a waiting writer
  sleep 1, 2, 5, 10 … 100 ms between tries, so the lock sits idle while waiters sleep and the slowest
  commands wait for seconds; the kernel wakes a waiter of the file lock the moment it is released. The
  busy timeout stays as the fallback for writers that do not take the file lock (other programs).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.pool import NullPool

from palier.text import translate

try:
    import fcntl
except ImportError:  # Windows: SQLite's busy timeout alone serialises writers
    fcntl = None  # type: ignore[assignment]

_WRITE = "palier_write"
_PENDING_BEGIN = "palier_pending_begin"  # Connection.info: the BEGIN still to send with the first statement
_LOCK_FD = "palier_writer_fd"  # pool record info: this connection's own descriptor of the writer lock file
_IDLE_SINCE = "palier_idle_since"
PING_AFTER_IDLE = 10.0  # seconds: a pooled PostgreSQL connection idle longer is pinged before use
_held = threading.local()  # .file: the writer lock file this thread holds (a nested write must not wait on itself)
ATTEMPTS = 8
T = TypeVar("T")


def transient(exc: DBAPIError) -> bool:
    """Unique-key races, deadlocks, serialisation failures and lock timeouts: the transaction was rolled back
    whole, and running the command again is safe."""
    if isinstance(exc, IntegrityError):
        return "unique" in str(exc.orig).lower() or "duplicate" in str(exc.orig).lower()
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40P01", "40001", "55P03") or (isinstance(exc, OperationalError) and "locked" in str(exc.orig))


@dataclass
class Database:
    engine: Engine

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One command: a transaction that commits on success and rolls back on any error."""
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            nested = getattr(_held, "file", None) is not None
            try:
                with conn.begin():
                    yield conn
            finally:
                if not nested:
                    _release_writer_lock()

    def run(self, command: Callable[[Connection], T], *, attempts: int = ATTEMPTS) -> T:
        """``command`` in a :meth:`write` transaction, run again when the database rolled it back for a
        :func:`transient` reason (PostgreSQL chose it as a deadlock's victim, a concurrent insert took the
        same key). It commits all or nothing, so a second run never doubles an effect."""
        for attempt in range(attempts):
            try:
                with self.write() as conn:
                    return command(conn)
            except DBAPIError as exc:
                if attempt == attempts - 1 or not transient(exc):
                    raise
                time.sleep(0.002 * (attempt + 1))
        raise AssertionError("unreachable")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only unit of work (a consistent snapshot on both engines)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def read_one(self) -> Iterator[Connection]:
        """For a read of one statement, which is a consistent snapshot by itself. On PostgreSQL it runs
        outside a transaction: one round trip, where :meth:`read` costs three (BEGIN, the statement,
        COMMIT). On SQLite, where those cost no round trip, it is :meth:`read`."""
        if not self.is_postgres:
            with self.read() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": 60, "check_same_thread": False},
        **kwargs,
    )
    database = engine.url.database
    lock_path = f"{database}-writer" if fcntl is not None and database else None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA secure_delete=ON")  # what is deleted or rewritten (an erased member) is zeroed in the file
        cur.close()
        dbapi_conn.create_function("translate", 3, translate, deterministic=True)  # as PostgreSQL's
        if lock_path is not None:
            # One open file per connection: flock() locks belong to an open file, so two connections
            # (two threads) of this process exclude each other exactly as two processes do.
            record.info[_LOCK_FD] = open(lock_path, "a+b")  # noqa: SIM115 (closed with the connection)

    @event.listens_for(engine, "close")
    def _on_close(_dbapi_conn: sqlite3.Connection, record: Any) -> None:
        if (lock_file := record.info.pop(_LOCK_FD, None)) is not None:
            lock_file.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE)
        conn.info[_PENDING_BEGIN] = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "before_cursor_execute")
    def _begin_with_first_statement(conn: Connection, cursor: Any, *_args: Any) -> None:
        begin = conn.info.pop(_PENDING_BEGIN, None)
        if begin is None:
            return
        if begin == "BEGIN IMMEDIATE":
            _take_writer_lock(conn)
        cursor.execute(begin)

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _forget_begin(conn: Connection) -> None:
        conn.info.pop(_PENDING_BEGIN, None)  # a transaction that ran no statement never began

    return engine


def _take_writer_lock(conn: Connection) -> None:
    lock_file = conn.connection.info.get(_LOCK_FD)
    if lock_file is None or getattr(_held, "file", None) is not None:
        return  # no file lock here, or a write nested in this thread's own write: the busy timeout decides
    fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
    _held.file = lock_file


def _release_writer_lock() -> None:
    """After COMMIT or ROLLBACK (a closed file has already given its lock back)."""
    lock_file = _held.__dict__.pop("file", None)
    if lock_file is not None and not lock_file.closed:
        with suppress(OSError, ValueError):
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _postgres_engine(url: str, *, pool_size: int, echo: bool) -> Engine:
    """A pool without SQLAlchemy's pre-ping: that is one more round trip on every command.

    A connection that sat idle for ``PING_AFTER_IDLE`` seconds or more (the ones a server restart or a
    firewall may have cut) is still checked before use, and replaced if dead.
    """
    engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
            dbapi_conn.rollback()  # the ping opened a transaction: the command begins its own
        except Exception as exc:
            raise DisconnectionError("the pooled connection is dead") from exc
        if not alive:
            raise DisconnectionError("the pooled connection is dead")

    return engine


class DatabaseUrlError(ValueError):
    """A database URL Palier cannot use (not SQLite or PostgreSQL, malformed, SQLite in memory)."""


def make_database(url: str, *, pool_size: int = 10, echo: bool = False) -> Database:
    """A :class:`Database` for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://…``)."""
    for scheme in ("postgresql://", "postgres://"):  # postgres:// as Heroku and many hosts write it
        if url.startswith(scheme):
            url = "postgresql+psycopg://" + url.removeprefix(scheme)
    if url in ("sqlite://", "sqlite:///:memory:"):
        raise DatabaseUrlError("SQLite needs a file (sqlite:///path/to/palier.db): connections must share one database")
    if not url.startswith(("sqlite:", "postgresql+psycopg://")):
        raise DatabaseUrlError(
            "Palier runs on SQLite (sqlite:///path/to/palier.db) or PostgreSQL (postgresql://user:password@host:5432/name)"
        )
    try:
        if url.startswith("sqlite"):
            extra: dict[str, Any] = {"poolclass": NullPool} if pool_size == 0 else {"pool_size": pool_size}
            return Database(_sqlite_engine(url, echo=echo, **extra))
        return Database(_postgres_engine(url, pool_size=pool_size, echo=echo))
    except (ArgumentError, NoSuchModuleError, ValueError) as error:  # e.g. a port that is not a number
        raise DatabaseUrlError(str(error).splitlines()[0]) from None
