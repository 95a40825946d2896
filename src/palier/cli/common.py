"""What every command shares: the consoles, the database from the environment, the one error handler."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from typer.core import TyperGroup

from palier.api.problems import field_path, validation_code
from palier.config import Settings, load_settings
from palier.db import Database, DatabaseUrlError, make_database, migrate
from palier.errors import InvalidInput, PalierError, error_location, validation_message

# Piped into a file or another program, tables are laid out 160 columns wide rather than a terminal's
# default 80, where ids and names would be folded; COLUMNS, or a terminal's own width, wins.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False)

EXIT_REFUSED = 2  # a PalierError: the command was refused, nothing was changed by it


def print_error(error: PalierError) -> None:
    where = f" ({error.field})" if error.field else ""
    # the detail quotes what was typed and patterns such as [a-z0-9]: text, never Rich markup
    err_console.print(f"error {error.code}: {error.detail}{where}", style="red", markup=False, soft_wrap=True)


def from_validation(error: ValidationError) -> InvalidInput:
    """The first problem of a pydantic error, with the same code and field the API would give."""
    first = error.errors()[0]
    message = validation_message(first)
    code = validation_code(dict(first))
    message = message.removeprefix(f"{code}: ")
    return InvalidInput(code, message, field=field_path(error_location(first)))


@contextmanager
def naming_options(renamed: Mapping[str, str] | None) -> Iterator[None]:
    """Say a refusal with the option the user typed, not the API's field name: the fields whose option has
    another name are in ``renamed`` (``cost_points`` → ``--cost``), the others are the field with dashes
    (``min_order`` → ``--min-order``). ``None``: the fields came from a file, and are named as they are."""
    try:
        yield
    except ValidationError as error:
        raise naming_options_of(from_validation(error), renamed) from None
    except PalierError as error:
        raise naming_options_of(error, renamed) from None


def naming_options_of(error: PalierError, renamed: Mapping[str, str] | None) -> PalierError:
    if error.field == "body":  # a rule across fields ("an amount_off reward needs amount"): no one option
        error.field = None
    elif error.field and renamed is not None:
        error.field = renamed.get(error.field, f"--{error.field.replace('_', '-')}")
    return error


def _missing_tables(error: Exception) -> bool:
    text = str(error)
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def shown_url(url: str) -> str:
    """A database URL as it may be printed: its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # not even parsed: hide what sits between "user:" and "@"
        return re.sub(r"(?<=:)[^:@/]*(?=@)", "***", url)


def _unavailable(error: OperationalError) -> PalierError:
    reason = str(error.orig or error).strip().splitlines()[0] if str(error.orig or error).strip() else "no answer"
    url = shown_url(settings().database_url)
    return PalierError(
        "database_unavailable",
        f"Could not use the database at {url}: {reason}. Check PALIER_DATABASE_URL, and that the server runs.",
        field="PALIER_DATABASE_URL",
    )


def read_text(path: Path, *, code: str, field: str, encoding: str = "utf-8") -> str:
    """A file a person gives, as text; one not in UTF-8 (saved by Excel or an old editor) is refused with ``code``
    at ``field``, naming the byte, rather than a traceback."""
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as error:
        raise InvalidInput(
            code,
            f"{path.name} is not UTF-8 text (byte {error.object[error.start]:#04x} at position {error.start}): "
            "save it as UTF-8.",
            field=field,
        ) from None


def flowed(text: str | None) -> str | None:
    """A docstring's paragraphs each on one line, for the terminal to wrap at its own width (Rich keeps a
    docstring's line breaks, which on 80 columns leaves every other line half empty); indented lines, such
    as the table of CSV columns, keep theirs."""
    if not text:
        return text
    paragraphs = []
    for paragraph in text.split("\n\n"):
        lines: list[str] = []
        for line in paragraph.split("\n"):
            if lines and line and not line[0].isspace() and lines[-1] and not lines[-1][0].isspace():
                lines[-1] += " " + line
            else:
                lines.append(line)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


_ORDER = (
    "demo",
    "serve",
    "worker",
    "db",
    "program",
    "rewards",
    "coupons",
    "members",
    "staff",
    "import",
    "jobs",
    "verify",
)


class PalierGroup(TyperGroup):
    """Routes every refusal through one handler: ``error <code>: <detail> (field)`` in red, exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = flowed(self.help)
        for command in self.commands.values():
            command.help = flowed(command.help)

    def list_commands(self, ctx: Any) -> list[str]:
        """In the order a new user meets them (``palier --help``); a group's own commands as registered."""
        names = super().list_commands(ctx)
        return sorted(names, key=lambda name: _ORDER.index(name) if name in _ORDER else len(_ORDER))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PalierError as error:
            print_error(error)
            raise typer.Exit(EXIT_REFUSED) from None
        except ValidationError as error:
            print_error(from_validation(error))
            raise typer.Exit(EXIT_REFUSED) from None
        except DatabaseUrlError as error:
            url = shown_url(settings().database_url)
            print_error(PalierError("invalid_database_url", f"{url}: {error}.", field="PALIER_DATABASE_URL"))
            raise typer.Exit(EXIT_REFUSED) from None
        except (OperationalError, ProgrammingError) as error:
            if not _missing_tables(error):
                if not isinstance(error, OperationalError):
                    raise
                print_error(_unavailable(error))
                raise typer.Exit(EXIT_REFUSED) from None
            where = database_place(settings().database_url)
            print_error(
                PalierError(
                    "database_not_ready",
                    f"The database {where} has no Palier tables yet: run `palier db upgrade` first "
                    "(or set PALIER_DATABASE_URL to the database you meant).",
                    field="PALIER_DATABASE_URL",
                )
            )
            raise typer.Exit(EXIT_REFUSED) from None


ID_WIDTH = 30  # prg_, rwd_, key_… and 26 characters: shown whole, since people copy them into the next command


def table_columns(
    table: Table, columns: Iterable[str], *, right: Iterable[str] = (), whole: Iterable[str] = ()
) -> None:
    """Add ``columns`` to ``table``: an ``id`` column, and the ``whole`` ones (what the next command takes, such
    as a staff user's e-mail), never cut or folded, the others folded onto more lines when the terminal is
    narrow (never cut short with "…", which would hide what a person needs to read)."""
    aligned, kept = set(right), set(whole)
    for column in columns:
        if column == "id":
            table.add_column(column, no_wrap=True, min_width=ID_WIDTH)
        elif column in kept:
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, overflow="fold", justify="right" if column in aligned else "left")


def new_app(help_text: str) -> typer.Typer:
    return typer.Typer(cls=PalierGroup, help=help_text, no_args_is_help=True, add_completion=False)


def settings() -> Settings:
    return load_settings()


def sqlite_file(url: str) -> Path | None:
    """The file an SQLite URL names, resolved from this directory (None for another engine, or in memory)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name).resolve()


def database_place(url: str) -> str:
    """Where a database is, as a person would look for it: an SQLite file's full path, else its URL."""
    file = sqlite_file(url)
    return str(file) if file is not None else shown_url(url)


def _refuse_missing_file(url: str) -> None:
    file = sqlite_file(url)
    if file is not None and file.parent.is_dir() and not file.exists():  # no directory: database_unavailable
        raise PalierError(
            "database_not_ready",
            f"No database at {file}: run `palier db upgrade` first to create it, or run the command where the "
            "database is (the demo's is palier.db in the folder `palier demo` ran in), or set PALIER_DATABASE_URL.",
            field="PALIER_DATABASE_URL",
        )


def require_ready_database() -> str:
    """The URL of ``PALIER_DATABASE_URL`` once checked as a long-running process (``serve``, ``worker``) needs
    it before it starts: reachable and migrated to this version, else one line and exit 2, not a traceback
    per request or per job for as long as it runs."""
    url = settings().database_url
    _refuse_missing_file(url)
    migrate.require_current(url, place=database_place(url))
    return url


@contextmanager
def open_database(url: str | None = None) -> Iterator[Database]:
    """The database named by ``PALIER_DATABASE_URL`` (or ``url``), disposed of afterwards.

    An SQLite file that does not exist is refused rather than created empty (with its ``-writer`` lock file)
    where the command happened to run: only ``palier db upgrade`` and ``palier demo`` create one."""
    url = url or settings().database_url
    _refuse_missing_file(url)
    database = make_database(url)
    try:
        yield database
    finally:
        database.dispose()
