"""Purchases per second through the service layer, 8 worker processes, durable commits.

Each worker is a process (the GIL would serialise threads) with its own engine, as an API worker has
(``common.run_processes``). A purchase is ``activity.service.record_purchase`` inside ``db.write()``,
retried on deadlocks, serialisation failures and unique-key races exactly as ``palier.api.commands.run``
retries a command.
Buyers are random among the seeded members. Compared with the raw ledger transaction rate measured by the
shared baseline scripts in the same run: PostgreSQL ``pg_ledger_tps`` (target ≥ 40 %), SQLite
``sqlite_ledger_tps_full`` (target ≥ 50 %).

    .venv/bin/python bench/purchases.py [--engine pg|sqlite|both] [--quick] [--workers 8] [--seconds 10]
"""

from __future__ import annotations

import itertools
import random
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from functools import partial

from sqlalchemy import Connection

import common
from palier.activity.models import Line, MemberRef, PurchaseIn
from palier.activity.service import record_purchase
from palier.clock import SystemClock
from palier.db import Database, make_database
from palier.programs.models import Program
from palier.programs.service import get_program

TARGETS = {"pg": ("pg_ledger_tps", 0.40), "sqlite": ("sqlite_ledger_tps_full", 0.50)}


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


def purchases(
    db: Database, index: int, *, program_id: str, stamp: str, members: int, tag: str
) -> Iterator[common.Command]:
    """Worker ``index``'s purchases, by random buyers among the seeded members (see common.run_processes)."""
    clock = SystemClock()
    with db.read() as conn:
        program = get_program(conn=conn, program_id=program_id)
    rng = random.Random(index)
    for n in itertools.count():
        member = common.member_id(stamp, rng.randint(1, members))
        purchase = a_purchase(rng, f"{tag}W{index}N{n}", member, clock.now())
        yield partial(_record, clock=clock, program=program, purchase=purchase)


def _record(conn: Connection, *, clock: SystemClock, program: Program, purchase: PurchaseIn) -> None:
    record_purchase(conn=conn, clock=clock, program=program, purchase=purchase, card_key=common.CARD_KEY)


def measure(url: str, seeded: common.Seeded, *, workers: int, seconds: float, warmup: float) -> dict[str, float]:
    tag = "R" + common.encode(int(time.time() * 1000), 10)  # letters between digits: no card-like runs
    commands = partial(purchases, program_id=seeded.program.id, stamp=seeded.stamp, members=seeded.members, tag=tag)
    got = common.run_processes(url, commands, workers=workers, seconds=seconds, warmup=warmup)
    return {**got, "purchases": got["done"]}


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
    with common.step(f"purchases/{engine}: {workers} processes, {warmup:g} s warm-up + {seconds:g} s"):
        got = measure(url, seeded, workers=workers, seconds=seconds, warmup=warmup)
    common.say(
        f"purchases/{engine}: {got['purchases']:,} purchases, {got['rate']:,.0f}/s, p50 {got['p50']:.1f} ms, "
        f"p99 {got['p99']:.1f} ms, max {got['max']:.0f} ms, {got['retries']} retries, {got['errors']} errors"
    )
    limit_name, target = TARGETS[engine]
    note = f"{workers} processes, {members:,} members, {got['retries']} retries, {got['errors']} worker errors"
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
