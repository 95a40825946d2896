"""``palier serve``: the HTTP API (OpenAPI at /openapi.json, docs at /docs), the console, till and portal under
uvicorn."""

from __future__ import annotations

import os

import typer
import uvicorn

from palier.cli.common import console, require_ready_database
from palier.cli.workers import refuse_taken_port, run_workers, spreads_connections
from palier.errors import InvalidInput
from palier.logs import uvicorn_log_config

APP_FACTORY = "palier.api.app:create_app"


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="Worker processes (stateless: scale out freely; one per core)."),
    access_log: bool = typer.Option(
        True, "--access-log/--no-access-log", help="Log one line per request (off: less CPU per request)."
    ),
) -> None:
    """Serve the API for the database in PALIER_DATABASE_URL (which must be migrated: `palier db upgrade`)."""
    url = require_ready_database()
    if not os.environ.get("PALIER_SECRET_KEY", "").strip() and (workers > 1 or not url.startswith("sqlite")):
        raise InvalidInput(
            "invalid_setting",
            "PALIER_SECRET_KEY is not set: each worker would sign sessions, forms and portal links with a key of "
            "its own (another worker refuses them) and every session would end at a restart. Set it to a secret "
            "of your own (openssl rand -hex 32).",
            field="PALIER_SECRET_KEY",
        )
    run_api(host=host, port=port, workers=workers, access_log=access_log, addresses=True)


def show_addresses(*, host: str, port: int) -> None:
    """Where each part is reached: uvicorn names only the server's address."""
    base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    for label, path in (
        ("API", ""),  # what the README's $API holds (as the demo says it): its calls add /v1/… themselves
        ("Docs", "/docs"),
        ("Console", "/console"),
        ("Till", "/till"),
        ("Portal", "/p/<program id>"),
    ):
        console.print(f"{label:<8} {base}{path}", markup=False, soft_wrap=True)


def run_api(*, host: str, port: int, workers: int = 1, access_log: bool = True, addresses: bool = False) -> None:
    refuse_taken_port(host, port)  # in one line, before the addresses; uvicorn would say it among its start-up lines
    if addresses:
        show_addresses(host=host, port=port)
    if workers > 1 and spreads_connections():  # a socket per worker: connections spread evenly (see workers.py)
        run_workers(app=APP_FACTORY, host=host, port=port, workers=workers, access_log=access_log)
        return
    uvicorn.run(
        APP_FACTORY, factory=True, host=host, port=port, workers=workers, proxy_headers=True, access_log=access_log,
        log_config=uvicorn_log_config(),
    )  # fmt: skip
