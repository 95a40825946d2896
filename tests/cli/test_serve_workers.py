"""``palier serve --workers 2`` for real: keep-alive connections spread over both workers, a worker that dies
is replaced, and SIGTERM stops them all. Which worker holds a connection is read from ``/proc``."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from palier.cli.workers import spreads_connections
from palier.db.migrate import upgrade
from tests.reliability.crash_helpers import free_port, kill_9, palier_env, run_palier, start_palier

pytestmark = pytest.mark.skipif(not spreads_connections(), reason="the kernel spreads connections on Linux only")

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
CONNECTIONS = 24  # each worker holds at least 3 unless the kernel's hash is badly skewed (p < 1e-4)


def _workers_of(supervisor: int) -> list[int]:
    """The worker processes ``supervisor`` started (spawned interpreters, not multiprocessing's helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == supervisor and b"spawn_main" in command:
            found.append(int(entry.name))
    return sorted(found)


def _wait_for(condition, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _sockets(port: int, state: str) -> set[str]:
    """The inodes of the TCP sockets on local ``port`` in ``state`` (01: established, 0A: listening)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                found.add(fields[9])
    return found


def _established(pids: list[int], port: int) -> dict[int, int]:
    """How many established connections to ``port`` each of ``pids`` holds."""
    inodes = _sockets(port, "01")
    held = dict.fromkeys(pids, 0)
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd) if fd.is_symlink() else ""
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held[pid] += 1
    return held


def test_connections_spread_over_workers_a_dead_worker_is_replaced_and_sigterm_stops_all(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url)
    port = free_port()
    server = start_palier(url, "serve", "--port", str(port), "--workers", "2", log=tmp_path / "serve.log")
    clients: list[socket.socket] = []
    try:
        _wait_for(lambda: len(_sockets(port, "0A")) == 2 and _healthy(port), "two workers listening")
        workers = _workers_of(server.pid)
        # A pool opening its keep-alive connections at once (a proxy's, a till system's): with one socket
        # shared by the workers, the first to wake would accept them all.
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(CONNECTIONS)]
        for client in clients:
            client.sendall(b"GET /health HTTP/1.1\r\nHost: palier\r\n\r\n")
        for client in clients:
            assert client.recv(4096).startswith(b"HTTP/1.1 200"), "no answer on a connection"
        held = _established(workers, port)
        assert sum(held.values()) == CONNECTIONS and min(held.values()) >= 3, held

        kill_9_worker = workers[0]
        os.kill(kill_9_worker, signal.SIGKILL)
        _wait_for(
            lambda: kill_9_worker not in _workers_of(server.pid) and len(_workers_of(server.pid)) == 2,
            "a new worker in place of the killed one",
        )
        _wait_for(lambda: _healthy(port), "the port answering again")

        for client in clients:
            client.close()
        remaining = _workers_of(server.pid)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0, (tmp_path / "serve.log").read_text()
        _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in remaining), "every worker stopped")
        assert not _healthy(port)
    finally:
        for client in clients:
            client.close()
        for pid in _workers_of(server.pid):
            os.kill(pid, signal.SIGKILL)
        kill_9(server)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_already_taken_is_said_once_and_serve_exits(tmp_path: Path, workers: str) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_palier(url, "serve", "--port", str(port), "--workers", workers, timeout=60)
    assert done.returncode == 1
    said = (done.stdout + done.stderr).strip().splitlines()
    assert len(said) == 1, said  # out of a terminal, with its UTC time (palier.logs)
    assert re.fullmatch(rf"{STAMP} ERROR:    Cannot listen on 127.0.0.1:{port}: Address already in use", said[0])


def test_a_port_another_palier_serve_listens_on_is_refused_not_shared(tmp_path: Path) -> None:
    """Its workers' sockets let others share the port (SO_REUSEPORT): a second `palier serve` — a second
    deployment, another database — would have been given every other connection, silently."""
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url)
    port = free_port()
    first = start_palier(url, "serve", "--port", str(port), "--workers", "2", log=tmp_path / "serve.log")
    try:
        _wait_for(lambda: len(_sockets(port, "0A")) == 2 and _healthy(port), "two workers listening")
        second = run_palier(url, "serve", "--port", str(port), "--workers", "2", timeout=60)
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"Cannot listen on 127.0.0.1:{port}: Address already in use" in second.stdout + second.stderr
        assert len(_sockets(port, "0A")) == 2  # the first server's, alone
    finally:
        for pid in _workers_of(first.pid):
            os.kill(pid, signal.SIGKILL)
        kill_9(first)


def test_workers_that_cannot_start_are_given_up_on_and_serve_exits(tmp_path: Path) -> None:
    # `palier serve` checks the database and settings before it starts any (tests/cli/test_start_checks.py):
    # here the app itself cannot be imported, so every worker dies as it starts.
    port = free_port()
    start = (
        "from palier.cli.workers import run_workers; run_workers(app='palier.no_such_app:create_app', "
        f"host='127.0.0.1', port={port}, workers=2, access_log=True)"
    )
    done = subprocess.run([sys.executable, "-c", start], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Workers keep dying as they start" in done.stdout + done.stderr


def create_app_when_let_through():  # type: ignore[no-untyped-def]
    """The app factory, held until the test creates the file in ``PALIER_TEST_GATE``: a worker still starting
    (importing, building the app) for as long as the test needs, as on a loaded machine."""
    gate = Path(os.environ["PALIER_TEST_GATE"])
    while not gate.exists():
        time.sleep(0.05)
    from palier.api.app import create_app

    return create_app()


def test_a_request_sent_while_the_workers_start_waits_and_serving_is_said_once_they_answer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url)
    port = free_port()
    log = tmp_path / "serve.log"
    gate = tmp_path / "gate"
    start = (
        "from palier.cli.workers import run_workers; run_workers(app='tests.cli.test_serve_workers:"
        f"create_app_when_let_through', host='127.0.0.1', port={port}, workers=2, access_log=True)"
    )
    with log.open("ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-c", start], env={**palier_env(url), "PALIER_TEST_GATE": str(gate)},
            cwd=Path(__file__).parents[2], stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    client = None
    try:
        _wait_for(lambda: "Serving on" in log.read_text() or len(_sockets(port, "0A")) == 2, "workers starting")
        # Neither worker has its app yet: saying "Serving on" now would send a load balancer or a script to a
        # port that refuses them.
        assert "Serving on" not in log.read_text()
        client = socket.create_connection(("127.0.0.1", port), timeout=60)
        client.sendall(b"GET /health HTTP/1.1\r\nHost: palier\r\n\r\n")  # queued, not refused nor closed
        gate.touch()
        assert client.recv(4096).startswith(b"HTTP/1.1 200"), log.read_text()
        _wait_for(lambda: "Serving on http://127.0.0.1" in log.read_text(), "the line saying it serves")
        assert _healthy(port)
    finally:
        if client is not None:
            client.close()
        for pid in _workers_of(server.pid):
            os.kill(pid, signal.SIGKILL)
        kill_9(server)
