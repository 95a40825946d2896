"""HTTP load on ``palier serve`` over PostgreSQL: purchases/s and redemptions/s, and p50/p99 at 70 % of saturation.

The server is the real command, ``palier serve --workers N`` (uvicorn, ``--workers 2`` by default: one per
core), in its own process tree, on a fresh database (``palier_perf_bench`` by default) seeded like a live
program: many members, each with four live lots of 500..990 points (``common.LotPlan(spendable=True)``), a
reward of 800 points, a ``pos`` API key. The load comes from a second process (``http_client.py``: asyncio
on keep-alive connections, prepared requests) and every request is what an integrator sends:

* ``POST /v1/events/purchases`` — a till receipt of 1 to 3 lines by a random member, with an
  ``Idempotency-Key``;
* ``POST /v1/members/{id}/redemptions`` — the 800-point reward, members in a shuffled order so nobody runs
  out of points, with an ``Idempotency-Key``.

For each: **saturation** is the best throughput of a few closed-loop runs (4, 16 and 48 connections
sending back to back); then an **open-loop** run offers 70 % of it at a steady rate and reports p50 / p99,
each latency counted from the moment the request was due (a queue in the server shows as latency).

Every figure is printed beside the raw database's ledger rate ``pg_ledger_tps`` measured in the same run
(``../shared/bench/pg_limits.sh``, in a database of its own, ``palier_perf_limits`` by default) and the
ratio, and against the issue's targets: ≥ 1,000/s each with p99 ≤ 50 ms at 70 % (the goal is 2,000/s).
It also prints where the CPU went during each saturated run (server processes, PostgreSQL, the load
generator, and each server worker's share of the server's: with one listening socket shared by the
workers, keep-alive connections could pile up on one of them), from ``/proc``: on 2 shared cores that is what decides
the figure. ``palier verify`` runs at the end.

    .venv/bin/python bench/http_load.py [--quick] [--members 100000] [--server-workers 2] [--seconds 10]
    .venv/bin/python bench/http_load.py --profile /tmp/serve.txt   # py-spy on the server during saturation
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common
from http_client import LoadResult, run_in_process
from palier.clock import SystemClock
from palier.db import make_database
from palier.programs.models import KeyCreate
from palier.programs.service import create_key

PLAN = common.LotPlan(per_member=4, percent=100, spendable=True, least=500)
COST = 800
TARGET_RATE, GOAL_RATE, TARGET_P99 = 1000.0, 2000.0, 50.0
LOAD_SHARE = 0.70
DEFAULT_LIMITS_DB = os.environ.get("PALIER_LIMITS_DB", "palier_perf_limits")
DEFAULT_HTTP_DB = os.environ.get("PALIER_HTTP_BENCH_DB", "palier_perf_bench")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- what the load generator sends ---------------------------------------------------------------------------


@dataclass
class Purchases:
    """Purchase ``n``: order ``H<tag>R<run>N<n>`` (letters between digits: never card-like), a random buyer."""

    stamp: str
    members: int
    tag: str
    run: int
    when: str

    def __call__(self, n: int) -> tuple[str, dict[str, Any], str]:
        rng = random.Random(self.run * 1_000_003 + n)
        order = f"H{self.tag}R{self.run}N{n}"
        body = {
            "order_id": order,
            "member": {"member_id": common.member_id(self.stamp, rng.randint(1, self.members))},
            "channel": "store",
            "store_id": "S042",
            "occurred_at": self.when,
            "currency": "EUR",
            "lines": [self.line(rng) for _ in range(rng.randint(1, 3))],
        }
        return "/v1/events/purchases", body, f"k-{order}"

    @staticmethod
    def line(rng: random.Random) -> dict[str, Any]:
        """1 to 3 units of 1.00 to 150.00 EUR (as bench/purchases.py)."""
        sku, quantity = f"SKU-{rng.randint(1, 5000)}", rng.randint(1, 3)
        return {"sku": sku, "quantity": quantity, "unit_price": rng.randint(100, 15_000)}


@dataclass
class Redemptions:
    """Redemption ``n``: member ``order[(offset + n) % members]`` (each member at most twice: ≥ 2,000 points)."""

    stamp: str
    order: list[int]
    reward_id: str
    tag: str
    offset: int

    def __call__(self, n: int) -> tuple[str, dict[str, Any], str]:
        position = self.offset + n
        if position >= 2 * len(self.order):
            raise RuntimeError("every member has redeemed twice: seed more members (--members)")
        member = common.member_id(self.stamp, self.order[position % len(self.order)])
        return f"/v1/members/{member}/redemptions", {"reward_id": self.reward_id}, f"r-{self.tag}-{position}"


# --- the server and the CPU it uses ---------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found += _children(int(entry.name))
    return found


def _postgres_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
    return found


def _ticks(pids: list[int]) -> dict[int, int]:
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            found[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    return found


def _is_resource_tracker(pid: int) -> bool:
    """multiprocessing's helper beside uvicorn's workers (it serves no request)."""
    with contextlib.suppress(OSError):
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


def _cpu_between(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds used between two readings by the processes alive at both (other sessions come and go)."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys()) / CLK_TCK


@contextlib.contextmanager
def serving(url: str, workers: int, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``palier serve`` (the real command) until the block ends."""
    # Throughput, not abuse: the load redeems and signs in far faster than the rate limits allow a till.
    env = {
        **os.environ,
        "PALIER_DATABASE_URL": url,
        "PALIER_CARD_KEY": common.CARD_KEY.decode(),
        "PALIER_SECRET_KEY": "palier-bench-secret-key",
        "PALIER_RATE_LIMITS": "off",
    }
    command = [sys.executable, "-m", "palier.cli.main", "serve", "--port", str(port), "--workers", str(workers)]
    command += ["--no-access-log"]
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"palier serve exited ({server.returncode}): {log.read_text()[-2000:]}")
            said = log.read_text()  # once every worker answers (cli/workers.py; uvicorn's line for one worker)
            if "Serving on http://" in said or "Uvicorn running on http://" in said:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"palier serve did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield server
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@dataclass
class Phase:
    result: LoadResult
    server_cpu: float
    postgres_cpu: float
    label: str
    worker_shares: list[float]  # each server worker's part of the server's CPU: uneven when connections are

    def summary(self) -> dict[str, float]:
        return common.latency_summary(self.result.latencies)

    def describe(self) -> str:
        r, s = self.result, self.summary()
        per = 1000 / r.done if r.done else float("nan")
        return (
            f"{self.label}: {r.rate:,.0f}/s, p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms, {r.failed} failed; "
            f"CPU ms per request: server {self.server_cpu * per:.2f}, PostgreSQL {self.postgres_cpu * per:.2f}, "
            f"load generator {r.client_cpu * per:.2f}; server workers' shares "
            + " / ".join(f"{share:.0%}" for share in self.worker_shares)
        )


def measure(server: subprocess.Popen[bytes], spec: dict[str, Any], make: Any, label: str) -> Phase:
    pids, pg = _children(server.pid), _postgres_pids()
    server0, pg0 = _ticks(pids), _ticks(pg)
    result = run_in_process(spec, make)
    # PostgreSQL: every server process, the server's own backends and the WAL writer, checkpointer… (other
    # databases' sessions too, when other work runs: the note says the load).
    server1 = _ticks(pids)
    workers = [pid for pid in server0 if pid in server1 and pid != server.pid and not _is_resource_tracker(pid)]
    used = {pid: server1[pid] - server0[pid] for pid in workers}
    shares = sorted((ticks / (sum(used.values()) or 1) for ticks in used.values()), reverse=True)
    phase = Phase(result, _cpu_between(server0, server1), _cpu_between(pg0, _ticks(_postgres_pids())), label, shares)
    common.say("  " + phase.describe())
    for error in result.sample_errors:
        common.say(f"    failed: {error}")
    return phase


# --- the benchmark ------------------------------------------------------------------------------------------


def prepare(options: argparse.Namespace) -> tuple[str, str, str, common.Seeded]:
    with common.step(f"http_load: fresh database {options.bench_db}, {options.members:,} members with 4 lots each"):
        url = common.fresh_postgres(options.pg, options.bench_db)
        db = make_database(url)
        program = common.bench_program(db)
        seeded = common.seed_members(db, program, options.members, plan=PLAN)
        reward = common.bench_reward(db, program, kind="amount_off", amount=500, cost_points=COST)
        with db.write() as conn:
            key = create_key(
                conn=conn, clock=SystemClock(), program_id=program.id, spec=KeyCreate(name="till", scopes=["pos"]),
                actor="bench",
            )  # fmt: skip
        common.vacuum_analyze(db)
        db.dispose()
    return url, key.secret, reward.id, seeded


def run(engine: str, options: Any, limits: dict[str, float]) -> list[common.Figure]:
    options = _with_defaults(options)
    url, token, reward_id, seeded = prepare(options)
    port = common_free_port()
    log = Path(f"/tmp/palier-http-load-{os.getpid()}.log")
    tag = common.encode(int(time.time() * 1000), 10)
    when = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    order = list(range(1, seeded.members + 1))
    random.Random(11).shuffle(order)
    base = {"host": "127.0.0.1", "port": port, "token": token}
    phases: dict[str, tuple[float, Phase, Phase]] = {}
    makers = Makers(seeded, order, reward_id, tag, when)
    db = make_database(url)
    with serving(url, options.server_workers, port, log) as server, common.autoanalyze(db, every=common.ANALYZE_EVERY):
        for kind in ("purchases", "redemptions"):
            phases[kind] = saturate_then_steady(server, base, kind, makers, options)
    unsound = common.violations(db, seeded.program, "http_load/pg")
    db.dispose()
    return figures(phases, limits, options, unsound, seeded.members)


@dataclass
class Makers:
    """A new request maker per run: purchases with fresh order ids, redemptions by members not yet used up."""

    seeded: common.Seeded
    order: list[int]
    reward_id: str
    tag: str
    when: str
    runs: int = 0
    redeemed: int = 0  # redemptions requested so far: the next run starts after them

    def new(self, kind: str) -> Purchases | Redemptions:
        self.runs += 1
        if kind == "purchases":
            return Purchases(self.seeded.stamp, self.seeded.members, self.tag, self.runs, self.when)
        return Redemptions(self.seeded.stamp, self.order, self.reward_id, self.tag, self.redeemed)

    def used(self, kind: str, result: LoadResult) -> None:
        if kind == "redemptions":
            self.redeemed += result.sent


def saturate_then_steady(
    server: subprocess.Popen[bytes], base: dict[str, Any], kind: str, makers: Makers, options: Any
) -> tuple[float, Phase, Phase]:
    """The best closed-loop throughput over ``options.concurrency``, then an open loop at 70 % of it."""
    common.say(f"http_load: {kind}, saturation (closed loop, {options.warmup:g} s warm-up + {options.seconds:g} s)")
    best: Phase | None = None
    for concurrency in options.concurrency:
        spec = {**base, "mode": "closed", "concurrency": concurrency, "warmup": options.warmup}
        spec["seconds"] = options.seconds
        with profiling(options.profile, server, f"{kind}-c{concurrency}"):
            phase = measure(server, spec, makers.new(kind), f"{kind} closed loop × {concurrency}")
        makers.used(kind, phase.result)
        if best is None or phase.result.rate > best.result.rate:
            best = phase
    assert best is not None
    rate = max(1.0, LOAD_SHARE * best.result.rate)
    common.say(f"http_load: {kind}, open loop at 70 % of saturation: {rate:,.0f}/s, {options.open_seconds:g} s")
    spec = {**base, "mode": "open", "rate": rate, "warmup": options.warmup, "seconds": options.open_seconds}
    spec["pool"] = options.pool
    steady = measure(server, spec, makers.new(kind), f"{kind} open loop at {rate:,.0f}/s")
    makers.used(kind, steady.result)
    return rate, best, steady


def figures(
    phases: dict[str, tuple[float, Phase, Phase]], limits: dict[str, float], options: Any, unsound: int, members: int
) -> list[common.Figure]:
    out: list[common.Figure] = []
    limit = limits.get("pg_ledger_tps")
    for kind, (rate, best, steady) in phases.items():
        s = steady.summary()
        sat = best.result
        out += [
            common.Figure(
                "http_load", "pg", f"{kind}/s saturated", sat.rate, "/s", "pg_ledger_tps", limit,
                target_min=TARGET_RATE,
                note=f"{best.label}; goal {GOAL_RATE:,.0f}/s; {best.describe()}; "
                f"{options.server_workers} server workers, {members:,} members, {sat.failed} failed",
            ),
            common.Figure(
                "http_load", "pg", f"{kind}/s at 70 %", steady.result.rate, "/s", "pg_ledger_tps", limit,
                target_min=TARGET_RATE,
                note=f"offered {rate:,.0f}/s open loop; {steady.describe()}; {steady.result.failed} failed",
            ),
            common.Figure("http_load", "pg", f"{kind} p50 at 70 %", s["p50"], "ms"),
            common.Figure("http_load", "pg", f"{kind} p99 at 70 %", s["p99"], "ms", target_max=TARGET_P99),
        ]  # fmt: skip
    out.append(common.Figure("http_load", "pg", "verify violations", unsound, "", target_max=0))
    return out


@contextlib.contextmanager
def profiling(target: str | None, server: subprocess.Popen[bytes], label: str) -> Iterator[None]:
    """py-spy on every server worker while the block runs (``--profile FILE``): collapsed stacks per worker."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not target or not Path(spy).exists():
        yield
        return
    workers = [pid for pid in _children(server.pid) if pid != server.pid] or [server.pid]
    spies = [
        subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking", "--gil",
             "--output", f"{target}.{label}.{pid}.txt"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for pid in workers
    ]  # fmt: skip
    try:
        yield
    finally:
        for spy_process in spies:
            spy_process.send_signal(2)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy_process.wait(timeout=30)


def common_free_port() -> int:
    import socket

    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", type=int, default=None, help="seeded members (default 100,000; quick 10,000)")
    parser.add_argument("--server-workers", type=int, default=2, help="palier serve --workers (default 2)")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per closed-loop run (8; quick 3)")
    parser.add_argument("--open-seconds", type=float, default=None, help="measured seconds at 70 %% (15; quick 5)")
    parser.add_argument("--concurrency", default=None, help="closed-loop connections to try (default 4,16,48)")
    parser.add_argument("--pool", type=int, default=64, help="connections of the open-loop client (default 64)")
    parser.add_argument("--bench-db", default=DEFAULT_HTTP_DB, help="database recreated for the run")
    parser.add_argument("--limits-db", default=DEFAULT_LIMITS_DB, help="database the pgbench limits run in")
    parser.add_argument("--profile", default=None, help="py-spy raw stacks of the server to FILE.<run>.<pid>.txt")


def _with_defaults(options: Any) -> argparse.Namespace:
    """Fill what run_all.py's options lack (it shares one namespace between every benchmark)."""
    quick = getattr(options, "quick", False)
    got = argparse.Namespace(**vars(options))
    defaults = {
        "members": 10_000 if quick else 100_000,
        "server_workers": 2,
        "seconds": 3.0 if quick else 8.0,
        "open_seconds": 5.0 if quick else 15.0,
        "concurrency": "4,16,48",
        "pool": 64,
        "bench_db": DEFAULT_HTTP_DB,
        "limits_db": DEFAULT_LIMITS_DB,
        "profile": None,
    }
    for name, value in defaults.items():
        if getattr(got, name, None) is None:
            setattr(got, name, value)
    if isinstance(got.concurrency, str):
        got.concurrency = [int(c) for c in got.concurrency.split(",") if c.strip()]
    got.warmup = 1.0 if quick else 2.0
    return got


def limits_dsn(options: Any) -> str:
    """The limits run in a database of their own (pg_limits.sh makes and drops a schema there)."""
    import psycopg

    name = getattr(options, "limits_db", None) or DEFAULT_LIMITS_DB
    with psycopg.connect(options.pg, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            admin.execute(f'CREATE DATABASE "{name}"')
    return common.with_database(options.pg, name)


def main() -> None:
    parser = common.arguments(__doc__.splitlines()[0], engines=("pg",))
    add_arguments(parser)
    options = parser.parse_args()
    limits = common.measure_limits(["pg"], limits_dsn(options), options.limit_seconds, skip=options.skip_limits)
    common.print_figures(run("pg", options, limits))


if __name__ == "__main__":
    main()
