"""``palier members``: a member's personal data: export it (right of access), erase it (right to erasure)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from palier.cli.common import console, new_app, open_database
from palier.clock import SystemClock
from palier.members.erasure import erase as erase_member
from palier.members.export import export as export_member
from palier.members.export import record_export
from palier.members.models import ErasureIn
from palier.programs.service import get_program
from palier.text import counted

app = new_app("A member's personal data: export everything held about them, or erase them at their request.")
MEMBER = typer.Argument(..., help="The member's id (mem_…).")
PROGRAM = typer.Option(..., "--program", help="The program's id (prg_…).")


@app.command("export")
def export(
    member_id: str = MEMBER,
    program: str = PROGRAM,
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the JSON there (default: print it)."),
) -> None:
    """Everything Palier holds about the member, as one JSON document (payment cards as brand and last four)."""
    with open_database() as db:
        with db.read() as conn:
            found = get_program(conn=conn, program_id=program)
            document = export_member(conn=conn, clock=SystemClock(), program=found, member_id=member_id)
        with db.write() as conn:
            record_export(conn=conn, clock=SystemClock(), program=found, member_id=member_id, actor="cli")
    text = document.model_dump_json(indent=2)
    if output is None:
        typer.echo(text)
    else:
        # a person's whole file: readable by its owner only, an older file's wider rights gone too
        handle = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if hasattr(os, "fchmod"):
            os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as written:
            written.write(text + "\n")
        console.print(f"Export of {member_id} written to {output}.")


@app.command("erase")
def erase(
    member_id: str = MEMBER,
    program: str = PROGRAM,
    reason: str = typer.Option(..., "--reason", help="Why (kept in the audit trail; no card number)."),
    forfeit_store_credit: bool = typer.Option(
        False, "--forfeit-store-credit", help="Erase even with store credit left: the credit is forfeited."
    ),
) -> None:
    """Erase the member at their request: points leave through the ledger, identities and personal data go."""
    sent = ErasureIn(reason=reason, forfeit_store_credit=forfeit_store_credit)  # the API's checks on the reason
    with open_database() as db, db.write() as conn:
        found = get_program(conn=conn, program_id=program)
        result = erase_member(
            conn=conn,
            clock=SystemClock(),
            program=found,
            member_id=member_id,
            reason=sent.reason,
            forfeit_store_credit=sent.forfeit_store_credit,
            actor="cli",
        )
    console.print(
        f"Member {member_id} erased: {result.points_removed:,} {found.points_name_in('en')} taken out, "
        f"{counted(result.coupons_cancelled, 'coupon')} cancelled, "
        f"{counted(result.identities_deleted, 'identity', 'identities')} deleted, "
        f"{counted(result.memberships_lapsed, 'membership')} lapsed"
        + (
            f", {found.money(result.store_credit_forfeited)} store credit forfeited"
            if result.store_credit_forfeited
            else ""
        )
        + ".",
        soft_wrap=True,
    )
