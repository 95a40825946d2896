"""Redemptions per second through the service layer, 8 worker processes, durable commits.

A redemption is ``rewards.service.redeem`` inside ``db.write()``, retried on races exactly as
``Database.run`` retries a command (``common.run_processes``, as purchases.py): the member's
lock, the reward, the checks (member limit, stock, balance), a hold of the points (``available -> held``,
taken from the member's lots soonest-expiring first, an allocation per lot), the coupon, the balances.
Every seeded member holds 4 live active lots of 500..990 points (``LotPlan(spendable=True)``), at least
2,000 points; the reward costs 800 (often two lots), has no stock and no member limit. Worker ``i`` takes
the members ``g ≡ i (mod workers)`` in a random order, so no member redeems twice before all of its share
has once (no member runs out of points). ``palier verify`` runs over the whole ledger at the end.

Before the run, a few redemptions in this process count the statements one redemption sends (SQLAlchemy's
``before_cursor_execute``), printed by kind. Compared with the raw ledger transaction rate measured in the
same run: PostgreSQL ``pg_ledger_tps`` (target ≥ 40 %); SQLite ``sqlite_ledger_tps_full`` for information.

    .venv/bin/python bench/redeem.py [--engine pg|sqlite|both] [--quick] [--workers 8] [--seconds 10]
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from functools import partial

from sqlalchemy import Connection

import common
from palier.clock import SystemClock
from palier.db import Database, make_database
from palier.programs.models import Program
from palier.programs.service import get_program
from palier.rewards.models import RedeemIn
from palier.rewards.service import redeem

TARGETS = {"pg": ("pg_ledger_tps", 0.40), "sqlite": ("sqlite_ledger_tps_full", None)}  # SQLite: information
PLAN = common.LotPlan(per_member=4, percent=100, spendable=True, least=500)
COST = 800
SAMPLE = 20  # redemptions whose statements are counted before the run


def redemptions(
    db: Database, index: int, *, program_id: str, reward_id: str, stamp: str, members: int, workers: int
) -> Iterator[common.Command]:
    """Worker ``index``'s redemptions: its share of the members, shuffled, round and round."""
    clock = SystemClock()
    with db.read() as conn:
        program = get_program(conn=conn, program_id=program_id)
    share = list(range(index + 1, members + 1, workers))
    random.Random(index).shuffle(share)
    data = RedeemIn(reward_id=reward_id)
    while True:
        for g in share:
            yield partial(_redeem, clock=clock, program=program, member_id=common.member_id(stamp, g), data=data)


def _redeem(conn: Connection, *, clock: SystemClock, program: Program, member_id: str, data: RedeemIn) -> None:
    redeem(conn=conn, clock=clock, program=program, member_id=member_id, data=data)


def statements_per_redemption(db: Database, seeded: common.Seeded, reward_id: str) -> tuple[float, Counter[str]]:
    """Statements one redemption sends, averaged over SAMPLE redemptions by the last members (after a warm one)."""
    clock = SystemClock()
    data = RedeemIn(reward_id=reward_id)
    last = [seeded.members - n for n in range(SAMPLE + 1)]
    common.write_retrying(
        db, partial(_redeem, clock=clock, program=seeded.program, member_id=seeded.member_id(last[0]), data=data)
    )
    with common.counting_statements(db) as seen:
        for g in last[1:]:
            command = partial(_redeem, clock=clock, program=seeded.program, member_id=seeded.member_id(g), data=data)
            common.write_retrying(db, command)
    return sum(seen.values()) / SAMPLE, seen


def run(engine: str, options: object, limits: dict[str, float]) -> list[common.Figure]:
    sizes = common.Concurrency.of(options)
    pg_dsn = getattr(options, "pg", common.DEFAULT_PG)
    with common.step(f"redeem/{engine}: fresh database, {sizes.members:,} members with 4 lots each"):
        url = common.fresh_database(engine, pg_dsn, "redeem")
        db = make_database(url)
        program = common.bench_program(db)
        seeded = common.seed_members(db, program, sizes.members, plan=PLAN)
        reward = common.bench_reward(db, program, kind="amount_off", amount=500, cost_points=COST)
        common.vacuum_analyze(db)
    per_redemption, seen = statements_per_redemption(db, seeded, reward.id)
    common.say(f"redeem/{engine}: {per_redemption:g} statements per redemption:")
    for statement, count in seen.most_common():
        common.say(f"  {count / SAMPLE:4g} × {statement[:150]}")
    commands = partial(
        redemptions,
        program_id=program.id,
        reward_id=reward.id,
        stamp=seeded.stamp,
        members=sizes.members,
        workers=sizes.workers,
    )
    got = common.measure_processes(url, commands, sizes, f"redeem/{engine}: redemptions")
    unsound = common.violations(db, program, f"redeem/{engine}")
    db.dispose()
    note = (
        f"{sizes.workers} processes, {sizes.members:,} members with ≥ {PLAN.smallest_balance():,} points, "
        f"reward of {COST} points (no stock, no member limit), {per_redemption:g} statements per redemption, "
        f"{got['retries']} retries, {got['errors']} worker errors, palier verify: {unsound} violations"
    )
    return [
        *common.throughput_figures("redeem", engine, "redemptions/s", got, TARGETS[engine], limits, note),
        # verify must find nothing: a failed invariant fails the benchmark, however fast it ran
        common.Figure("redeem", engine, "verify violations", unsound, "", target_max=0),
    ]


if __name__ == "__main__":
    common.throughput_main(__doc__, run)
