"""``GET /health`` and the API while the database is down: ``503 database_unavailable`` with ``Retry-After``,
one log line per request (no traceback), and answers again as soon as the database is back.

The outage is real: on PostgreSQL the app reaches the server through a TCP relay the test closes and opens
again; on SQLite the database file's folder is moved away and back.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing, suppress
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from palier.api.app import create_app
from palier.clock import FrozenClock
from palier.config import Settings
from palier.db import make_database
from palier.db.migrate import head, upgrade
from tests.api.conftest import CARD_KEY
from tests.conftest import ENGINES


class Relay:
    """A TCP relay to PostgreSQL that can be cut (every connection closed, new ones refused) and restored."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.pairs: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            server = socket.create_connection(self.target)
            self.pairs += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        for end in self.pairs:
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
        self.pairs.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture(params=ENGINES)
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Relay | Path]]:
    """(URL the app uses, what cuts it off): a relay on PostgreSQL, the database's folder on SQLite."""
    if request.param == "sqlite":
        folder = tmp_path / "data"
        folder.mkdir()
        url = f"sqlite:///{folder / 'palier.db'}"
        upgrade(url)
        yield url, folder
        return
    base = make_url(request.getfixturevalue("postgresql_url"))
    relay = Relay(base.host or "127.0.0.1", base.port or 5432)
    try:
        yield base.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False), relay
    finally:
        relay.close()


def _cut(cutter: Relay | Path) -> None:
    if isinstance(cutter, Relay):
        cutter.cut()
    else:
        cutter.rename(cutter.with_name("away"))


def _restore(cutter: Relay | Path) -> None:
    if isinstance(cutter, Relay):
        cutter.restore()
    else:
        cutter.with_name("away").rename(cutter)


def test_health_and_the_api_answer_503_while_the_database_is_down_then_recover(
    outage: tuple[str, Relay | Path], clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    url, cutter = outage
    db = make_database(url, pool_size=0 if url.startswith("sqlite") else 2)
    app = create_app(Settings(database_url=url, card_hash_key=CARD_KEY), db=db, clock=clock)
    key = {"Authorization": f"Bearer key_{uuid.uuid4().hex[:26].upper()}.secret"}
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/health").json() == {"status": "ok"}
            _cut(cutter)
            with caplog.at_level(logging.WARNING, logger="palier.api"):
                down = client.get("/health")
                monitor = client.head("/health")  # an uptime monitor's HEAD: down too, said the same way
                read = client.get("/v1/program", headers=key)
                page = client.get("/how-it-works/prg_anything?lang=en")  # a person's page: an HTML page
            for answer in (down, read):
                assert answer.status_code == 503, answer.text
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.json()["code"] == "database_unavailable"
                assert int(answer.headers["Retry-After"]) >= 1
                assert answer.json()["request_id"] == answer.headers["X-Request-ID"]  # what the log line names
            assert monitor.status_code == 503 and monitor.headers["Retry-After"] == down.headers["Retry-After"]
            assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
            assert "The service is unavailable for a moment." in page.text and page.headers["Retry-After"]
            said = [r for r in caplog.records if r.name == "palier.api"]
            assert [r.getMessage().split(" (request ")[0] for r in said] == [
                "database unavailable on GET /health",
                "database unavailable on HEAD /health",
                "database unavailable on GET /v1/program",
                "database unavailable on GET /how-it-works/prg_anything",
            ]
            assert all(r.exc_info is None and "\n" not in r.getMessage() for r in said)
            _restore(cutter)
            assert client.get("/health").status_code == 200
            assert client.head("/health").status_code == 200
            assert client.get("/v1/program", headers=key).json()["code"] == "invalid_api_key"  # the database answered
    finally:
        db.dispose()


def test_health_answers_head_as_it_answers_get_without_a_body(client: TestClient) -> None:
    """Uptime monitors often check with ``HEAD /health``: the same status and headers as GET, no body."""
    got, head = client.get("/health"), client.head("/health")
    assert head.status_code == 200, head.text
    assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]
    assert list(client.get("/openapi.json").json()["paths"]["/health"]) == ["get"]  # documented once, as GET


def test_the_relay_is_a_real_cut() -> None:
    """The PostgreSQL case's relay refuses connections once cut (else the test above would prove nothing)."""
    with closing(socket.create_server(("127.0.0.1", 0))) as target:
        relay = Relay("127.0.0.1", target.getsockname()[1])
        relay.cut()
        with closing(socket.create_connection(("127.0.0.1", relay.port), timeout=5)) as sock:
            sock.settimeout(5)
            assert sock.recv(1) == b""
        relay.close()


def test_health_says_when_the_schema_is_not_this_versions(empty_database_url: str, clock: FrozenClock) -> None:
    """A node whose database is not at its version's schema (not upgraded yet, or upgraded by a newer Palier
    during a rolling upgrade) cannot serve: its health check says so, for the load balancer to take it out."""
    url = empty_database_url
    db = make_database(url, pool_size=1)
    app = create_app(Settings(database_url=url, card_hash_key=CARD_KEY), db=db, clock=clock)
    try:
        with TestClient(app) as client:
            never = client.get("/health")
            assert never.status_code == 503 and never.json()["code"] == "database_not_ready"
            assert "has no Palier tables yet: run `palier db upgrade` first" in never.json()["detail"]
            upgrade(url)
            assert client.get("/health").json() == {"status": "ok"}
            for revision, code, said in (
                ("0013", "database_not_ready", f"is at revision 0013, this Palier needs {head()}"),
                ("9999", "database_too_new", "a newer Palier migrated it"),
            ):
                with db.write() as conn:
                    conn.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})
                answer = client.get("/health")
                assert answer.status_code == 503 and answer.headers["content-type"] == "application/problem+json"
                assert answer.json()["code"] == code and said in answer.json()["detail"], answer.text
                assert client.head("/health").status_code == 503
    finally:
        db.dispose()
