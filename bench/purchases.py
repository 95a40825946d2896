"""Purchases per second through the service layer, 8 worker processes, durable commits.

Each worker is a process (the GIL would serialise threads) with its own engine, as an API worker has.
A purchase is ``activity.service.record_purchase`` inside ``db.write()``, retried on deadlocks,
serialisation failures and unique-key races exactly as ``palier.api.commands.run`` retries a command.
Buyers are random among the seeded members. Compared with the raw ledger transaction rate measured by the
shared baseline scripts in the same run: PostgreSQL ``pg_ledger_tps`` (target ≥ 40 %), SQLite
``sqlite_ledger_tps_full`` (target ≥ 50 %).

    .venv/bin/python bench/purchases.py [--engine pg|sqlite|both] [--quick] [--workers 8] [--seconds 10]
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import DBAPIError

import common
from palier.activity.models import Line, MemberRef, PurchaseIn
from palier.activity.service import record_purchase
from palier.api.commands import RETRIES, _retryable  # the API's own retry rule, so the bench retries alike
from palier.clock import SystemClock
from palier.db import Database, make_database
from palier.programs.models import Program
from palier.programs.service import get_program

TARGETS = {"pg": ("pg_ledger_tps", 0.40), "sqlite": ("sqlite_ledger_tps_full", 0.50)}


@dataclass
class WorkerResult:
    latencies: list[float] = field(default_factory=list)  # seconds, purchases completed inside the window
    retries: int = 0
    errors: list[str] = field(default_factory=list)


def a_purchase(rng: random.Random, order_id: str, member_id: str, now: datetime) -> PurchaseIn:
    """A till receipt: 1 to 3 lines of 1.00 to 150.00 EUR."""
    lines = [
        Line(sku=f"SKU-{rng.randint(1, 5000)}", quantity=rng.randint(1, 3), unit_price=rng.randint(100, 15_000))
        for _ in range(rng.randint(1, 3))
    ]
    return PurchaseIn(
        order_id=order_id,
        member=MemberRef(member_id=member_id),
        channel="store",
        store_id="S042",
        store_name="Lyon Part-Dieu",
        occurred_at=now,
        currency="EUR",
        lines=lines,
    )


def record(db: Database, program: Program, purchase: PurchaseIn, clock: SystemClock) -> int:
    """One purchase as the API's command runner does it; returns how many times it was retried."""
    for attempt in range(RETRIES):
        try:
            with db.write() as conn:
                record_purchase(conn=conn, clock=clock, program=program, purchase=purchase, card_key=common.CARD_KEY)
            return attempt
        except DBAPIError as exc:
            if attempt == RETRIES - 1 or not _retryable(exc):
                raise
            time.sleep(0.002 * (attempt + 1))
    raise AssertionError("unreachable")


def worker(
    index: int,
    url: str,
    program_id: str,
    stamp: str,
    members: int,
    tag: str,
    ready: mp.synchronize.Barrier,  # type: ignore[name-defined]
    window: mp.sharedctypes.Synchronized,  # type: ignore[name-defined]
    seconds: float,
    results: mp.Queue,  # type: ignore[type-arg]
) -> None:
    db = make_database(url)
    clock = SystemClock()
    with db.read() as conn:
        program = get_program(conn=conn, program_id=program_id)
    rng = random.Random(index)
    result = WorkerResult()
    ready.wait()
    while window.value == 0:
        time.sleep(0.001)
    start = window.value
    end = start + seconds
    n = 0
    try:
        while True:
            member = common.member_id(stamp, rng.randint(1, members))
            purchase = a_purchase(rng, f"{tag}W{index}N{n}", member, clock.now())
            n += 1
            began = time.time()
            if began >= end:
                break
            result.retries += record(db, program, purchase, clock)
            finished = time.time()
            if began >= start and finished <= end:
                result.latencies.append(finished - began)
    except Exception as exc:  # reported by the parent; the other workers go on
        result.errors.append(f"{type(exc).__name__}: {exc}"[:500])
    finally:
        db.dispose()
    results.put((index, result))


def measure(url: str, seeded: common.Seeded, *, workers: int, seconds: float, warmup: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(workers + 1)
    window = ctx.Value("d", 0.0)
    results = ctx.Queue()
    tag = "R" + common.encode(int(time.time() * 1000), 10)  # letters between digits: no card-like runs
    procs = [
        ctx.Process(
            target=worker,
            args=(i, url, seeded.program.id, seeded.stamp, seeded.members, tag, ready, window, seconds, results),
        )
        for i in range(workers)
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
        common.say(f"worker error: {error}")
    summary = common.latency_summary(latencies)
    return {
        "rate": len(latencies) / seconds,
        "purchases": len(latencies),
        "retries": sum(r.retries for _, r in gathered),
        "errors": len(errors),
        **summary,
    }


def run(engine: str, options: object, limits: dict[str, float]) -> list[common.Figure]:
    quick = getattr(options, "quick", False)
    members = getattr(options, "members", None) or (10_000 if quick else 100_000)
    seconds = getattr(options, "seconds", None) or (3.0 if quick else 10.0)
    warmup = 1.0 if quick else 3.0
    workers = getattr(options, "workers", None) or 8
    pg_dsn = getattr(options, "pg", common.DEFAULT_PG)
    with common.step(f"purchases/{engine}: fresh database, {members:,} members"):
        url = common.fresh_database(engine, pg_dsn, "purchases")
        db = make_database(url)
        program = common.bench_program(db)
        seeded = common.seed_members(db, program, members)
        common.vacuum_analyze(db)
        db.dispose()
    load_before = os.getloadavg()[0]
    with common.step(f"purchases/{engine}: {workers} processes, {warmup:g} s warm-up + {seconds:g} s"):
        got = measure(url, seeded, workers=workers, seconds=seconds, warmup=warmup)
    load_after = os.getloadavg()[0]
    common.say(
        f"purchases/{engine}: {got['purchases']:,} purchases, {got['rate']:,.0f}/s, p50 {got['p50']:.1f} ms, "
        f"p99 {got['p99']:.1f} ms, max {got['max']:.0f} ms, {got['retries']} retries, {got['errors']} errors"
    )
    limit_name, target = TARGETS[engine]
    note = (
        f"{workers} processes, {members:,} members, {got['retries']} retries, {got['errors']} worker errors, "
        f"1-min load average {load_before:.1f} before, {load_after:.1f} after"
    )
    return [
        common.Figure(
            "purchases",
            engine,
            "purchases/s",
            got["rate"],
            "/s",
            limit_name,
            limits.get(limit_name),
            target_ratio=target,
            note=note,
        ),
        common.Figure("purchases", engine, "latency p50", got["p50"], "ms"),
        common.Figure("purchases", engine, "latency p99", got["p99"], "ms"),
    ]


def main() -> None:
    parser = common.arguments(__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default 8)")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds (default 10; quick 3)")
    parser.add_argument("--members", type=int, default=None, help="seeded members (default 100,000)")
    options = parser.parse_args()
    engines = common.chosen_engines(options.engine)
    limits = common.measure_limits(engines, options.pg, options.limit_seconds, skip=options.skip_limits)
    figures = [f for engine in engines for f in run(engine, options, limits)]
    common.print_figures(figures)
    sys.exit(0)


if __name__ == "__main__":
    main()
