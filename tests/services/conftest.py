"""Fixtures for service tests: programs that check their ledger with ``verify()`` when the test ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from palier.clock import FrozenClock
from palier.db import Database
from palier.programs.models import Program
from tests.services.factories import assert_ledger_sound, make_program


@pytest.fixture
def new_program(db: Database, clock: FrozenClock) -> Iterator[Callable[..., Program]]:
    """Make programs with any settings; each one's ledger must verify clean at teardown."""
    made: list[Program] = []

    def make(**settings: Any) -> Program:
        program = make_program(db, clock, **settings)
        made.append(program)
        return program

    yield make
    for program in made:
        assert_ledger_sound(db, program)


@pytest.fixture
def program(new_program: Callable[..., Program]) -> Program:
    """A program with the default settings (1 pt per 1.00 EUR, floor, 14-day window, 12-month life)."""
    return new_program()
