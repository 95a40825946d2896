"""Latency of a coupon check at the till (``rewards.service.validate_coupon`` in ``db.read()``), one process.

1,000,000 coupons over 100,000 members (10 each) and 5 rewards (amount off, percent off with a cap,
free product, free shipping, gift; one with a minimum order) are loaded in bulk: codes drawn in Python
with codes.py's check character, then COPY on PostgreSQL, one ``executemany`` on SQLite. 85 % are
issued, 10 % used, 3 % expired, 2 % cancelled. Then 10,000 random *issued* coupons are validated one
after the other, each with the member at the till and a cart of three lines and shipping (the cart
holds the free product, and reaches the minimum order), so every check passes and computes a discount.
Target: p99 ≤ 5 ms on each engine.

The coupons are rows only: the seeded members hold no points, and the redeemed coupons no hold or
ledger rows (a validation reads neither; ``palier verify`` is not run). There is no shared limit for a
read; the script measures its own reference in the same run: the same lookup by code (coupon joined to
its reward) on the raw driver connection, in a transaction of its own.

    .venv/bin/python bench/coupon_validate.py [--engine pg|sqlite|both] [--quick] [--coupons 1000000]
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import common
from palier.activity.models import Line
from palier.clock import SystemClock
from palier.db import Database, make_database
from palier.programs.models import Program
from palier.rewards import codes
from palier.rewards.models import CouponCheck, Reward
from palier.rewards.service import validate_coupon

TARGET_P99_MS = 5.0
PER_MEMBER = 10
STATES = [("issued", 85), ("used", 10), ("expired", 3), ("cancelled", 2)]  # per 100 coupons
COLUMNS = ("id", "program_id", "member_id", "reward_id", "code", "state", "points", "source", "issued_at", "expires_at")
CART = [
    Line(sku="SKU-COFFEE", quantity=1, unit_price=350),
    Line(sku="SKU-1042", quantity=2, unit_price=2_490),
    Line(sku="SKU-77", quantity=1, unit_price=1_299),
]
RAW_LOOKUP = (
    "SELECT c.*, r.kind, r.title FROM coupons c JOIN rewards r ON r.id = c.reward_id "
    "WHERE c.code = %s AND c.program_id = %s"
)


def the_rewards(db: Database, program: Program) -> list[Reward]:
    kinds: list[dict[str, object]] = [
        {"kind": "amount_off", "amount": 500, "cost_points": 500},
        {"kind": "percent_off", "percent": 15, "max_discount": 2_000, "cost_points": 900, "min_order": 3_000},
        {"kind": "free_product", "sku": "SKU-COFFEE", "cost_points": 300},
        {"kind": "free_shipping", "cost_points": 200},
        {"kind": "gift", "cost_points": 1_500},
    ]
    return [common.bench_reward(db, program, **k) for k in kinds]


def unique_codes(count: int, seed: int = 11) -> list[str]:
    """``count`` distinct well-formed codes (10 random characters and the check), reproducibly."""
    rng = random.Random(seed)
    found: dict[str, None] = {}
    while len(found) < count:
        body = "".join(rng.choices(codes.ALPHABET, k=codes.BODY))
        found[body + codes.check_character(body)] = None
    return list(found)


def coupon_rows(
    seeded: common.Seeded, rewards: list[Reward], all_codes: list[str], now: datetime
) -> Iterator[tuple[object, ...]]:
    """Coupon ``n`` belongs to member ``1 + n % members`` and reward ``n % len(rewards)``; its state by ``n % 100``."""
    states = [state for state, share in STATES for _ in range(share)]
    for n, code in enumerate(all_codes):
        reward = rewards[n % len(rewards)]
        state = states[n % 100]
        issued = now - timedelta(minutes=n % 50_000)
        expires = issued + timedelta(days=-1 if state == "expired" else reward.valid_days)
        member = seeded.member_id(1 + n % seeded.members)
        coupon_id = f"cpn_{seeded.stamp}{common.encode(n, 16)}"
        yield (
            coupon_id,
            seeded.program.id,
            member,
            reward.id,
            code,
            state,
            reward.cost_points,
            "redeem",
            issued,
            expires,
        )


def load_coupons(db: Database, rows: Iterator[tuple[object, ...]]) -> None:
    """COPY on PostgreSQL (secondary indexes dropped first, rebuilt after); one executemany on SQLite."""
    if db.is_sqlite:
        with db.engine.begin() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            marks = ", ".join("?" * len(COLUMNS))
            raw.cursor().executemany(
                f"INSERT INTO coupons ({', '.join(COLUMNS)}) VALUES ({marks})",
                ((*r[:8], _sqlite_time(r[8]), _sqlite_time(r[9])) for r in rows),
            )
        return
    rebuild = common.drop_secondary_indexes(db, ["coupons"])
    with db.engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        with raw.cursor().copy(f"COPY coupons ({', '.join(COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in rows:
                copy.write_row(row)
    common.rebuild_indexes(db, rebuild)


def _sqlite_time(value: object) -> str:
    assert isinstance(value, datetime)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # as palier.db.metadata.Timestamp stores it


def palier_validate(db: Database, program: Program, clock: SystemClock, code: str, member_id: str) -> float:
    check = CouponCheck(channel="store", member_id=member_id, store_id="S042", lines=CART, shipping=490)
    began = time.perf_counter()
    with db.read() as conn:
        validate_coupon(conn=conn, clock=clock, program=program, code=code, check=check)
    return time.perf_counter() - began


def run(engine: str, options: object, limits: dict[str, float]) -> list[common.Figure]:
    quick = getattr(options, "quick", False)
    count = getattr(options, "coupons", None) or (50_000 if quick else 1_000_000)
    reads = getattr(options, "reads", None) or (1_000 if quick else 10_000)
    budget = getattr(options, "max_seconds", None) or 120.0
    pg_dsn = getattr(options, "pg", common.DEFAULT_PG)
    members = max(1, count // PER_MEMBER)
    with common.step(f"coupon_validate/{engine}: fresh database, {members:,} members, {count:,} coupons"):
        url = common.fresh_database(engine, pg_dsn, "coupon_validate")
        db = make_database(url)
        program = common.bench_program(db)
        seeded = common.seed_members(db, program, members, contact=False)
        rewards = the_rewards(db, program)
        with common.step(f"coupon_validate/{engine}: {count:,} codes"):
            all_codes = unique_codes(count)
        now = datetime.now(UTC)
        with common.step(f"coupon_validate/{engine}: loading {count:,} coupons"):
            load_coupons(db, coupon_rows(seeded, rewards, all_codes, now))
        common.vacuum_analyze(db)
    # Issued coupons, with their member: coupon n is issued when n % 100 < 85 (see STATES).
    rng = random.Random(2)
    issued = [n for n in (rng.randrange(count) for _ in range(3 * reads)) if n % 100 < STATES[0][1]][: reads + 200]
    picks = [(all_codes[n], seeded.member_id(1 + n % members)) for n in issued]
    warm, measured = picks[:200], picks[200:]
    clock = SystemClock()

    def palier(pick: tuple[str, str]) -> float:
        return palier_validate(db, program, clock, *pick)

    def raw(pick: tuple[str, str]) -> float:
        return common.raw_read(db, RAW_LOOKUP, [pick[0], program.id])

    # Warm-up: connections opened, statements compiled and cached (at most 10 s: a slow read is slow).
    common.timed(warm, lambda p: palier(p) + raw(p), 10.0)
    with common.step(f"coupon_validate/{engine}: {len(measured):,} raw lookups"):
        floor_s, _ = common.timed(measured, raw, budget)
    with common.step(f"coupon_validate/{engine}: {len(measured):,} validations"):
        got_s, complete = common.timed(measured, palier, budget)
    db.dispose()
    ours, floor = common.latency_summary(got_s), common.latency_summary(floor_s)
    common.say(
        f"coupon_validate/{engine}: {len(got_s):,} validations, p50 {ours['p50']:.2f} ms, p99 {ours['p99']:.2f} ms, "
        f"max {ours['max']:.1f} ms; raw p50 {floor['p50']:.2f} ms, p99 {floor['p99']:.2f} ms"
    )
    note = (
        f"{len(got_s):,} validations of random issued coupons among {count:,} ({members:,} members, "
        f"{len(rewards)} rewards), with a 3-line cart; coupons seeded as rows only (no holds or ledger rows)"
    )
    if not complete:
        note += f" (stopped after the {budget:g} s budget, before {len(measured):,})"
    floor_name = "raw lookup by code"
    return [
        common.Figure(
            "coupon_validate", engine, "p50", ours["p50"], "ms", f"{floor_name} p50 (this run)", floor["p50"]
        ),
        common.Figure(
            "coupon_validate",
            engine,
            "p99",
            ours["p99"],
            "ms",
            f"{floor_name} p99 (this run)",
            floor["p99"],
            target_max=TARGET_P99_MS,
            note=note,
        ),
    ]


def main() -> None:
    parser = common.arguments(__doc__.splitlines()[0])
    parser.add_argument("--coupons", type=int, default=None, help="seeded coupons (default 1,000,000)")
    parser.add_argument("--reads", type=int, default=None, help="coupons validated (default 10,000)")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop validating after this (default 120)")
    options = parser.parse_args()
    engines = common.chosen_engines(options.engine)
    # No shared limit applies to a read: the reference is measured by this script itself.
    common.print_figures([f for engine in engines for f in run(engine, options, {})])


if __name__ == "__main__":
    main()
