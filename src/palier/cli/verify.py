"""``palier verify``: check every conservation invariant of the ledger."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy import Connection, func, select

from palier.cli.common import console, open_database
from palier.ledger.tables import accounts, ledger_transactions
from palier.ledger.verify import verify as verify_ledger
from palier.programs.service import get_program


def verify(
    program: str | None = typer.Option(None, "--program", help="Check one program (default: all)."),
    limit: int = typer.Option(50, min=1, help="Violations listed per invariant at most."),
) -> None:
    """Check the ledger: balanced transactions, cached balances, lots, holds, conservation.

    Exits 0 when every invariant holds, 1 (with a table of what is wrong) otherwise.
    """
    with open_database() as db, db.read() as conn:
        if program is not None:
            get_program(conn=conn, program_id=program)
        violations = verify_ledger(conn, program_id=program, limit=limit)
        transactions, account_count = _counts(conn, program)
    if violations:
        table = Table(title=f"{len(violations)} ledger violation(s)", title_style="bold red")
        for column in ("invariant", "subject", "detail"):
            table.add_column(column)
        for v in violations:
            table.add_row(v.check, v.subject, v.detail)
        console.print(table)
        raise typer.Exit(1)
    console.print(
        f"[green]Ledger verified: {transactions:,} transactions, {account_count:,} accounts, "
        "all invariants hold[/green]"
    )


def _counts(conn: Connection, program_id: str | None) -> tuple[int, int]:
    txns = select(func.count()).select_from(ledger_transactions)
    accts = select(func.count()).select_from(accounts)
    if program_id is not None:
        txns = txns.where(ledger_transactions.c.program_id == program_id)
        accts = accts.where(accounts.c.program_id == program_id)
    return int(conn.execute(txns).scalar_one()), int(conn.execute(accts).scalar_one())
