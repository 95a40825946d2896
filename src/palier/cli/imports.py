"""``palier import purchases``: a CSV of past or daily orders, in bulk, safe to run again."""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from palier.activity.bulk import ImportStats, RowProblem, import_batches
from palier.activity.models import PurchaseIn
from palier.cli.common import console, new_app, open_database, settings
from palier.cli.csv_problems import csv_column
from palier.cli.purchases_csv import HELP, Batch, check_file, read_batches, reading_encoding
from palier.clock import SystemClock
from palier.errors import InvalidInput
from palier.programs.models import Program
from palier.programs.service import get_program
from palier.text import counted, mask_card_numbers, points_word

app = new_app("Bulk imports from files.")
SHOWN_PROBLEMS = 100


@app.command(
    "purchases",
    help="Import purchases from a CSV file, in batches (one transaction each).\n\n"
    "Safe to run again, after a crash too: orders already present with the same content are skipped, "
    "orders present with different content are reported as conflicts, and the import goes on. "
    "Exits 0 when every row was imported or skipped, 1 when some were rejected.\n\n" + HELP,
)
def purchases(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="The CSV file."),
    program: str = typer.Option(..., "--program", help="The program's id (prg_…)."),
    batch_size: int = typer.Option(1000, min=1, max=50_000, help="Orders per database transaction."),
    encoding: str = typer.Option("utf-8", help="The file's encoding: utf-8, or cp1252 for Excel's plain CSV."),
    rejected: Path | None = typer.Option(
        None,
        "--rejected",
        dir_okay=False,
        help="Write every rejected row to this CSV file (row, order_id, code, column, detail): the table on the "
        f"screen shows the first {SHOWN_PROBLEMS}.",
    ),
) -> None:
    config = settings()
    if rejected is not None:
        _check_writable(rejected, file)
    clock = SystemClock()
    total_rows = check_file(file, encoding=encoding)
    started = time.perf_counter()
    with open_database(config.database_url) as db:
        with db.read() as conn:
            loyalty = get_program(conn=conn, program_id=program)
        with file.open(encoding=reading_encoding(encoding), newline="") as stream, _progress() as progress:
            task = progress.add_task(f"Importing {escape(file.name)}", total=total_rows)
            batches = _Batches(read_batches(stream, size=batch_size), progress, task)
            try:
                stats = import_batches(
                    db=db,
                    clock=clock,
                    program_id=program,
                    batches=batches,
                    card_key=config.card_hash_key,
                    after_batch=batches.done,
                )
            except KeyboardInterrupt:
                progress.stop()
                console.print(
                    f"[yellow]Interrupted: {counted(batches.committed, 'order')} committed. Run the same command "
                    "again to finish: they will be skipped.[/yellow]"
                )
                raise typer.Exit(130) from None
    stats.rejected = sorted(batches.problems + stats.rejected, key=lambda p: p.row)
    if rejected is not None:
        _write_rejected(rejected, stats.rejected)
    _summary(file, loyalty, stats, time.perf_counter() - started, listed=rejected)
    if stats.rejected:
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=console,
    )


class _Batches:
    """Feeds valid purchases to the importer, keeps the rows that failed validation, moves the bar."""

    def __init__(self, batches: Iterator[Batch], progress: Progress, task: TaskID) -> None:
        self._batches = batches
        self._progress = progress
        self._task = task
        self._in_flight = 0
        self.problems: list[RowProblem] = []
        self.committed = 0  # orders in the batches committed so far

    def __iter__(self) -> Iterator[tuple[Sequence[PurchaseIn], Sequence[int]]]:
        for batch in self._batches:
            self.problems += batch.problems
            self._in_flight = batch.csv_rows
            yield batch.purchases, batch.rows

    def done(self, stats: ImportStats) -> None:
        self.committed += stats.imported + stats.unclaimed
        self._progress.advance(self._task, self._in_flight)


def _summary(file: Path, program: Program, stats: ImportStats, seconds: float, *, listed: Path | None) -> None:
    orders = stats.imported + stats.unclaimed + stats.skipped + len(stats.rejected)
    table = Table(
        title=f"{escape(file.name)} → {escape(program.name)} ({program.id})", title_justify="left", show_header=False
    )
    table.add_column("what", style="bold")
    table.add_column("orders", justify="right")
    table.add_column("")
    expired = f" ({stats.expired:,} of them expired as recorded: sent after their life)" if stats.expired else ""
    points = f"{stats.points:,} {points_word(stats.points, program.points_name_in('en'), 'en')}"
    table.add_row("imported", f"{stats.imported:,}", f"credited to members: {points}{expired}")
    table.add_row("unclaimed", f"{stats.unclaimed:,}", "paid with a payment card nobody has linked yet")
    table.add_row("already present", f"{stats.skipped:,}", "skipped: received before with the same content")
    conflicts = f", {counted(stats.conflicts, 'conflict')} with orders already present" if stats.conflicts else ""
    table.add_row("rejected", f"{len(stats.rejected):,}", f"not imported{conflicts}")
    console.print(table)
    rate = orders / seconds if seconds else 0.0
    console.print(f"{counted(orders, 'order')} in {seconds:.1f} s ({rate:,.0f} orders/s)")
    if stats.rejected:
        _problems(stats.rejected, listed)


def _problems(problems: list[RowProblem], listed: Path | None) -> None:
    table = Table(title="Rejected rows", title_justify="left", title_style="bold red")
    for column in ("row", "order", "code", "field", "detail"):
        table.add_column(column, overflow="fold")
    for p in problems[:SHOWN_PROBLEMS]:
        order, detail = escape(mask_card_numbers(p.order_id or "")), escape(p.detail)  # as typed, never markup
        table.add_row(str(p.row), order, p.code, escape(csv_column(p.field) or ""), detail)
    console.print(table)
    if len(problems) > SHOWN_PROBLEMS:
        where = f"listed in {escape(str(listed))}" if listed else "run again with --rejected FILE.csv to list them all"
        console.print(f"… and {len(problems) - SHOWN_PROBLEMS:,} more: {where}.")
    elif listed:
        console.print(f"Listed in {escape(str(listed))} too.")


def _check_writable(path: Path, file: Path) -> None:
    """Refuses, before anything is imported, a --rejected file that could not be written after."""
    if path.resolve() == file.resolve():
        raise InvalidInput(
            "csv_rejected_is_the_file", "--rejected must name another file than the one imported.", field="--rejected"
        )
    folder = path.resolve().parent
    if not (os.access(path, os.W_OK) if path.exists() else folder.is_dir() and os.access(folder, os.W_OK)):
        raise InvalidInput(
            "csv_rejected_unwritable", f"Cannot write {path} (no such folder, or not allowed).", field="--rejected"
        )


def _write_rejected(path: Path, problems: list[RowProblem]) -> None:
    """Every rejected row, as the table shows them (an order id holding a card number masked), in a CSV file
    Excel opens as it is (UTF-8 with its byte-order mark)."""
    with path.open("w", encoding="utf-8-sig", newline="") as report:
        out = csv.writer(report)
        out.writerow(("row", "order_id", "code", "column", "detail"))
        for p in problems:
            out.writerow((p.row, mask_card_numbers(p.order_id or ""), p.code, csv_column(p.field) or "", p.detail))
