"""``palier scan-cards``: prove that no payment card number sits in the database, the logs or any file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from palier.cli.common import EXIT_REFUSED, console, open_database
from palier.privacy import Scan, scan_database, scan_files
from palier.text import counted


def scan_cards(
    paths: list[Path] = typer.Argument(None, help="Log files, exports or directories to read as well."),
    database: bool = typer.Option(True, "--database/--no-database", help="Read every table (default: yes)."),
    limit: int = typer.Option(50, min=1, help="Findings listed at most."),
) -> None:
    """Look for Luhn-valid payment card numbers in every table and in the files given.

    Findings show where and the last four digits only. Exits 0 when nothing is found, 1 when a number is
    found, 2 when nothing is found but a file could not be read, or nothing was read at all (the scan is
    then not a proof).
    """
    scan = Scan(findings=[])
    if database:
        with open_database() as db, db.read() as conn:
            scan_database(conn, scan)  # also notes the program's own numbers, set aside in the files too
    scan_files(paths or [], scan)
    read = _what_was_read(scan, database=database, files=bool(paths))
    for problem in scan.unreadable:
        console.print(f"[red]Not read: {escape(str(problem))}[/red]", soft_wrap=True)
    if scan.findings:
        found = counted(len(scan.findings), "payment card number")
        table = Table(title=f"{found} found in {read}", title_style="bold red")
        table.add_column("where")
        table.add_column("card")
        for finding in scan.findings[:limit]:
            table.add_row(escape(finding.where), finding.card)  # a path as it is, never markup
        console.print(table)
        raise typer.Exit(1)
    if scan.unreadable:
        console.print(f"[yellow]No payment card number in {read}, but {len(scan.unreadable)} not read[/yellow]")
        raise typer.Exit(EXIT_REFUSED)
    if not database and not scan.files:
        console.print(
            f"[yellow]Nothing was scanned ({read}): give the files or directories to read, "
            "or leave out --no-database.[/yellow]"
        )
        raise typer.Exit(EXIT_REFUSED)
    console.print(f"[green]No payment card number in {read}[/green]")


def _what_was_read(scan: Scan, *, database: bool, files: bool) -> str:
    """ "754,100 database values, 1 file (37 lines)": what the scan covered, the counts agreeing."""
    parts = [counted(scan.values, "database value")] if database else []
    if files:
        parts.append(f"{counted(scan.files, 'file')} ({counted(scan.lines, 'line')})")
    if scan.binary:
        parts.append(f"{counted(scan.binary, 'binary file')} skipped")
    return ", ".join(parts) or "no database and no file"
