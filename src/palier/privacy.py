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

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import JSON, Connection, String, Table, select

from palier.db.schema import metadata
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
    own: set[str] = field(default_factory=set)  # the programs' own member numbers, set aside (see above)


def program_numbers(conn: Connection) -> set[str]:
    """The card-shaped numbers that are the programs' own member numbers (loyalty cards, customer ids)."""
    query = select(identities.c.value).where(identities.c.kind.in_(("card", "external")))
    own: set[str] = set()
    for (value,) in conn.execution_options(yield_per=5_000).execute(query):
        own.update(digits_of(number) for number in find_card_numbers(value))
    return own


def _text_columns(table: Table) -> list[str]:
    names = []
    for column in table.columns:
        kind = column.type
        if isinstance(kind, JSON) or (isinstance(kind, String) and (kind.length is None or kind.length >= 12)):
            names.append(column.name)
    return names


def scan_database(conn: Connection, scan: Scan | None = None) -> Scan:
    """Every text and JSON value of every Palier table."""
    scan = scan or Scan(findings=[])
    own = scan.own = program_numbers(conn)
    for table in metadata.sorted_tables:
        names = _text_columns(table)
        if not names:
            continue
        keys = list(table.primary_key.columns)
        query = select(*keys, *(table.c[name] for name in names))
        for row in conn.execution_options(yield_per=2_000).execute(query):
            key = "/".join(str(value) for value in row[: len(keys)])
            for name, value in zip(names, row[len(keys) :], strict=True):
                if value is None:
                    continue
                scan.values += 1
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                for number in find_card_numbers(text):
                    if digits_of(number) not in own:
                        scan.findings.append(Finding(f"{table.name}.{name} ({key})", masked(number)))
    return scan


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for root, directories, names in os.walk(path):
                directories[:] = sorted(d for d in directories if d not in SKIPPED_DIRECTORIES)
                yield from (Path(root) / name for name in sorted(names))
        else:
            yield path


def scan_files(paths: Iterable[Path], scan: Scan | None = None) -> Scan:
    """Every line of the files given (directories walked; binary files, .git and virtualenvs skipped)."""
    scan = scan or Scan(findings=[])
    for path in _files(paths):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if b"\0" in data[:8192]:
            continue  # binary: images, databases, archives
        scan.files += 1
        for number_line, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
            scan.lines += 1
            for number in find_card_numbers(line):
                if digits_of(number) not in scan.own:
                    scan.findings.append(Finding(f"{path}:{number_line}", masked(number)))
    return scan
