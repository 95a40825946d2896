"""The outbox over HTTP: events served oldest first until acknowledged, to the program's admin key only."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from palier.clock import FrozenClock
from palier.db import Database
from palier.notify import outbox
from tests.api.helpers import ApiProgram, assert_problem


def emit(db: Database, clock: FrozenClock, program: ApiProgram, *types: str) -> None:
    with db.write() as conn:
        for n, type_ in enumerate(types):
            outbox.emit(conn, program_id=program.id, type_=type_, subject_id=None, payload={"n": n}, now=clock.now())


def test_events_are_served_oldest_first_until_acknowledged(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram]
) -> None:
    program = new_program()
    clock: FrozenClock = client.app.state.clock  # type: ignore[attr-defined]
    emit(db, clock, program, "segment_entered", "points_expiring", "segment_left")
    page = program.call("GET", "/v1/outbox", params={"limit": 2})
    assert page.status_code == 200, page.text
    first = page.json()
    assert ([e["payload"]["n"] for e in first["items"]], first["more"]) == ([0, 1], True)
    ids = [e["id"] for e in first["items"]]

    acked = program.call("POST", "/v1/outbox/ack", json={"ids": ids})
    assert acked.json() == {"acknowledged": 2}, acked.text
    rest = program.call("GET", "/v1/outbox").json()
    assert ([e["type"] for e in rest["items"]], rest["more"]) == (["segment_left"], False)
    again = program.call("POST", "/v1/outbox/ack", json={"ids": ids}, headers={"Idempotency-Key": "ack-again"})
    assert again.json() == {"acknowledged": 0}  # acknowledging twice is harmless


def test_the_feed_can_be_limited_to_some_types(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram]
) -> None:
    program = new_program()
    emit(db, client.app.state.clock, program, "segment_entered", "points_expiring", "segment_left")  # type: ignore[attr-defined]
    only = program.call("GET", "/v1/outbox", params=[("type", "points_expiring"), ("type", "segment_left")])
    assert [e["type"] for e in only.json()["items"]] == ["points_expiring", "segment_left"]
    assert_problem(program.call("GET", "/v1/outbox", params={"type": "points_spended"}), 422, "invalid_choice")


def test_an_unknown_id_is_refused_and_nothing_is_acknowledged(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram]
) -> None:
    program, other = new_program(), new_program()
    emit(db, client.app.state.clock, program, "segment_entered")  # type: ignore[attr-defined]
    emit(db, client.app.state.clock, other, "segment_entered")  # type: ignore[attr-defined]
    [mine] = program.call("GET", "/v1/outbox").json()["items"]
    [theirs] = other.call("GET", "/v1/outbox").json()["items"]
    refused = program.call("POST", "/v1/outbox/ack", json={"ids": [mine["id"], theirs["id"]]})
    assert_problem(refused, 404, "outbox_event_not_found", "ids[1]")
    assert [e["id"] for e in program.call("GET", "/v1/outbox").json()["items"]] == [mine["id"]]
    assert [e["id"] for e in other.call("GET", "/v1/outbox").json()["items"]] == [theirs["id"]]
    assert_problem(program.call("POST", "/v1/outbox/ack", json={"ids": []}), 422, "invalid_length", "ids")


def test_only_an_admin_key_reads_the_outbox(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program()
    for scope in ("read", "pos"):
        key = program.make_key(scope)
        assert_problem(program.call("GET", "/v1/outbox", key=key), 403, "insufficient_scope")
