"""Cost per purchase event as the program grows: 10,000, 100,000 and 1,000,000 members (PostgreSQL).

One database (``palier_perf_scale`` by default) grows in steps: members are added with the set-based seed
(``common.seed_members``: the rows ``members.service.enrol`` writes, each member with 2 live lots and
their opening ledger transaction), then ``VACUUM ANALYZE``; at each size the same purchases run through
the service layer, ``activity.service.record_purchase`` in ``db.write()`` retried like the API:

* **throughput**: ``--workers`` processes (4) for ``--seconds`` (8) after a warm-up, buyers drawn
  uniformly from *every* member seeded so far (so the indexes' whole width is touched, not a hot corner);
* **one at a time**: one process, ``--sequential`` (400) purchases back to back: the wall time of one
  event with nothing else running in the benchmark (the median: robust to a busy machine's stalls).

The curve is printed (events/s and ms per event at each size) beside the raw ledger rate ``pg_ledger_tps``
measured in the same run; the figure that decides is the cost at the largest size over the cost at the
smallest: "flat" is at most 1.25× (the machine's noise is ±15 %, bench/README.md).

    .venv/bin/python bench/member_scale.py [--sizes 10000,100000,1000000] [--quick] [--skip-limits]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import common
from palier.clock import SystemClock
from palier.db import Database, make_database
from palier.programs.service import get_program
from purchases import _record, a_purchase

PLAN = common.LotPlan(per_member=2, percent=100, spendable=True, least=100)
FLAT = 1.25  # largest-size cost / smallest-size cost, at most
DEFAULT_DB = "palier_perf_scale"


@dataclass(frozen=True)
class Population:
    """Every member seeded so far: segments of (id stamp, count), members 1..count of each."""

    segments: tuple[tuple[str, int], ...]

    @property
    def size(self) -> int:
        return sum(count for _, count in self.segments)

    def member(self, n: int) -> str:
        """Member number ``n`` (0-based) of the whole population."""
        for stamp, count in self.segments:
            if n < count:
                return common.member_id(stamp, n + 1)
            n -= count
        raise IndexError(n)


def purchases(
    db: Database, index: int, *, program_id: str, population: Population, tag: str
) -> Iterator[common.Command]:
    """Worker ``index``'s purchases, by buyers drawn uniformly from the whole population."""
    clock = SystemClock()
    with db.read() as conn:
        program = get_program(conn=conn, program_id=program_id)
    rng = random.Random(index * 7919 + population.size)
    n = 0
    while True:
        member = population.member(rng.randrange(population.size))
        purchase = a_purchase(rng, f"S{tag}W{index}N{n}", member, clock.now())
        n += 1
        yield partial(_record, clock=clock, program=program, purchase=purchase)


def one_at_a_time(url: str, program_id: str, population: Population, tag: str, count: int) -> dict[str, float]:
    """``count`` purchases back to back in this process (after 20 untimed): latencies."""
    db = make_database(url)
    stream = purchases(db, 99, program_id=program_id, population=population, tag=f"{tag}Q")
    for _ in range(20):
        common.write_retrying(db, next(stream))
    latencies = []
    for _ in range(count):
        command = next(stream)
        began = time.perf_counter()
        common.write_retrying(db, command)
        latencies.append(time.perf_counter() - began)
    db.dispose()
    return common.latency_summary(latencies)


def run(engine: str, options: Any, limits: dict[str, float]) -> list[common.Figure]:
    options = _with_defaults(options)
    sizes = sorted(options.sizes)
    url = common.fresh_postgres(options.pg, options.scale_db)
    db = make_database(url)
    program = common.bench_program(db)
    segments: list[tuple[str, int]] = []
    curve: list[tuple[int, dict[str, float], dict[str, float], float]] = []
    concurrency = common.Concurrency(members=0, seconds=options.seconds, warmup=options.warmup, workers=options.workers)
    for size in sizes:
        grow = size - sum(count for _, count in segments)
        with common.step(f"member_scale: {grow:,} more members (to {size:,}), 2 lots each"):
            seeded = common.seed_members(db, program, grow, plan=PLAN, contact=False)
            segments.append((seeded.stamp, grow))
            common.vacuum_analyze(db)
            time.sleep(1.0)  # two seeds must not share a millisecond stamp
        population = Population(tuple(segments))
        tag = common.encode(int(time.time() * 1000), 10)
        commands = partial(purchases, program_id=program.id, population=population, tag=tag)
        got = common.measure_processes(url, commands, concurrency, f"member_scale/{size:,}: purchases")
        with common.step(f"member_scale/{size:,}: {options.sequential} purchases one at a time"):
            single = one_at_a_time(url, program.id, population, tag, options.sequential)
        common.say(f"  one at a time: p50 {single['p50']:.2f} ms, mean {single['mean']:.2f} ms")
        curve.append((size, got, single, time.time()))
    unsound = common.violations(db, program, "member_scale/pg")
    db.dispose()
    return figures(curve, limits, options, unsound)


def figures(
    curve: list[tuple[int, dict[str, float], dict[str, float], float]],
    limits: dict[str, float],
    options: Any,
    unsound: int,
) -> list[common.Figure]:
    limit = limits.get("pg_ledger_tps")
    out: list[common.Figure] = []
    for size, got, single, _ in curve:
        per_event = 1000 / got["rate"] if got["rate"] else float("nan")
        out += [
            common.Figure(
                "member_scale", "pg", f"purchases/s at {size:,} members", got["rate"], "/s", "pg_ledger_tps", limit,
                note=f"{options.workers} processes, {got['done']:,} purchases, {got['retries']} retries, "
                f"{got['errors']} errors; = {per_event:.2f} ms of the machine per event; "
                f"p50 {got['p50']:.1f} ms, p99 {got['p99']:.1f} ms",
            ),
            common.Figure(
                "member_scale", "pg", f"ms per event at {size:,} (one at a time, p50)", single["p50"], "ms",
                note=f"{options.sequential} purchases back to back: mean {single['mean']:.2f} ms, "
                f"p99 {single['p99']:.2f} ms",
            ),
        ]  # fmt: skip
    if len(curve) >= 2:
        first, last = curve[0], curve[-1]
        throughput_ratio = first[1]["rate"] / last[1]["rate"] if last[1]["rate"] else float("nan")
        single_ratio = last[2]["p50"] / first[2]["p50"] if first[2]["p50"] else float("nan")
        label = f"{last[0]:,} vs {first[0]:,} members"
        out += [
            common.Figure(
                "member_scale", "pg", f"cost per event, {label} (throughput)", throughput_ratio, "×",
                target_max=FLAT, note="events/s at the smallest size ÷ events/s at the largest",
            ),
            common.Figure(
                "member_scale", "pg", f"cost per event, {label} (one at a time)", single_ratio, "×",
                target_max=FLAT, note="median ms per event at the largest size ÷ at the smallest",
            ),
        ]  # fmt: skip
    out.append(common.Figure("member_scale", "pg", "verify violations", unsound, "", target_max=0))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default=None, help="members at each step (default 10000,100000,1000000)")
    parser.add_argument("--workers", type=int, default=None, help="processes of the throughput runs (4)")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per size (8; quick 3)")
    parser.add_argument("--sequential", type=int, default=None, help="purchases one at a time per size (400)")
    parser.add_argument("--scale-db", default=DEFAULT_DB, help=f"database recreated for the run ({DEFAULT_DB})")


def _with_defaults(options: Any) -> argparse.Namespace:
    quick = getattr(options, "quick", False)
    got = argparse.Namespace(**vars(options))
    defaults = {
        "sizes": "2000,10000,50000" if quick else "10000,100000,1000000",
        "workers": 4,
        "seconds": 3.0 if quick else 8.0,
        "sequential": 100 if quick else 400,
        "scale_db": DEFAULT_DB,
    }
    for name, value in defaults.items():
        if getattr(got, name, None) is None:
            setattr(got, name, value)
    if isinstance(got.sizes, str):
        got.sizes = [int(s) for s in got.sizes.split(",") if s.strip()]
    got.warmup = 1.0 if quick else 2.0
    return got


def main() -> None:
    from http_load import limits_dsn

    parser = common.arguments(__doc__.splitlines()[0], engines=("pg",))
    add_arguments(parser)
    options = parser.parse_args()
    limits = common.measure_limits(["pg"], limits_dsn(options), options.limit_seconds, skip=options.skip_limits)
    common.print_figures(run("pg", options, limits))


if __name__ == "__main__":
    main()
