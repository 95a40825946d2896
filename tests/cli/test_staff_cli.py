"""``palier staff add|list|passwd|deactivate`` through Typer's runner, on a fresh SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from palier.cli.common import console, err_console
from palier.cli.main import app
from palier.clock import FrozenClock
from palier.db import Database, make_database
from palier.errors import Unauthenticated
from palier.staff import service as staff
from tests.services import factories as f

runner = CliRunner()


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setattr(console, "width", 200)
    monkeypatch.setattr(err_console, "width", 200)
    url = f"sqlite:///{tmp_path / 'palier.db'}"
    monkeypatch.setenv("PALIER_DATABASE_URL", url)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    database = make_database(url)
    yield database
    database.dispose()


def test_add_list_change_password_and_deactivate(cli_db: Database) -> None:
    clock = FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    program = f.make_program(cli_db, clock, name="Maison Test")
    added = runner.invoke(
        app,
        ["staff", "add", "Till@Maison.example", "--program", program.id, "--name", "Till 1", "--role", "store_staff"],
        input="a long secret\na long secret\n",
    )
    assert added.exit_code == 0, added.output
    assert "Staff user till@maison.example added as store_staff (stf_" in added.output

    listed = runner.invoke(app, ["staff", "list", "--program", program.id])
    assert listed.exit_code == 0
    assert "till@maison.example" in listed.output and "store_staff" in listed.output and "never" in listed.output
    assert "till.use" in listed.output and "settings.edit" not in listed.output

    bad_role = runner.invoke(
        app,
        ["staff", "add", "x@maison.example", "--program", program.id, "--name", "X", "--role", "owner"],
        input="a long secret\na long secret\n",
    )
    assert bad_role.exit_code == 2 and "invalid_role" in bad_role.output
    short = runner.invoke(
        app,
        [
            "staff",
            "add",
            "y@maison.example",
            "--program",
            program.id,
            "--name",
            "Y",
            "--role",
            "admin",
            "--password-stdin",
        ],
        input="short\n",
    )
    assert short.exit_code == 2 and "password" in short.output

    changed = runner.invoke(
        app,
        ["staff", "passwd", "till@maison.example", "--program", program.id, "--password-stdin"],
        input="another secret\n",
    )
    assert changed.exit_code == 0 and "Password of till@maison.example changed." in changed.output
    with cli_db.write() as conn:
        assert (
            staff.authenticate(
                conn=conn, clock=clock, email="till@maison.example", password="another secret", ip="cli-test"
            ).role
            == "store_staff"
        )

    assert runner.invoke(app, ["staff", "deactivate", "till@maison.example", "--program", program.id]).exit_code == 0
    with cli_db.write() as conn, pytest.raises(Unauthenticated):
        staff.authenticate(conn=conn, clock=clock, email="till@maison.example", password="another secret", ip="cli-t")
    back = runner.invoke(app, ["staff", "reactivate", "till@maison.example", "--program", program.id])
    assert back.exit_code == 0 and "can sign in again" in back.output
    promoted = runner.invoke(app, ["staff", "role", "till@maison.example", "--program", program.id, "--role", "admin"])
    assert promoted.exit_code == 0 and "is now admin" in promoted.output
    with cli_db.read() as conn:
        assert [(u.email, u.role) for u in staff.list_users(conn=conn, program_id=program.id)] == [
            ("till@maison.example", "admin")
        ]
    last = runner.invoke(app, ["staff", "role", "till@maison.example", "--program", program.id, "--role", "marketer"])
    assert last.exit_code == 2 and "last_admin" in last.output  # the program's only admin stays one
    unknown = runner.invoke(app, ["staff", "passwd", "nobody@maison.example", "--program", program.id], input="x\nx\n")
    assert unknown.exit_code == 2 and "staff_not_found" in unknown.output
    assert "Password" not in unknown.output  # said at once, not after the password was typed twice
    mistyped = runner.invoke(
        app, ["staff", "add", "new@maison.example", "--program", "prg_nope", "--name", "New", "--role", "marketer"],
        input="a long enough password\na long enough password\n",
    )  # fmt: skip
    assert mistyped.exit_code == 2 and "program_not_found" in mistyped.output
    assert "Password" not in mistyped.output  # a mistyped program is said before the password is asked


def test_staff_list_shows_each_email_whole_on_a_narrow_terminal(
    cli_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The e-mail is what `staff passwd`, `role` and `deactivate` take: it is copied, so never folded."""
    program = f.make_program(cli_db, FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC)), name="Maison Test")
    email = "caisse.lyon.croix-rousse@maison-fournil.example"
    added = runner.invoke(
        app,
        ["staff", "add", email, "--program", program.id, "--name", "Hugo", "--role", "store_staff"],
        input="a long secret\na long secret\n",
    )
    assert added.exit_code == 0, added.output
    monkeypatch.setattr(console, "width", 100)
    listed = runner.invoke(app, ["staff", "list", "--program", program.id])
    assert listed.exit_code == 0
    assert email in listed.output, listed.output
