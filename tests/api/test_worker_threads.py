"""A worker runs at most ``THREADS`` requests at once, one pooled connection each; the others wait their turn."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from palier.api.app import THREADS, create_app
from palier.config import Settings


def test_a_worker_runs_at_most_threads_requests_at_once_and_queues_the_rest(app: FastAPI) -> None:
    """More threads than pooled connections would open (and close) a connection per request under load."""
    running, most = 0, 0
    lock = threading.Lock()
    # each request holds its thread until THREADS of them run at once: no guess of how long that takes to
    # come about on a loaded machine (a request that never meets THREADS - 1 others fails on the timeout)
    together = threading.Barrier(THREADS, timeout=60)

    @app.get("/test/slow")
    def slow() -> dict[str, int]:  # a sync route, as every route that reads the database
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        together.wait()
        with lock:
            running -= 1
        return {"ok": 1}

    with TestClient(app) as client, ThreadPoolExecutor(max_workers=3 * THREADS) as pool:
        answers = list(pool.map(lambda _: client.get("/test/slow").status_code, range(3 * THREADS)))
    assert answers == [200] * (3 * THREADS)  # every request served: the others waited their turn
    assert most == THREADS


def test_the_app_pools_as_many_connections_as_it_runs_threads(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'palier.db'}", card_hash_key=b"test-key"))
    assert app.state.db.engine.pool.size() == THREADS
