"""Server-side page times of the member portal, how-it-works, the admin console, the dashboard and the till.

The demo program (Maison Fournil, as ``palier demo`` builds it: a year of history, tiers, rewards,
segments, walk-in shoppers) is built in a fresh database; the app is served by uvicorn in a subprocess
(one worker, as ``palier serve``); each page is requested over real HTTP, signed in as the member, an
admin or the till, one request at a time. Target: p95 ≤ 50 ms per page.

Reference measured in the same run: the member's 4 cached balances read by primary key through the raw
driver (the floor of any page that reads from the database), and ``GET /health`` over the same HTTP
path (the floor of the server and the client, with one trivial query).

    .venv/bin/python bench/pages.py [--engine pg|sqlite|both] [--quick] [--members 300] [--requests 100]
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select

import common
from palier.analytics import kpis
from palier.clock import SystemClock
from palier.config import DEMO_CARD_KEY
from palier.db import make_database
from palier.demo import build_demo
from palier.demo.staff import demo_staff
from palier.ledger.accounts import MEMBER_KINDS
from palier.members.tables import identities
from palier.programs.service import get_program
from palier.rewards.tables import coupons

TARGET_P95_MS = 50.0
SECRET_KEY = "palier-bench-pages-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(url: str) -> tuple[subprocess.Popen[bytes], str]:
    """uvicorn serving the app on ``url``'s database, in a subprocess; (process, base URL) once it answers."""
    port = _free_port()
    env = os.environ | {
        "PALIER_DATABASE_URL": url,
        "PALIER_SECRET_KEY": SECRET_KEY,
        "PALIER_CARD_KEY": DEMO_CARD_KEY,
        "PALIER_RATE_LIMITS": "off",  # throughput, not abuse: pages are requested far faster than a person would
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "palier.api.app:create_app", "--factory", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the page server did not start")


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    if found is None:
        raise RuntimeError("no CSRF field on the sign-in page")
    return found.group(1)


def staff_client(base: str, email: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    page = client.get("/console/sign-in")
    signed = client.post("/console/sign-in", data={"csrf": _csrf(page.text), "email": email, "password": password})
    if signed.status_code != 303:
        raise RuntimeError(f"staff sign-in refused: {signed.status_code}")
    client.headers["X-CSRF-Token"] = _csrf(page.text)  # the searches are posted, as the pages' forms do
    return client


def member_client(base: str, pos_key: str, member_id: str) -> httpx.Client:
    link = httpx.post(
        f"{base}/v1/members/{member_id}/portal-link", headers={"Authorization": f"Bearer {pos_key}"}, timeout=30
    )
    link.raise_for_status()
    client = httpx.Client(base_url=base, timeout=30)
    entered = client.get(link.json()["url"].removeprefix(base))
    if entered.status_code not in (302, 303):
        raise RuntimeError(f"portal link refused: {entered.status_code}")
    return client


def timed_page(client: httpx.Client, path: str, expect: int = 200, form: dict[str, str] | None = None) -> float:
    """One page: ``GET path``, or ``POST path`` when a form is given (the searches are posted, as the box does)."""
    began = time.perf_counter()
    response = client.get(path) if form is None else client.post(path, data=form)
    spent = time.perf_counter() - began
    if response.status_code != expect:
        raise RuntimeError(f"{response.request.method} {path}: {response.status_code} (expected {expect})")
    return spent


def measure(read: Callable[[], float], count: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        read()
    return [read() for _ in range(count)]


def run(engine: str, options: object, limits: dict[str, float]) -> list[common.Figure]:
    quick = getattr(options, "quick", False)
    members = getattr(options, "members", None) or (60 if quick else 300)
    count = getattr(options, "requests", None) or (20 if quick else 100)
    pg_dsn = getattr(options, "pg", common.DEFAULT_PG)
    with common.step(f"pages/{engine}: fresh database, the demo program with {members} members"):
        url = common.fresh_database(engine, pg_dsn, "pages")
        db = make_database(url)
        info = build_demo(db, members=members, card_key=DEMO_CARD_KEY.encode())
        staff = {user.role: user for user in demo_staff(db, info.program_id)}
        member_id = info.sample_member_ids[0]
        with db.read() as conn:
            card = conn.execute(
                select(identities.c.value).where(identities.c.member_id == member_id, identities.c.kind == "card")
            ).scalar_one()
            code = conn.execute(select(coupons.c.code).where(coupons.c.program_id == info.program_id).limit(1)).scalar()
        common.vacuum_analyze(db)
    process, base = serve(url)
    pid = info.program_id
    try:
        admin = staff_client(base, staff["admin"].email, staff["admin"].password)
        till = staff_client(base, staff["store_staff"].email, staff["store_staff"].password)
        member = member_client(base, info.pos_key, member_id)
        anonymous = httpx.Client(base_url=base, timeout=30)
        pages: list[tuple[str, httpx.Client, str, int, dict[str, str] | None]] = [
            ("portal home", member, f"/p/{pid}", 200, None),
            ("portal history", member, f"/p/{pid}/history", 200, None),
            ("portal rewards", member, f"/p/{pid}/rewards", 200, None),
            ("portal coupons", member, f"/p/{pid}/coupons", 200, None),
            ("portal settings", member, f"/p/{pid}/settings", 200, None),
            ("how it works", anonymous, f"/how-it-works/{pid}", 200, None),
            ("console dashboard 12 weeks", admin, "/console/dashboard", 200, None),
            ("console dashboard 52 weeks, store", admin, "/console/dashboard?weeks=52&channel=store", 200, None),
            ("console member search", admin, "/console/members", 303, {"q": card}),
            ("console member detail", admin, f"/console/members/{member_id}", 200, None),
            ("console rules", admin, "/console/rules", 200, None),
            ("console rewards", admin, "/console/rewards", 200, None),
            ("console tiers", admin, "/console/tiers", 200, None),
            ("console segments", admin, "/console/segments", 200, None),
            ("console settings", admin, "/console/settings", 200, None),
            ("console coupon lookup", admin, f"/console/coupons?code={code}", 200, None),
            ("till search", till, "/till", 303, {"q": card}),
            ("till member", till, f"/till/members/{member_id}", 200, None),
        ]
        ids = [f"{member_id}:{kind}" for kind in MEMBER_KINDS]
        raw_sql = f"SELECT id, balance FROM accounts WHERE id IN ({', '.join(['%s'] * len(ids))})"
        with common.step(f"pages/{engine}: references (raw read, GET /health), {count} each"):
            raw = percentiles(measure(lambda: common.raw_read(db, raw_sql, ids), count))
            health = percentiles(measure(lambda: timed_page(anonymous, "/health"), count))
        results: list[tuple[str, dict[str, float]]] = []
        for name, client, path, expect, form in pages:
            with common.step(f"pages/{engine}: {name}, {count} requests"):
                spent = measure(lambda c=client, p=path, e=expect, f=form: timed_page(c, p, e, f), count)  # type: ignore[misc]
            found = percentiles(spent)
            common.say(f"pages/{engine}: {name}: p50 {found['p50']:.1f} ms, p95 {found['p95']:.1f} ms")
            results.append((name, found))
        cold = uncached_dashboard(db, pid, min(count, 20))
    finally:
        process.terminate()
        process.wait(timeout=20)
        db.dispose()
    figures = [
        common.Figure(
            "pages",
            engine,
            f"{name} p95 (p50 {found['p50']:.1f})",
            found["p95"],
            "ms",
            "raw 4-account PK read p95 (this run)",
            raw["p95"],
            target_max=TARGET_P95_MS,
        )
        for name, found in results
    ]
    figures += [
        common.Figure(
            "pages",
            engine,
            f"{name} p95 (p50 {found['p50']:.1f})",
            found["p95"],
            "ms",
            "raw 4-account PK read p95 (this run)",
            raw["p95"],
            note="the dashboard's queries without its cache (in process, no HTTP): what the first view after a "
            "write costs; the page serves the cached figures until the program's data version changes",
        )
        for name, found in cold
    ]
    figures[0].note = (
        f"{count} requests per page, one at a time, after 5 warm-up ones, over HTTP to uvicorn (1 worker); "
        f"demo with {members} members; GET /health p50 {health['p50']:.2f} ms, p95 {health['p95']:.2f} ms"
    )
    return figures


def uncached_dashboard(db: Any, program_id: str, count: int) -> list[tuple[str, dict[str, float]]]:
    """The dashboard's figures computed from scratch each time (the cache bypassed), for 12 and 52 weeks."""
    with db.read() as conn:
        program = get_program(conn=conn, program_id=program_id)
        today = SystemClock().now().astimezone(ZoneInfo(program.timezone)).date()
    found = []
    for weeks, channel in ((12, None), (52, "store")):
        period = kpis.Period.last_weeks(today, weeks)

        def compute(p: kpis.Period = period, c: str | None = channel) -> float:
            began = time.perf_counter()
            with db.read() as conn:
                kpis.kpis(conn=conn, program=program, period=p, now=SystemClock().now(), channel=c)
                kpis.channel_mix(conn, program, p)
            return time.perf_counter() - began

        label = f"dashboard figures uncached, {weeks} weeks" + (f", {channel}" if channel else "")
        with common.step(f"pages: {label}, {count} times"):
            found.append((label, percentiles(measure(compute, count, warmup=2))))
    return found


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"p50": common.percentile(ms, 50), "p95": common.percentile(ms, 95)}


def main() -> None:
    parser = common.arguments(__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=None, help="members of the demo program (default 300)")
    parser.add_argument("--requests", type=int, default=None, help="requests per page (default 100)")
    options = parser.parse_args()
    engines = common.chosen_engines(options.engine)
    common.print_figures([f for engine in engines for f in run(engine, options, {})])


if __name__ == "__main__":
    main()
