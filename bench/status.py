"""Tier requalification and segment refresh over many members, on PostgreSQL.

A program with the demo's tiers (Bronze / Silver / Gold on calendar-year spend, 3 months' grace) and
segments (top 20 % by revenue, lapsing regulars, online shoppers, RFM champions). Every member has a
status whose period ended an hour ago (so the job judges them all) and 1 to 5 purchases over the past
year, on every channel. Seeded set-based (``common.seed_members`` then one INSERT … SELECT per table).

Measured: ``palier jobs run tiers --workers 3`` (``tiers.service.requalify``; three workers on two cores,
so that one prepares its batch in Python while the database works on the others') and ``palier jobs run
segments`` (``segments.service.refresh_all``), each timed once. Target: ≤ 60 s each at 1,000,000 members.
Beside them, ``pg_insert_rows_s`` from the same run: the time the raw database would take just to write
one row per member.

    .venv/bin/python bench/status.py [--members 1000000] [--workers 3] [--quick]
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

import common
from palier.clock import FrozenClock
from palier.db import make_database
from palier.demo.status import SEGMENTS, TIERS
from palier.segments import service as segments
from palier.segments.models import SegmentIn
from palier.tiers import service as tiers
from palier.tiers.models import TierPolicy

CHANNELS = ("web", "store", "phone", "app")
WORKERS = 3


def seed_activity(db: object, seeded: common.Seeded, now: datetime) -> int:
    """Events and purchases (1 to 5 per member over the past year) and a due status per member."""
    stamp, program = seeded.stamp, seeded.program.id
    member = common._id("mem", stamp, "g")
    event = common._id("evt", stamp, "5 * g + k")
    chunk = 100_000
    total = 0
    for lo in range(1, seeded.members + 1, chunk):
        hi = min(seeded.members, lo + chunk - 1)
        params = {"program": program, "lo": lo, "hi": hi, "now": now}
        with db.engine.begin() as conn:  # type: ignore[attr-defined]
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            series = (
                "FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g "
                "CROSS JOIN generate_series(0, (g * 7919) % 5) k"
            )
            amount = "(1000 + (g * 104729 + k * 7) % 60000)"
            when = "CAST(:now AS timestamptz) - ((g * 31 + k * 97) % 360 + 1) * interval '1 day'"
            channel = "(ARRAY['web','store','phone','app'])[1 + (g + k) % 4]"
            total += conn.execute(
                text(
                    "INSERT INTO events (id, program_id, type, external_id, member_id, status, channel, store_id, "
                    "occurred_at, received_at, payload_hash, body) "
                    f"SELECT {event}, :program, 'purchase', 'B' || g || '-' || k, {member}, 'processed', {channel}, "
                    f"'S042', {when}, {when}, md5(g || '-' || k), "
                    "json_build_object('order_id', 'B' || g || '-' || k, 'lines', json_build_array("
                    f"json_build_object('sku', 'SKU-' || (g % 5000), 'quantity', 1, 'unit_price', {amount}))) "
                    f"{series}"
                ),
                params,
            ).rowcount
            conn.execute(
                text(
                    "INSERT INTO purchases (event_id, program_id, member_id, order_id, label, total, eligible, "
                    "points, refunded, points_returned, points_excused, lines) "
                    f"SELECT {event}, :program, {member}, 'B' || g || '-' || k, 'Purchase #' || g, {amount}, "
                    f"{amount}, 0, 0, 0, 0, '[]' {series}"
                ),
                params,
            )
            conn.execute(
                text(
                    "INSERT INTO member_tiers (member_id, program_id, tier, since, period_start, period_end, "
                    "updated_at) "
                    f"SELECT {member}, :program, (ARRAY['bronze','silver','gold'])[1 + g % 3], "
                    "CAST(:now AS timestamptz) - interval '400 days', CAST(:now AS timestamptz) - interval '365 days', "
                    "CAST(:now AS timestamptz) - interval '1 hour', CAST(:now AS timestamptz) - interval '1 hour' "
                    "FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g"
                ),
                params,
            )
        if seeded.members > chunk:
            common.say(f"  seeded activity for members {lo:,}..{hi:,}")
    return total


def run(engine: str, options: object, limits: dict[str, float]) -> list[common.Figure]:
    quick = getattr(options, "quick", False)
    size = getattr(options, "members", None) or (20_000 if quick else 1_000_000)
    pg_dsn = getattr(options, "pg", common.DEFAULT_PG)
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FrozenClock(now)
    with common.step(f"status/pg: fresh database, {size:,} members with purchases and due statuses"):
        url = common.fresh_database("pg", pg_dsn, "status")
        db = make_database(url)
        program = common.bench_program(db)
        seeded = common.seed_members(db, program, size, contact=False, now=now - timedelta(days=400))
        orders = seed_activity(db, seeded, now)
        with db.write() as conn:
            tiers.set_policy(
                conn=conn, clock=clock, program=program, policy=TierPolicy.model_validate(TIERS), actor="bench"
            )
            for segment in SEGMENTS:
                segments.create_segment(
                    conn=conn, clock=clock, program=program, data=SegmentIn.model_validate(segment), actor="bench"
                )
        common.vacuum_analyze(db)
    common.say(f"status/pg: {orders:,} purchases")
    started = time.perf_counter()
    workers = getattr(options, "workers", None) or WORKERS
    judged = tiers.requalify(db, clock, program_id=program.id, workers=workers)
    requalify_s = time.perf_counter() - started
    common.say(f"status/pg: requalified {judged:,} members in {requalify_s:.1f} s")
    started = time.perf_counter()
    refreshed = segments.refresh_all(db, clock, program_id=program.id)
    refresh_s = time.perf_counter() - started
    common.say(f"status/pg: refreshed {len(refreshed)} segments in {refresh_s:.1f} s: {refreshed}")
    violations = common.violations(db, program, "status")
    db.dispose()
    raw_s = size / limits["pg_insert_rows_s"] if limits.get("pg_insert_rows_s") else None
    note = (
        f"{size:,} members, {orders:,} purchases, {judged:,} judged by {workers} workers; "
        f"verify: {violations} violations"
    )
    figures = []
    for what, seconds, first in (("tier requalification", requalify_s, True), ("segment refresh", refresh_s, False)):
        if size == 1_000_000:
            figures.append(
                common.Figure(
                    "status",
                    "pg",
                    f"{what}, 1,000,000 members",
                    seconds,
                    "s",
                    "one row per member, raw",
                    raw_s,
                    target_max=60,
                    note=note if first else "",
                )
            )
            continue
        figures.append(
            common.Figure(
                "status",
                "pg",
                f"{what}, {size:,} members",
                seconds,
                "s",
                "one row per member, raw",
                raw_s,
                note=note if first else "",
            )
        )
        figures.append(
            common.Figure(
                "status",
                "pg",
                f"{what}, extrapolated to 1,000,000",
                seconds * 1e6 / size,
                "s",
                target_max=60,
                note="linear extrapolation: measure at 1,000,000 to be sure",
            )
        )
    return figures  # fmt: skip


if __name__ == "__main__":
    parser = common.arguments(__doc__.splitlines()[0], engines=("pg",))
    parser.add_argument("--members", type=int, default=None, help="members (default 1,000,000; quick 20,000)")
    parser.add_argument("--workers", type=int, default=WORKERS, help=f"requalification workers (default {WORKERS})")
    options = parser.parse_args()
    limits = common.measure_limits(["pg"], options.pg, options.limit_seconds, skip=options.skip_limits)
    common.print_figures(run("pg", options, limits))
