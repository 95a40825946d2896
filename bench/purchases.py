"""Purchases per second through the service layer, 8 worker processes, durable commits.

Each worker is a process (the GIL would serialise threads) with its own engine, as an API worker has
(``common.run_processes``). A purchase is ``activity.service.record_purchase`` inside ``db.write()``,
retried on deadlocks, serialisation failures and unique-key races exactly as ``Database.run``
retries a command.
Buyers are random among the seeded members. Compared with the raw ledger transaction rate measured by the
shared baseline scripts in the same run: PostgreSQL ``pg_ledger_tps`` (target ≥ 40 %), SQLite
``sqlite_ledger_tps_full`` (target ≥ 50 %).

    .venv/bin/python bench/purchases.py [--engine pg|sqlite|both] [--quick] [--workers 8] [--seconds 10]
"""

from __future__ import annotations

import itertools
import random
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


def run(engine: str, options: object, limits: dict[str, float]) -> list[common.Figure]:
    sizes = common.Concurrency.of(options)
    pg_dsn = getattr(options, "pg", common.DEFAULT_PG)
    with common.step(f"purchases/{engine}: fresh database, {sizes.members:,} members"):
        url = common.fresh_database(engine, pg_dsn, "purchases")
        db = make_database(url)
        program = common.bench_program(db)
        seeded = common.seed_members(db, program, sizes.members)
        common.vacuum_analyze(db)
        db.dispose()
    tag = "R" + common.encode(int(time.time() * 1000), 10)  # letters between digits: no card-like runs
    commands = partial(purchases, program_id=program.id, stamp=seeded.stamp, members=sizes.members, tag=tag)
    got = common.measure_processes(url, commands, sizes, f"purchases/{engine}: purchases")
    note = (
        f"{sizes.workers} processes, {sizes.members:,} members, {got['retries']} retries, {got['errors']} worker errors"
    )
    return common.throughput_figures("purchases", engine, "purchases/s", got, TARGETS[engine], limits, note)


if __name__ == "__main__":
    common.throughput_main(__doc__, run)
