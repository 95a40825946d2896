"""The nightly sweeps on PostgreSQL: ``jobs.sweeps.mature`` then ``jobs.sweeps.expire`` over every due lot.

1,000,000 members with 10 lots each (10,000,000 lots) are seeded set-based (see ``common.LotPlan``): per
member one lot whose return window has closed (due to mature), one active lot past its expiry date (due
to expire), one pending lot maturing later and seven active lots expiring later — 10 % of the lots due
for each sweep. Balances, postings and lots agree, so ``palier verify`` holds before and after
(``--verify`` checks it; on by default with ``--quick`` only, since it reads every row).
Target: both sweeps over all of it in ≤ 60 s. A sweep still running after ``--budget`` seconds (150 by
default) is stopped between two committed batches and its time for every due lot is extrapolated at the
rate measured so far (the note says so), which keeps a slow run within minutes. For reference, the ledger
rows written per second are shown against ``pg_insert_rows_s`` from the same run (no target).

    .venv/bin/python bench/sweeps.py [--quick] [--members 1000000] [--lots-per-member 10] [--batch 20000]
                                     [--workers 2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

import common
from palier.clock import SystemClock
from palier.db import Database, make_database
from palier.jobs import sweeps
from palier.ledger.tables import lots, postings
from palier.ledger.verify import verify

TARGET_SECONDS = 60.0
WORKERS = 2  # what `palier jobs run --workers 2` does: one server process per core of this 2-core machine


class OutOfTime(Exception):
    """Raised from the progress callback (after a committed batch) to stop a sweep at its time budget."""


@dataclass
class Swept:
    lots: int = 0
    batches: int = 0
    seconds: float = 0.0
    cut: bool = False  # stopped by the budget before every due lot was swept

    @property
    def rate(self) -> float:
        return self.lots / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return f"{self.lots:,} lots in {self.seconds:.1f} s ({self.batches} batches{', cut' if self.cut else ''})"


def timed_sweep(
    sweep: Callable[..., sweeps.SweepResult],
    db: Database,
    clock: SystemClock,
    batch: int,
    workers: int,
    budget: float,
    what: str,
) -> Swept:
    """Run ``sweep`` to the end, or until ``budget`` seconds have passed (then stopped between batches)."""
    swept = Swept()
    started = time.perf_counter()

    def progress(done: int) -> None:
        swept.lots += done
        swept.batches += 1
        if time.perf_counter() - started > budget:
            raise OutOfTime

    with common.step(f"{what} (batches of {batch:,}, {workers} worker(s), budget {budget:g} s)"):
        try:
            sweep(db, clock, batch_size=batch, progress=progress, workers=workers)
        except OutOfTime:
            swept.cut = True
        swept.seconds = time.perf_counter() - started
    common.say(f"{what}: {swept}, {swept.rate:,.0f} lots/s")
    return swept


def counts(db: object) -> dict[str, int]:
    with db.read() as conn:  # type: ignore[attr-defined]
        by_state = dict(conn.execute(select(lots.c.state, func.count()).group_by(lots.c.state)).all())
        by_state["postings"] = conn.execute(select(func.count()).select_from(postings)).scalar_one()
    return by_state


def seconds_for(lots: int, swept: Swept) -> float:
    return lots / swept.rate if swept.rate else float("inf")


def run(engine: str, options: object, limits: dict[str, float]) -> list[common.Figure]:
    quick = getattr(options, "quick", False)
    members = getattr(options, "members", None) or (20_000 if quick else 1_000_000)
    per_member = getattr(options, "lots_per_member", None) or 10
    batch = getattr(options, "batch", None) or sweeps.BATCH
    workers = getattr(options, "workers", None) or WORKERS
    check = getattr(options, "verify", None)
    check = quick if check is None else check
    budget = getattr(options, "budget", None) or (600.0 if quick else 150.0)
    pg_dsn = getattr(options, "pg", common.DEFAULT_PG)
    plan = common.LotPlan(per_member=per_member, percent=100)
    total_lots = members * per_member
    with common.step(f"sweeps/{engine}: fresh database, {members:,} members, {total_lots:,} lots"):
        url = common.fresh_database(engine, pg_dsn, "sweeps")
        db = make_database(url)
        program = common.bench_program(db)
        common.seed_members(db, program, members, plan=plan, contact=False)
    with common.step(f"sweeps/{engine}: VACUUM ANALYZE + CHECKPOINT"):
        common.vacuum_analyze(db)
    before = counts(db)
    common.say(f"sweeps/{engine}: lots by state before: {before}")
    if check:
        with common.step(f"sweeps/{engine}: palier verify (seeded data)"), db.read() as conn:
            problems = verify(conn, program_id=program.id)
        if problems:
            raise SystemExit(f"seeded ledger unsound: {problems[:5]}")
    clock = SystemClock()
    due = members  # one lot of each kind per member (LotPlan: j = 0 and j = 1)
    with common.autoanalyze(db):
        matured = timed_sweep(sweeps.mature, db, clock, batch, workers, budget, f"sweeps/{engine}: mature")
        expired = timed_sweep(sweeps.expire, db, clock, batch, workers, budget, f"sweeps/{engine}: expire")
    after = counts(db)
    common.say(f"sweeps/{engine}: lots by state after: {after}")
    if check:
        with common.step(f"sweeps/{engine}: palier verify (after the sweeps)"), db.read() as conn:
            problems = verify(conn, program_id=program.id)
        if problems:
            raise SystemExit(f"ledger unsound after the sweeps: {problems[:5]}")
    db.dispose()
    # Seconds to sweep every due lot: measured, or extrapolated at the measured rate when the budget ran out.
    total_s = seconds_for(due, matured) + (seconds_for(due, expired) if per_member > 1 else 0.0)
    ledger_rows = after["postings"] - before["postings"] + matured.lots + expired.lots  # postings + transactions
    note = (
        f"{due:,} lots due to mature and {due:,} to expire of {total_lots:,}; {matured} / {expired}, "
        f"batches of {batch:,}, {workers} worker(s)"
    )
    if matured.cut or expired.cut:
        note += f"; EXTRAPOLATED to all due lots at the measured rates (budget {budget:g} s per sweep)"
    return [
        common.Figure("sweeps", engine, "mature", matured.rate, "lots/s"),
        common.Figure("sweeps", engine, "expire", expired.rate, "lots/s"),
        common.Figure(
            "sweeps",
            engine,
            "ledger rows written",
            ledger_rows / (matured.seconds + expired.seconds),
            "rows/s",
            "pg_insert_rows_s",
            limits.get("pg_insert_rows_s"),
        ),
        common.Figure("sweeps", engine, "mature + expire", total_s, "s", target_max=TARGET_SECONDS, note=note),
    ]


def main() -> None:
    parser = common.arguments(__doc__.splitlines()[0], engines=("pg",))
    parser.add_argument("--members", type=int, default=None, help="seeded members (default 1,000,000)")
    parser.add_argument("--lots-per-member", type=int, default=None, help="lots per member (default 10)")
    parser.add_argument("--batch", type=int, default=None, help=f"lots per sweep batch (default {sweeps.BATCH})")
    parser.add_argument(
        "--workers", type=int, default=None, help=f"threads per sweep, each its own connection (default {WORKERS})"
    )
    parser.add_argument("--verify", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds per sweep before stopping and extrapolating (default 150)"
    )
    options = parser.parse_args()
    limits = common.measure_limits(["pg"], options.pg, options.limit_seconds, skip=options.skip_limits)
    common.print_figures(run("pg", options, limits))


if __name__ == "__main__":
    main()
