"""``palier scan-cards``: prove that no payment card number sits in the database, the logs or any file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from palier.cli.common import console, open_database
from palier.privacy import Scan, scan_database, scan_files


def scan_cards(
    paths: list[Path] = typer.Argument(None, help="Log files, exports or directories to read as well."),
    database: bool = typer.Option(True, "--database/--no-database", help="Read every table (default: yes)."),
    limit: int = typer.Option(50, min=1, help="Findings listed at most."),
) -> None:
    """Look for Luhn-valid payment card numbers in every table and in the files given.

    Findings show where and the last four digits only. Exits 0 when nothing is found, 1 when a number is
    found, 2 when nothing is found but a file could not be read (the scan is then not a proof).
    """
    scan = Scan(findings=[])
    if database:
        with open_database() as db, db.read() as conn:
            scan_database(conn, scan)  # also notes the program's own numbers, set aside in the files too
    scan_files(paths or [], scan)
    read = f"{scan.values:,} database values" if database else "no database"
    read += f", {scan.files:,} file{'s' if scan.files != 1 else ''} ({scan.lines:,} lines)" if paths else ""
    read += f", {scan.binary:,} binary file{'s' if scan.binary != 1 else ''} skipped" if scan.binary else ""
    for problem in scan.unreadable:
        console.print(f"[red]Not read: {problem}[/red]", soft_wrap=True)
    if scan.findings:
        table = Table(title=f"{len(scan.findings)} payment card number(s) found in {read}", title_style="bold red")
        table.add_column("where")
        table.add_column("card")
        for finding in scan.findings[:limit]:
            table.add_row(finding.where, finding.card)
        console.print(table)
        raise typer.Exit(1)
    if scan.unreadable:
        console.print(f"[yellow]No payment card number in {read}, but {len(scan.unreadable)} not read[/yellow]")
        raise typer.Exit(2)
    console.print(f"[green]No payment card number in {read}[/green]")
