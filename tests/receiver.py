"""A merchant's webhook endpoint for tests: a real HTTP server on this machine that records what it gets.

The ``receiver`` fixture is registered by ``tests/conftest.py`` (every test may use it).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Receiver:
    """A merchant's endpoint: records every delivery and answers the statuses it is told to, then 204."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0  # seconds before each answer (a slow receiver: deliveries are in flight longer)
    trickle: float = 0.0  # seconds between the bytes of each answer (one that answers, ever so slowly)
    answer_after: threading.Event | None = None  # each answer waits for it (up to a minute) once recorded
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [event for _, body in self.received for event in json.loads(body)["events"]]

    @contextmanager
    def holding(self, change: Callable[[], object], *, request: int = 1) -> Iterator[threading.Event]:
        """What happens while a delivery is on its way: once the ``request``-th request has arrived, ``change``
        runs (in a thread of its own) and only then is that request answered. Yields the event set when
        ``change`` is done. A failure of ``change`` (an assertion on its answer) fails the test, as does a request
        that never comes (within 30 s): neither is lost in the thread."""
        done, failures = threading.Event(), []

        def run() -> None:
            try:
                deadline = time.monotonic() + 30
                while len(self.received) < request:
                    assert time.monotonic() < deadline, f"request {request} never reached the receiver"
                    time.sleep(0.01)
                change()
            except BaseException as failure:  # re-raised below, in the test's own thread
                failures.append(failure)
            finally:
                done.set()

        self.answer_after = done
        thread = threading.Thread(target=run)
        thread.start()
        try:
            yield done
        finally:
            thread.join()
            self.answer_after = None
        if failures:
            raise failures[0]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length)
            if len(body) < length:  # the sender died mid-request: no web server hands that to the application
                self.close_connection = True
                return
            time.sleep(found.delay)
            with found.lock:
                found.received.append((dict(self.headers.items()), body))
                status = found.statuses.pop(0) if found.statuses else 204
            if found.answer_after is not None:
                found.answer_after.wait(timeout=60)
            if found.trickle:
                try:
                    for byte in f"HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\n\r\n".encode():
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(found.trickle)
                except OSError:  # the sender hung up
                    pass
                self.close_connection = True
                return
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/palier-events"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()
