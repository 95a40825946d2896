"""The API against its own OpenAPI document: schemathesis fuzzes every operation (SQLite only).

Each operation gets a bounded number of generated requests, valid and invalid, sent with an admin key.
None may crash the server (no 5xx), and every answer must match the response schema the document
declares for its status. Then the program the fuzzer worked in must still verify clean.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import response_schema_conformance

from palier.clock import FrozenClock
from palier.db import Database
from tests.api.conftest import OPERATOR_TOKEN, assert_ledger_sound, build_app, create_program
from tests.api.helpers import PROBLEM
from tests.api.routes import ROUTES, Route, route_id

MAX_EXAMPLES = 30
PROBLEM_FIELDS = {"type", "title", "status", "code", "detail"}
DOCUMENTED = [r for r in ROUTES if r != ("GET", "/")]  # the redirect to /docs is not in the document


@schemathesis.check
def refusals_are_problem_json(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every 4xx/5xx is RFC 9457 problem+json with a stable code (DESIGN, API conventions)."""
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type == PROBLEM, f"{response.status_code} answered as {content_type!r}"
    body = json.loads(response.content)
    assert set(body) >= PROBLEM_FIELDS, body
    assert body["status"] == response.status_code and body["type"].endswith(f"/{body['code']}"), body


class Fuzzed:
    def __init__(self, app: FastAPI, schema: Any, admin_key: str, member_id: str, session: Any) -> None:
        self.app = app
        self.session = session  # one in-process client for every call (a new one per call costs more)
        self.schema = schema
        self.admin_key = admin_key
        self.member_id = member_id  # a real member, so member routes get past "not found"


@pytest.fixture(scope="module")
def fuzzed(sqlite_db: Database) -> Iterator[Fuzzed]:
    app = build_app(sqlite_db, FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC)))
    with TestClient(app) as client:
        program = create_program(client)
        member = program.enrol(first_name="Ann", email="ann.fuzz@example.com")  # for lookups to find
        program.adjust(member["id"], 500)  # and points for debits to take
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    with asgi.get_client(app) as session:
        yield Fuzzed(app, schema, program.admin_key, member["id"], session)
    assert_ledger_sound(sqlite_db, program.id)


def test_the_openapi_document_is_valid_and_every_operation_is_described(fuzzed: Fuzzed) -> None:
    fuzzed.schema.validate()  # raises on a document that breaks the OpenAPI meta-schema
    document = fuzzed.app.openapi()
    assert document["openapi"].startswith("3.")
    operations = {(m.upper(), path): op for path, item in document["paths"].items() for m, op in item.items()}
    assert set(operations) == set(DOCUMENTED)
    undescribed = [f"{m} {p}" for (m, p), op in operations.items() if not op.get("summary", "").strip()]
    assert undescribed == []
    ids = [op["operationId"] for op in operations.values()]
    assert len(ids) == len(set(ids))
    keyed = [op for (m, p), op in operations.items() if p.startswith("/v1/") and p != "/v1/programs"]
    assert all(op.get("security") for op in keyed), "every program route declares the bearer key"


def test_the_document_describes_refusals_as_problem_json(fuzzed: Fuzzed) -> None:
    document = fuzzed.app.openapi()
    wrong = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                if status.startswith(("4", "5")) and set(answer.get("content", {})) != {PROBLEM}:
                    wrong.append(f"{method.upper()} {path} {status}: {sorted(answer.get('content', {}))}")
    assert wrong == []
    assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})


@pytest.mark.parametrize("route", DOCUMENTED, ids=route_id)
def test_fuzz_operation(fuzzed: Fuzzed, route: Route) -> None:
    method, path = route
    operation = fuzzed.schema[path][method]
    token = OPERATOR_TOKEN if path == "/v1/programs" else fuzzed.admin_key
    headers = {"Authorization": f"Bearer {token}"}
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
    if "{member_id}" in path:
        real = {"member_id": fuzzed.member_id}
        strategies += [operation.as_strategy(generation_mode=m, path_parameters=real) for m in modes]
    strategy = st.one_of(strategies)

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(
            session=fuzzed.session,
            headers=headers,
            checks=[not_a_server_error, response_schema_conformance, refusals_are_problem_json],
        )

    fuzz()


@pytest.mark.parametrize("setting", ["default_country", "points_name", "earn_on_shipping", "name"])
def test_a_null_program_setting_is_refused_not_a_crash(fuzzed: Fuzzed, setting: str) -> None:
    """Null for a setting that cannot be null: a 422 naming it (or, if null means "unchanged", a 200)."""
    headers = {"Authorization": f"Bearer {fuzzed.admin_key}"}
    with TestClient(fuzzed.app, raise_server_exceptions=False) as client:
        before = client.get("/v1/program", headers=headers).json()
        response = client.patch("/v1/program", json={setting: None}, headers=headers)
        after = client.get("/v1/program", headers=headers).json()
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.json()["field"] == setting
    assert after[setting] == before[setting]
