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
* A write waits ``WRITE_WAIT`` seconds at most, on either lock, then fails as the database being
  unavailable (the API's ``503`` with ``Retry-After``): a writer that holds the lock longer (a large
  import batch, a script left in a transaction) does not hold every request up with it.

PostgreSQL: every session's ``lock_timeout`` is ``WRITE_WAIT`` too, so a command that waits for a row or
advisory lock another session holds (a psql session left in a transaction, a migration) fails the same way
after that long, rather than holding its request (and the till) up for as long as the other session lives.
"""

from __future__ import annotations

import select
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
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
_IDLE_SINCE = "palier_idle_since"
PING_AFTER_IDLE = 10.0  # seconds: a pooled PostgreSQL connection idle longer is pinged before use
WRITE_WAIT = 30.0  # seconds: how long an SQLite write waits for another to finish, before database_unavailable
CONNECT_TIMEOUT = 10  # seconds: a PostgreSQL server that does not answer a new connection in time is down
_AT_COMMIT = "palier_at_commit"  # set on an error raised by the COMMIT itself
_held = threading.local()  # .file: the writer lock file this thread holds (a nested write must not wait on itself)
ATTEMPTS = 8
T = TypeVar("T")


def transient(exc: DBAPIError) -> bool:
    """Unique-key races, deadlocks and serialisation failures: the transaction was rolled back whole, and
    running the command again is safe. So is a connection that dropped (a restart, a fail-over,
    ``pg_terminate_backend``) before the COMMIT was sent: the server kept nothing of the transaction. One that
    dropped during the COMMIT is not: it may have been made. Not a lock timeout: the command waited
    ``WRITE_WAIT`` for a lock held that long, and would wait as long again."""
    if exc.connection_invalidated:
        return not getattr(exc, _AT_COMMIT, False)
    if isinstance(exc, IntegrityError):
        return "unique" in str(exc.orig).lower() or "duplicate" in str(exc.orig).lower()
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40P01", "40001") or (isinstance(exc, OperationalError) and "locked" in str(exc.orig))


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
            committing = False
            try:
                with conn.begin():
                    yield conn
                    committing = True
            except DBAPIError as exc:
                if committing:
                    setattr(exc, _AT_COMMIT, True)
                raise
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
        connect_args={"timeout": WRITE_WAIT, "check_same_thread": False},
        hide_parameters=True,  # an error's message (a traceback in a log) never repeats a value sent
        **kwargs,
    )
    database = engine.url.database
    lock_path = f"{database}-writer" if fcntl is not None and database else None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={round(WRITE_WAIT * 1000)}")
        cur.execute("PRAGMA secure_delete=ON")  # what is deleted or rewritten (an erased member) is zeroed in the file
        cur.close()
        dbapi_conn.create_function("translate", 3, translate, deterministic=True)  # as PostgreSQL's

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE)
        conn.info[_PENDING_BEGIN] = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "before_cursor_execute")
    def _begin_with_first_statement(conn: Connection, cursor: Any, *_args: Any) -> None:
        begin = conn.info.pop(_PENDING_BEGIN, None)
        if begin is None:
            return
        if begin == "BEGIN IMMEDIATE" and lock_path is not None:
            _take_writer_lock(lock_path)
        cursor.execute(begin)

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _forget_begin(conn: Connection) -> None:
        conn.info.pop(_PENDING_BEGIN, None)  # a transaction that ran no statement never began

    return engine


def _take_writer_lock(lock_path: str) -> None:
    """Queue on the writer lock file, for ``WRITE_WAIT`` seconds at most.

    The file is opened for this write alone: flock() locks belong to an open file, so two writes of this
    process (two threads) exclude each other exactly as two processes do. A write nested in this thread's
    own write does not wait on itself: SQLite's busy timeout decides for it.
    """
    if getattr(_held, "file", None) is not None:
        return
    lock_file = open(lock_path, "a+b")  # noqa: SIM115 (closed by _release_writer_lock, or by the waiter)
    try:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if not _LockWaiter(lock_file).taken_within(WRITE_WAIT):
            raise sqlite3.OperationalError(
                f"another writer has held the database for more than {WRITE_WAIT:g} s"
            ) from None
    except BaseException:
        lock_file.close()
        raise
    _held.file = lock_file


class _LockWaiter:
    """A blocking flock() cannot be given a timeout: a thread of its own waits on it, and the writer waits on
    that thread for as long as it will. A waiter given up on closes its file as soon as it gets the lock,
    which gives the lock back (the kernel still wakes waiters in turn, the moment the lock is free)."""

    def __init__(self, lock_file: Any) -> None:
        self.lock_file = lock_file
        self.guard = threading.Lock()
        self.done = threading.Event()
        self.taken = False
        self.abandoned = False

    def taken_within(self, seconds: float) -> bool:
        threading.Thread(target=self._wait, name="palier-writer-lock", daemon=True).start()
        self.done.wait(seconds)
        with self.guard:
            self.abandoned = not self.taken
            return self.taken

    def _wait(self) -> None:
        try:
            fcntl.flock(self.lock_file.fileno(), fcntl.LOCK_EX)
        except OSError:
            taken = False
        else:
            taken = True
        with self.guard:
            self.taken = taken and not self.abandoned
            if not self.taken:
                self.lock_file.close()
        self.done.set()


def _release_writer_lock() -> None:
    """After COMMIT or ROLLBACK: closing the file gives its lock back."""
    lock_file = _held.__dict__.pop("file", None)
    if lock_file is not None:
        lock_file.close()


def _postgres_engine(url: str, *, pool_size: int, echo: bool) -> Engine:
    """A pool without SQLAlchemy's pre-ping: that is one more round trip on every command.

    A connection is still checked before use, and replaced if dead, when it sat idle for ``PING_AFTER_IDLE``
    seconds or more (the ones a firewall may have cut without a word) or when the server sent it something
    while it sat in the pool: an idle session hears from the server only as it is ended (a restart, a
    fail-over, ``pg_terminate_backend``), and looking costs no round trip.
    """
    query = make_url(url).query
    connect_args: dict[str, Any] = {} if "connect_timeout" in query else {"connect_timeout": CONNECT_TIMEOUT}
    if "options" not in query:  # the URL's own ?options=-c lock_timeout=… wins
        connect_args["options"] = f"-c lock_timeout={max(1, round(WRITE_WAIT * 1000))}"
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args=connect_args,
        hide_parameters=True,  # an error's message (a traceback in a log) never repeats a value sent
    )

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None:
            return  # a new connection
        if time.monotonic() - idle_since < PING_AFTER_IDLE and not _server_spoke(dbapi_conn):
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
            dbapi_conn.rollback()  # the ping opened a transaction: the command begins its own
        except Exception as exc:
            raise DisconnectionError("the pooled connection is dead") from exc
        if not alive:
            raise DisconnectionError("the pooled connection is dead")

    return engine


def _server_spoke(dbapi_conn: Any) -> bool:
    """Whether the server sent anything to this idle connection (its farewell, or the end of the stream)."""
    try:
        fd = dbapi_conn.fileno()
    except Exception:  # closed already
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # Windows: poll() is not there


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
