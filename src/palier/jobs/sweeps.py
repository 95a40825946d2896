"""Mature and expire points in batches: set-based statements, safe with several workers at once.

Each batch is one database transaction of a handful of statements over up to ``batch_size`` due lots
(``ledger.sweep_sql``, which also explains the lock order). A batch claims its lots with ``FOR UPDATE
SKIP LOCKED`` on PostgreSQL and skips members busy with a command, so two workers never share a lot
and a job never waits on a member's purchase; what was skipped is picked up by the next run. The same
holds for ``workers`` threads of one sweep, each with its own connection: on PostgreSQL they use as
many server processes (cores); on SQLite they simply take turns.

Nothing waits for them: a member's debit first sweeps that member's due lots with the same statements
(``ledger.catch_up``), and balances are shown as they stand once swept. Points are gone the instant they
expire; the jobs bring the rest of the ledger, and every member's history, up to date.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from palier.clock import Clock
from palier.db import Database
from palier.jobs.parallel import in_parallel
from palier.ledger.sweep_sql import Sweep, sweep_batch

BATCH = 20_000


@dataclass
class SweepResult:
    lots: int = 0
    points: int = 0
    batches: int = 0


Progress = Callable[[int], None]


def mature(
    db: Database,
    clock: Clock,
    *,
    batch_size: int = BATCH,
    program_id: str | None = None,
    progress: Progress | None = None,
    workers: int = 1,
) -> SweepResult:
    """Pending points whose return window has closed become available (repaying any debt first).

    All programs, or only ``program_id``."""
    return _sweep(db, clock, "mature", batch_size, program_id, progress, workers)


def expire(
    db: Database,
    clock: Clock,
    *,
    batch_size: int = BATCH,
    program_id: str | None = None,
    progress: Progress | None = None,
    workers: int = 1,
) -> SweepResult:
    """Active lots past their expiry date give up what remains of them (all programs, or ``program_id``)."""
    return _sweep(db, clock, "expire", batch_size, program_id, progress, workers)


def _sweep(
    db: Database,
    clock: Clock,
    sweep: Sweep,
    size: int,
    program_id: str | None,
    progress: Progress | None,
    workers: int,
) -> SweepResult:
    result = SweepResult()
    now = clock.now()
    tally = threading.Lock()

    def work(stop: threading.Event) -> None:
        while not stop.is_set():
            # Run again if PostgreSQL chose it as a deadlock's victim (all or nothing, so that is safe). A
            # batch waits on nothing but program slots, taken last and in id order, but a command that updates
            # a slot before it takes a lot (``settle_debt`` after points came back, ``reverse``) can close a
            # cycle with a batch holding that lot; one of the two is rolled back and runs again.
            batch = db.run(lambda conn: sweep_batch(conn, sweep, now=now, size=size, program_id=program_id))
            with tally:
                result.lots += batch.swept
                result.points += batch.points
                result.batches += 1
                if progress and batch.swept:
                    progress(batch.swept)
            # Done when nothing more is due, or every lot left is held by a busy member or another worker.
            if batch.claimed < size or batch.swept == 0:
                return

    in_parallel(workers, work, name=f"palier-{sweep}")
    return result
