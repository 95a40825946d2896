"""``palier serve --workers N`` on Linux: N uvicorn processes, each listening on a socket of its own.

With one listening socket shared by every worker (what uvicorn's ``--workers`` does), the first worker to
wake accepts every connection waiting, and a keep-alive connection stays with the worker that accepted it:
a proxy's or a till system's pool of 16 connections can land on one worker while the others idle. Here
each worker binds the port with ``SO_REUSEPORT`` and the kernel spreads new connections evenly over them.

The supervisor starts the workers, starts a worker again if one dies, and stops them all on SIGINT or
SIGTERM. A worker whose supervisor is gone (``kill -9``) shuts itself down.

Starting takes seconds (importing, building the app; more on a loaded machine). The supervisor opens the first
workers' sockets, listening, and hands one to each: a request sent meanwhile waits in a backlog rather than
being refused, and the supervisor says "Serving on …" only once every worker has its app and answers. A worker
started in place of a dead one opens its own socket once it answers: until then its siblings take the
connections.
"""

from __future__ import annotations

import logging
import logging.config
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from types import FrameType

import uvicorn

from palier.logs import uvicorn_log_config

log = logging.getLogger("uvicorn.error")  # where uvicorn says what it serves, in the same format

BACKLOG = 2048
STOP_GRACE = 10.0  # seconds a worker has to finish its requests after SIGTERM
QUICK_DEATH = 30.0  # s: a worker dying this soon after starting (importing the app takes seconds) failed to start
STARTS_BEFORE_GIVING_UP = 5  # failures to start in a row, then the supervisor stops


def spreads_connections() -> bool:
    """Whether the kernel balances connections over sockets sharing a port (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _port_free(host: str, port: int) -> None:
    """Raise if anything listens on ``host:port``. Bound without ``SO_REUSEPORT``, so another ``palier serve``
    already there (its sockets do share the port) is found too, rather than joined: the kernel would hand it
    every other connection, to another deployment or another database."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))


def refuse_taken_port(host: str, port: int) -> None:
    """Say in one line that ``host:port`` is taken, and exit 1, before any worker or key is made."""
    try:
        _port_free(host, port)
    except OSError as exc:
        logging.config.dictConfig(uvicorn_log_config())
        log.error("Cannot listen on %s:%s: %s", host, port, exc.strerror or exc)
        raise SystemExit(1) from None


def run_workers(*, app: str, host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve ``app`` (an app factory's import path) with ``workers`` processes until SIGINT or SIGTERM."""
    logging.config.dictConfig(uvicorn_log_config())
    refuse_taken_port(host, port)  # now, not once per worker
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)

    def start(*, first: bool) -> tuple[BaseProcess, float, Event]:
        ready = context.Event()  # set by the worker once it answers
        sock = listening_socket(host, port) if first else None
        if sock is not None:
            sock.listen(BACKLOG)  # connections wait in its backlog while the worker starts
        process = context.Process(
            target=serve_one, args=(app, host, port, access_log, os.getpid(), ready, sock), name="palier-api-worker"
        )
        process.start()  # the worker has its copy of the socket now
        if sock is not None:
            sock.close()
        return process, time.monotonic(), ready

    running = [start(first=True) for _ in range(workers)]
    log.info("Starting %d workers on http://%s:%s", workers, host, port)
    failed_starts, said_serving = 0, False
    while not stop.wait(0.5):
        if not said_serving and all(ready.is_set() for _, _, ready in running):
            said_serving = True
            said = "Serving on http://%s:%s with %d workers, one socket each (Press CTRL+C to quit)"
            log.info(said, host, port, workers)
        for n, (process, started, _) in enumerate(running):
            if process.is_alive():
                continue
            failed_starts = failed_starts + 1 if time.monotonic() - started < QUICK_DEATH else 0
            if failed_starts >= STARTS_BEFORE_GIVING_UP:
                log.error("Workers keep dying as they start (exit code %s): stopping", process.exitcode)
                stop.set()
                break
            log.warning("Worker %s exited with %s: starting another", process.pid, process.exitcode)
            running[n] = start(first=False)
    for process, _, _ in running:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for process, _, _ in running:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    if failed_starts >= STARTS_BEFORE_GIVING_UP:
        raise SystemExit(1)


def serve_one(
    app: str, host: str, port: int, access_log: bool, supervisor: int, ready: Event, sock: socket.socket | None
) -> None:
    """One worker: its own socket on the shared port (given, or opened once the app is built), the app, and an
    eye on its supervisor."""
    sock = sock or listening_socket(host, port)
    config = uvicorn.Config(
        app, factory=True, host=host, port=port, proxy_headers=True, access_log=access_log,
        log_config=uvicorn_log_config(), backlog=BACKLOG,
    )  # fmt: skip
    server = _Worker(config, ready)
    threading.Thread(target=_stop_when_orphaned, args=(server, supervisor), daemon=True).start()
    server.run(sockets=[sock])


class _Worker(uvicorn.Server):
    """uvicorn's server, which tells the supervisor when it answers."""

    def __init__(self, config: uvicorn.Config, ready: Event) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()


def _stop_when_orphaned(server: uvicorn.Server, supervisor: int) -> None:
    while os.getppid() == supervisor:
        time.sleep(1.0)
    server.should_exit = True  # finish the requests in flight, then exit
    time.sleep(STOP_GRACE)
    os._exit(1)
