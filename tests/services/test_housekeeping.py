"""Housekeeping deletes old sessions, sign-in codes, delivered events and console sign-in attempts, and nothing
else.

It runs on a database of its own (``empty_database_url``): a run for all programs tidies every session,
and the shared test database holds other tests' live ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from palier.activity import idempotency
from palier.clock import FrozenClock
from palier.db import Database, make_database
from palier.db.migrate import upgrade
from palier.errors import Unauthenticated
from palier.jobs import housekeeping
from palier.notify import outbox
from palier.notify.tables import outbox_events
from palier.portal import service as portal
from palier.portal.tables import portal_sign_ins
from palier.sessions import once
from palier.sessions import service as sessions
from palier.sessions.tables import form_posts, web_sessions
from palier.staff import service as staff
from palier.staff.tables import staff_sign_ins
from tests.services import factories as f

SECRET = "a secret key for housekeeping tests"


@pytest.fixture
def own_db(empty_database_url: str) -> Iterator[Database]:
    upgrade(empty_database_url)
    database = make_database(empty_database_url)
    yield database
    database.dispose()


def _count(db: Database, table: object, *where: object) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())  # type: ignore[arg-type]


def test_what_has_long_served_is_deleted_and_nothing_else(
    own_db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = own_db
    monkeypatch.setattr(housekeeping, "BATCH", 2)  # several batches per table
    shop, other = f.make_program(db, clock), f.make_program(db, clock)
    member = f.enrol(db, clock, shop, identities=[("email", "camille@example.fr")])
    day = timedelta(days=1)
    with db.write() as conn:
        signed_out = sessions.open_session(conn=conn, clock=clock, kind="member", subject_id="mem_a", lasts=day)
        sessions.end(conn=conn, clock=clock, token=signed_out)
        for kind, subject in (("member", "mem_b"), ("member", "mem_c"), ("staff", "stf_d")):  # 12 hours
            sessions.open_session(conn=conn, clock=clock, kind=kind, subject_id=subject, lasts=day / 2)
        for _ in range(3):
            portal.request_code(
                conn=conn, clock=clock, program=shop, email="camille@example.fr", card_key=f.CARD_KEY, secret_key=SECRET
            )
        for program in (shop, other):
            outbox.emit_many(conn, [(program.id, "segment_entered", None, {"n": n}) for n in range(5)], now=clock.now())
        delivered = [e["id"] for e in outbox.recent(conn, program_id=shop.id, limit=3)]
        outbox.acknowledge(conn, program_id=shop.id, ids=delivered, now=clock.now())
        theirs = [e["id"] for e in outbox.recent(conn, program_id=other.id, limit=2)]
        outbox.acknowledge(conn, program_id=other.id, ids=theirs, now=clock.now())

    assert housekeeping.tidy(db, clock).rows == 0  # nothing is old yet
    clock.advance(days=1, hours=13)  # the sessions and codes ended more than a day ago
    with db.write() as conn:
        live = sessions.open_session(conn=conn, clock=clock, kind="member", subject_id="mem_e", lasts=day / 2)
    one_program = housekeeping.tidy(db, clock, program_id=shop.id)
    assert (one_program.sessions, one_program.sign_ins, one_program.events) == (0, 3, 0)  # sessions: all only
    everything = housekeeping.tidy(db, clock)
    assert (everything.sessions, everything.sign_ins, everything.events, everything.attempts) == (4, 0, 0, 0)
    with db.read() as conn:
        assert sessions.find(conn=conn, clock=clock, kind="member", token=live) == "mem_e"  # still signed in
    assert _count(db, web_sessions) == 1 and _count(db, portal_sign_ins) == 0

    clock.advance(days=29)  # the events delivered at the start, 30 days and 13 hours ago
    assert housekeeping.tidy(db, clock, program_id=shop.id).events == 3  # only this program's
    everything = housekeeping.tidy(db, clock)
    assert (everything.sessions, everything.sign_ins, everything.events, everything.attempts) == (1, 0, 2, 0)
    # events not yet delivered are never deleted, however old: they wait for the webhook or the mailer
    assert _count(db, outbox_events, outbox_events.c.program_id == shop.id) == 6  # 3 codes, 2 events, the sign-up
    assert _count(db, outbox_events, outbox_events.c.program_id == other.id) == 3
    assert _count(db, outbox_events, outbox_events.c.delivered_at.isnot(None)) == 0
    assert f.balance(db, shop, member).available == 0  # a member's own rows are untouched


def test_console_sign_in_attempts_are_deleted_after_90_days(own_db: Database, clock: FrozenClock) -> None:
    db = own_db
    shop = f.make_program(db, clock)
    _wrong_password(db, clock, times=5)
    clock.advance(days=89)
    _wrong_password(db, clock, times=2)
    assert housekeeping.tidy(db, clock, program_id=shop.id).attempts == 0  # they belong to no program
    assert housekeeping.tidy(db, clock).attempts == 0  # none is 90 days old yet
    clock.advance(days=1, minutes=1)
    tidied = housekeeping.tidy(db, clock)
    assert tidied.attempts == 5 and _count(db, staff_sign_ins) == 2
    assert "5 console sign-in attempts over 90 days old" in tidied.summary()


def _wrong_password(db: Database, clock: FrozenClock, *, times: int) -> None:
    """Failed console sign-ins, kept as the console keeps them (committed although refused)."""
    for _ in range(times):
        with db.write() as conn, pytest.raises(Unauthenticated):
            try:
                staff.authenticate(conn=conn, clock=clock, email="nobody@example.fr", password="wrong", ip="192.0.2.7")
            except Unauthenticated:
                conn.commit()
                raise


def test_console_forms_sent_are_forgotten_after_30_days(own_db: Database, clock: FrozenClock) -> None:
    db = own_db
    f.make_program(db, clock)
    with db.write() as conn:
        assert once.claim(conn=conn, clock=clock, token="old-form", posted_by="stf_a", action="/console/x") is None
    clock.advance(days=29)
    with db.write() as conn:
        assert once.claim(conn=conn, clock=clock, token="new-form", posted_by="stf_a", action="/console/x") is None
    assert housekeeping.tidy(db, clock).forms == 0
    clock.advance(days=1, minutes=1)
    tidied = housekeeping.tidy(db, clock)
    assert tidied.forms == 1 and _count(db, form_posts) == 1
    assert "1 console forms sent over 30 days ago" in tidied.summary()
    with db.write() as conn:  # the newer form is still known as sent
        assert once.claim(conn=conn, clock=clock, token="new-form", posted_by="stf_a", action="/console/x") is not None


def test_answers_kept_for_retries_are_forgotten_after_48_hours(own_db: Database, clock: FrozenClock) -> None:
    """The answer to a write sent with an Idempotency-Key (an enrolment's: the member's name, e-mail and phone) is
    kept 48 hours for a retry, then deleted, as the README says: not kept for ever."""
    db = own_db
    shop, other = f.make_program(db, clock), f.make_program(db, clock)
    answer = {"first_name": "Camille", "email": "camille@example.fr"}
    with db.write() as conn:
        for program, key in ((shop, "enrol-1"), (other, "enrol-1"), (shop, "enrol-2")):
            idempotency.keep(conn, program_id=program.id, key=key, hash_="h", status=201, body=answer, now=clock.now())
    clock.advance(hours=47)
    with db.write() as conn:
        idempotency.keep(conn, program_id=shop.id, key="enrol-3", hash_="h", status=201, body=answer, now=clock.now())
    assert housekeeping.tidy(db, clock).answers == 0
    clock.advance(hours=1, minutes=1)
    assert housekeeping.tidy(db, clock, program_id=shop.id).answers == 2  # only this program's
    tidied = housekeeping.tidy(db, clock)
    assert tidied.answers == 1 and "1 answers kept for retries over 48 hours ago" in tidied.summary()
    with db.read() as conn:
        assert idempotency.stored(conn, program_id=shop.id, key="enrol-3", hash_="h") == (201, answer)
        assert idempotency.stored(conn, program_id=shop.id, key="enrol-1", hash_="h") is None
