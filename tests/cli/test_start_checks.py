"""What ``palier serve``, ``palier worker`` and ``palier db upgrade`` check before they start, as an operator
meets it: a database they cannot serve (never migrated, migrated by an older or a newer Palier, unreachable)
and a missing or short ``PALIER_CARD_KEY`` are one line, ``error <code>: …``, and exit 2 — never a server
that answers 500 to every request, nor a worker writing a traceback per job for as long as it runs."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from palier.cli import jobs, serve
from palier.cli.common import console, err_console
from palier.cli.main import app
from palier.clock import SystemClock
from palier.db import make_database
from palier.db.migrate import current, head, upgrade

runner = CliRunner()
WORK = jobs._work  # the worker's loop, which the fixture below replaces for the start checks
CARD_KEY = "card-key-for-the-start-checks-0123456789"


@pytest.fixture(autouse=True)
def production_env(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A wide console, the card key set, and nothing served for real: what would have started is recorded."""
    monkeypatch.setattr(console, "width", 250)
    monkeypatch.setattr(err_console, "width", 250)
    monkeypatch.setenv("PALIER_CARD_KEY", CARD_KEY)
    monkeypatch.setenv("PALIER_SECRET_KEY", "secret-key-for-the-start-checks")
    started: list[str] = []
    monkeypatch.setattr(serve.uvicorn, "run", lambda *a, **k: started.append("serve"))
    monkeypatch.setattr(serve, "run_workers", lambda **k: started.append("serve"))
    monkeypatch.setattr(jobs, "_work", lambda *a, **k: started.append("worker"))
    # `palier worker` sets the root logger up for its process: in this one, a worker run by an earlier test
    # would have the next command print Alembic's lines. Each test starts as a fresh process does.
    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(logging.root, "level", logging.WARNING)
    return started


def refused(url: str, *command: str) -> Any:
    result = runner.invoke(app, list(command), env={"PALIER_DATABASE_URL": url})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    return result


def set_revision(url: str, revision: str) -> None:
    database = make_database(url, pool_size=0)
    try:
        with database.write() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})
    finally:
        database.dispose()


def test_serve_and_worker_start_only_on_a_database_at_this_version(
    empty_database_url: str, production_env: list[str]
) -> None:
    url = empty_database_url
    for command in (("serve",), ("worker",)):
        result = refused(url, *command)  # never migrated (on SQLite: no file yet)
        assert "error database_not_ready:" in result.output and "run `palier db upgrade` first" in result.output
    upgrade(url, "0013")  # an older Palier's database: the new code would fail on every request
    for command in (("serve",), ("worker",)):
        result = refused(url, *command)
        assert f"is at revision 0013, this Palier needs {head()}: run `palier db upgrade`" in result.output
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"this Palier needs (\d+)", readme)) == {head()}  # the README quotes this message
    assert production_env == []
    upgrade(url)
    ok = runner.invoke(app, ["serve", "--port", "8123"], env={"PALIER_DATABASE_URL": url})
    assert ok.exit_code == 0, ok.output
    assert runner.invoke(app, ["worker"], env={"PALIER_DATABASE_URL": url}).exit_code == 0, ok.output
    assert production_env == ["serve", "worker"]


def test_a_database_a_newer_palier_migrated_is_refused_and_left_as_it_is(
    empty_database_url: str, production_env: list[str]
) -> None:
    url = empty_database_url
    upgrade(url)
    set_revision(url, "9999")  # what `palier db upgrade` of a later version leaves (before a roll-back)
    for command in (("serve",), ("worker",), ("db", "upgrade")):
        result = refused(url, *command)
        assert "error database_too_new: The database is at revision 9999" in result.output
        assert f"(it goes up to {head()})" in result.output
    assert production_env == []
    assert current(url) == "9999"


def test_serve_and_worker_say_an_unreachable_database_in_one_line(production_env: list[str]) -> None:
    url = "postgresql://palier:s3cret@127.0.0.1:1/palier"
    for command in (("serve",), ("worker",)):
        result = refused(url, *command)
        assert "error database_unavailable:" in result.output and "palier:***@127.0.0.1:1" in result.output
        assert "s3cret" not in result.output
    assert production_env == []


@pytest.mark.parametrize(
    ("key", "said"),
    [
        (None, "PALIER_CARD_KEY is not set: payment cards would be stored under the demo's key"),
        ("", "PALIER_CARD_KEY is not set"),
        ("changeme", "PALIER_CARD_KEY has 8 characters: at least 32 are needed"),
    ],
)
def test_postgresql_needs_a_card_key_of_its_own(
    monkeypatch: pytest.MonkeyPatch, production_env: list[str], key: str | None, said: str
) -> None:
    if key is None:
        monkeypatch.delenv("PALIER_CARD_KEY")
    else:
        monkeypatch.setenv("PALIER_CARD_KEY", key)
    url = "postgresql://palier:s3cret@127.0.0.1:1/palier"  # refused before any connection is tried
    for command in (("serve",), ("worker",), ("db", "upgrade"), ("verify",)):
        result = refused(url, *command)
        assert f"error invalid_setting: {said}" in result.output and "(PALIER_CARD_KEY)" in result.output
    assert production_env == []


def test_serve_needs_a_secret_key_with_several_workers_or_on_postgresql(
    monkeypatch: pytest.MonkeyPatch, production_env: list[str], tmp_path: Any
) -> None:
    monkeypatch.delenv("PALIER_SECRET_KEY")
    url = f"sqlite:///{tmp_path / 'palier.db'}"
    upgrade(url)
    result = refused(url, "serve", "--workers", "2")
    assert "error invalid_setting: PALIER_SECRET_KEY is not set: each worker would sign" in result.output
    assert production_env == []
    alone = runner.invoke(app, ["serve"], env={"PALIER_DATABASE_URL": url})  # one process on SQLite: trying it
    assert alone.exit_code == 0, alone.output
    monkeypatch.setenv("PALIER_SECRET_KEY", "a-secret-of-our-own")
    several = runner.invoke(app, ["serve", "--workers", "2"], env={"PALIER_DATABASE_URL": url})
    assert several.exit_code == 0, several.output
    assert production_env == ["serve", "serve"]


def test_serve_on_postgresql_needs_a_secret_key(
    monkeypatch: pytest.MonkeyPatch, production_env: list[str], postgresql_url: str
) -> None:
    monkeypatch.delenv("PALIER_SECRET_KEY")
    result = refused(postgresql_url, "serve")
    assert "error invalid_setting: PALIER_SECRET_KEY is not set" in result.output
    assert production_env == []


def test_a_mistyped_database_url_is_said_before_a_missing_card_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PALIER_CARD_KEY")
    result = refused("postgresgl://palier@db/palier", "serve")
    assert "error invalid_database_url:" in result.output


def test_a_short_card_key_is_refused_on_sqlite_too_and_none_means_the_demo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'palier.db'}"
    monkeypatch.setenv("PALIER_CARD_KEY", "x" * 31)
    result = refused(url, "db", "upgrade")
    assert "PALIER_CARD_KEY has 31 characters" in result.output
    assert not (tmp_path / "palier.db").exists()
    monkeypatch.delenv("PALIER_CARD_KEY")  # trying Palier on SQLite: the demo's key
    assert runner.invoke(app, ["db", "upgrade"], env={"PALIER_DATABASE_URL": url}).exit_code == 0


def test_a_worker_that_loses_the_database_says_so_in_one_line_per_job(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = make_database("postgresql://palier:s3cret@127.0.0.1:1/palier", pool_size=1)
    try:
        with caplog.at_level(logging.INFO, logger="palier.worker"):
            WORK(unreachable, SystemClock(), threading.Event(), interval=1, once=True, batch_size=10)
            stopped = threading.Event()
            stopped.set()  # one push, as `palier worker --once` makes
            jobs._push(unreachable, SystemClock(), stopped, interval=0, public_only=False)
    finally:
        unreachable.dispose()
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert {r.getMessage().split(" failed")[0] for r in failures} >= {"mature", "expire", "coupons", "webhooks"}
    for record in failures:
        assert record.exc_info is None, record.getMessage()
        assert "database unavailable (connection failed" in record.getMessage()
        assert "tried again at the next run" in record.getMessage() and "s3cret" not in record.getMessage()
