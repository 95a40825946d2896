"""Shared bits of the benchmarks: the raw limits, fresh databases, set-based seeding and the figures.

Every benchmark reports its own figure next to a limit measured on this machine in the same run by the
shared baseline scripts (``../shared/bench``), and the ratio between the two (see DESIGN.md, "Measuring
against the limit"). Nothing here is imported by Palier itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, bindparam, event, text

from palier.clock import SystemClock
from palier.db import Database, make_database
from palier.db.metadata import Json, Timestamp
from palier.db.migrate import upgrade
from palier.ids import CROCKFORD
from palier.ledger.accounts import MEMBER_KINDS, SLOTS
from palier.ledger.verify import verify
from palier.programs.models import Program, ProgramSettings
from palier.programs.service import create_program
from palier.rewards.models import Reward, RewardIn
from palier.rewards.service import create_reward

REPO = Path(__file__).resolve().parents[1]
LIMITS_DIR = Path(os.environ.get("PALIER_LIMITS_DIR", REPO.parent / "shared" / "bench"))
DEFAULT_PG = os.environ.get("PALIER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
BENCH_DB = os.environ.get("PALIER_BENCH_DB", "palier_bench")  # dropped and recreated by each run
DATA_DIR = Path(os.environ.get("PALIER_BENCH_DIR", "/tmp/palier-bench"))  # SQLite files: same disk as /tmp
CARD_KEY = b"palier-bench-card-key-of-32-characters"
ENGINES = ("pg", "sqlite")


# --- output -------------------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    started = time.perf_counter()
    say(f"{what} …")
    yield
    say(f"{what}: {time.perf_counter() - started:.1f} s")


@dataclass
class Figure:
    """One measured figure, its limit (if it has one) and its target.

    ``target_ratio``: pass when value / limit >= it. ``target_max``: pass when value <= it.
    ``target_min``: pass when value >= it (an absolute floor, e.g. requests per second).
    """

    bench: str
    engine: str
    metric: str
    value: float
    unit: str
    limit_name: str | None = None
    limit: float | None = None
    target_ratio: float | None = None
    target_max: float | None = None
    note: str = ""
    target_min: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.limit is None or not self.limit:
            return None
        return self.value / self.limit

    @property
    def target(self) -> str:
        if self.target_ratio is not None:
            return f">= {self.target_ratio:.0%} of limit"
        if self.target_max is not None:
            return f"<= {self.target_max:g} {self.unit}"
        if self.target_min is not None:
            return f">= {self.target_min:,g} {self.unit}"
        return ""

    @property
    def passed(self) -> bool | None:
        if self.target_ratio is not None:
            return self.ratio is not None and self.ratio >= self.target_ratio
        if self.target_max is not None:
            return self.value <= self.target_max
        if self.target_min is not None:
            return self.value >= self.target_min
        return None

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "-"}[self.passed]


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _ratio(f: Figure) -> str:
    """A share of the limit for rates; "n× the reference" for times (where lower is better)."""
    if f.ratio is None:
        return "-"
    return f"{f.ratio:.1f}×" if f.unit in ("ms", "s") else f"{f.ratio:.1%}"


COLUMNS = ("bench", "engine", "figure", "value", "limit", "ratio", "target", "result")


def rows_of(figures: Sequence[Figure]) -> list[tuple[str, ...]]:
    return [
        (
            f.bench,
            f.engine,
            f.metric,
            f"{fmt(f.value)} {f.unit}",
            f"{f.limit_name} = {fmt(f.limit)}" if f.limit_name else "-",
            _ratio(f),
            f.target or "-",
            f.verdict,
        )
        for f in figures
    ]


def print_figures(figures: Sequence[Figure]) -> None:
    rows = [COLUMNS, *rows_of(figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for f in figures:
        if f.note:
            print(f"  note ({f.bench}/{f.engine}/{f.metric}): {f.note}")
    sys.stdout.flush()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by the nearest-rank method."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p99/max/mean in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else float("nan"),
        "mean": statistics.fmean(ms) if ms else float("nan"),
    }


@contextlib.contextmanager
def counting_statements(db: Database) -> Iterator[Counter[str]]:
    """Every statement sent to the database while inside, by its text (SQLAlchemy's ``before_cursor_execute``).

    An ``executemany`` counts once: it is one statement (one round trip with psycopg's pipeline).
    """
    seen: Counter[str] = Counter()

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen[" ".join(statement.split())] += 1

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)


# --- one process reading ----------------------------------------------------------------------------------


def timed(items: Sequence[Any], read: Callable[[Any], float], budget: float) -> tuple[list[float], bool]:
    """Latencies of ``read(item)`` over ``items``; stops early (False) when ``budget`` seconds pass."""
    latencies: list[float] = []
    stop = time.perf_counter() + budget
    for item in items:
        latencies.append(read(item))
        if time.perf_counter() > stop:
            return latencies, False
    return latencies, True


def raw_read(db: Database, sql: str, params: Sequence[Any]) -> float:
    """Seconds for ``sql`` (``%s`` marks; ``?`` on SQLite) in a transaction of its own, on the raw DB-API
    connection: what the read costs without Palier, SQLAlchemy or Pydantic (the floor for a read)."""
    if db.is_sqlite:
        sql = sql.replace("%s", "?")
    began = time.perf_counter()
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        if db.is_sqlite:
            cursor.execute("BEGIN")
        cursor.execute(sql, params)
        cursor.fetchall()
        if db.is_postgres:
            raw.commit()
        else:
            cursor.execute("COMMIT")
        cursor.close()
    return time.perf_counter() - began


# --- the raw limits -----------------------------------------------------------------------------------


def parse_limits(output: str) -> dict[str, float]:
    """``{name: value}`` from the ``limit <name> <value>`` lines of a baseline script."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "limit":
            with contextlib.suppress(ValueError):
                found[parts[1]] = float(parts[2])
    return found


def _run_limits(command: list[str], what: str) -> dict[str, float]:
    with step(f"measuring the raw limits ({what})"):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    limits = parse_limits(done.stdout)
    if not limits:
        raise RuntimeError(f"{' '.join(command)} printed no 'limit' line: {done.stdout!r}")
    for name, value in limits.items():
        say(f"  limit {name} {value:g}")
    return limits


def pg_limits(dsn: str, seconds: int = 10) -> dict[str, float]:
    return _run_limits([str(LIMITS_DIR / "pg_limits.sh"), dsn, str(seconds)], "pg_limits.sh")


def sqlite_limits(seconds: int = 5) -> dict[str, float]:
    return _run_limits([sys.executable, str(LIMITS_DIR / "sqlite_limits.py"), str(seconds)], "sqlite_limits.py")


def measure_limits(
    engines: Sequence[str], pg_dsn: str, seconds: int | None = None, *, skip: bool = False
) -> dict[str, float]:
    """Every limit the chosen engines need, measured now (pgbench 10 s, SQLite 5 s per figure by default)."""
    limits: dict[str, float] = {}
    if skip:
        return limits
    if "pg" in engines:
        limits.update(pg_limits(pg_dsn, seconds or 10))
    if "sqlite" in engines:
        limits.update(sqlite_limits(seconds or 5))
    return limits


# --- command line shared by every benchmark ---------------------------------------------------------------


def arguments(description: str, *, engines: Sequence[str] = ENGINES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--engine", choices=[*engines, "both"] if len(engines) > 1 else list(engines), default=None)
    parser.add_argument(
        "--pg",
        default=DEFAULT_PG,
        help=f"a DSN on the PostgreSQL server to use (default {DEFAULT_PG}); "
        f"the limits run in its database, the benchmark in a fresh database {BENCH_DB} beside it",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in well under a minute")
    parser.add_argument(
        "--limit-seconds", type=int, default=None, help="seconds per limit figure (default: the scripts' own)"
    )
    parser.add_argument(
        "--skip-limits", action="store_true", help="do not measure the limits (no ratios: for trying things out)"
    )
    return parser


def chosen_engines(value: str | None, engines: Sequence[str] = ENGINES) -> list[str]:
    if value is None or value == "both":
        return list(engines)
    return [value]


# --- fresh databases ------------------------------------------------------------------------------------


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def fresh_postgres(server_dsn: str, name: str = BENCH_DB) -> str:
    """Drop and create database ``name`` on the server of ``server_dsn``, migrate it; its URL."""
    import psycopg

    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_dsn, name)
    upgrade(url)
    return url


def fresh_sqlite(name: str) -> str:
    """A new, migrated SQLite file ``DATA_DIR/name.db``; its URL."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"{name}.db"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


def fresh_database(engine: str, pg_dsn: str, name: str) -> str:
    return fresh_postgres(pg_dsn, BENCH_DB) if engine == "pg" else fresh_sqlite(name)


def bench_program(db: Database, **settings: object) -> Program:
    """A program with the default settings (1 pt per 1.00 EUR, 14-day return window, 12-month life)."""
    settings.setdefault("name", "Benchmark")
    with db.write() as conn:
        return create_program(conn=conn, clock=SystemClock(), settings=ProgramSettings(**settings))


def bench_reward(db: Database, program: Program, **fields: Any) -> Reward:
    """A reward in the catalog, created through ``rewards.service.create_reward`` (valid for 365 days)."""
    fields.setdefault("title", {"fr": f"Bon de {fields.get('cost_points')} points", "en": "Benchmark reward"})
    fields.setdefault("valid_days", 365)
    with db.write() as conn:
        return create_reward(
            conn=conn, clock=SystemClock(), program=program, data=RewardIn.model_validate(fields), actor="bench"
        )


def violations(db: Database, program: Program, what: str) -> int:
    """``palier verify`` over the program (reads every row); how many invariants fail, the first few logged."""
    with step(f"{what}: palier verify"), db.read() as conn:
        found = verify(conn, program_id=program.id)
    for v in found[:5]:
        say(f"  violation {v.check} {v.subject}: {v.detail}")
    return len(found)


def vacuum_analyze(db: Database) -> None:
    """What autovacuum / a DBA would have done after a bulk load (PostgreSQL); SQLite: a WAL checkpoint.

    SQLite is deliberately *not* ANALYZEd: Palier never runs ANALYZE, so its query plans are the ones a
    real SQLite install gets.
    """
    with db.engine.connect() as conn:
        if db.is_postgres:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM ANALYZE")
            conn.exec_driver_sql("CHECKPOINT")
        else:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


ANALYZE_EVERY = 10.0  # s, while a throughput is measured: autovacuum analyses a growing table about as often


@contextlib.contextmanager
def autoanalyze(db: Database, every: float = 60.0, first: float | None = None) -> Iterator[None]:
    """Stand in for autovacuum's ANALYZE (every ``every`` s, the first after ``first`` s) when the PostgreSQL
    server runs without it.

    With ``autovacuum = off`` a table that starts empty keeps its "empty" statistics for ever, and plans
    made for an empty table (an index prefix scan plus a filter) turn a growing import quadratic. A
    production server analyses as tables grow; so does this, while the benchmark runs, as autovacuum does:
    only the tables changed by more than 50 rows + 10 % since their last analysis, throttled by the same
    cost-based delay (2 ms per 200 cost units), so that it takes no more of the machine than autovacuum.
    """
    if not db.is_postgres:
        yield
        return
    with db.engine.connect() as conn:
        if conn.exec_driver_sql("SHOW autovacuum").scalar() == "on":
            yield
            return
    stop = threading.Event()

    def analyse() -> None:
        wait = every if first is None else first
        while not stop.wait(wait):
            wait = every
            with db.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("SET vacuum_cost_delay = '2ms'")
                conn.exec_driver_sql("SET vacuum_cost_limit = 200")
                stale = conn.exec_driver_sql(_STALE_TABLES).scalars().all()
                for table in stale:
                    if stop.is_set():
                        break
                    conn.exec_driver_sql(f'ANALYZE "{table}"')

    say(f"  autovacuum is off on this server: analysing as it would, every {every:g} s, in its place")
    worker = threading.Thread(target=analyse, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()


# autovacuum's rule with its defaults: autovacuum_analyze_threshold 50, autovacuum_analyze_scale_factor 0.1
_STALE_TABLES = (
    "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
    "WHERE s.schemaname = current_schema() AND s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0) "
    "ORDER BY s.relname"
)


# --- commands from many processes -----------------------------------------------------------------------
#
# Each worker is a process (the GIL would serialise threads) with its own engine, as an API worker has.
# It runs one command untimed, waits for the others, then runs commands one after the other, each in one
# ``db.write()`` transaction retried exactly as ``Database.run`` retries a command; only those
# that start and finish inside the measured window (after the warm-up) count.

Command = Callable[[Connection], object]
Commands = Callable[[Database, int], Iterator[Command]]  # (database, worker index) -> that worker's commands


def write_retrying(db: Database, command: Command) -> int:
    """Run ``command`` in ``db.write()`` as ``Database.run`` does (every API command and form); how many times
    it was retried."""
    from sqlalchemy.exc import DBAPIError

    from palier.db.engine import ATTEMPTS, transient  # Database.run's own rule, so the benchmarks retry alike

    for attempt in range(ATTEMPTS):
        try:
            with db.write() as conn:
                command(conn)
            return attempt
        except DBAPIError as exc:
            if attempt == ATTEMPTS - 1 or not transient(exc):
                raise
            time.sleep(0.002 * (attempt + 1))
    raise AssertionError("unreachable")


@dataclass
class WorkerResult:
    latencies: list[float] = field(default_factory=list)  # seconds, commands completed inside the window
    retries: int = 0
    errors: list[str] = field(default_factory=list)


def _worker(
    index: int,
    url: str,
    commands: Commands,
    ready: Any,  # multiprocessing Barrier
    window: Any,  # multiprocessing Value: the window's start, 0 until every worker is ready
    seconds: float,
    results: Any,  # multiprocessing Queue
) -> None:
    db = make_database(url)
    result = WorkerResult()
    try:
        # Before the start: the worker's own setup (reading the program…) and one command, untimed, so that
        # the first command's cold costs (connecting, compiling every statement: seconds on a busy machine)
        # fall before the window instead of eating into it.
        stream = commands(db, index)
        result.retries += write_retrying(db, next(stream))
        command = next(stream)
    except Exception as exc:
        result.errors.append(f"setup: {type(exc).__name__}: {exc}"[:500])
        stream = iter(())
    ready.wait()
    while window.value == 0:
        time.sleep(0.001)
    start = window.value
    end = start + seconds
    try:
        while not result.errors:
            began = time.time()
            if began >= end:
                break
            result.retries += write_retrying(db, command)
            finished = time.time()
            if began >= start and finished <= end:
                result.latencies.append(finished - began)
            command = next(stream)
    except Exception as exc:  # reported by the parent; the other workers go on
        result.errors.append(f"{type(exc).__name__}: {exc}"[:500])
    finally:
        db.dispose()
    results.put((index, result))


def run_processes(url: str, commands: Commands, *, workers: int, seconds: float, warmup: float) -> dict[str, float]:
    """``workers`` processes run their ``commands(db, index)`` for ``warmup`` + ``seconds`` seconds.

    ``commands`` must pickle (a module-level function, or a ``functools.partial`` of one). Returns the
    rate over the measured ``seconds``, how many completed, retries, worker errors and p50/p99/max/mean.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(workers + 1)
    window = ctx.Value("d", 0.0)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(i, url, commands, ready, window, seconds, results)) for i in range(workers)
    ]
    for p in procs:
        p.start()
    ready.wait()
    window.value = time.time() + warmup  # every worker runs from now; only the window after warm-up counts
    gathered = [results.get(timeout=warmup + seconds + 300) for _ in procs]
    for p in procs:
        p.join()
    latencies = [lat for _, r in gathered for lat in r.latencies]
    errors = [e for _, r in gathered for e in r.errors]
    for error in errors:
        say(f"worker error: {error}")
    return {
        "rate": len(latencies) / seconds,
        "done": len(latencies),
        "retries": sum(r.retries for _, r in gathered),
        "errors": len(errors),
        **latency_summary(latencies),
    }


@dataclass(frozen=True)
class Concurrency:
    """The sizes of a benchmark of commands from many processes, from its options (``--quick`` or not)."""

    members: int
    seconds: float
    warmup: float
    workers: int

    @classmethod
    def of(cls, options: object) -> Concurrency:
        quick = getattr(options, "quick", False)
        return cls(
            members=getattr(options, "members", None) or (10_000 if quick else 100_000),
            seconds=getattr(options, "seconds", None) or (3.0 if quick else 10.0),
            warmup=1.0 if quick else 3.0,
            workers=getattr(options, "workers", None) or 8,
        )

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--workers", type=int, default=None, help="worker processes (default 8)")
        parser.add_argument("--seconds", type=float, default=None, help="measured seconds (default 10; quick 3)")
        parser.add_argument("--members", type=int, default=None, help="seeded members (default 100,000)")


def measure_processes(url: str, commands: Commands, sizes: Concurrency, what: str) -> dict[str, float]:
    """:func:`run_processes` with ``sizes``, logged as ``what`` (e.g. "redeem/pg: redemptions")."""
    bench, noun = what.split(": ")
    db = make_database(url)
    with (
        step(f"{bench}: {sizes.workers} processes, {sizes.warmup:g} s warm-up + {sizes.seconds:g} s"),
        autoanalyze(db, every=ANALYZE_EVERY, first=sizes.warmup),  # tables seeded empty grow while it runs
    ):
        got = run_processes(url, commands, workers=sizes.workers, seconds=sizes.seconds, warmup=sizes.warmup)
    db.dispose()
    say(
        f"{bench}: {got['done']:,} {noun}, {got['rate']:,.0f}/s, p50 {got['p50']:.1f} ms, p99 {got['p99']:.1f} ms, "
        f"max {got['max']:.0f} ms, {got['retries']} retries, {got['errors']} errors"
    )
    return got


def throughput_figures(
    bench: str,
    engine: str,
    metric: str,
    got: dict[str, float],
    limit: tuple[str, float | None],
    limits: dict[str, float],
    note: str,
) -> list[Figure]:
    """The rate against ``limit`` (its name, the target ratio or None) and the latencies p50 and p99."""
    name, target = limit
    return [
        Figure(bench, engine, metric, got["rate"], "/s", name, limits.get(name), target_ratio=target, note=note),
        Figure(bench, engine, "latency p50", got["p50"], "ms"),
        Figure(bench, engine, "latency p99", got["p99"], "ms"),
    ]


def throughput_main(doc: str, run: Callable[[str, Any, dict[str, float]], list[Figure]]) -> None:
    """The command line of a :class:`Concurrency` benchmark: the limits first, then ``run`` per engine."""
    parser = arguments(doc.splitlines()[0])
    Concurrency.add_arguments(parser)
    options = parser.parse_args()
    engines = chosen_engines(options.engine)
    limits = measure_limits(engines, options.pg, options.limit_seconds, skip=options.skip_limits)
    print_figures([f for engine in engines for f in run(engine, options, limits)])
    sys.exit(0)


# --- set-based seeding ----------------------------------------------------------------------------------
#
# Members are numbered g = 1..N; every id is a function of g, in Palier's own id format
# ("mem_" + 10 Crockford chars of milliseconds + 16 of "randomness", here the number g), so Python can name
# member g without reading it back, and rows insert in primary-key order. One INSERT … SELECT per table and
# chunk of members: generate_series on PostgreSQL, a recursive CTE on SQLite.


def encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(CROCKFORD[digit])
    return "".join(reversed(chars))


_MIN = 1
_DAY = 1440  # minutes
_RETURN_WINDOW = 14 * _DAY
_LIFETIME = 365 * _DAY


@dataclass(frozen=True)
class LotPlan:
    """Which seeded members hold lots, and what those lots look like.

    Members with ``g % 100 < percent`` hold ``per_member`` lots each, lot ``j`` of member ``g``:
      j = 0  pending, its return window closed 1..720 minutes ago          (due to mature)
      j = 1  active, expired 1..720 minutes ago                              (due to expire)
      j = 2  pending, matures within the next 13 days
      j ≥ 3  active, expires in 30..330 days
    amount = least + (31 g + 17 j) mod 491, all of it remaining. One opening transaction per member posts
    issued -total, pending +Σ pending lots, available +Σ active lots, so ``palier verify`` holds.

    ``spendable=True``: every lot is like j ≥ 3 (active, expiring in 30..330 days), nothing is due: a
    member who can spend all their points now (redemption).
    """

    per_member: int = 0
    percent: int = 100
    spendable: bool = False
    least: int = 10  # the smallest lot

    def pending(self) -> list[int]:
        return [j for j in range(self.per_member) if j in (0, 2) and not self.spendable]

    def active(self) -> list[int]:
        return [j for j in range(self.per_member) if j not in self.pending()]

    def amount(self, j: int | str) -> str:
        """SQL for the amount of lot ``j`` of member ``g``."""
        return f"({self.least} + (g * 31 + {j} * 17) % 491)"

    def smallest_balance(self) -> int:
        """A floor for the ``available`` balance of a member holding lots."""
        return self.least * len(self.active())


def member_id(stamp: str, g: int) -> str:
    """The id of seeded member ``g`` (as the SQL of :func:`seed_members` builds it)."""
    return f"mem_{stamp}{encode(g, 16)}"


@dataclass
class Seeded:
    """What was seeded: member ``g``'s id is ``member_id(g)`` for g in 1..members."""

    program: Program
    members: int
    stamp: str  # the 10 time characters shared by every seeded id
    plan: LotPlan = field(default_factory=LotPlan)

    def member_id(self, g: int) -> str:
        return member_id(self.stamp, g)

    def card(self, g: int) -> str:
        return f"BENCH{g}"


# text() reads ":name" as a bound parameter even inside quotes: account ids are built as ':' || kind.


class _Sql:
    """The few spots where PostgreSQL and SQLite spell things differently."""

    def __init__(self, conn: Connection) -> None:
        self.pg = conn.dialect.name == "postgresql"

    def series(self, name: str, lo: str, hi: str) -> tuple[str, str]:
        """(CTE or '', FROM item) for integers ``:lo``..``:hi`` in column ``name``."""
        if self.pg:
            return "", f"generate_series(CAST(:{lo} AS bigint), CAST(:{hi} AS bigint)) AS {name}_s({name})"
        return f"{name}_s({name}) AS (SELECT :{lo} UNION ALL SELECT {name} + 1 FROM {name}_s WHERE {name} < :{hi})", (
            f"{name}_s"
        )

    def statement(self, ctes: Sequence[str], body: str) -> str:
        ctes = [c for c in ctes if c]
        return (f"WITH RECURSIVE {', '.join(ctes)} " if ctes else "") + body

    def ts(self, minutes: str) -> str:
        """``:now`` moved by an integer expression of minutes, as the dialect stores a timestamp."""
        if self.pg:
            return f"(CAST(:now AS timestamptz) + ({minutes}) * interval '1 minute')"
        return f"(strftime('%Y-%m-%d %H:%M:%S', :now, ({minutes}) || ' minutes') || '.000000')"

    def now(self) -> str:
        return "CAST(:now AS timestamptz)" if self.pg else ":now"

    def json(self, param: str) -> str:
        return f"CAST(:{param} AS jsonb)" if self.pg else f":{param}"


def _id(prefix: str, stamp: str, number: str) -> str:
    """SQL for Palier's id format ``<prefix>_<stamp><16 base32 digits of number>`` (number < 2**30)."""
    digits = [f"substr('{CROCKFORD}', CAST((({number}) >> {5 * k}) & 31 AS INTEGER) + 1, 1)" for k in range(5, -1, -1)]
    return f"'{prefix}_{stamp}0000000000' || " + " || ".join(digits)


SEEDED_TABLES = ("members", "accounts", "identities", "audit_entries", "ledger_transactions", "postings", "lots")


def seed_members(
    db: Database,
    program: Program,
    members: int,
    *,
    plan: LotPlan | None = None,
    chunk: int = 100_000,
    now: datetime | None = None,
    contact: bool = True,
) -> Seeded:
    """Insert ``members`` members as ``members.service.enrol`` writes them, and their lots per ``plan``.

    Per member: the ``members`` row (an e-mail), its 4 accounts ``<member_id>:<kind>``, 2 identities (a
    loyalty card ``BENCH<g>`` and the e-mail) and the ``member.enrolled`` audit entry. With lots: one
    opening ledger transaction, its postings and the lots; cached balances match. One INSERT … SELECT per
    table and chunk of members, each chunk its own transaction. ``contact=False`` leaves out identities
    and audit entries (for benchmarks that never read them, to keep seeding short).

    PostgreSQL is bulk-loaded the way a DBA would: secondary indexes dropped first and rebuilt at the end
    (sorting once beats 10 million random inserts), and foreign-key triggers off while loading (the rows
    satisfy them by construction). The schema is exactly the migrated one afterwards.
    """
    plan = plan or LotPlan()
    now = now or datetime.now(UTC)
    seeded = Seeded(program=program, members=members, stamp=encode(int(now.timestamp() * 1000), 10), plan=plan)
    rebuild = drop_secondary_indexes(db) if db.is_postgres else []

    def load(lo: int) -> None:
        hi = min(members, lo + chunk - 1)
        with db.engine.begin() as conn:
            if db.is_postgres:
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
            _seed_chunk(conn, seeded, lo, hi, now, contact=contact)
        if members > chunk:
            say(f"  seeded members {lo:,}..{hi:,} of {members:,}")

    # PostgreSQL loads two chunks at once (one per core); SQLite has one writer.
    with ThreadPoolExecutor(max_workers=2 if db.is_postgres else 1) as pool:
        list(pool.map(load, range(1, members + 1, chunk)))
    rebuild_indexes(db, rebuild)
    if plan.per_member:
        with db.engine.begin() as conn:
            # The program's issued slots: each the sum of its postings (seed postings use slot g % 32).
            conn.execute(
                text(
                    "UPDATE accounts SET balance = (SELECT COALESCE(SUM(p.amount), 0) FROM postings p "
                    "WHERE p.account_id = accounts.id), version = version + 1 "
                    "WHERE program_id = :program AND member_id IS NULL "
                    "AND EXISTS (SELECT 1 FROM postings p WHERE p.account_id = accounts.id)"
                ),
                {"program": program.id},
            )
    return seeded


def drop_secondary_indexes(db: Database, tables: Sequence[str] = SEEDED_TABLES) -> list[str]:
    """Drop the ``tables``' indexes that back no constraint (PostgreSQL); the statements that recreate them."""
    with db.engine.begin() as conn:
        found = conn.execute(
            text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = current_schema() "
                "AND i.tablename = ANY(:tables) AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                "WHERE c.conname = i.indexname)"
            ),
            {"tables": list(tables)},
        ).all()
        for name, _ in found:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return [definition for _, definition in found]


def rebuild_indexes(db: Database, statements: Sequence[str]) -> None:
    """Run the statements :func:`drop_secondary_indexes` returned (one sort per index)."""
    if not statements:
        return
    with step(f"  rebuilding {len(statements)} indexes"), db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("SET maintenance_work_mem = '1GB'")
        for statement in statements:
            conn.exec_driver_sql(statement)


def _seed_chunk(conn: Connection, seeded: Seeded, lo: int, hi: int, now: datetime, *, contact: bool) -> None:
    sql = _Sql(conn)
    plan, stamp = seeded.plan, seeded.stamp
    member = _id("mem", stamp, "g")
    cte, source = sql.series("g", "lo", "hi")
    params = {"lo": lo, "hi": hi, "program": seeded.program.id, "now": now}
    typed = [bindparam("now", type_=Timestamp)]

    def run(statement: str, extra_ctes: Sequence[str] = (), **more: object) -> None:
        query = text(sql.statement([cte, *extra_ctes], statement))
        if ":now" in statement:
            query = query.bindparams(*typed)
        if "consents" in more:
            query = query.bindparams(bindparam("consents", type_=Json))
        started = time.perf_counter()
        conn.execute(query, {**params, **more})
        if os.environ.get("PALIER_BENCH_TRACE"):
            say(f"    {statement.split('(')[0].strip()}: {time.perf_counter() - started:.2f} s")

    run(
        "INSERT INTO members (id, program_id, status, first_name, last_name, email, language, consents, "
        "enrolled_at, enrolment_channel, updated_at) "
        f"SELECT {member}, :program, 'active', 'Ada', 'Bench', 'm' || g || '@bench.example', 'fr', "
        f"{sql.json('consents')}, {sql.now()}, 'web', {sql.now()} FROM {source} ORDER BY g",
        consents={"email_marketing": False, "sms_marketing": False, "push": False, "profiling": False},
    )
    holds = f"({plan.per_member} > 0 AND g % 100 < {plan.percent})"
    pending = " + ".join(plan.amount(j) for j in plan.pending()) or "0"
    active = " + ".join(plan.amount(j) for j in plan.active()) or "0"
    kinds = " UNION ALL ".join(f"SELECT '{k}' AS kind" for k in MEMBER_KINDS)
    balance = (
        f"CASE WHEN NOT {holds} THEN 0 WHEN k.kind = 'pending' THEN {pending} "
        f"WHEN k.kind = 'available' THEN {active} ELSE 0 END"
    )
    run(  # the opening transaction is one write: version 1 where it posts
        "INSERT INTO accounts (id, program_id, member_id, kind, asset, slot, balance, version) "
        f"SELECT {member} || ':' || k.kind, :program, {member}, k.kind, 'PTS', 0, {balance}, "
        f"CASE WHEN {balance} <> 0 THEN 1 ELSE 0 END "
        f"FROM {source} CROSS JOIN ({kinds}) AS k ORDER BY g, k.kind"
    )
    if contact:
        run(
            "INSERT INTO identities (id, program_id, member_id, kind, value, created_at) "
            f"SELECT {_id('idn', stamp, '2 * g + i.n')}, :program, {member}, i.kind, "
            "CASE WHEN i.n = 0 THEN 'BENCH' || g ELSE 'm' || g || '@bench.example' END, "
            f"{sql.now()} FROM {source} CROSS JOIN (SELECT 0 AS n, 'card' AS kind UNION ALL "
            "SELECT 1, 'email') AS i ORDER BY g, i.n"
        )
        run(
            "INSERT INTO audit_entries (id, program_id, actor, action, subject_id, created_at) "
            f"SELECT {_id('aud', stamp, 'g')}, :program, 'bench', 'member.enrolled', {member}, {sql.now()} "
            f"FROM {source} ORDER BY g"
        )
    if not plan.per_member:
        return
    txn = _id("txn", stamp, "g")
    run(
        "INSERT INTO ledger_transactions (id, program_id, member_id, kind, reason, reason_code, "
        "created_at, effective_at) "
        f"SELECT {txn}, :program, {member}, 'earn', 'Opening balance (benchmark seed)', 'import', "
        f"{sql.now()}, {sql.now()} FROM {source} WHERE {holds} ORDER BY g"
    )
    issued = f"':' || 'issued' || ':' || substr('0' || CAST(g % {SLOTS} AS TEXT), -2, 2)"
    if sql.pg:
        issued = f"':' || 'issued' || ':' || lpad(CAST(g % {SLOTS} AS TEXT), 2, '0')"
    run(
        "INSERT INTO postings (transaction_id, program_id, member_id, account_id, asset, amount) "
        f"SELECT {txn}, :program, p.member, p.account, 'PTS', p.amount FROM ("
        f"SELECT g, 0 AS n, NULL AS member, :program || {issued} AS account, -({pending} + {active}) AS amount "
        f"FROM {source} WHERE {holds} "
        f"UNION ALL SELECT g, 1, {member}, {member} || ':' || 'pending', {pending} FROM {source} "
        f"WHERE {holds} AND {pending} > 0 "
        f"UNION ALL SELECT g, 2, {member}, {member} || ':' || 'available', {active} FROM {source} "
        f"WHERE {holds} AND {active} > 0) AS p ORDER BY p.g, p.n"
    )
    jcte, jsource = sql.series("j", "j0", "j1")
    is_pending = f"j IN ({', '.join(map(str, plan.pending()))})" if plan.pending() else "1 = 0"
    later = f"{_DAY} * (30 + (g * 7 + j * 29) % 300)"  # minutes from now to an expiry or maturity
    key = (
        later
        if plan.spendable
        else f"CASE WHEN j <= 1 THEN -(1 + g % 720) WHEN j = 2 THEN 60 + g % {13 * _DAY} ELSE {later} END"
    )
    earned = f"(CASE WHEN {is_pending} THEN {key} - {_RETURN_WINDOW} ELSE {key} - {_LIFETIME} END)"
    run(
        "INSERT INTO lots (id, program_id, member_id, transaction_id, source, label, amount, remaining, "
        "state, earned_at, matures_at, expires_at) "
        f"SELECT {_id('lot', stamp, f'g * {plan.per_member} + j')}, :program, {member}, {txn}, 'import', "
        f"'Opening balance #' || j, {plan.amount('j')}, {plan.amount('j')}, "
        f"CASE WHEN {is_pending} THEN 'pending' ELSE 'active' END, {sql.ts(earned)}, "
        f"{sql.ts(f'{earned} + {_RETURN_WINDOW}')}, {sql.ts(f'{earned} + {_LIFETIME}')} "
        f"FROM {source} CROSS JOIN {jsource} WHERE {holds} ORDER BY g, j",
        [jcte],
        j0=0,
        j1=plan.per_member - 1,
    )


def random_members(seeded: Seeded, count: int, *, seed: int = 7) -> list[str]:
    import random

    rng = random.Random(seed)
    return [seeded.member_id(rng.randint(1, seeded.members)) for _ in range(count)]
