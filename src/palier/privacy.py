"""Looking for payment card numbers where none may be: the database, log files, fixtures and exports.

Palier keeps a payment card only as an HMAC of its number with its last four digits and brand; free text
refuses anything that looks like a card; log handlers mask what reaches them. This is the check that all of
it holds, for ``palier scan-cards`` and for the test suite: every text and JSON value of every table, and
every line of the files given, searched for a Luhn-valid number shaped like a payment card
(:func:`palier.text.find_card_numbers`). A finding names where it is and the last four digits, never the number.

The program's own member numbers are not payment cards even when they pass the Luhn check (many loyalty card
schemes use it): loyalty card numbers and external customer ids held as identities are set aside wherever
they appear (in identities, event payloads, stored responses).
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import JSON, Connection, String, Table, select

from palier.db.schema import metadata
from palier.members.identities import is_payment_card_number
from palier.members.tables import identities
from palier.text import digits_of, find_card_numbers, masked

SKIPPED_DIRECTORIES = frozenset({".git", ".venv", "venv", "__pycache__", "node_modules", ".mypy_cache", ".ruff_cache"})


@dataclass(frozen=True)
class Finding:
    where: str  # "identities.value (idn_…)" or "logs/api.log:42"
    card: str  # masked: ****1234


@dataclass
class Scan:
    findings: list[Finding]
    values: int = 0  # database values read
    files: int = 0
    lines: int = 0
    unreadable: list[str] = field(default_factory=list)  # "app.log: no such file": the scan is not complete
    binary: int = 0  # files skipped as binary (images, databases, archives other than gzip)
    own: set[str] = field(default_factory=set)  # the programs' own member numbers, set aside (see above)


def program_numbers(conn: Connection) -> set[str]:
    """The card-shaped numbers that are the programs' own member numbers (loyalty cards, customer ids).

    A number in a payment network's range is not set aside: a bank card stored as a loyalty card or customer
    id before those were refused is exactly what the scan is for."""
    query = select(identities.c.value).where(identities.c.kind.in_(("card", "external")))
    own: set[str] = set()
    for (value,) in conn.execution_options(yield_per=5_000).execute(query):
        numbers = (digits_of(number) for number in find_card_numbers(value))
        own.update(number for number in numbers if not is_payment_card_number(number))
    return own


def _text_columns(table: Table) -> list[str]:
    names = []
    for column in table.columns:
        kind = column.type
        if isinstance(kind, JSON) or (isinstance(kind, String) and (kind.length is None or kind.length >= 12)):
            names.append(column.name)
    return names


def database_values(conn: Connection) -> Iterator[tuple[str, str]]:
    """Every text and JSON value of every Palier table, as text, with where it is: ``table.column (key)``."""
    for table in metadata.sorted_tables:
        names = _text_columns(table)
        if not names:
            continue
        keys = list(table.primary_key.columns)
        query = select(*keys, *(table.c[name] for name in names))
        for row in conn.execution_options(yield_per=2_000).execute(query):
            key = "/".join(str(value) for value in row[: len(keys)])
            for name, value in zip(names, row[len(keys) :], strict=True):
                if value is not None:
                    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                    yield f"{table.name}.{name} ({key})", text


def scan_database(conn: Connection, scan: Scan | None = None) -> Scan:
    """Every text and JSON value of every Palier table."""
    scan = scan or Scan(findings=[])
    own = scan.own = program_numbers(conn)
    for where, text in database_values(conn):
        scan.values += 1
        for number in find_card_numbers(text):
            if digits_of(number) not in own:
                scan.findings.append(Finding(where, masked(number)))
    return scan


def every_value(conn: Connection) -> Iterator[tuple[str, str]]:
    """Every value of every column of every Palier table, as text (a date as 1984-07-19, a JSON value as JSON),
    with where it is: ``table.column (key)``. Slower than :func:`database_values`, and thorough: a birthday, a
    card's last four digits or brand are found too."""
    for table in metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        for row in conn.execution_options(yield_per=2_000).execute(select(table)).mappings():
            key = "/".join(str(row[column.name]) for column in keys)
            for name, value in row.items():
                if value is None:
                    continue
                if isinstance(value, str):
                    text = value
                elif isinstance(value, dict | list):
                    text = json.dumps(value, ensure_ascii=False, default=str)
                elif isinstance(value, date | datetime):
                    text = value.isoformat()
                else:
                    text = str(value)
                yield f"{table.name}.{name} ({key})", text


def find_mentions(conn: Connection, wanted: Iterable[str]) -> list[tuple[str, str]]:
    """Where any of the ``wanted`` strings (a member's e-mail, names, birthday, card HMAC…) is still held, in any
    column of any table: (where, which), case-insensitively. How an erasure is checked: nothing of the person is
    left anywhere."""
    needles = [w.casefold() for w in wanted if w]
    found = []
    for where, text in every_value(conn):
        folded = text.casefold()
        found += [(where, needle) for needle in needles if needle in folded]
    return found


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for root, directories, names in os.walk(path):
                directories[:] = sorted(d for d in directories if d not in SKIPPED_DIRECTORIES)
                yield from (Path(root) / name for name in sorted(names))
        else:
            yield path


def _text_of(path: Path) -> str | None:
    """What a file says: gzip unpacked (rotated logs), UTF-16 read by its byte-order mark, anything else as
    UTF-8 (undecodable bytes replaced, so a Latin-1 log is still read); None for a binary file."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    for mark, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(mark):
            return data.decode(encoding, errors="replace")
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def scan_files(paths: Iterable[Path], scan: Scan | None = None) -> Scan:
    """Every line of the files given (directories walked; .git and virtualenvs skipped). A file that cannot be
    read is listed in ``unreadable``: a scan that skipped it proves nothing about it."""
    scan = scan or Scan(findings=[])
    for path in _files(paths):
        try:
            text = _text_of(path)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            scan.unreadable.append(f"{path}: {getattr(exc, 'strerror', None) or exc}")
            continue
        if text is None:
            scan.binary += 1
            continue
        scan.files += 1
        for number_line, line in enumerate(text.splitlines(), start=1):
            scan.lines += 1
            for number in find_card_numbers(line):
                if digits_of(number) not in scan.own:
                    scan.findings.append(Finding(f"{path}:{number_line}", masked(number)))
    return scan
