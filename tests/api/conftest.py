"""API test harness: the app on both engines, programs made through the API, ledgers verified at teardown.

Every test makes its own program with ``POST /v1/programs`` (the operator token) and works with the
admin key it returns. When the test ends, ``palier verify`` must find nothing wrong in that program.
Tests that only read (or are refused) may share a module's program: ``module_programs`` makes those,
on both engines too, and verifies them when the module ends.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from palier.api.app import create_app
from palier.clock import FrozenClock
from palier.config import Settings
from palier.db import Database
from palier.ledger.verify import verify
from tests.api.helpers import ApiProgram, unique
from tests.conftest import ENGINES

OPERATOR_TOKEN = "operator-token-for-tests"
CARD_KEY = b"test-key"


@pytest.fixture(scope="session", autouse=True)
def operator_token() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PALIER_OPERATOR_TOKEN", OPERATOR_TOKEN)
        yield OPERATOR_TOKEN


def build_app(db: Database, clock: FrozenClock) -> FastAPI:
    url = db.engine.url.render_as_string(hide_password=False)
    return create_app(Settings(database_url=url, card_hash_key=CARD_KEY), db=db, clock=clock)


@pytest.fixture
def app(db: Database, clock: FrozenClock) -> FastAPI:
    return build_app(db, clock)


def own_address() -> tuple[str, int]:
    """A client address of its own: staff sign-in failures are counted per address over 15 minutes of a
    frozen clock, in test databases that outlive a run, so tests that share one would throttle each other."""
    pick = random.SystemRandom().randrange
    return f"10.{pick(256)}.{pick(256)}.{pick(1, 255)}", 50000


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, client=own_address()) as test_client:
        yield test_client


def create_program(client: TestClient, **settings: Any) -> ApiProgram:
    settings.setdefault("name", unique("Program"))
    response = client.post("/v1/programs", json=settings, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert response.status_code == 201, response.text
    body = response.json()
    return ApiProgram(client, body["program"], body["admin_key"]["secret"])


def assert_ledger_sound(db: Database, program_id: str) -> None:
    with db.read() as conn:
        found = verify(conn, program_id=program_id)
    assert found == [], f"ledger of {program_id} is unsound: {found}"


@contextmanager
def program_maker(db: Database, client: TestClient) -> Iterator[Callable[..., ApiProgram]]:
    made: list[ApiProgram] = []

    def make(**settings: Any) -> ApiProgram:
        program = create_program(client, **settings)
        made.append(program)
        return program

    yield make
    for program in made:
        assert_ledger_sound(db, program.id)


@pytest.fixture
def new_program(db: Database, client: TestClient) -> Iterator[Callable[..., ApiProgram]]:
    """Make programs with any settings; each one's ledger must verify clean when the test ends."""
    with program_maker(db, client) as make:
        yield make


@pytest.fixture
def program(new_program: Callable[..., ApiProgram]) -> ApiProgram:
    """A program with the default settings: 1 point per 1.00 EUR, floor, 14-day return window."""
    return new_program()


# --- shared by a module (both engines): for tests that read, or that must be refused ---


@pytest.fixture(scope="module", params=ENGINES)
def module_db(request: pytest.FixtureRequest) -> Database:
    database: Database = request.getfixturevalue(f"{request.param}_db")
    return database


@pytest.fixture(scope="module")
def module_client(module_db: Database) -> Iterator[TestClient]:
    clock = FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    with TestClient(build_app(module_db, clock), client=own_address()) as test_client:
        yield test_client


# Points available at once and never expiring: the maturity and expiry sweeps that other tests run over
# every program of the shared database find nothing to do in a module's program while it is in use.
SWEEP_PROOF = {"return_window_days": 0, "points_lifetime_months": None}


@pytest.fixture(scope="module")
def module_programs(module_db: Database, module_client: TestClient) -> Iterator[Callable[..., ApiProgram]]:
    """Like ``new_program`` (sweep-proof by default), for programs that several tests of a module share."""
    with program_maker(module_db, module_client) as make:
        yield lambda **settings: make(**(SWEEP_PROOF | settings))
