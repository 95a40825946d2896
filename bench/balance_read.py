"""Latency of a member's balance (``members.service.balance`` inside ``db.read()``), single process.

1,000,000 members are seeded set-based; 60 % of them hold 4 lots (pending and active, some due, some
not), the rest none, as in a program where many members never come back. Then 10,000 random members
are read one after the other. Target: p99 ≤ 5 ms on each engine.

There is no shared limit for a read; the script measures its own reference in the same run: the same
member's 4 accounts read by primary key through the raw driver, in a transaction of its own (what the
balance would cost if it were only the cached balances).

    .venv/bin/python bench/balance_read.py [--engine pg|sqlite|both] [--quick] [--members 1000000]
"""

from __future__ import annotations

import time

import common
from palier.db import Database, make_database
from palier.ledger.accounts import MEMBER_KINDS
from palier.members.service import balance
from palier.programs.models import Program

TARGET_P99_MS = 5.0
PLAN = common.LotPlan(per_member=4, percent=60)


def palier_balance(db: Database, program: Program, member_id: str) -> float:
    began = time.perf_counter()
    with db.read() as conn:
        balance(conn=conn, program=program, member_id=member_id)
    return time.perf_counter() - began


def raw_balance(db: Database, member_id: str) -> float:
    """The 4 cached balances by primary key, on the raw DB-API connection: the floor for a balance read."""
    ids = [f"{member_id}:{kind}" for kind in MEMBER_KINDS]
    return common.raw_read(db, f"SELECT id, balance FROM accounts WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)


def run(engine: str, options: object, limits: dict[str, float]) -> list[common.Figure]:
    quick = getattr(options, "quick", False)
    members = getattr(options, "members", None) or (20_000 if quick else 1_000_000)
    count = getattr(options, "reads", None) or (1_000 if quick else 10_000)
    budget = getattr(options, "max_seconds", None) or 120.0
    pg_dsn = getattr(options, "pg", common.DEFAULT_PG)
    with common.step(f"balance_read/{engine}: fresh database, {members:,} members, 4 lots for 60 % of them"):
        url = common.fresh_database(engine, pg_dsn, "balance_read")
        db = make_database(url)
        program = common.bench_program(db)
        seeded = common.seed_members(db, program, members, plan=PLAN)
        common.vacuum_analyze(db)
    warm = common.random_members(seeded, min(200, count), seed=1)
    reads = common.random_members(seeded, count, seed=2)
    # Warm-up: connections opened, statements compiled and cached (at most 10 s: a slow read is slow).
    common.timed(warm, lambda m: palier_balance(db, program, m) + raw_balance(db, m), 10.0)
    with common.step(f"balance_read/{engine}: {count:,} raw reads"):
        raw, _ = common.timed(reads, lambda m: raw_balance(db, m), budget)
    with common.step(f"balance_read/{engine}: {count:,} balances"):
        got, complete = common.timed(reads, lambda m: palier_balance(db, program, m), budget)
    db.dispose()
    ours, floor = common.latency_summary(got), common.latency_summary(raw)
    common.say(
        f"balance_read/{engine}: {len(got):,} reads, p50 {ours['p50']:.2f} ms, p99 {ours['p99']:.2f} ms, "
        f"max {ours['max']:.1f} ms; raw p50 {floor['p50']:.2f} ms, p99 {floor['p99']:.2f} ms"
    )
    note = f"{len(got):,} reads over {members:,} members"
    if not complete:
        note += f" (stopped after the {budget:g} s budget, before {count:,})"
    return [
        common.Figure(
            "balance_read", engine, "p50", ours["p50"], "ms", "raw 4-account PK read p50 (this run)", floor["p50"]
        ),
        common.Figure(
            "balance_read",
            engine,
            "p99",
            ours["p99"],
            "ms",
            "raw 4-account PK read p99 (this run)",
            floor["p99"],
            target_max=TARGET_P99_MS,
            note=note,
        ),
    ]


def main() -> None:
    parser = common.arguments(__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=None, help="seeded members (default 1,000,000)")
    parser.add_argument("--reads", type=int, default=None, help="balances read (default 10,000)")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop reading after this (default 120)")
    options = parser.parse_args()
    engines = common.chosen_engines(options.engine)
    # No shared limit applies to a read: the reference is measured by this script itself.
    common.print_figures([f for engine in engines for f in run(engine, options, {})])


if __name__ == "__main__":
    main()
