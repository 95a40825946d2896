"""The ``palier`` commands other than import and demo, run through Typer's runner on a SQLite file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from palier.cli import jobs, serve
from palier.cli.common import console, err_console
from palier.cli.main import app
from palier.clock import FrozenClock, SystemClock
from palier.db import Database, make_database
from palier.ledger.tables import accounts
from palier.logs import uvicorn_log_config
from palier.notify import outbox, webhooks
from palier.notify.tables import outbox_events
from palier.programs.service import authenticate, get_program
from palier.programs.tables import programs
from palier.rules import gifts
from palier.tiers import service as tiers
from palier.tiers.models import TierPolicy
from palier.tiers.tables import member_tiers
from tests.conftest import ENGINES
from tests.receiver import Receiver
from tests.services import factories as f

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 250)
    monkeypatch.setattr(err_console, "width", 250)


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'palier.db'}"
    monkeypatch.setenv("PALIER_DATABASE_URL", url)
    return url


@pytest.fixture
def cli_db(database_url: str) -> Iterator[Database]:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    database = make_database(database_url)
    yield database
    database.dispose()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def created_program(output: str) -> str:
    found = re.search(r"created: (prg_\w+)", output)
    assert found, output
    return found.group(1)


def test_db_upgrade_twice(database_url: str) -> None:
    first, second = invoke("db", "upgrade"), invoke("db", "upgrade")
    assert first.exit_code == second.exit_code == 0
    assert "upgraded from empty" in first.output and "nothing to do" in second.output


def test_a_command_before_db_upgrade_says_what_to_do(database_url: str, tmp_path: Path) -> None:
    result = invoke("verify")
    assert result.exit_code == 2
    assert "error database_not_ready" in result.output and "palier db upgrade" in result.output
    # the database it looked for is named, and no empty file is left behind where it ran
    assert f"No database at {tmp_path / 'palier.db'}" in result.output.replace("\n", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "palier.db").touch()  # a file, but without the tables
    empty = invoke("program", "show", "prg_x")
    assert empty.exit_code == 2 and "error database_not_ready" in empty.output
    assert f"The database {tmp_path / 'palier.db'} has no Palier tables" in empty.output.replace("\n", "")


@pytest.mark.parametrize(
    ("url", "code", "said"),
    [
        ("postgresql://palier:s3cret@127.0.0.1:1/palier", "database_unavailable", "palier:***@127.0.0.1:1"),
        ("postgres://palier:s3cret@127.0.0.1:1/palier", "database_unavailable", "palier:***@127.0.0.1:1"),
        ("sqlite:////no/such/directory/palier.db", "database_unavailable", "unable to open database file"),
        ("mysql://palier:s3cret@db/palier", "invalid_database_url", "Palier runs on SQLite"),
        ("palier.db", "invalid_database_url", "sqlite:///path/to/palier.db"),
        ("postgresql://palier:s3cret@db:port/palier", "invalid_database_url", "palier:***@db:port"),
    ],
)
def test_a_database_url_that_cannot_work_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, url: str, code: str, said: str
) -> None:
    monkeypatch.setenv("PALIER_DATABASE_URL", url)
    monkeypatch.setenv("PALIER_CARD_KEY", "a-card-key-of-at-least-32-characters")  # PostgreSQL needs one
    for command in (("verify",), ("db", "upgrade")):
        result = invoke(*command)
        assert result.exit_code == 2, result.output
        assert f"error {code}:" in result.output and said in result.output, result.output
        assert "s3cret" not in result.output and "Traceback" not in result.output


def test_program_create_show_and_keys(cli_db: Database) -> None:
    result = invoke(
        "program", "create", "--name", "Maison Test", "--earn-points", "2", "--return-window-days", "7",
        "--never-expire", "--welcome-points", "25", "--points-name", "étoiles", "--points-name-en", "stars",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    program_id = created_program(result.output)
    secret = re.search(r"(key_\w+\.\S+)", result.output)
    assert secret and "Shown once" in result.output
    with cli_db.read() as conn:
        program = get_program(conn=conn, program_id=program_id)
        assert authenticate(conn=conn, token=secret.group(1)).scopes == {"admin"}
    assert re.search(r"│ admin +│ admin +│", invoke("program", "show", program_id).output)  # named as by the API
    assert (program.earn_points, program.return_window_days, program.points_lifetime_months) == (2, 7, None)
    assert program.welcome_points == 25
    assert (program.points_name, program.points_name_by_language) == ("étoiles", {"en": "stars"})

    key = invoke("program", "keys", "create", program_id, "--name", "Till 2", "--scope", "pos", "--scope", "read")
    assert key.exit_code == 0, key.output
    shown = invoke("program", "show", program_id)
    assert shown.exit_code == 0
    assert "25 stars" in shown.output and "étoiles, en: stars" in shown.output  # the CLI speaks English
    assert "Maison Test" in shown.output and "never" in shown.output
    assert re.search(r"Till 2\s*│\s*pos, read", shown.output)
    new_secret = re.search(r"(key_\w+\.\S+)", key.output)
    assert new_secret and new_secret.group(1).split(".")[1] not in shown.output  # secrets are shown once


def test_a_currency_in_lower_case_is_read_in_upper_case(cli_db: Database) -> None:
    result = invoke("program", "create", "--name", "Lower", "--currency", "eur")
    assert result.exit_code == 0, result.output
    with cli_db.read() as conn:
        assert get_program(conn=conn, program_id=created_program(result.output)).currency == "EUR"
    helped = runner.invoke(app, ["program", "create", "--help"], env={"COLUMNS": "200"})
    assert "1 to 240 (default: 12); --never-expire" in helped.output, helped.output


def test_a_lifetime_of_zero_months_is_refused_not_read_as_twelve(cli_db: Database) -> None:
    with cli_db.read() as conn:
        before = conn.execute(select(func.count()).select_from(programs)).scalar_one()
    result = invoke("program", "create", "--name", "Zero", "--lifetime-months", "0")
    assert result.exit_code == 2, result.output
    assert "error out_of_range: " in result.output
    with cli_db.read() as conn:
        assert conn.execute(select(func.count()).select_from(programs)).scalar_one() == before


@pytest.mark.parametrize(
    ("args", "code", "field"),
    [
        (["program", "create", "--name", ""], "invalid_length", "--name"),
        (["program", "create", "--name", "X", "--timezone", "Mars/Base"], "invalid_timezone", "--timezone"),
        (["program", "create", "--name", "X", "--never-expire", "--lifetime-months", "3"], "conflicting_options", None),
        (["program", "create", "--name", "X", "--lifetime-months", "0"], "out_of_range", "--lifetime-months"),
        (["program", "create", "--name", "X", "--currency", "XYZ"], "invalid_currency", "--currency"),
        (["program", "create", "--name", "X", "--currency", "eu"], "invalid_currency", "--currency"),
        (["program", "create", "--name", "X", "--lifetime-months", "241"], "out_of_range", "--lifetime-months"),
        (["program", "create", "--name", "X", "--points-name-en", "x" * 300], "invalid_length", "--points-name-en"),
        (["program", "show", "prg_nope"], "program_not_found", "program_id"),
        (["program", "keys", "create", "prg_nope", "--name", "k", "--scope", "pos"], "program_not_found", None),
        (["verify", "--program", "prg_nope"], "program_not_found", "program_id"),
    ],
)
def test_refusals_print_code_detail_and_field_and_exit_2(
    cli_db: Database, args: list[str], code: str, field: str | None
) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("error "))
    assert line.startswith(f"error {code}: ")
    if field:
        assert line.endswith(f"({field})")


def shop_with_due_points(db: Database) -> Any:
    """A program whose purchases from 3 weeks and 13 months ago are due to mature and to expire."""
    clock = FrozenClock(datetime.now(UTC) - timedelta(days=400))
    program = f.make_program(db, clock)
    member = f.enrol(db, clock, program)
    f.purchase(db, clock, program, member, amount=5000)  # expires in a year: long gone now
    clock.set(datetime.now(UTC) - timedelta(days=21))
    f.purchase(db, clock, program, member, amount=1200)  # its 14-day window has closed
    with db.write() as conn:  # the mailer has read what the purchases told it: the events waiting are the test's
        told = [e.id for e in outbox.undelivered(conn, program_id=program.id).items]
        outbox.acknowledge(conn, program_id=program.id, ids=told, now=clock.now())
    return program, member


def test_jobs_run_all_matures_and_expires(cli_db: Database) -> None:
    program, member = shop_with_due_points(cli_db)
    result = invoke("jobs", "run", "all", "--batch-size", "1", "--program", program.id)
    assert result.exit_code == 0, result.output
    assert re.search(r"mature\s*│\s*\d+\s*│\s*[\d,]+", result.output)
    balance = f.balance(cli_db, program, member)
    assert (balance.available, balance.pending) == (12, 0)  # the 50 from a year ago expired
    assert invoke("verify", "--program", program.id).exit_code == 0


def test_jobs_run_tiers_on_several_workers(cli_db: Database) -> None:
    program, member = shop_with_due_points(cli_db)
    with cli_db.write() as conn:
        tiers.set_policy(
            conn=conn, clock=FrozenClock(datetime.now(UTC)), program=program,
            policy=TierPolicy.model_validate(
                {"metric": "orders", "window": "lifetime", "downgrade": "never", "tiers": [
                    {"code": "member", "name": {"fr": "Membre", "en": "Member"}, "threshold": 1},
                    {"code": "regular", "name": {"fr": "Habitué", "en": "Regular"}, "threshold": 2}]}
            ),
            actor="test",
        )  # fmt: skip
    placed = invoke("jobs", "run", "tiers", "--workers", "2", "--program", program.id)
    assert placed.exit_code == 0, placed.output
    assert re.search(r"tiers\s*│\s*1\s*│", placed.output)  # placed: she has two orders
    with cli_db.write() as conn:  # her period ended an hour ago: the workers judge her
        conn.execute(update(member_tiers).values(period_end=datetime.now(UTC) - timedelta(hours=1)))
    judged = invoke("jobs", "run", "tiers", "--workers", "2", "--program", program.id)
    assert judged.exit_code == 0, judged.output
    assert re.search(r"tiers\s*│\s*1\s*│", judged.output)
    assert re.search(r"tiers\s*│\s*0\s*│", invoke("jobs", "run", "tiers", "--workers", "2").output)  # judged once
    with cli_db.read() as conn:
        assert tiers.member_tier(conn, member_id=member.id) == "regular"
        reasons = [
            c.reason
            for c in tiers.progress(conn=conn, clock=SystemClock(), program=program, member_id=member.id).history
        ]
    assert reasons == ["requalified", "placed"]
    assert invoke("verify", "--program", program.id).exit_code == 0


def test_worker_once_runs_both_jobs(cli_db: Database) -> None:
    program, member = shop_with_due_points(cli_db)
    result = invoke("worker", "--once")
    assert result.exit_code == 0, result.output
    assert "mature: " in result.output and "expire: " in result.output and "worker stopped" in result.output
    assert f.balance(cli_db, program, member).available == 12


def test_worker_once_exits_1_when_a_job_failed_so_a_cron_or_timer_sees_it(
    cli_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    def down(*_args: Any, **_kwargs: Any) -> gifts.GiftRun:
        raise OperationalError("SELECT 1", {}, Exception("the database system is shutting down"))

    with monkeypatch.context() as patched:
        patched.setitem(jobs.PER_MEMBER, "birthdays", (down, "gifts"))
        result = invoke("worker", "--once")
    assert result.exit_code == 1, result.output
    assert "birthdays failed: database unavailable" in result.output and "mature: " in result.output
    assert invoke("worker", "--once").exit_code == 0


def test_the_worker_looks_for_expiring_points_at_most_once_an_hour(
    cli_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: Counter[str] = Counter()

    def counting(name: str) -> Callable[..., gifts.GiftRun]:
        def run(*_args: Any, **_kwargs: Any) -> gifts.GiftRun:
            runs.update([name])
            return gifts.GiftRun()

        return run

    for name, (_job, what) in list(jobs.PER_MEMBER.items()):
        monkeypatch.setitem(jobs.PER_MEMBER, name, (counting(name), what))
    stop = threading.Event()
    options = {"interval": 0.01, "once": False, "batch_size": 100}
    worker = threading.Thread(target=jobs._work, args=(cli_db, SystemClock(), stop), kwargs=options)
    worker.start()
    deadline = time.monotonic() + 30
    while runs["birthdays"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the worker did not stop"  # else it runs on, unpatched, after the test
    assert runs["birthdays"] >= 3 and runs["expiry-warnings"] == 1, runs


def test_an_hourly_job_the_database_was_down_for_runs_at_the_next_pass_not_an_hour_later(
    cli_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log says "tried again at the next run": expiry warnings that met a restarting database run at the
    next pass of the worker (every --interval), not when the hour is up."""
    from sqlalchemy.exc import OperationalError

    runs: Counter[str] = Counter()
    stop = threading.Event()

    def warnings(*_args: Any, **_kwargs: Any) -> gifts.GiftRun:
        runs.update(["expiry-warnings"])
        if runs["expiry-warnings"] == 1:
            raise OperationalError("SELECT 1", {}, Exception("the database system is starting up"))
        stop.set()  # run again after the failure: done
        return gifts.GiftRun()

    def birthdays(*_args: Any, **_kwargs: Any) -> gifts.GiftRun:
        runs.update(["birthdays"])
        if runs["birthdays"] >= 5:  # five passes and no second try: it waits for the hour
            stop.set()
        return gifts.GiftRun()

    monkeypatch.setitem(jobs.PER_MEMBER, "expiry-warnings", (warnings, "warnings"))
    monkeypatch.setitem(jobs.PER_MEMBER, "birthdays", (birthdays, "gifts"))
    clock = FrozenClock(datetime(2026, 3, 2, 9, tzinfo=UTC))
    jobs._work(cli_db, clock, stop, interval=0.001, once=False, batch_size=100)
    assert runs["expiry-warnings"] == 2, runs


def test_verify_reports_violations_and_exits_1(cli_db: Database) -> None:
    program, member = shop_with_due_points(cli_db)
    clean = invoke("verify")
    assert clean.exit_code == 0
    assert re.search(r"Ledger verified: \d+ transactions, \d+ accounts, all invariants hold", clean.output)
    with cli_db.write() as conn:  # drift a cached balance behind the ledger's back
        conn.execute(update(accounts).where(accounts.c.id == f"{member.id}:pending").values(balance=999))
    broken = invoke("verify", "--program", program.id)
    assert broken.exit_code == 1
    assert "balance_matches_postings" in broken.output and f"{member.id}:pending" in broken.output


def test_serve_runs_the_app_factory_under_uvicorn(monkeypatch: pytest.MonkeyPatch, cli_db: Database) -> None:
    monkeypatch.setenv("PALIER_SECRET_KEY", "the-secret-of-this-test")  # several workers must share one
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(serve.uvicorn, "run", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(serve, "run_workers", lambda **k: calls.append((("workers",), k)))
    # the port check is asked, not made: whatever listens on this machine's 8000 (a demo, another job) is not
    # this test's business, and a refusal would set logging up on this runner's stream for the next tests
    checked: list[tuple[str, int]] = []
    monkeypatch.setattr(serve, "refuse_taken_port", lambda host, port: checked.append((host, port)))
    monkeypatch.setattr(serve, "spreads_connections", lambda: False)  # elsewhere than Linux: uvicorn's workers
    result = invoke("serve", "--port", "8123", "--workers", "2")
    assert result.exit_code == 0, result.output
    quiet = invoke("serve", "--no-access-log")
    assert quiet.exit_code == 0, quiet.output
    monkeypatch.setattr(serve, "spreads_connections", lambda: True)  # Linux: a socket per worker (workers.py)
    assert invoke("serve", "--workers", "3").exit_code == 0
    # Every handler masks card numbers (palier.logs; tests/reliability/test_no_card_numbers.py serves for real).
    served = {"factory": True, "host": "127.0.0.1", "proxy_headers": True, "log_config": uvicorn_log_config()}
    assert calls == [
        (("palier.api.app:create_app",), {**served, "port": 8123, "workers": 2, "access_log": True}),
        (("palier.api.app:create_app",), {**served, "port": 8000, "workers": 1, "access_log": False}),
        (("workers",), {"app": "palier.api.app:create_app", "host": "127.0.0.1", "port": 8000, "workers": 3,
                        "access_log": True}),
    ]  # fmt: skip
    assert checked == [("127.0.0.1", 8123), ("127.0.0.1", 8000), ("127.0.0.1", 8000)]  # before uvicorn or workers
    # every address a merchant opens, not only uvicorn's own line
    for address in ("API      http://127.0.0.1:8123\n", "Docs     http://127.0.0.1:8123/docs",
                    "Console  http://127.0.0.1:8123/console", "Till     http://127.0.0.1:8123/till",
                    "Portal   http://127.0.0.1:8123/p/<program id>"):  # fmt: skip
        assert address in result.output, result.output
    assert "http://127.0.0.1:8000/console" in quiet.output


def test_worker_stops_gracefully_on_sigterm(database_url: str, cli_db: Database) -> None:
    palier = Path(sys.executable).with_name("palier")
    worker = subprocess.Popen(
        [str(palier), "worker", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PALIER_DATABASE_URL": database_url, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 60
        assert worker.stdout is not None
        seen = ""
        while "expire:" not in seen and time.monotonic() < deadline:  # it has run at least once
            seen += worker.stdout.readline()
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0, seen + out
    assert "SIGTERM received" in out and "worker stopped" in out


def test_the_worker_and_jobs_run_push_events_to_the_webhook(cli_db: Database, receiver: Receiver) -> None:
    program, _member = shop_with_due_points(cli_db)
    clock = SystemClock()
    with cli_db.write() as conn:
        spec = webhooks.WebhookSet(url="http://127.0.0.1:9/nobody-listens")
        webhooks.set_webhook(conn=conn, clock=clock, program_id=program.id, spec=spec, actor="test")
        outbox.emit(conn, program_id=program.id, type_="segment_entered", subject_id=None, payload={}, now=clock.now())
    failed = invoke("jobs", "run", "webhooks")
    assert failed.exit_code == 0, failed.output
    assert "0 events delivered in 1 request" in failed.output and "webhook failed" in failed.output
    with cli_db.write() as conn:  # the merchant fixes the address: the event goes at once
        spec = webhooks.WebhookSet(url=receiver.url)
        webhooks.set_webhook(conn=conn, clock=clock, program_id=program.id, spec=spec, actor="test")
        outbox.emit(conn, program_id=program.id, type_="segment_left", subject_id=None, payload={}, now=clock.now())
    result = invoke("worker", "--once")
    assert result.exit_code == 0, result.output
    assert "webhooks: 2 events delivered in 1 request" in result.output
    assert [e["type"] for e in receiver.events()] == ["segment_entered", "segment_left"]


def hooked_shop(cli_db: Database, receiver: Receiver) -> Any:
    """A shop whose webhook is the receiver, with one event waiting for it."""
    program, _member = shop_with_due_points(cli_db)
    clock = SystemClock()
    with cli_db.write() as conn:
        webhooks.set_webhook(
            conn=conn, clock=clock, program_id=program.id, spec=webhooks.WebhookSet(url=receiver.url), actor="test"
        )
        outbox.emit(conn, program_id=program.id, type_="segment_entered", subject_id=None, payload={}, now=clock.now())
    return program


def test_jobs_run_says_when_a_gone_receiver_disables_the_webhook(cli_db: Database, receiver: Receiver) -> None:
    program = hooked_shop(cli_db, receiver)
    receiver.statuses = [410]
    gone = invoke("jobs", "run", "webhooks")
    assert gone.exit_code == 0, gone.output
    said = " ".join(gone.output.split())
    assert f"webhook failed {program.id}: HTTP 410 (webhook disabled: nothing more is sent until it is saved" in said
    assert "tried again later" not in said
    again = invoke("jobs", "run", "webhooks")
    assert "0 events delivered in 0 requests" in again.output and len(receiver.received) == 1


def test_with_public_networks_only_the_worker_and_jobs_run_send_nothing_to_a_private_address(
    cli_db: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = hooked_shop(cli_db, receiver)
    monkeypatch.setenv("PALIER_WEBHOOK_NETWORKS", "public")
    for command in (("jobs", "run", "webhooks"), ("worker", "--once")):
        result = invoke(*command)
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        assert "webhook failed" in said and "127.0.0.1 is not on the public internet" in said, said
        with cli_db.write() as conn:  # due again at once
            conn.execute(
                update(outbox_events).where(outbox_events.c.program_id == program.id).values(next_attempt_at=None)
            )
    assert receiver.received == []
    monkeypatch.setenv("PALIER_WEBHOOK_NETWORKS", "everywhere")
    refused = invoke("jobs", "run", "webhooks")
    assert refused.exit_code != 0 and "PALIER_WEBHOOK_NETWORKS must be any or public" in " ".join(
        refused.output.split()
    )


def test_jobs_run_housekeeping_says_what_it_deleted(cli_db: Database) -> None:
    program, _member = shop_with_due_points(cli_db)
    long_ago = datetime.now(UTC) - timedelta(days=40)
    with cli_db.write() as conn:
        outbox.emit(conn, program_id=program.id, type_="segment_left", subject_id=None, payload={}, now=long_ago)
        [event] = outbox.recent(conn, program_id=program.id, types=["segment_left"])
        outbox.acknowledge(conn, program_id=program.id, ids=[event["id"]], now=long_ago)
    result = invoke("jobs", "run", "housekeeping")
    assert result.exit_code == 0, result.output
    assert "housekeeping: deleted 0 old sessions, 0 old portal sign-in codes and links, 1 events delivered over 30" in (
        " ".join(result.output.split())
    )
    with cli_db.read() as conn:
        assert outbox.recent(conn, program_id=program.id, types=["segment_left"]) == []


def test_a_job_for_a_mistyped_program_is_refused_not_run_on_nothing(cli_db: Database) -> None:
    result = invoke("jobs", "run", "segments", "--program", "prg_nope")
    assert result.exit_code == 2 and "error program_not_found" in result.output, result.output


def test_a_batch_size_above_what_a_sweep_takes_is_refused_at_its_option_not_a_traceback(cli_db: Database) -> None:
    for command in (("jobs", "run", "expire"), ("worker", "--once")):
        result = invoke(*command, "--batch-size", "2000000")
        assert result.exit_code == 2, result.output
        assert "--batch-size" in result.output and "1048576" in result.output, result.output
        assert "Traceback" not in result.output and "ValueError" not in result.output, result.output
    assert invoke("jobs", "run", "expire", "--batch-size", "1048576").exit_code == 0


def test_scan_cards_says_what_it_read_and_a_scan_of_nothing_proves_nothing(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(f"declined {f.luhn_card()}\n", encoding="utf-8")
    found = invoke("scan-cards", "--no-database", str(log))
    assert found.exit_code == 1, found.output
    assert "1 payment card number found in 1 file (1 line)" in found.output
    log.write_text("ok\nok\n", encoding="utf-8")
    clean = invoke("scan-cards", "--no-database", str(log))
    assert clean.exit_code == 0 and "No payment card number in 1 file (2 lines)" in clean.output, clean.output
    nothing = invoke("scan-cards", "--no-database")
    assert nothing.exit_code == 2 and "Nothing was scanned" in nothing.output, nothing.output
    assert "in no database" not in nothing.output


def test_the_help_names_every_job_whole() -> None:
    names = [job.value for job in jobs.Job]
    run_help = runner.invoke(app, ["jobs", "run", "--help"], env={"COLUMNS": "80"})
    assert run_help.exit_code == 0
    words = set(re.findall(r"[\w-]+", run_help.output))
    assert set(names) <= words, run_help.output  # none cut at the column's edge ("anniv" / "ersaries")
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    described = next(line for line in top.output.splitlines() if "│ jobs " in line)
    assert all(name in described for name in names) and "status" not in described, described


def test_a_refusal_prints_brackets_as_typed_never_as_markup(cli_db: Database) -> None:
    """An error's detail is text: a pattern's ``[a-z0-9]`` or a typed ``[/red]`` is printed as it is."""
    program = created_program(invoke("program", "create", "--name", "Brackets").output)
    pattern = invoke("program", "action", program, "mem_x", "[nope]", "ref-1")
    assert pattern.exit_code == 2, pattern.output
    assert "error invalid_format: String should match pattern '^[a-z0-9][a-z0-9_-]{0,63}$' (action)" in pattern.output
    closing = invoke("staff", "role", "[/red]x@example.com", "--program", program, "--role", "admin")
    assert closing.exit_code == 2, closing.output
    assert "error staff_not_found: No staff user '[/red]x@example.com' in this program. (email)" in closing.output
    shown = invoke("program", "show", "[bold]prg_x")
    assert shown.exit_code == 2 and "No program [bold]prg_x: " in shown.output, shown.output


def test_a_program_or_key_named_with_brackets_is_created_and_its_key_shown(cli_db: Database, tmp_path: Path) -> None:
    """The name is printed as typed: a ``[/b]`` in it once crashed after the write, so the key was never seen."""
    created = invoke("program", "create", "--name", "Fournil [/b] [Lyon]", "--points-name", "[étoiles]")
    assert created.exit_code == 0, created.output
    program = created_program(created.output)
    assert "Program Fournil [/b] [Lyon] created" in created.output and "key_" in created.output
    key = invoke("program", "keys", "create", program, "--name", "till [/x]", "--scope", "pos")
    assert key.exit_code == 0, key.output
    assert "API key till [/x] (key_" in key.output and re.search(r"key_\w+\.\S+", key.output)
    shown = invoke("program", "show", program)
    assert shown.exit_code == 0, shown.output
    assert "Fournil [/b] [Lyon]" in shown.output and "till [/x]" in shown.output
    assert "[étoiles]" in shown.output
    empty = invoke("rewards", "list", "--program", program)
    assert empty.exit_code == 0 and "No rewards in Fournil [/b] [Lyon] yet" in empty.output, empty.output
    csv = tmp_path / "orders [b] oct.csv"
    csv.write_text(
        "order_id,member_kind,member_value,channel,occurred_at,currency,sku,quantity,unit_price\n"
        "[/b]W-1,email,nobody@example.com,web,2026-10-02T18:30:00Z,EUR,BEANS,1,990\n"
    )
    imported = invoke("import", "purchases", str(csv), "--program", program)
    assert imported.exit_code == 1, imported.output  # the row is rejected: no such member
    assert "orders [b] oct.csv → Fournil [/b] [Lyon]" in imported.output, imported.output
    assert "[/b]W-1" in imported.output  # the rejected row's order id, as typed


def test_help_paragraphs_flow_to_the_terminal_width_and_tables_keep_their_lines() -> None:
    """A docstring's line breaks are not the terminal's: on 200 columns a paragraph is one line, not ragged."""
    worker = runner.invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})
    assert "Several workers may run at once against PostgreSQL" in worker.output, worker.output
    scan = runner.invoke(app, ["scan-cards", "--help"], env={"COLUMNS": "200"})
    assert "1 when a number is found, 2 when nothing is found" in scan.output, scan.output
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    described = next(line for line in top.output.splitlines() if "│ worker " in line)
    assert len(described.rstrip(" │")) > 180, top.output  # filled to the width, not cut at the docstring's break
    csv = runner.invoke(app, ["import", "purchases", "--help"], env={"COLUMNS": "200"})
    assert "must be consecutive. The whole file is checked" in csv.output, csv.output
    assert re.search(r"^ +order_id \* +the order number, unique per program +$", csv.output, re.MULTILINE)
    assert re.search(r"^ +\(2026-03-02T09:15:00\) in the program's time zone +$", csv.output, re.MULTILINE)


def test_an_empty_name_is_said_in_good_english(cli_db: Database) -> None:
    refused = invoke("program", "create", "--name", "Z", "--points-name", "")
    assert refused.exit_code == 2, refused.output
    assert "error invalid_length: Text should have at least 1 character, not 0 (--points-name)" in refused.output


def test_a_refused_key_name_names_the_option_to_change(cli_db: Database) -> None:
    program = created_program(invoke("program", "create", "--name", "Keys").output)
    refused = invoke("program", "keys", "create", program, "--name", "", "--scope", "pos")
    assert refused.exit_code == 2, refused.output
    assert refused.output.startswith("error invalid_length: ") and refused.output.rstrip().endswith("(--name)")


def test_the_top_level_help_lists_commands_in_the_order_a_new_user_needs_them() -> None:
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    listed = re.findall(r"^│ ([a-z][a-z-]*) {2,}", top.output, re.MULTILINE)
    assert listed[:4] == ["demo", "serve", "worker", "db"], listed
    assert listed[-2:] == ["verify", "scan-cards"], listed


def test_scan_cards_names_a_file_with_brackets_as_it_is(tmp_path: Path) -> None:
    from tests.api.helpers import luhn_card

    card = luhn_card()
    log = tmp_path / "app [b].log"
    log.write_text(f"paid with {card}\n", encoding="utf-8")
    found = invoke("scan-cards", "--no-database", str(log))
    assert found.exit_code == 1, found.output
    assert "app [b].log:1" in found.output and f"****{card[-4:]}" in found.output and card not in found.output
    missing = invoke("scan-cards", "--no-database", str(tmp_path / "[red]gone.log"))
    assert missing.exit_code == 2, missing.output
    assert "Not read: " in missing.output and "[red]gone.log" in missing.output, missing.output


@pytest.mark.parametrize("empty_database_url", ENGINES, indirect=True)
def test_program_list_finds_a_program_id_lost_since_it_was_created(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALIER_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("PALIER_CARD_KEY", "k" * 64)
    assert invoke("db", "upgrade").exit_code == 0
    none = invoke("program", "list")
    assert none.exit_code == 0 and "No program yet: create one with `palier program create --name …`" in none.output
    rose = created_program(invoke("program", "create", "--name", "Boulangerie Rose", "--points-name", "grains").output)
    lumiere = created_program(invoke("program", "create", "--name", "Café Lumière", "--currency", "chf").output)
    listed = invoke("program", "list")
    assert listed.exit_code == 0, listed.output
    assert re.search(rf"{rose} +│ Boulangerie Rose +│ EUR +│ Europe/Paris", listed.output), listed.output
    assert re.search(rf"{lumiere} +│ Café Lumière +│ CHF", listed.output), listed.output
    mistyped = invoke("program", "show", "prg_nope")
    assert mistyped.exit_code == 2
    assert "No program prg_nope: `palier program list` shows the programs of this database." in mistyped.output


def test_program_create_says_what_comes_next_and_takes_the_phone_country(cli_db: Database) -> None:
    """A merchant starting without the demo learns how to get a till key and into the console."""
    made = invoke("program", "create", "--name", "Bakery Bern", "--currency", "CHF", "--timezone", "Europe/Zurich",
                  "--default-country", "ch")  # fmt: skip
    assert made.exit_code == 0, made.output
    program_id = created_program(made.output)
    assert f'palier program keys create {program_id} --name "Till" --scope pos' in made.output
    assert f"palier staff add you@example.com --program {program_id} --name " in made.output
    assert "palier serve, then open http://127.0.0.1:8000/console" in made.output
    with cli_db.read() as conn:
        assert get_program(conn=conn, program_id=program_id).default_country == "CH"  # 079 … is a Swiss mobile
    assert re.search(r"phone country +│ CH ", invoke("program", "show", program_id).output)
    wrong = invoke("program", "create", "--name", "X", "--default-country", "Suisse")
    assert wrong.exit_code == 2 and "(--default-country)" in wrong.output, wrong.output


def test_python_dash_m_palier_is_the_same_command_line() -> None:
    """Where a virtualenv's scripts are not on PATH (a cron line, a container), ``python -m palier`` works."""
    ran = subprocess.run(
        [sys.executable, "-m", "palier", "program", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr
    assert "Usage: palier program" in ran.stdout and "apply" in ran.stdout
