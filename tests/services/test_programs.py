"""Programs: settings as configured and changed, API keys shown once, checked, scoped and revoked."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import Forbidden, NotFound, Unauthenticated
from palier.programs import service as programs
from palier.programs.models import KeyCreate, NewApiKey, Program, ProgramSettings, ProgramUpdate
from palier.programs.tables import api_keys, audit_entries
from palier.units import Rounding

ACTOR = "test"


def new_key(db: Database, clock: FrozenClock, program: Program, *scopes: str, name: str = "till") -> NewApiKey:
    with db.write() as conn:
        return programs.create_key(
            conn=conn,
            clock=clock,
            program_id=program.id,
            spec=KeyCreate(name=name, scopes=list(scopes)),  # type: ignore[arg-type]
            actor=ACTOR,
        )


def authenticate(db: Database, token: str) -> programs.Caller:
    with db.read() as conn:
        return programs.authenticate(conn=conn, token=token)


def test_a_new_program_keeps_its_settings(new_program: Callable[..., Program], clock: FrozenClock) -> None:
    program = new_program(
        name="Café Lumière",
        currency="JPY",
        rounding="half_up",
        return_window_days=30,
        points_lifetime_months=24,
        welcome_points=50,
        earn_on_shipping=True,
    )
    assert program.id.startswith("prg_")
    assert program.name == "Café Lumière"
    assert program.currency == "JPY" and program.currency_exponent == 0
    assert program.rounding is Rounding.HALF_UP
    assert (program.return_window_days, program.points_lifetime_months) == (30, 24)
    assert program.welcome_points == 50 and program.earn_on_shipping is True
    assert program.earn_on_tax is False and program.return_shortfall == "debt"
    assert program.created_at == program.updated_at == clock.now()


def test_defaults_are_one_point_per_euro_rounded_down(program: Program) -> None:
    assert (program.currency, program.currency_exponent) == ("EUR", 2)
    assert (program.earn_points, program.earn_per_amount, program.rounding) == (1, 100, Rounding.FLOOR)
    assert (program.return_window_days, program.points_lifetime_months) == (14, 12)


@pytest.mark.parametrize(
    "bad",
    [
        {"timezone": "Mars/Olympus"},
        {"currency": "euro"},
        {"earn_per_amount": 0},
        {"rounding": "sideways"},
        {"surprise": True},
    ],
)
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ProgramSettings(name="Shop", **bad)  # type: ignore[arg-type]


def test_update_changes_only_what_was_sent_and_is_audited(db: Database, clock: FrozenClock, program: Program) -> None:
    clock.advance(days=1)
    with db.write() as conn:
        updated = programs.update_program(
            conn=conn,
            clock=clock,
            program_id=program.id,
            changes=ProgramUpdate(rounding=Rounding.HALF_UP, earn_points=2, return_shortfall="write_off"),
            actor=ACTOR,
        )
    assert (updated.rounding, updated.earn_points, updated.return_shortfall) == ("half_up", 2, "write_off")
    assert updated.name == program.name and updated.points_lifetime_months == 12
    assert updated.updated_at == clock.now() and updated.created_at == program.created_at
    with db.read() as conn:
        assert programs.get_program(conn=conn, program_id=program.id) == updated
        actions = conn.execute(select(audit_entries.c.action).where(audit_entries.c.program_id == program.id)).scalars()
        assert sorted(actions) == ["program.created", "program.updated"]


def test_never_expire_clears_the_points_lifetime(db: Database, clock: FrozenClock, program: Program) -> None:
    with db.write() as conn:
        updated = programs.update_program(
            conn=conn, clock=clock, program_id=program.id, changes=ProgramUpdate(never_expire=True), actor=ACTOR
        )
    assert updated.points_lifetime_months is None


def test_an_unknown_program_is_not_found(db: Database) -> None:
    with db.read() as conn, pytest.raises(NotFound) as caught:
        programs.get_program(conn=conn, program_id="prg_NOPE")
    assert caught.value.code == "program_not_found"


def test_updating_an_unknown_program_is_not_found(db: Database, clock: FrozenClock) -> None:
    with db.write() as conn, pytest.raises(NotFound) as caught:
        programs.update_program(
            conn=conn, clock=clock, program_id="prg_NOPE", changes=ProgramUpdate(earn_points=2), actor=ACTOR
        )
    assert caught.value.code == "program_not_found"


def test_the_secret_is_shown_once_and_only_its_hash_is_kept(db: Database, clock: FrozenClock, program: Program) -> None:
    key = new_key(db, clock, program, "pos", "read")
    key_id, _, secret = key.secret.partition(".")
    assert key_id == key.id and len(secret) >= 40
    assert key.scopes == ["pos", "read"]
    with db.read() as conn:
        listed = programs.list_keys(conn=conn, program_id=program.id)
        stored = conn.execute(select(api_keys).where(api_keys.c.id == key.id)).mappings().one()
    assert [k.id for k in listed] == [key.id]
    assert not hasattr(listed[0], "secret") and "secret" not in listed[0].model_dump()
    assert secret not in str(listed[0].model_dump())
    assert all(secret not in str(value) for value in stored.values())


def test_a_key_authenticates_to_its_own_program_only(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program_a, program_b = new_program(), new_program()
    key_a = new_key(db, clock, program_a, "pos")
    key_b = new_key(db, clock, program_b, "admin")
    caller = authenticate(db, key_a.secret)
    assert caller.program_id == program_a.id
    assert caller.key_id == key_a.id and caller.scopes == frozenset({"pos"})
    assert authenticate(db, key_b.secret).program_id == program_b.id
    with db.read() as conn:
        assert [k.id for k in programs.list_keys(conn=conn, program_id=program_b.id)] == [key_b.id]


def _secret_of_other(key: NewApiKey, other: NewApiKey) -> str:
    return f"{key.id}.{other.secret.partition('.')[2]}"


@pytest.mark.parametrize(
    "forge",
    [
        lambda key, other: key.secret[:-1] + ("A" if key.secret[-1] != "A" else "B"),  # one char off
        lambda key, other: key.id,  # no secret
        lambda key, other: "",
        lambda key, other: "not-a-key",
        lambda key, other: _secret_of_other(key, other),  # another key's secret
        lambda key, other: "key_01ZZZZZZZZZZZZZZZZZZZZZZZZ." + key.secret.partition(".")[2],  # unknown id
    ],
    ids=["wrong-secret", "id-only", "empty", "garbage", "other-key-secret", "unknown-id"],
)
def test_a_wrong_key_is_unauthenticated(
    db: Database, clock: FrozenClock, program: Program, forge: Callable[[NewApiKey, NewApiKey], str]
) -> None:
    key, other = new_key(db, clock, program, "pos"), new_key(db, clock, program, "pos")
    with pytest.raises(Unauthenticated) as caught:
        authenticate(db, forge(key, other))
    assert caught.value.code == "invalid_api_key"
    assert caught.value.status == 401 and caught.value.field == "Authorization"


def test_a_revoked_key_no_longer_authenticates(db: Database, clock: FrozenClock, program: Program) -> None:
    key = new_key(db, clock, program, "pos")
    kept = new_key(db, clock, program, "read")
    clock.advance(hours=1)
    with db.write() as conn:
        revoked = programs.revoke_key(conn=conn, clock=clock, program_id=program.id, key_id=key.id, actor=ACTOR)
    assert revoked.revoked_at == clock.now()
    with pytest.raises(Unauthenticated) as caught:
        authenticate(db, key.secret)
    assert caught.value.code == "invalid_api_key"
    assert authenticate(db, kept.secret).key_id == kept.id
    with db.read() as conn:
        listed = {k.id: k.revoked_at for k in programs.list_keys(conn=conn, program_id=program.id)}
    assert listed == {key.id: clock.now(), kept.id: None}


def test_a_key_cannot_be_revoked_from_another_program(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program_a, program_b = new_program(), new_program()
    key_a = new_key(db, clock, program_a, "admin")
    with db.write() as conn, pytest.raises(NotFound) as caught:
        programs.revoke_key(conn=conn, clock=clock, program_id=program_b.id, key_id=key_a.id, actor=ACTOR)
    assert caught.value.code == "key_not_found"
    assert authenticate(db, key_a.secret).program_id == program_a.id


def test_scopes_gate_actions(db: Database, clock: FrozenClock, program: Program) -> None:
    reader = authenticate(db, new_key(db, clock, program, "read").secret)
    till = authenticate(db, new_key(db, clock, program, "pos").secret)
    admin = authenticate(db, new_key(db, clock, program, "admin").secret)
    programs.require_scope(reader, "read")
    programs.require_scope(till, "pos")
    programs.require_scope(admin, "pos")  # admin may do everything
    programs.require_scope(admin, "read")
    for caller, needed in ((reader, "pos"), (till, "read")):
        with pytest.raises(Forbidden) as caught:
            programs.require_scope(caller, needed)
        assert caught.value.code == "insufficient_scope"
        assert caught.value.status == 403 and caught.value.field == "Authorization"


def test_a_key_needs_a_known_scope() -> None:
    with pytest.raises(ValidationError):
        KeyCreate(name="till", scopes=[])
    with pytest.raises(ValidationError):
        KeyCreate(name="till", scopes=["root"])  # type: ignore[list-item]
