"""The rules engine: pure evaluation of a 20-line purchase against 100 active rules, and ingestion with them.

1. **Evaluation** (no I/O): ``CompiledRuleSet.evaluate`` of seeded 20-line baskets against the 100 rules of
   :func:`hundred_rules` (a base rate, category and brand promotions, SKU bundles, campaign multipliers,
   channel, tier, segment and happy-hour rules), median and p99 in microseconds. Target: median ≤ 50 µs.
2. **Ingestion**: purchases per second through the service layer (8 processes, durable) in two programs of
   one database, one with only the base rule and one with the 100 rules, taking turns (three of each, the
   measured seconds split among them) so that a change in the machine's speed during the run weighs on
   both. Target: ≥ 80 % of the base-only rate. The raw ledger limit of the same run is printed beside both.

    .venv/bin/python bench/rules_eval.py [--engine pg|sqlite|both] [--quick] [--evaluations 20000]
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

import common
from palier.activity.models import Line, MemberRef, PurchaseIn
from palier.activity.service import record_purchase
from palier.clock import SystemClock
from palier.db import Database, make_database
from palier.programs.models import Program
from palier.programs.service import get_program
from palier.rules.engine import EventSnapshot, LineSnapshot, MemberContext, compile_rules
from palier.rules.models import RuleSetDocument
from palier.rules.service import apply_rules

SKUS, CATEGORIES, BRANDS = 5000, 200, 120
INGESTION_TARGETS = {"pg": "pg_ledger_tps", "sqlite": "sqlite_ledger_tps_full"}


def hundred_rules(now: datetime) -> RuleSetDocument:
    """A busy program's rule set: 100 purchase rules of every kind, half the campaigns running at ``now``."""
    rng = random.Random(100)
    rules: list[dict[str, object]] = [
        {"id": "base", "name": {"en": "1 point per euro"}, "event": "purchase",
         "effect": {"type": "points_per_amount", "points": 1, "per_amount": 100}},
    ]  # fmt: skip
    campaigns = []
    for n in range(30):
        cats = [f"cat-{rng.randrange(CATEGORIES):03d}" for _ in range(2)]
        rules.append(
            {"id": f"category-{n}", "name": {"en": f"Category bonus {n}"}, "event": "purchase",
             "conditions": {"categories": cats},
             "effect": {"type": "points_per_amount", "points": 1, "per_amount": 200}}
        )  # fmt: skip
    for n in range(20):
        rules.append(
            {"id": f"brand-{n}", "name": {"en": f"Brand week {n}"}, "event": "purchase",
             "conditions": {"brands": [f"brand-{rng.randrange(BRANDS):03d}"]},
             "effect": {"type": "per_item", "points": 5}}
        )  # fmt: skip
    for n in range(15):
        skus = [f"SKU-{rng.randint(1, SKUS)}" for _ in range(10)]
        rules.append(
            {"id": f"bundle-{n}", "name": {"en": f"Bundle {n}"}, "event": "purchase",
             "conditions": {"skus": skus, "min_quantity": 2}, "effect": {"type": "fixed", "points": 50}}
        )  # fmt: skip
    for n in range(10):
        running = n % 2 == 0
        starts = now - timedelta(days=3) if running else now + timedelta(days=30)
        campaigns.append(
            {"id": f"campaign-{n}", "name": {"en": f"Double points {n}"},
             "starts": starts.isoformat(), "ends": (starts + timedelta(days=10)).isoformat()}
        )  # fmt: skip
        rules.append(
            {"id": f"double-{n}", "name": {"en": f"Double points {n}"}, "event": "purchase",
             "campaign": f"campaign-{n}", "conditions": {"categories": [f"cat-{rng.randrange(CATEGORIES):03d}"]},
             "effect": {"type": "multiplier", "factor": "2"}}
        )  # fmt: skip
    for n in range(8):
        rules.append(
            {"id": f"channel-{n}", "name": {"en": f"Online bonus {n}"}, "event": "purchase",
             "conditions": {"channels": [["web", "app", "store", "phone"][n % 4]], "min_spend": 2000 * (n + 1)},
             "effect": {"type": "fixed", "points": 10 * (n + 1)}}
        )  # fmt: skip
    for n in range(6):
        rules.append(
            {"id": f"tier-{n}", "name": {"en": f"Tier bonus {n}"}, "event": "purchase",
             "conditions": {"tiers": [["gold", "silver", "platinum"][n % 3]],
                            "categories": [f"cat-{rng.randrange(CATEGORIES):03d}"]},
             "effect": {"type": "multiplier", "factor": "1.5"}}
        )  # fmt: skip
    for n in range(5):
        rules.append(
            {"id": f"happy-hour-{n}", "name": {"en": f"Happy hour {n}"}, "event": "purchase",
             "conditions": {"weekdays": [["mon", "tue", "wed", "thu", "fri"][n]],
                            "hours": {"start": "16:00", "end": "18:00"}},
             "effect": {"type": "points_per_amount", "points": 1, "per_amount": 100}}
        )  # fmt: skip
    for n in range(3):
        rules.append(
            {"id": f"segment-{n}", "name": {"en": f"Welcome back {n}"}, "event": "purchase",
             "conditions": {"segments": [f"segment-{n}"]}, "effect": {"type": "fixed", "points": 25}}
        )  # fmt: skip
    for n in range(2):
        rules.append(
            {"id": f"cashback-{n}", "name": {"en": f"Cashback {n}"}, "event": "purchase",
             "conditions": {"brands": [f"brand-{rng.randrange(BRANDS):03d}"]},
             "effect": {"type": "cashback_percent", "percent": str(Decimal("2.5"))}}
        )  # fmt: skip
    assert len(rules) == 100
    return RuleSetDocument.model_validate({"campaigns": campaigns, "rules": rules})


def a_line(rng: random.Random) -> tuple[str, int, int, str, str]:
    """(sku, quantity, unit price, category, brand): a SKU's category and brand are fixed by its number."""
    n = rng.randint(1, SKUS)
    category, brand = f"cat-{n % CATEGORIES:03d}", f"brand-{n % BRANDS:03d}"
    return f"SKU-{n}", rng.randint(1, 3), rng.randint(100, 5_000), category, brand


def a_basket(rng: random.Random, lines: int = 20) -> EventSnapshot:
    snapshot = []
    for _ in range(lines):
        sku, quantity, price, category, brand = a_line(rng)
        amount = quantity * price
        snapshot.append(LineSnapshot(sku=sku, quantity=quantity, amount=amount, category=category, brand=brand))
    return EventSnapshot(type="purchase", channel=rng.choice(["web", "store", "app"]), lines=tuple(snapshot))


def shop_hours(rng: random.Random, now: datetime, count: int) -> list[datetime]:
    """``count`` moments spread over the week around ``now`` (from 3 days before), between 08:00 and 20:00 in
    Paris: the figure does not depend on the hour the benchmark runs (happy hours apply on some of them)."""
    paris, start = ZoneInfo("Europe/Paris"), (now - timedelta(days=3)).date()
    moments = []
    for _ in range(count):
        day = start + timedelta(days=rng.randrange(7))
        local = datetime(day.year, day.month, day.day, 8, tzinfo=paris) + timedelta(seconds=rng.randrange(12 * 3600))
        moments.append(local.astimezone(UTC))
    return moments


def evaluation(evaluations: int) -> list[common.Figure]:
    """Median and p99 of one evaluation, in µs, over ``evaluations`` seeded baskets at seeded shop hours."""
    now = datetime.now(UTC)
    rules = compile_rules(hundred_rules(now), version=1, timezone="Europe/Paris", rounding="floor")
    rng = random.Random(7)
    baskets = [a_basket(rng) for _ in range(1000)]
    moments = shop_hours(rng, now, len(baskets))
    members = [MemberContext(), MemberContext(tier="gold", segments=frozenset({"segment-1"}))]
    for basket in baskets[:200]:  # warm-up
        rules.evaluate(basket, members[0], now)
    timings, awards = [], 0
    clock = time.perf_counter_ns
    for n in range(evaluations):
        basket, member, at = baskets[n % len(baskets)], members[n % 2], moments[n % len(moments)]
        started = clock()
        found = rules.evaluate(basket, member, at)
        timings.append((clock() - started) / 1000)
        awards += len(found)
    median = statistics.median(timings)
    each = awards / evaluations
    common.say(f"rules_eval: {evaluations:,} evaluations, median {median:.1f} µs, {each:.1f} awards each")
    note = f"20 lines, 100 rules, {awards / evaluations:.1f} awards per evaluation on average; pure Python, no I/O"
    return [
        common.Figure("rules_eval", "-", "evaluation median", median, "µs", target_max=50, note=note),
        common.Figure("rules_eval", "-", "evaluation p99", common.percentile(timings, 99), "µs"),
    ]


# --- ingestion --------------------------------------------------------------------------------------------


def a_purchase(rng: random.Random, order_id: str, member_id: str, now: datetime) -> PurchaseIn:
    """A receipt of 3 to 6 lines with categories and brands, so the promotions have something to match."""
    lines = []
    for _ in range(rng.randint(3, 6)):
        sku, quantity, price, category, brand = a_line(rng)
        lines.append(Line(sku=sku, quantity=quantity, unit_price=price, category=category, brand=brand))
    return PurchaseIn(
        order_id=order_id,
        member=MemberRef(member_id=member_id),
        channel=rng.choice(["web", "store", "app"]),
        store_id="S042",
        occurred_at=now,
        currency="EUR",
        lines=lines,
    )


def purchases(
    db: Database, index: int, *, program_id: str, stamp: str, members: int, tag: str
) -> Iterator[common.Command]:
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


INGESTION_ROUNDS = 3  # the two take turns: a drift in this shared machine's speed hits both alike
INGESTION_LABELS = ("base rule only", "100 rules")


def ingestion(engine: str, options: object, limits: dict[str, float]) -> list[common.Figure]:
    sizes = common.Concurrency.of(options)
    pg_dsn = getattr(options, "pg", common.DEFAULT_PG)
    with common.step(f"rules_eval/{engine}: fresh database, two programs of {sizes.members:,} members"):
        url = common.fresh_database(engine, pg_dsn, "rules_eval")
        db = make_database(url)
        programs = {label: common.bench_program(db, name=label.capitalize()) for label in INGESTION_LABELS}
        seeded = {label: common.seed_members(db, programs[label], sizes.members) for label in INGESTION_LABELS}
        with db.write() as conn:
            apply_rules(
                conn=conn, clock=SystemClock(), program_id=programs["100 rules"].id,
                document=hundred_rules(datetime.now(UTC)), actor="bench",
            )  # fmt: skip
        common.vacuum_analyze(db)
    db.dispose()
    turn = dataclasses.replace(sizes, seconds=sizes.seconds / INGESTION_ROUNDS)
    done = dict.fromkeys(INGESTION_LABELS, 0)
    for round_ in range(1, INGESTION_ROUNDS + 1):
        for label in INGESTION_LABELS:
            tag = "R" + common.encode(int(time.time() * 1000), 10)
            commands = partial(
                purchases, program_id=programs[label].id, stamp=seeded[label].stamp, members=sizes.members, tag=tag
            )
            what = f"rules_eval/{engine}: purchases ({label}, turn {round_} of {INGESTION_ROUNDS})"
            done[label] += int(common.measure_processes(url, commands, turn, what)["done"])
    base, ruled = (done[label] / sizes.seconds for label in INGESTION_LABELS)
    limit_name = INGESTION_TARGETS[engine]
    note = (
        f"{sizes.workers} processes, two programs of {sizes.members:,} members, 3-6 lines with categories and"
        f" brands; {INGESTION_ROUNDS} turns of {turn.seconds:g} s each, taken in alternation"
    )
    return [
        common.Figure("rules_eval", engine, "purchases/s, base rule only", base, "/s", limit_name,
                      limits.get(limit_name), note=note),
        common.Figure("rules_eval", engine, "purchases/s, 100 rules", ruled, "/s", limit_name,
                      limits.get(limit_name)),
        common.Figure("rules_eval", engine, "100 rules vs base only", ruled, "/s",
                      "base-only rate (same run)", base, target_ratio=0.80),
    ]  # fmt: skip


_evaluated: list[bool] = []  # the pure evaluation needs no database: once per run, with the first engine


def run(engine: str, options: object, limits: dict[str, float]) -> list[common.Figure]:
    figures = []
    if not _evaluated:
        _evaluated.append(True)
        quick = getattr(options, "quick", False)
        figures += evaluation(getattr(options, "evaluations", None) or (5_000 if quick else 20_000))
    return figures + ingestion(engine, options, limits)


if __name__ == "__main__":
    parser = common.arguments(__doc__.splitlines()[0])
    common.Concurrency.add_arguments(parser)
    parser.add_argument("--evaluations", type=int, default=None, help="evaluations timed (default 20,000)")
    parser.add_argument("--only-evaluation", action="store_true", help="time the pure evaluation only (no database)")
    options = parser.parse_args()
    if options.only_evaluation:
        common.print_figures(evaluation(options.evaluations or 20_000))
        raise SystemExit(0)
    engines = common.chosen_engines(options.engine)
    limits = common.measure_limits(engines, options.pg, options.limit_seconds, skip=options.skip_limits)
    common.print_figures([f for engine in engines for f in run(engine, options, limits)])
