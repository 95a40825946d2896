"""Bodies the API cannot read: larger than the bound (refused as they arrive, declared or sent in chunks), not
JSON, not UTF-8, nested without end. Each gets a refusal saying what to fix, and nothing is written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient

from palier.api.body_limit import MAX_BODY_BYTES
from tests.api.helpers import ApiProgram, assert_problem, purchase_body

CHUNK = b" " * 65_536  # JSON allows any amount of white space between its tokens


def _padded(body: bytes, size: int) -> bytes:
    """``body`` followed by white space up to ``size`` bytes: the same JSON, as large as wanted."""
    return body + b" " * (size - len(body))


def test_a_purchase_padded_past_the_bound_is_refused_and_not_recorded(program: ApiProgram) -> None:
    ann = program.enrol(first_name="Ann")
    body = json.dumps(purchase_body(ann["id"])).encode()
    as_json = {"Content-Type": "application/json"}
    refused = program.call("POST", "/v1/events/purchases", content=_padded(body, MAX_BODY_BYTES + 1), headers=as_json)
    problem = assert_problem(refused, 413, "body_too_large")
    assert f"{MAX_BODY_BYTES:,}" in problem["detail"]
    assert program.balance(ann["id"])["pending"] == 0
    # at the bound, the same purchase is recorded: the bound is the size, not the content
    taken = program.call("POST", "/v1/events/purchases", content=_padded(body, MAX_BODY_BYTES), headers=as_json)
    assert taken.status_code == 201, taken.text
    assert program.balance(ann["id"])["pending"] > 0


def test_a_body_sent_in_chunks_without_a_length_is_refused_once_past_the_bound(program: ApiProgram) -> None:
    sent = 0

    def endless() -> Iterator[bytes]:  # a client streaming without end: never read whole
        nonlocal sent
        yield b'{"first_name": "Ann", "email": "ann.chunked@example.com"'
        while sent < 64 * MAX_BODY_BYTES:
            sent += len(CHUNK)
            yield CHUNK

    refused = program.call("POST", "/v1/members", content=endless(), headers={"Content-Type": "application/json"})
    assert_problem(refused, 413, "body_too_large")
    assert "content-length" not in {name.lower() for name in refused.request.headers}
    found = program.call("POST", "/v1/members/lookup", json={"kind": "email", "value": "ann.chunked@example.com"})
    assert_problem(found, 404, "member_not_found")


def test_the_document_declares_the_413_of_every_operation_with_a_body(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation and path.startswith("/v1"):
                assert "413" in operation["responses"], f"{method.upper()} {path}"


def test_a_form_past_the_bound_gets_a_page_in_its_language(client: TestClient, program: ApiProgram) -> None:
    page = client.post(
        f"/p/{program.id}/sign-in",
        content=b"email=" + b"a" * MAX_BODY_BYTES,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept-Language": "fr"},
    )
    assert page.status_code == 413
    assert page.headers["content-type"].startswith("text/html")
    assert "trop long" in page.text


def _sent(program: ApiProgram, body: bytes) -> dict[str, Any]:
    """``body`` as an enrolment; refused as unreadable JSON, naming the body, and nobody enrolled."""
    refused = program.call("POST", "/v1/members", content=body, headers={"Content-Type": "application/json"})
    problem = assert_problem(refused, 422, "invalid_json", field="body")
    found = program.call("POST", "/v1/members/lookup", json={"kind": "email", "value": "zoe@example.com"})
    assert_problem(found, 404, "member_not_found")
    return problem


def test_json_with_a_syntax_error_says_what_is_wrong_and_where(program: ApiProgram) -> None:
    problem = _sent(program, b'{"first_name": "Zo\\u00e9",\n "email": "zoe@example.com"\n "language": "fr"}')
    assert problem["detail"] == "The body is not valid JSON: Expecting ',' delimiter at line 3, column 2."


def test_a_body_in_latin_1_is_refused_as_not_utf_8(program: ApiProgram) -> None:
    """An old till sends "Zoé" in Latin-1: not "There was an error parsing the body", but which byte and what to do."""
    problem = _sent(program, '{"first_name": "Zoé", "email": "zoe@example.com"}'.encode("latin-1"))
    assert problem["detail"] == (
        "The body is not UTF-8 (byte 0xE9 at position 18): send JSON encoded in UTF-8, as RFC 8259 requires."
    )


def test_json_nested_without_end_or_a_number_of_thousands_of_digits_is_refused_not_crashed(program: ApiProgram) -> None:
    deep = b'{"first_name": "Zoe", "email": "zoe@example.com", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert _sent(program, deep)["detail"] == "The body's JSON is nested too deeply to be read."
    long = b'{"first_name": "Zoe", "email": "zoe@example.com", "x": ' + b"9" * 5_000 + b"}"
    assert _sent(program, long)["detail"] == "A number in the body has more than 4,300 digits."
