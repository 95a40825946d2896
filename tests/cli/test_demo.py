"""The demo: a believable year of Maison Fournil whose ledger verifies, and the command that serves it."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from sqlalchemy import String, cast, func, select
from typer.testing import CliRunner

from palier.activity.tables import events, purchases
from palier.cli import demo as demo_command
from palier.cli.common import console
from palier.cli.main import app
from palier.clock import SystemClock
from palier.config import DEMO_CARD_KEY
from palier.db import Database, make_database
from palier.demo import DemoInfo, build_demo
from palier.demo import build as demo_build
from palier.ledger.tables import accounts, lots
from palier.ledger.verify import verify
from palier.members.tables import identities, members, merges
from palier.programs.service import authenticate
from palier.programs.tables import programs
from palier.rewards.tables import coupons, order_payments, rewards
from palier.staff import service as staff_service
from tests.conftest import ENGINES

runner = CliRunner()


@pytest.fixture(scope="module", params=ENGINES)
def built(request: pytest.FixtureRequest) -> tuple[Database, DemoInfo]:
    """One demo of 40 members per engine, shared by this module's tests (they only read it)."""
    database: Database = request.getfixturevalue(f"{request.param}_db")
    return database, build_demo(database, members=40, seed=7)


@pytest.fixture
def db(built: tuple[Database, DemoInfo]) -> Database:
    return built[0]


@pytest.fixture
def demo(built: tuple[Database, DemoInfo]) -> DemoInfo:
    return built[1]


def test_the_demo_ledger_verifies_and_has_points_in_every_state(db: Database, demo: DemoInfo) -> None:
    with db.read() as conn:
        assert verify(conn, program_id=demo.program_id) == []
        by_state = dict(
            conn.execute(
                select(lots.c.state, func.sum(lots.c.amount))
                .where(lots.c.program_id == demo.program_id)
                .group_by(lots.c.state)
            ).all()
        )
        balances = dict(
            conn.execute(
                select(accounts.c.kind, func.sum(accounts.c.balance))
                .where(accounts.c.program_id == demo.program_id)
                .group_by(accounts.c.kind)
            ).all()
        )
        statuses = dict(
            conn.execute(
                select(events.c.status, func.count()).where(events.c.program_id == demo.program_id).group_by("status")
            ).all()
        )
        merged = conn.execute(select(func.count()).where(merges.c.program_id == demo.program_id)).scalar_one()
        enrolled = conn.execute(select(func.count()).where(members.c.program_id == demo.program_id)).scalar_one()
    assert by_state["pending"] > 0 and by_state["active"] > 0 and by_state["expired"] > 0
    assert balances["pending"] > 0 and balances["available"] > 0 and balances["expired"] > 0
    assert statuses["processed"] > 40 * 10 and statuses["unclaimed"] > 0
    assert statuses["anonymous"] > 100  # shoppers who are not members, for the members vs non-members KPIs
    assert merged == 1 and enrolled == 41


def test_the_demo_keys_authenticate_with_their_scope(db: Database, demo: DemoInfo) -> None:
    with db.read() as conn:
        for secret, scope in ((demo.admin_key, "admin"), (demo.pos_key, "pos"), (demo.read_key, "read")):
            caller = authenticate(conn=conn, token=secret)
            assert caller.program_id == demo.program_id and caller.scopes == {scope}
        assert demo.sample_member_ids
        for member_id in demo.sample_member_ids:
            kinds = dict(
                conn.execute(select(accounts.c.kind, accounts.c.balance).where(accounts.c.member_id == member_id)).all()
            )
            assert kinds["available"] > 0 and kinds["pending"] > 0


def test_no_card_number_is_stored(db: Database, demo: DemoInfo) -> None:
    """The demo's payment cards are 424242… test numbers: none may appear in any stored text."""
    with db.read() as conn:
        bodies = conn.execute(
            select(cast(events.c.body, String)).where(events.c.program_id == demo.program_id)
        ).scalars()
        cards = conn.execute(
            select(identities.c.value, identities.c.last4).where(
                identities.c.program_id == demo.program_id, identities.c.kind == "payment_card"
            )
        ).all()
    assert not [b for b in bodies if re.search(r"424242\d{6,}", b)]
    assert cards and all(len(value) == 64 and len(last4) == 4 for value, last4 in cards)


def test_the_demo_catalog_is_bilingual_and_members_used_it(db: Database, demo: DemoInfo) -> None:
    with db.read() as conn:
        catalog = conn.execute(
            select(rewards.c.kind, rewards.c.cost_points, rewards.c.title, rewards.c.description, rewards.c.stock)
            .where(rewards.c.program_id == demo.program_id)
            .order_by(rewards.c.cost_points, rewards.c.id)
        ).all()
        states = conn.execute(
            select(rewards.c.kind, coupons.c.state, coupons.c.channel, coupons.c.discount)
            .join(rewards, rewards.c.id == coupons.c.reward_id)
            .where(coupons.c.program_id == demo.program_id, coupons.c.source == "redeem")  # not the Club's gifts
        ).all()
        paid = conn.execute(
            select(order_payments.c.order_id, order_payments.c.points, order_payments.c.amount).where(
                order_payments.c.program_id == demo.program_id
            )
        ).all()
        order = conn.execute(
            select(purchases.c.total, purchases.c.points).where(
                purchases.c.program_id == demo.program_id, purchases.c.order_id == paid[0].order_id
            )
        ).one()
        wallets = conn.execute(
            select(func.sum(accounts.c.balance)).where(
                accounts.c.program_id == demo.program_id, accounts.c.kind == "wallet"
            )
        ).scalar_one()
    assert [(r.kind, r.cost_points, r.stock) for r in catalog] == [
        ("free_product", 100, None), ("free_shipping", 300, None), ("amount_off", 500, None), ("gift", 700, 50),
        ("store_credit", 1000, None), ("amount_off", 1000, None),  # the last: "€10 for every €100" of the rules
    ]  # fmt: skip
    assert all(r.title["fr"] and r.title["en"] and r.description["fr"] and r.description["en"] for r in catalog)
    used_at_till = [s for s in states if s.state == "used" and s.channel == "store"]
    assert len(used_at_till) >= 3 and all(s.discount is not None for s in used_at_till)
    assert [s.state for s in states].count("cancelled") == 1 and [s.state for s in states].count("issued") == 1
    assert [(s.kind, s.state, s.channel) for s in states if s.kind == "store_credit"] == [
        ("store_credit", "used", "wallet")
    ]
    assert wallets == 1000
    assert [(p.points, p.amount) for p in paid] == [(1500, 1500)]
    assert order.points == (order.total - 1500) // 100  # points are earned on the part paid with money only


def test_palier_verify_and_the_rewards_commands_on_the_demo(
    db: Database, demo: DemoInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALIER_DATABASE_URL", db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("PALIER_CARD_KEY", DEMO_CARD_KEY)  # PostgreSQL needs one set: the demo's cards were keyed so
    monkeypatch.setattr(console, "width", 250)
    verified = runner.invoke(app, ["verify", "--program", demo.program_id])
    assert verified.exit_code == 0, verified.output
    assert "all invariants hold" in verified.output
    listed = runner.invoke(app, ["rewards", "list", "--program", demo.program_id])
    assert listed.exit_code == 0, listed.output
    assert "Free café crème" in listed.output and "Café crème offert" in listed.output
    assert re.search(
        r"Maison Fournil tote bag\s*│ gift\s*│.*│\s*48 of 50 left", listed.output
    )  # one handed over, one still open
    with db.read() as conn:
        code = conn.execute(
            select(coupons.c.code).where(
                coupons.c.program_id == demo.program_id, coupons.c.state == "issued", coupons.c.source == "redeem"
            )
        ).scalar_one()
    shown = runner.invoke(app, ["coupons", "show", code, "--program", demo.program_id])
    assert shown.exit_code == 0, shown.output
    assert re.search(r"state\s*│ issued: can be used until", shown.output) and "700 points (held" in shown.output


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(console, "width", 250)
    # palier demo points PALIER_DATABASE_URL at ./palier.db for the API it serves: restored afterwards
    monkeypatch.setenv("PALIER_DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    monkeypatch.setenv("PALIER_SHOW_SIGN_IN_CODES", "0")  # the demo turns it on for the API it serves
    return tmp_path


STAFF_LINE = re.compile(r"^ +(admin|marketer|store_staff) +(\S+@maison-fournil\.example) +(\S+) +/\S+$", re.MULTILINE)


def test_demo_command_builds_once_then_reuses(in_tmp: Path) -> None:
    first = runner.invoke(app, ["demo", "--no-serve", "--members", "12"], env={"COLUMNS": "60"})
    assert first.exit_code == 0, first.output
    assert "the demo is ready" in first.output
    assert re.search(r"Admin key\s+key_\w+\.\S+", first.output)
    assert re.search(r"API\s+http://127\.0\.0\.1:8000\s", first.output), first.output  # the README's $API: no /v1
    assert "/v1/events/purchases" in first.output and "/balance" in first.output
    assert re.search(r"curl -s -H .*/v1/members/mem_\w+/rewards", first.output)
    assert re.search(r"Member portal\s+http://127.0.0.1:8000/p/prg_\w+", first.output)
    assert re.search(r"How it works\s+http://127.0.0.1:8000/how-it-works/prg_\w+", first.output)
    assert re.search(r"Sign in to the portal with \S+@\S+", first.output)
    assert re.search(r"curl -s -X POST .*/v1/members/mem_\w+/portal-link", first.output)
    assert "its button signs the member in" in " ".join(first.output.split())
    assert (in_tmp / demo_command.DEMO_FILE).exists()
    assert re.search(r"Admin console\s+http://127.0.0.1:8000/console", first.output)
    assert re.search(r"Till\s+http://127.0.0.1:8000/till", first.output)
    # whole lines even on a narrow terminal: the e-mail and password are copied from here
    staff_rows = re.findall(STAFF_LINE, first.output)
    assert [row[0] for row in staff_rows] == ["admin", "marketer", "store_staff"], first.output

    program_id = re.search(r"Program\s+(prg_\w+)", first.output)
    assert program_id is not None
    # a program of the same name, created in the demo's folder, does not take the demo's place
    url = f"sqlite:///{in_tmp / demo_command.DEMO_FILE}"
    namesake = runner.invoke(app, ["program", "create", "--name", "Maison Fournil"], env={"PALIER_DATABASE_URL": url})
    assert namesake.exit_code == 0, namesake.output

    again = runner.invoke(app, ["demo", "--no-serve"])
    assert again.exit_code == 0, again.output
    assert "Reusing the demo" in again.output
    assert f"Program  {program_id[1]}" in again.output and "<member id>" not in again.output
    # every run prints new passwords; the old ones stop working, the new ones sign in
    new_rows = re.findall(STAFF_LINE, again.output)
    assert len(new_rows) == 3 and new_rows[0][2] != staff_rows[0][2]
    database = make_database(f"sqlite:///{in_tmp / demo_command.DEMO_FILE}")
    try:
        with database.write() as conn:
            user = staff_service.authenticate(
                conn=conn, clock=SystemClock(), email=new_rows[0][1], password=new_rows[0][2], ip="demo-test"
            )
        assert user.role == "admin"
    finally:
        database.dispose()


def test_demo_refuses_a_database_that_holds_other_programs(in_tmp: Path) -> None:
    url = f"sqlite:///{in_tmp / demo_command.DEMO_FILE}"
    assert runner.invoke(app, ["db", "upgrade"], env={"PALIER_DATABASE_URL": url}).exit_code == 0
    created = runner.invoke(app, ["program", "create", "--name", "My shop"], env={"PALIER_DATABASE_URL": url})
    assert created.exit_code == 0, created.output
    refused = runner.invoke(app, ["demo", "--no-serve"])
    assert refused.exit_code == 2
    assert "error demo_database_in_use" in refused.output


def test_demo_on_a_taken_port_says_so_before_making_keys(in_tmp: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = runner.invoke(app, ["demo", "--port", str(port), "--members", "5"])
    assert refused.exit_code == 2, refused.output
    assert f"error port_in_use: Cannot listen on 127.0.0.1:{port}" in refused.output
    assert "Admin key" not in refused.output and "the demo is ready" not in refused.output
    assert not (in_tmp / demo_command.DEMO_FILE).exists()  # nothing built, no key made, no password reset


@pytest.mark.parametrize("port", ["0", "70000", "-1"])
def test_demo_on_a_port_that_cannot_be_refuses_it_before_building(in_tmp: Path, port: str) -> None:
    """As `palier serve` does: 1 to 65535, said in one line, not an OverflowError's traceback."""
    refused = runner.invoke(app, ["demo", "--port", port, "--members", "5"])
    assert refused.exit_code == 2, refused.output
    assert "Invalid value for '--port': Input should be" in refused.output, refused.output
    assert refused.exception is None or isinstance(refused.exception, SystemExit)
    assert not (in_tmp / demo_command.DEMO_FILE).exists()


def test_demo_on_an_unknown_host_names_the_host_not_the_port(in_tmp: Path) -> None:
    refused = runner.invoke(app, ["demo", "--host", "no-such-host.invalid", "--members", "5"])
    assert refused.exit_code == 2, refused.output
    assert "error invalid_host: Cannot listen on no-such-host.invalid" in refused.output, refused.output
    assert "another server" not in refused.output and refused.output.rstrip().endswith("(--host)")
    assert not (in_tmp / demo_command.DEMO_FILE).exists()


def _programs_in(path: Path) -> int:
    database = make_database(f"sqlite:///{path}")
    try:
        with database.read() as conn:
            return int(conn.execute(select(func.count()).select_from(programs)).scalar_one())
    finally:
        database.dispose()


def test_a_demo_interrupted_while_it_was_built_is_built_again_not_reused(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during "Building Maison Fournil…" (a minute on a small machine), then ``make demo`` again: the demo,
    not a program with half a year in it, no tiers, and "Member <member id>" printed for the URLs."""
    finish = demo_build.add_status

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_build, "add_status", interrupted)
    stopped = runner.invoke(app, ["demo", "--no-serve", "--members", "8"])
    assert stopped.exit_code != 0 and _programs_in(in_tmp / demo_command.DEMO_FILE) == 1
    monkeypatch.setattr(demo_build, "add_status", finish)
    again = runner.invoke(app, ["demo", "--no-serve", "--members", "8"])
    assert again.exit_code == 0, again.output
    assert "was not finished" in again.output and "Reusing" not in again.output
    assert "<member id>" not in again.output and "the demo is ready" in again.output
    assert _programs_in(in_tmp / demo_command.DEMO_FILE) == 1


def test_a_demo_refused_for_its_card_key_writes_nothing(in_tmp: Path) -> None:
    refused = runner.invoke(app, ["demo", "--no-serve", "--members", "8"], env={"PALIER_CARD_KEY": "too-short"})
    assert refused.exit_code == 2 and "PALIER_CARD_KEY" in refused.output
    assert _programs_in(in_tmp / demo_command.DEMO_FILE) == 0
