"""Every benchmark against the limits measured right before it, written to bench/RESULTS.md.

    .venv/bin/python bench/run_all.py            # the real sizes (about 30 minutes on 2 cores)
    .venv/bin/python bench/run_all.py --quick    # small sizes, a smoke run (bench/RESULTS-quick.md)
    .venv/bin/python bench/run_all.py --only purchases,balance_read --engine sqlite

A benchmark that crashes is reported as FAIL with its error; the others still run. On a shared machine,
``--quiet-load 1.5`` waits (at most ``--quiet-wait`` seconds) for other work to calm down before each one.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sqlite3
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import common

BENCHES: dict[str, tuple[str, ...]] = {  # module: the engines it runs on
    "purchases": ("pg", "sqlite"),
    "bulk_import": ("pg", "sqlite"),
    "balance_read": ("pg", "sqlite"),
    "sweeps": ("pg",),
    "redeem": ("pg", "sqlite"),
    "coupon_validate": ("pg", "sqlite"),
    "rules_eval": ("pg", "sqlite"),
    "status": ("pg",),
    "http_load": ("pg",),
    "member_scale": ("pg",),
    "pages": ("pg", "sqlite"),
}


def machine(pg_dsn: str, engines: Sequence[str]) -> dict[str, str]:
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus (nproc)": str(os.cpu_count()),
        "RAM": _memory(),
        "CPU": _cpu_model(),
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "commit": _git("rev-parse", "--short", "HEAD")
        + (" + uncommitted changes" if _git("status", "--porcelain", "--untracked-files=no") else ""),
    }
    if "pg" in engines:
        info["PostgreSQL"] = _pg(pg_dsn, "SELECT version()").split(" on ")[0]
        info["PostgreSQL settings"] = _pg(
            pg_dsn,
            "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings "
            "WHERE name IN ('autovacuum', 'shared_buffers', 'synchronous_commit', 'max_wal_size', 'work_mem')",
        )
    return info


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=common.REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _pg(dsn: str, sql: str) -> str:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql).fetchone()
    return str(row[0]) if row else "?"


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def wait_for_quiet(threshold: float, longest: float) -> None:
    """Wait (at most ``longest`` seconds) for the machine's 1-minute load average to fall to ``threshold``."""
    deadline = time.monotonic() + longest
    if os.getloadavg()[0] > threshold:
        common.say(f"waiting for the load average ({load()}) to fall to {threshold:g} …")
    while os.getloadavg()[0] > threshold and time.monotonic() < deadline:
        time.sleep(5)


def report(
    figures: list[common.Figure],
    info: dict[str, str],
    measured: list[tuple[str, dict[str, float]]],
    errors: list[str],
    loads: list[str],
    options: argparse.Namespace,
) -> str:
    lines = [
        "# Palier benchmarks" + (" (quick sizes)" if options.quick else ""),
        "",
        "Written by `bench/run_all.py`" + (" --quick" if options.quick else "") + "; how to read it: bench/README.md.",
        "",
        "## Machine",
        "",
        *(f"- {name}: {value}" for name, value in info.items()),
        f"- load average (1/5/15 min) through the run: {'; '.join(loads)}",
        "",
        "## Limits",
        "",
        "Measured by the shared baseline scripts right before each benchmark, under the same load"
        + (" (once, at the start: --limits-once)." if options.limits_once else "."),
        "",
        "| measured before | limit | value |",
        "|---|---|---|",
        *(f"| {before} | {name} | {value:,.0f} |" for before, got in measured for name, value in got.items()),
        "",
        "## Figures",
        "",
        "| " + " | ".join(common.COLUMNS) + " |",
        "|" + "---|" * len(common.COLUMNS),
        *("| " + " | ".join(row) + " |" for row in common.rows_of(figures)),
        "",
    ]
    notes = [f"- {f.bench}/{f.engine}/{f.metric}: {f.note}" for f in figures if f.note]
    if notes:
        lines += ["## Notes", "", *notes, ""]
    if errors:
        lines += ["## Errors", "", *(f"```\n{e}\n```" for e in errors), ""]
    passed = sum(1 for f in figures if f.passed is True)
    failed = sum(1 for f in figures if f.passed is False)
    lines += [f"**{passed} targets pass, {failed} fail.**", ""]
    return "\n".join(lines)


def main() -> None:
    parser = common.arguments(__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated, of {', '.join(BENCHES)}")
    parser.add_argument(
        "--limits-once", action="store_true", help="measure the limits once at the start, not before each benchmark"
    )
    parser.add_argument(
        "--quiet-load",
        type=float,
        default=None,
        help="before each benchmark, wait until the 1-minute load average is at most this (shared machines)",
    )
    parser.add_argument("--quiet-wait", type=float, default=600, help="longest wait for --quiet-load, seconds")
    parser.add_argument("--output", type=Path, default=None, help="default bench/RESULTS.md (quick: RESULTS-quick.md)")
    options = parser.parse_args()
    chosen = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = set(chosen) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    engines = common.chosen_engines(options.engine)
    used = sorted({e for name in chosen for e in BENCHES[name] if e in engines})
    output = options.output or Path(__file__).with_name("RESULTS-quick.md" if options.quick else "RESULTS.md")
    started = time.perf_counter()
    info = machine(options.pg, used)
    loads = [f"start {load()}"]
    measured: list[tuple[str, dict[str, float]]] = []

    def limits_for(engine: str, before: str) -> dict[str, float]:
        """Limits measured right before each benchmark (under the same load), or once (--limits-once)."""
        if options.limits_once and measured:
            return measured[0][1]
        engines_now = used if options.limits_once else [engine]
        got = common.measure_limits(engines_now, options.pg, options.limit_seconds, skip=options.skip_limits)
        measured.append((before, got))
        return got

    figures: list[common.Figure] = []
    errors: list[str] = []
    for name in chosen:
        module = importlib.import_module(name)
        for engine in BENCHES[name]:
            if engine not in engines:
                continue
            if options.quiet_load is not None:
                wait_for_quiet(options.quiet_load, options.quiet_wait)
            loads.append(f"before {name}/{engine} {load()}")
            try:
                limits = limits_for(engine, f"{name}/{engine}")
                figures += module.run(engine, options, limits)
            except (Exception, SystemExit) as exc:
                common.say(f"{name}/{engine} failed: {exc!r}")
                errors.append(f"{name}/{engine}: {''.join(traceback.format_exception(exc))[-3000:]}")
                figures.append(
                    common.Figure(name, engine, "crashed", float("nan"), "", target_max=-1.0, note=repr(exc))
                )
            loads.append(f"after {name}/{engine} {load()}")
    info["run time"] = f"{(time.perf_counter() - started) / 60:.1f} min"
    output.write_text(report(figures, info, measured, errors, loads, options))
    print()
    common.print_figures(figures)
    print(f"\nwritten to {output}")
    sys.exit(0)


if __name__ == "__main__":
    main()
