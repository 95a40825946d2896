"""``palier verify``: check every conservation invariant of the ledger."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Connection, func, select

from palier.cli.common import console, open_database
from palier.ledger.tables import accounts, ledger_transactions
from palier.ledger.verify import Findings, find
from palier.programs.service import get_program


def verify(
    program: str | None = typer.Option(None, "--program", help="Check one program (default: all)."),
    limit: int = typer.Option(50, min=1, help="Violations listed per invariant at most."),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON document (for monitoring) instead of the table."
    ),
) -> None:
    """Check the ledger: balanced transactions, cached balances and versions, lots, holds and coupons,
    conservation.

    Exits 0 when every invariant holds, 1 (listing what is wrong, at most --limit per invariant) when one
    does not, 2 when the command is refused (an unknown --program).
    """
    with open_database() as db, db.read() as conn:
        if program is not None:
            get_program(conn=conn, program_id=program)
        findings = find(conn, program_id=program, limit=limit)
        transactions, account_count = _counts(conn, program)
    if as_json:
        _print_json(findings, program, transactions, account_count)
    elif findings.violations:
        _print_table(findings, limit)
    else:
        console.print(
            f"[green]Ledger verified: {transactions:,} transactions, {account_count:,} accounts, "
            "all invariants hold[/green]"
        )
    if findings.violations:
        raise typer.Exit(1)


def _print_table(findings: Findings, limit: int) -> None:
    table = Table(title=f"{len(findings.violations)} ledger violation(s)", title_style="bold red")
    for column in ("invariant", "subject", "detail"):
        table.add_column(column, overflow="fold")
    for v in findings.violations:
        table.add_row(v.check, v.subject, escape(v.detail))
    console.print(table)
    for check in findings.more:
        console.print(f"[red]{check}: more than {limit} violations, the first {limit} listed (--limit)[/red]")


def _print_json(findings: Findings, program: str | None, transactions: int, account_count: int) -> None:
    document = {
        "ok": not findings.violations,
        "program_id": program,
        "transactions": transactions,
        "accounts": account_count,
        "violations": [{"check": v.check, "subject": v.subject, "detail": v.detail} for v in findings.violations],
        "more": findings.more,  # invariants with more violations than listed
    }
    typer.echo(json.dumps(document, indent=2))


def _counts(conn: Connection, program_id: str | None) -> tuple[int, int]:
    txns = select(func.count()).select_from(ledger_transactions)
    accts = select(func.count()).select_from(accounts)
    if program_id is not None:
        txns = txns.where(ledger_transactions.c.program_id == program_id)
        accts = accts.where(accounts.c.program_id == program_id)
    return int(conn.execute(txns).scalar_one()), int(conn.execute(accts).scalar_one())
