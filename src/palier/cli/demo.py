"""``palier demo``: Maison Fournil with a year of history in ./palier.db, then the API on localhost."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import event, func, select

from palier.cli.common import console, open_database
from palier.cli.demo_portal import show_portal
from palier.cli.demo_staff import show_staff
from palier.cli.serve import run_api
from palier.db import Database
from palier.db.migrate import upgrade
from palier.demo import DEMO_NAME, DemoInfo, build_demo, demo_access, find_demo, unfinished_demo
from palier.demo.staff import demo_staff
from palier.errors import Conflict, InvalidInput
from palier.programs.tables import programs

DEMO_FILE = "palier.db"


def demo(
    host: str = typer.Option("127.0.0.1", help="Interface the API listens on."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port of the API."),
    members: int = typer.Option(300, min=5, max=5000, help="How many members the demo program has."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete ./palier.db and build the demo again."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the API once the demo is ready."),
) -> None:
    """Build Maison Fournil, a café and bakery chain with a web shop, and serve its API.

    A year of history (purchases in four stores, on the web, by phone and in the app, returns,
    expiry…) goes into ./palier.db, built once and reused on the next run (--fresh builds it again).
    New demo API keys are printed on every run.
    """
    if serve:  # before any key or password is made: those of a demo already serving there would stop working
        _refuse_if_port_taken(host, port)
    path = Path(DEMO_FILE).resolve()
    url = f"sqlite:///{path}"
    os.environ["PALIER_DATABASE_URL"] = url  # the API served below reads the same database
    if fresh:
        _delete(path)
    upgrade(url)
    with open_database(url) as db:
        stopped = unfinished_demo(db)
    if stopped:
        console.print(f"The demo in {path} was not finished (stopped while it was built): building it again.")
        _delete(path)
        upgrade(url)
    with open_database(url) as db:
        program_id = find_demo(db)
        if program_id is None:
            _refuse_if_in_use(db, path)
            started = time.perf_counter()
            with console.status(f"Building {DEMO_NAME}: {members} members, a year of history…"):
                info = build_demo(_disposable(db), members=members)
            console.print(f"Demo built in {time.perf_counter() - started:.1f} s into {path}")
        else:
            info = demo_access(db, program_id)
            console.print(f"Reusing the demo in {path} (--fresh builds it again)")
    show_access(info, host=host, port=port)
    with open_database(url) as db:
        show_portal(db, info, base=f"http://{host}:{port}")
        show_staff(demo_staff(db, info.program_id), base=f"http://{host}:{port}")
    if serve:
        run_api(host=host, port=port)


def _refuse_if_port_taken(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closed port is free
        try:
            probe.bind((host, port))
        except socket.gaierror as error:  # a name that resolves to no address: the host is wrong, not the port
            raise InvalidInput(
                "invalid_host",
                f"Cannot listen on {host} ({error.strerror or error}): give an address of this machine, such as "
                "127.0.0.1 (this machine only) or 0.0.0.0 (every interface). Nothing was changed.",
                field="--host",
            ) from None
        except OSError as error:
            raise Conflict(
                "port_in_use",
                f"Cannot listen on {host}:{port} ({error.strerror or error}): another server, perhaps a demo "
                f"already running, uses it. Nothing was changed; pass another port, e.g. --port {port + 1}.",
                field="--port",
            ) from None


def _delete(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _refuse_if_in_use(db: Database, path: Path) -> None:
    with db.read() as conn:
        others = conn.execute(select(func.count()).select_from(programs)).scalar_one()
    if others:
        raise Conflict(
            "demo_database_in_use",
            f"{path} holds other programs: run the demo in another directory, or pass --fresh to replace it.",
            field="--fresh",
        )


def _disposable(db: Database) -> Database:
    """The demo file is rebuilt at will: commit without waiting for the disk while building it."""

    @event.listens_for(db.engine, "connect")
    def _no_fsync(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    db.engine.dispose()  # connections opened before the listener are closed
    return db


def show_access(info: DemoInfo, *, host: str, port: int) -> None:
    base = f"http://{host}:{port}"
    member = info.sample_member_ids[0] if info.sample_member_ids else "<member id>"
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in (
        ("API", base),  # what the README's $API holds: its calls add /v1/… themselves
        ("Docs", f"{base}/docs"),
        ("OpenAPI", f"{base}/openapi.json"),
        ("Program", info.program_id),
        ("Member", member),
    ):
        grid.add_row(label, value)
    console.print(Panel.fit(grid, title=f"{DEMO_NAME}: the demo is ready", border_style="green"))
    for label, key in (("Admin key", info.admin_key), ("POS key", info.pos_key), ("Read-only key", info.read_key)):
        console.print(f"[bold]{label}[/bold]  {key}", soft_wrap=True)
    console.print("[dim]Keys are shown once (stored hashed); each run of palier demo makes new ones.[/dim]")
    console.print("\n[bold]The member's balance:[/bold]")
    console.print(
        f'curl -s -H "Authorization: Bearer {info.read_key}" {base}/v1/members/{member}/balance',
        soft_wrap=True,
        markup=False,
    )
    console.print("\n[bold]The rewards the member can have, nearest first (redeem with POST …/redemptions):[/bold]")
    console.print(
        f'curl -s -H "Authorization: Bearer {info.read_key}" {base}/v1/members/{member}/rewards',
        soft_wrap=True,
        markup=False,
    )
    console.print("\n[bold]What the mailer has to send (expiry warnings, sign-in codes…; then POST …/ack):[/bold]")
    console.print(
        f'curl -s -H "Authorization: Bearer {info.admin_key}" "{base}/v1/outbox?type=points_expiring&limit=3"',
        soft_wrap=True,
        markup=False,
    )
    console.print("\n[bold]A café crème and two croissants at the Lyon store:[/bold]")
    console.print(
        f"curl -s -X POST {base}/v1/events/purchases -H 'Authorization: Bearer {info.pos_key}' "
        f"-H 'Content-Type: application/json' -d '{json.dumps(_sample_purchase(member), ensure_ascii=False)}'",
        soft_wrap=True,
        markup=False,
    )


def _sample_purchase(member_id: str) -> dict[str, Any]:
    return {
        "order_id": f"LYO-DEMO-{secrets.token_hex(3).upper()}",
        "member": {"member_id": member_id},
        "channel": "store",
        "store_id": "lyon",
        "store_name": "Maison Fournil Lyon Croix-Rousse",
        "occurred_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "currency": "EUR",
        "lines": [
            {"sku": "BOI-CAFE-CREME", "name": "Café crème", "quantity": 1, "unit_price": 320},
            {"sku": "VIE-CROISSANT", "name": "Croissant", "quantity": 2, "unit_price": 130},
        ],
    }
