"""``palier members export`` and ``palier members erase``, through Typer's runner."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from palier.clock import FrozenClock
from palier.db import Database
from palier.ledger.verify import verify
from palier.members import service as members
from palier.programs.models import Program
from palier.programs.service import audit_trail
from tests.api.helpers import luhn_card

# the same database, clock, program and wide console as the other CLI tests
from tests.cli.test_rewards import cli_db, clock, invoke, program, wide_console  # noqa: F401
from tests.services import factories as f


def test_export_then_erase_from_the_command_line(
    cli_db: Database,  # noqa: F811
    clock: FrozenClock,  # noqa: F811
    program: Program,  # noqa: F811
) -> None:
    card = luhn_card()
    member = f.enrol(
        cli_db,
        clock,
        program,
        first_name="Solveig",
        email="solveig.cli@example.org",
        identities=[("payment_card", card)],
    )
    f.adjust(cli_db, clock, program, member, 250)

    exported = invoke("members", "export", member.id, "--program", program.id)
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.output)
    assert document["profile"]["email"] == "solveig.cli@example.org" and document["balance"]["available"] == 250
    assert card not in exported.output and card[-4:] in exported.output
    with cli_db.read() as conn:
        trail = audit_trail(conn=conn, program_id=program.id, cursor=None, limit=1).items
    assert [(a.action, a.subject_id, a.actor) for a in trail] == [("member.exported", member.id, "cli")]

    refused = invoke("members", "erase", member.id, "--program", program.id, "--reason", f"card {card}")
    assert refused.exit_code == 2 and card not in refused.output

    erased = invoke("members", "erase", member.id, "--program", program.id, "--reason", "Asked to be forgotten")
    assert erased.exit_code == 0, erased.output
    assert (
        f"Member {member.id} erased: 250 points taken out, 0 coupons cancelled, 2 identities deleted" in erased.output
    )
    with cli_db.read() as conn:
        gone = members.get_member(conn=conn, program_id=program.id, member_id=member.id)
        assert verify(conn, program_id=program.id) == []
    assert (gone.status, gone.email, gone.first_name, gone.identities) == ("erased", None, None, [])
    again = invoke("members", "erase", member.id, "--program", program.id, "--reason", "Asked to be forgotten")
    assert again.exit_code == 0 and "250 points taken out" in again.output

    unknown = invoke("members", "export", "mem_00000000000000000000000000", "--program", program.id)
    assert unknown.exit_code == 2 and "member_not_found" in unknown.output


def test_an_export_written_to_a_file_is_readable_by_its_owner_only(
    cli_db: Database,  # noqa: F811
    clock: FrozenClock,  # noqa: F811
    program: Program,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A member's whole file on a shared server: not for every account on it to read (the console's download and
    the API's answer are the admin's alone too). Written again, an older file's wider rights go as well."""
    member = f.enrol(cli_db, clock, program, first_name="Solveig", email="solveig.file@example.org")
    target = tmp_path / "member-export.json"
    target.write_text("{}")
    target.chmod(0o644)
    exported = invoke("members", "export", member.id, "--program", program.id, "--output", str(target))
    assert exported.exit_code == 0, exported.output
    assert json.loads(target.read_text())["profile"]["email"] == "solveig.file@example.org"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
