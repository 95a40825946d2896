"""Bulk import of purchases (``activity.bulk.import_batches``, as ``palier import purchases`` runs it), batches
of 1,000, one transaction each.

The purchases are built (validated ``PurchaseIn`` models, as the CSV reader hands them over) before the
clock starts; the figure is the import itself: purchases committed per second. Half the buyers are named
by member id, half by their loyalty card (so the identity lookup runs too); dates are spread over the
last 30 days, so about half the purchases are still pending and half are available at once. Compared
with the raw bulk-insert ceiling measured in the same run: ``pg_insert_rows_s`` / ``sqlite_insert_rows_s``
(target ≥ 25 %). Each purchase writes 6 rows (event, purchase, ledger transaction, 2 postings, lot) and
moves 2 cached balances.

    .venv/bin/python bench/bulk_import.py [--engine pg|sqlite|both] [--quick] [--purchases 200000]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timedelta

from sqlalchemy import func, select

import common
from palier.activity.bulk import ImportStats, import_batches
from palier.activity.models import Line, MemberRef, PurchaseIn
from palier.activity.tables import events
from palier.clock import SystemClock
from palier.db import make_database
from palier.ledger.verify import verify

TARGET = 0.25
LIMITS = {"pg": "pg_insert_rows_s", "sqlite": "sqlite_insert_rows_s"}
ROWS_PER_PURCHASE = 6


def build_purchases(seeded: common.Seeded, count: int, now: datetime, *, seed: int = 11) -> list[PurchaseIn]:
    rng = random.Random(seed)
    tag = "I" + common.encode(int(time.time() * 1000), 10)
    made = []
    for n in range(count):
        g = rng.randint(1, seeded.members)
        member = MemberRef(member_id=seeded.member_id(g)) if n % 2 else MemberRef(kind="card", value=seeded.card(g))
        lines = [
            Line(sku=f"SKU-{rng.randint(1, 5000)}", quantity=rng.randint(1, 3), unit_price=rng.randint(100, 15_000))
            for _ in range(rng.randint(1, 3))
        ]
        made.append(
            PurchaseIn(
                order_id=f"{tag}N{n}",
                member=member,
                channel=rng.choice(("store", "web")),
                store_id="S042",
                occurred_at=now - timedelta(minutes=rng.randint(1, 30 * 24 * 60)),
                currency="EUR",
                lines=lines,
            )
        )
    return made


def run(engine: str, options: object, limits: dict[str, float]) -> list[common.Figure]:
    quick = getattr(options, "quick", False)
    count = getattr(options, "purchases", None) or (20_000 if quick else 200_000)
    members = getattr(options, "members", None) or (10_000 if quick else 100_000)
    batch = getattr(options, "batch", None) or 1000
    check = getattr(options, "verify", None)
    check = quick if check is None else check
    pg_dsn = getattr(options, "pg", common.DEFAULT_PG)
    clock = SystemClock()
    with common.step(f"bulk_import/{engine}: fresh database, {members:,} members"):
        url = common.fresh_database(engine, pg_dsn, "bulk_import")
        db = make_database(url)
        program = common.bench_program(db)
        seeded = common.seed_members(db, program, members)
        common.vacuum_analyze(db)
    with common.step(f"bulk_import/{engine}: building {count:,} purchases"):
        purchases = build_purchases(seeded, count, clock.now())
    batches = [(purchases[at : at + batch], range(at + 1, at + batch + 1)) for at in range(0, count, batch)]
    done = ImportStats()

    def progress(stats: ImportStats) -> None:
        done.add(stats)
        if done.imported % (20 * batch) == 0:
            common.say(f"  {done.imported:,} imported, {done.imported / (time.perf_counter() - started):,.0f}/s")

    with common.step(f"bulk_import/{engine}: importing {count:,} purchases in batches of {batch:,}"):
        started = time.perf_counter()
        with common.autoanalyze(db):
            total = import_batches(
                db=db,
                clock=clock,
                program_id=program.id,
                batches=batches,
                card_key=common.CARD_KEY,
                after_batch=progress,
            )
        seconds = time.perf_counter() - started
    with db.read() as conn:
        stored = conn.execute(select(func.count()).select_from(events)).scalar_one()
    rate = total.imported / seconds
    common.say(
        f"bulk_import/{engine}: {total.imported:,} imported, {len(total.rejected)} rejected, {stored:,} events "
        f"stored, {seconds:.1f} s, {rate:,.0f} purchases/s, {rate * ROWS_PER_PURCHASE:,.0f} rows/s"
    )
    if total.rejected:
        common.say(f"  first problem: {total.rejected[0]}")
    if check:
        with common.step(f"bulk_import/{engine}: palier verify"), db.read() as conn:
            problems = verify(conn, program_id=program.id)
        if problems:
            raise SystemExit(f"ledger unsound after the import: {problems[:5]}")
    db.dispose()
    limit_name = LIMITS[engine]
    return [
        common.Figure(
            "bulk_import",
            engine,
            "purchases/s",
            rate,
            "/s",
            limit_name,
            limits.get(limit_name),
            target_ratio=TARGET,
            note=f"{total.imported:,} of {count:,} imported in {seconds:.1f} s, batches of {batch:,}, "
            f"{len(total.rejected)} rejected; {ROWS_PER_PURCHASE} rows each = {rate * ROWS_PER_PURCHASE:,.0f} rows/s",
        )
    ]


def main() -> None:
    parser = common.arguments(__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=None, help="purchases to import (default 200,000)")
    parser.add_argument("--members", type=int, default=None, help="seeded members (default 100,000)")
    parser.add_argument("--batch", type=int, default=None, help="purchases per transaction (default 1,000)")
    parser.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run palier verify after (default: with --quick)",
    )
    options = parser.parse_args()
    engines = common.chosen_engines(options.engine)
    limits = common.measure_limits(engines, options.pg, options.limit_seconds, skip=options.skip_limits)
    common.print_figures([f for engine in engines for f in run(engine, options, limits)])


if __name__ == "__main__":
    main()
