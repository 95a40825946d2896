"""``palier jobs run`` (once, with progress) and ``palier worker`` (on a schedule, until stopped)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from types import FrameType
from typing import Any

import typer
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from palier.cli.common import console, new_app, open_database, require_ready_database, settings
from palier.clock import Clock, SystemClock
from palier.db import Database
from palier.jobs import debts, housekeeping, sweeps
from palier.ledger.sweep_sql import MAX_BATCH
from palier.ledger.tables import lots
from palier.logs import mask_handlers
from palier.memberships import service as memberships
from palier.notify import expiry, webhooks
from palier.programs.service import get_program
from palier.rewards.service import expire_coupons
from palier.rules import gifts
from palier.segments import service as segments
from palier.text import counted
from palier.tiers import service as tiers


class Job(StrEnum):
    mature = "mature"
    expire = "expire"
    birthdays = "birthdays"
    anniversaries = "anniversaries"
    tiers = "tiers"
    memberships = "memberships"
    segments = "segments"
    debts = "debts"
    expiry_warnings = "expiry-warnings"
    webhooks = "webhooks"
    housekeeping = "housekeeping"
    all = "all"


app = new_app(f"Batch jobs, run once: {', '.join(job.value for job in Job if job is not Job.all)}, or all.")
log = logging.getLogger("palier.worker")


# Per member, in batches, safe to run twice or on two workers at once: gifts of the earning rules (once per
# member and year) and warnings before points expire (once per window): (job, what it gives each member).
PER_MEMBER: dict[str, tuple[Callable[..., gifts.GiftRun | expiry.WarningRun], str]] = {
    "birthdays": (gifts.birthdays, "gifts"),
    "anniversaries": (gifts.anniversaries, "gifts"),
    "expiry-warnings": (expiry.warn, "warnings"),
}
# Seconds between two runs of these by the worker, when more than its --interval: a warning window is days
# wide, and finding who is due reads every lot that expires within it.
SLOWER = {"expiry-warnings": 3600.0, "housekeeping": 3600.0, "debts": 3600.0}


def _requalify(db: Database, clock: Clock, program_id: str | None, workers: int) -> int:
    return tiers.requalify(db, clock, program_id=program_id, workers=workers)


def _lapse(db: Database, clock: Clock, program_id: str | None, workers: int) -> int:
    return memberships.lapse(db, clock, program_id=program_id)


def _refresh(db: Database, clock: Clock, program_id: str | None, workers: int) -> int:
    return sum(r.entered + r.left for r in segments.refresh_all(db, clock, program_id=program_id))


# Members' standing, set-based in batches, safe to run twice: (job, what its count counts). Only the
# requalification uses several workers (segments are refreshed in a few statements over all members).
def _settle(db: Database, clock: Clock, program_id: str | None, workers: int) -> int:
    return debts.settle_all(db, clock, program_id=program_id)


STATUS: dict[str, tuple[Callable[[Database, Clock, str | None, int], int], str]] = {
    "tiers": (_requalify, "members judged"),
    "memberships": (_lapse, "memberships lapsed"),
    "segments": (_refresh, "members in or out"),
    "debts": (_settle, "members who repaid a debt"),
}


Sweep = Callable[..., sweeps.SweepResult]
# (name, sweep, lot state it works on, date column that makes a lot due)
SWEEPS: dict[str, tuple[Sweep, str, str]] = {
    "mature": (sweeps.mature, "pending", "matures_at"),
    "expire": (sweeps.expire, "active", "expires_at"),
}


def _names(job: Job) -> list[str]:
    if job is Job.all:
        return [*SWEEPS, *PER_MEMBER, *STATUS, Job.webhooks.value, Job.housekeeping.value]
    return [job.value]


def _due(db: Database, name: str, now: datetime, program_id: str | None) -> int:
    _, state, column = SWEEPS[name]
    query = select(func.count()).where(lots.c.state == state, lots.c[column] <= now)
    if program_id is not None:
        query = query.where(lots.c.program_id == program_id)
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


@app.command("run")
def run(
    job: Job = typer.Argument(
        ...,
        metavar="JOB",
        show_choices=False,  # they are in the help, whole: listed beside it they were cut mid-word ("anniv ersaries")
        help="mature (pending points whose return window closed), expire (old points, overdue coupons), "
        "birthdays, anniversaries, tiers (requalification), memberships (lapse unpaid ones), segments (refresh), "
        "debts (members who owe points and hold some repay from them), "
        "expiry-warnings (points_expiring events for the mailer), webhooks (push waiting events), "
        "housekeeping (delete old sessions, sign-in codes, delivered events, sign-in attempts, kept answers), or all.",
    ),
    batch_size: int = typer.Option(
        sweeps.BATCH, min=1, max=MAX_BATCH, help=f"Lots per database transaction (at most {MAX_BATCH})."
    ),
    program: str | None = typer.Option(None, "--program", help="Only this program's lots (default: all)."),
    workers: int = typer.Option(
        1, min=1, help="Batches at once, each in its own connection (PostgreSQL: a core each)."
    ),
) -> None:
    """Run a job once, now, with a progress bar; several may run at once (they never share a lot)."""
    clock = SystemClock()
    results: dict[str, tuple[sweeps.SweepResult | gifts.GiftRun | expiry.WarningRun, float]] = {}
    pushed: webhooks.DeliveryRun | None = None
    tidied: housekeeping.Tidied | None = None
    with open_database() as db:
        if program is not None:
            with db.read() as conn:
                get_program(conn=conn, program_id=program)  # a mistyped id is refused, not an empty run
        for name in _names(job):
            if name == Job.webhooks.value:
                pushed = webhooks.deliver(db, clock, program_id=program, public_only=settings().public_webhooks_only)
            elif name == Job.housekeeping.value:
                tidied = housekeeping.tidy(db, clock, program_id=program)
            elif name in STATUS:
                started = time.perf_counter()
                count = STATUS[name][0](db, clock, program, workers)
                results[name] = (sweeps.SweepResult(lots=count), time.perf_counter() - started)
            elif name in PER_MEMBER:
                started = time.perf_counter()
                given = PER_MEMBER[name][0](db, clock, program_id=program, batch_size=batch_size)
                results[name] = (given, time.perf_counter() - started)
            else:
                results[name] = _run_with_progress(db, clock, name, batch_size, program, workers)
        # coupons past their date expire with the points (their held points go back): expire and all
        expired_coupons = expire_coupons(db, clock, program_id=program) if job in (Job.expire, Job.all) else None
    table = Table(title="Jobs", title_justify="left")
    for column in ("job", "lots / members", "points", "batches", "seconds"):
        table.add_column(column, justify="left" if column == "job" else "right")
    for name, (result, seconds) in results.items():
        count = result.lots if isinstance(result, sweeps.SweepResult) else result.members
        table.add_row(name, f"{count:,}", f"{result.points:,}", str(result.batches), f"{seconds:.2f}")
    if results:
        console.print(table)
    if pushed is not None:
        console.print(f"webhooks: {counted(pushed.events, 'event')} delivered in {counted(pushed.requests, 'request')}")
        for error in pushed.errors:
            console.print(f"[yellow]webhook failed[/] {error} {_next_step(error, pushed)}")
    if tidied is not None:
        console.print(f"housekeeping: {tidied.summary()}")
    if expired_coupons is not None:
        console.print(f"coupons: {expired_coupons:,} past their date expired, their points released")


def _run_with_progress(
    db: Database, clock: Clock, name: str, batch_size: int, program_id: str | None, workers: int
) -> tuple[sweeps.SweepResult, float]:
    sweep = SWEEPS[name][0]
    started = time.perf_counter()
    due = _due(db, name, clock.now(), program_id)
    if not due:  # nothing to show a bar for (the job still runs: lots may have come due since)
        result = sweep(db, clock, batch_size=batch_size, program_id=program_id, workers=workers)
        return result, time.perf_counter() - started
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(name, total=due)
        advance: Callable[[int], None] = lambda n: progress.advance(task, n)  # noqa: E731
        result = sweep(db, clock, batch_size=batch_size, program_id=program_id, progress=advance, workers=workers)
    return result, time.perf_counter() - started


class _Stop(Exception):
    """Raised between two committed batches when the worker is asked to stop."""


def worker(
    interval: float = typer.Option(60.0, min=0.1, help="Seconds between two runs."),
    once: bool = typer.Option(False, "--once", help="Run every job once, deliver waiting events, and exit."),
    batch_size: int = typer.Option(
        sweeps.BATCH, min=1, max=MAX_BATCH, help=f"Lots per database transaction (at most {MAX_BATCH})."
    ),
    webhook_interval: float = typer.Option(
        5.0, min=0.1, help="Seconds between two pushes of waiting events to the programs' webhooks."
    ),
) -> None:
    """Run the scheduled jobs every --interval seconds until SIGINT or SIGTERM: mature and expire points,
    expire overdue coupons, birthday and anniversary gifts, tier requalification, lapsed memberships, segment
    refreshes, and (hourly) expiry warnings, debts still to settle and housekeeping; and push events to the
    programs' webhooks every --webhook-interval seconds.

    Stopping is graceful: the batch in flight commits, then the worker exits. Several workers may
    run at once against PostgreSQL (batches lock their lots with SKIP LOCKED) or SQLite.
    """
    require_ready_database()
    _log_to_stdout()
    mask_handlers()
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: stopping after the batch in flight", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_database() as db:
            clock = SystemClock()
            public_only = settings().public_webhooks_only
            pusher = threading.Thread(
                target=_push,
                args=(db, clock, stop),
                kwargs={"interval": webhook_interval, "public_only": public_only},
                name="webhooks",
            )
            if not once:
                pusher.start()
            try:
                failed = _work(db, clock, stop, interval=interval, once=once, batch_size=batch_size)
            finally:
                stop.set()
                if pusher.is_alive():
                    pusher.join()
            if once and not _push(db, clock, stop, interval=0.0, public_only=public_only):
                failed.append("webhooks")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("worker stopped")
    if once and failed:  # a cron job or a timer sees that this run did not do everything
        raise typer.Exit(1)


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to ``sys.stdout`` as it is when a record comes, not as it was when the worker started
    (a test's runner swaps it, and closes the one it swapped in)."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _log_to_stdout() -> None:
    """In a terminal, rich's columns; otherwise (systemd, docker, a file) one line per record, each with its
    full UTC time and level, for a log collector or grep: rich would fold long lines and leave a time out
    when it is the same as the line above's."""
    if console.is_terminal:
        handler: logging.Handler = RichHandler(console=console, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = _Stdout()
        formatter = logging.Formatter(
            "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S"
        )
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # httpx logs every request with its full address: a webhook's is often a secret (a token in its path or
    # query). The worker says what it pushed in its own words; httpx's warnings still come through.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _failed(name: str, error: Exception, last_run: dict[str, float] | None = None) -> None:
    """Log a job that failed (it runs again at the next pass): a database that is down or restarting in one
    line per job, as it can last minutes; anything else with its traceback. A job run hourly that met an
    unavailable database is forgotten from ``last_run``, so it is tried again at the next pass, as logged."""
    if isinstance(error, OperationalError | PoolTimeout):
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        said = reason[0] if reason else "no answer"
        log.error("%s failed: database unavailable (%s); tried again at the next run", name, said)
        if last_run is not None:
            last_run.pop(name, None)
    else:
        log.error("%s failed", name, exc_info=error)


def _due_now(last_run: dict[str, float], name: str) -> bool:
    """Whether the worker runs ``name`` on this pass (at most every ``SLOWER[name]`` seconds); if so, the run
    is recorded as started now."""
    if name in last_run and time.monotonic() - last_run[name] < SLOWER.get(name, 0.0):
        return False
    last_run[name] = time.monotonic()
    return True


def _next_step(error: str, pushed: webhooks.DeliveryRun) -> str:
    """What follows a failed delivery: another try later, or nothing until the webhook is saved again."""
    if error.split(":", 1)[0] in pushed.disabled:
        return "(webhook disabled: nothing more is sent until it is saved again, PUT /v1/webhook)"
    return "(tried again later)"


def _push(db: Database, clock: Clock, stop: threading.Event, *, interval: float, public_only: bool) -> bool:
    """Deliver waiting events to the webhooks every ``interval`` seconds until ``stop`` (once if it is set);
    ``public_only``: only to addresses on the public internet (PALIER_WEBHOOK_NETWORKS=public). False if the
    last run failed (a receiver that fails is no failure of the worker: its events wait for the next try)."""
    while True:
        ran = True
        try:
            # a worker asked to stop returns once the request in flight is settled, not after every backlog;
            # --once comes here with stop already set, and goes to the end
            halt = None if stop.is_set() else stop
            pushed = webhooks.deliver(db, clock, public_only=public_only, stop=halt)
        except Exception as failure:  # a failed run is logged and retried at the next interval
            _failed("webhooks", failure)
            ran = False
        else:
            if pushed.requests:
                events, requests = counted(pushed.events, "event"), counted(pushed.requests, "request")
                log.info("webhooks: %s delivered in %s", events, requests)
            for error in pushed.errors:
                log.warning("webhook failed: %s %s", error, _next_step(error, pushed))
        if stop.wait(interval):
            return ran


def _work(
    db: Database, clock: Clock, stop: threading.Event, *, interval: float, once: bool, batch_size: int
) -> list[str]:
    """Run the jobs every ``interval`` seconds until ``stop`` (one pass if ``once``); the jobs that failed on
    the last pass."""

    def between_batches(_done: int) -> None:
        if stop.is_set():
            raise _Stop  # the batch that just ran is committed; the next one never starts

    if once:
        log.info("worker started: every job once, then exit")
    else:
        log.info("worker started: every job every %ss", interval)
    last_run: dict[str, float] = {}
    failed: list[str] = []

    def fail(name: str, error: Exception, hourly: bool = False) -> None:
        _failed(name, error, last_run if hourly else None)
        failed.append(name)

    while not stop.is_set():
        failed.clear()
        for name in SWEEPS:
            started = time.perf_counter()
            try:
                result = SWEEPS[name][0](db, clock, batch_size=batch_size, progress=between_batches)
            except _Stop:
                return failed
            except Exception as error:  # a failed run is logged and retried at the next interval
                fail(name, error)
                continue
            log.info(
                "%s: %s lots, %s points in %.2fs",
                name,
                f"{result.lots:,}",
                f"{result.points:,}",
                time.perf_counter() - started,
            )
        for name, (give, what) in PER_MEMBER.items():
            if not _due_now(last_run, name):
                continue
            try:
                given = give(db, clock, batch_size=batch_size)
            except Exception as error:
                fail(name, error, hourly=True)
                continue
            if given.members:
                log.info("%s: %s %s, %s points", name, f"{given.members:,}", what, f"{given.points:,}")
        try:
            expired = expire_coupons(db, clock)
        except Exception as error:
            fail("coupons", error)
        else:
            if expired:
                log.info("coupons: %s past their date expired", f"{expired:,}")
        for name, (job, counts) in STATUS.items():
            if not _due_now(last_run, name):
                continue
            try:
                count = job(db, clock, None, 1)
            except Exception as error:
                fail(name, error, hourly=True)
                continue
            if count:
                log.info("%s: %s %s", name, f"{count:,}", counts)
        if _due_now(last_run, "housekeeping"):
            try:
                tidied = housekeeping.tidy(db, clock)
            except Exception as error:
                fail("housekeeping", error, hourly=True)
            else:
                if tidied.rows:
                    log.info("housekeeping: %s", tidied.summary())
        if once:
            return failed
        stop.wait(interval)
    return failed
