"""Real processes for the crash tests: ``palier serve``, ``palier import`` and ``palier jobs`` killed with SIGKILL.

Nothing here fakes a crash: each command runs as its own operating-system process against a real
database (a SQLite file or a PostgreSQL database), and ``kill -9`` stops it wherever it is — between two
statements, inside a transaction, in the middle of a commit. What was acknowledged before the kill must
be there afterwards, and ``palier verify`` must pass.

The seeds: every test draws its kill points from ``random.Random(seed)``; ``PALIER_CRASH_SEED`` fixes the
seed (to replay a failure, whose message always names its seed), ``PALIER_SLOW=1`` runs more crashes.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from palier.db import Database
from palier.ledger.verify import verify

OPERATOR_TOKEN = "operator-token-for-crash-tests"
CARD_KEY = "crash-test-card-key-of-32-characters"
SLOW = os.environ.get("PALIER_SLOW", "").strip() not in ("", "0")


def seed_for(name: str) -> int:
    """The seed of one test: ``PALIER_CRASH_SEED`` if set, else a fresh one (printed on failure)."""
    fixed = os.environ.get("PALIER_CRASH_SEED")
    if fixed:
        return int(fixed)
    return random.SystemRandom().randrange(1, 10**6)  # short: order ids built from it never look like cards


def url_of(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def palier_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PALIER_DATABASE_URL=url,
        PALIER_OPERATOR_TOKEN=OPERATOR_TOKEN,
        PALIER_CARD_KEY=CARD_KEY,
        PALIER_SECRET_KEY="crash-test-secret-key",
        # The workload sends far more redemptions per member than a till would: it measures recovery, not abuse.
        PALIER_RATE_LIMITS="off",
        PYTHONUNBUFFERED="1",
        COLUMNS="200",  # rich: one line per progress update, no wrapping
    )
    return env


def palier_command(*args: str) -> list[str]:
    """The ``palier`` command line, run by this interpreter (the one the tests use)."""
    return [sys.executable, "-m", "palier.cli.main", *args]


def run_palier(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        palier_command(*args), env=palier_env(url), capture_output=True, text=True, timeout=timeout, check=False
    )


def start_palier(url: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """``palier <args>`` as a background process, its output in ``log`` (a crash test reads it on failure)."""
    with log.open("ab") as out:
        return subprocess.Popen(palier_command(*args), env=palier_env(url), stdout=out, stderr=subprocess.STDOUT)


def kill_9(process: subprocess.Popen[bytes]) -> bool:
    """SIGKILL, then reap. False if the process had already exited on its own."""
    if process.poll() is not None:
        return False
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    return True


def assert_verified(db: Database, program_id: str, seed: int, when: str) -> None:
    """The ledger invariants of ``palier verify`` (the same function), checked in this process."""
    with db.read() as conn:
        found = verify(conn, program_id=program_id)
    assert found == [], f"seed {seed}: ledger unsound {when}: {found}"


def assert_cli_verify(url: str, program_id: str, seed: int) -> None:
    """``palier verify --program`` as a user runs it: exit 0 and the green line."""
    done = run_palier(url, "verify", "--program", program_id)
    assert done.returncode == 0, f"seed {seed}: palier verify failed:\n{done.stdout}\n{done.stderr}"
    assert "all invariants hold" in done.stdout, done.stdout


def kill_when(
    process: subprocess.Popen[bytes],
    reached: Callable[[], bool],
    *,
    rng: random.Random,
    poll: float = 0.01,
    timeout: float = 60,
    jitter: float = 0.03,
) -> bool:
    """Wait for ``reached()`` (polled), sleep a seeded jitter, then ``kill -9``.

    Returns False when the process finished before it could be killed (the caller then knows that run
    completed on its own)."""
    deadline = time.monotonic() + timeout
    while not reached():
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            kill_9(process)
            raise AssertionError("the kill point was never reached")
        time.sleep(poll)
    time.sleep(rng.uniform(0, jitter))
    return kill_9(process)


# --- the API server --------------------------------------------------------------------------------------


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """``palier serve`` on a free port; ``start`` waits until ``/health`` answers."""

    url: str
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.process = start_palier(self.url, "serve", "--port", str(self.port), log=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"palier serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)
        kill_9(self.process)
        raise AssertionError(f"palier serve did not answer within {timeout} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        assert self.process is not None
        kill_9(self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kill_9(self.process)


@contextlib.contextmanager
def serving(url: str, log: Path) -> Iterator[Server]:
    server = Server(url=url, log=log)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- writes over HTTP, and what was acknowledged ----------------------------------------------------------


@dataclass
class Write:
    """One POST with its Idempotency-Key, and what came back (``status`` None: no answer before the kill)."""

    kind: str  # purchase | redemption | adjustment
    path: str
    key: str
    body: dict[str, Any]
    status: int | None = None
    response: dict[str, Any] | None = None
    error: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Writes:
    """Hands out the writes of a seeded workload to client threads and keeps every outcome."""

    def __init__(self, make: Callable[[int], Write]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._next = 0
        self.sent: list[Write] = []

    def take(self) -> Write:
        with self._lock:
            write = self._make(self._next)
            self._next += 1
            self.sent.append(write)
            return write

    def unacknowledged(self) -> list[Write]:
        return [w for w in self.sent if not w.acknowledged]


def send(client: httpx.Client, token: str, write: Write) -> None:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": write.key}
    response = client.post(write.path, json=write.body, headers=headers)
    body = response.json()  # a body cut short by the kill raises here: not acknowledged
    write.status, write.response = response.status_code, body


def drive(base: str, token: str, writes: Writes, stop: threading.Event, *, threads: int = 2) -> list[threading.Thread]:
    """``threads`` clients, each with its own keep-alive connection, sending writes until ``stop`` or until
    the server goes away (the write in flight is then left unacknowledged)."""

    def client_loop() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while not stop.is_set():
                write = writes.take()
                try:
                    send(client, token, write)
                except (httpx.TransportError, ValueError) as exc:  # the server died under us
                    write.status, write.error = None, repr(exc)
                    return

    started = [threading.Thread(target=client_loop, daemon=True) for _ in range(threads)]
    for thread in started:
        thread.start()
    return started


def retry(base: str, token: str, pending: Sequence[Write], seed: int) -> None:
    """Send each unacknowledged write again with its own Idempotency-Key: each must now succeed."""
    with httpx.Client(base_url=base, timeout=30) as client:
        for write in pending:
            send(client, token, write)
            assert write.acknowledged, (
                f"seed {seed}: retry of {write.kind} {write.key} got {write.status}: {write.response}"
            )
