"""Warnings before points expire: one ``points_expiring`` event per member and window, on both engines."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from palier.clock import FrozenClock
from palier.db import Database
from palier.notify import expiry, outbox
from palier.programs import service as programs
from palier.programs.models import Program, ProgramUpdate
from tests.services.factories import adjust, enrol, expire
from tests.services.test_concurrency import run_threads

LIFETIME = timedelta(days=365)  # 12 months from 2 March 2026 (the test clock) and the weeks after it


def warnings(db: Database, program: Program) -> list[dict[str, Any]]:
    with db.read() as conn:
        found = outbox.recent(conn, program_id=program.id, types=["points_expiring"])
    return [{"subject": e["subject_id"], **e["payload"]} for e in reversed(found)]


def earn_three_lots(db: Database, clock: FrozenClock, program: Program) -> tuple[Any, Any]:
    """40 points now, 60 in 15 days, 100 in 40 days; then the clock moves to 5 days before the first expires."""
    member = enrol(db, clock, program, email="camille@example.fr", language="fr")
    start = clock.now()
    for points, day in ((40, 0), (60, 15), (100, 40)):
        clock.set(start + timedelta(days=day))
        adjust(db, clock, program, member, points)
    clock.set(start + LIFETIME - timedelta(days=5))
    return member, start


def test_a_member_is_warned_once_about_the_points_expiring_within_the_window(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member, start = earn_three_lots(db, clock, program)
    run = expiry.warn(db, clock, program_id=program.id)
    assert (run.members, run.points) == (1, 100)  # 40 in 5 days and 60 in 20: both within 30 days; not the 100
    [warning] = warnings(db, program)
    assert warning == {
        "subject": member.id,
        "member_id": member.id,
        "email": "camille@example.fr",
        "language": "fr",
        "points": 100,
        "points_name": "points",  # as a mail to them writes it beside 100
        "first_expiry": (start + LIFETIME).isoformat(timespec="seconds"),
        "until": (clock.now() + timedelta(days=30)).isoformat(timespec="seconds"),
    }
    clock.advance(days=3)
    assert expiry.warn(db, clock, program_id=program.id).members == 0  # the same points: not twice
    assert len(warnings(db, program)) == 1


def test_the_next_warning_comes_when_the_window_has_ended_and_covers_the_points_after_it(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    earn_three_lots(db, clock, program)
    expiry.warn(db, clock, program_id=program.id)
    clock.advance(days=29)
    assert expiry.warn(db, clock, program_id=program.id).members == 0  # the first window runs one more day
    clock.advance(days=1)
    expire(db, clock, program)  # the 40 and the 60 are gone; the 100 expire in 5 days
    assert expiry.warn(db, clock, program_id=program.id).points == 100
    assert [w["points"] for w in warnings(db, program)] == [100, 100]


def test_points_already_spent_or_expired_are_not_announced(db: Database, clock: FrozenClock, program: Program) -> None:
    member, _ = earn_three_lots(db, clock, program)
    adjust(db, clock, program, member, -70)  # takes the soonest-expiring first: the 40, then 30 of the 60
    expiry.warn(db, clock, program_id=program.id)
    assert [w["points"] for w in warnings(db, program)] == [30]


def test_no_warning_when_the_program_sends_none(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program = new_program(expiry_warning_days=0)
    earn_three_lots(db, clock, program)
    assert expiry.warn(db, clock, program_id=program.id).members == 0
    assert warnings(db, program) == []


def test_two_workers_at_once_warn_each_member_once(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program = new_program()
    start = clock.now()
    members = [enrol(db, clock, program) for _ in range(30)]
    for n, member in enumerate(members):
        adjust(db, clock, program, member, 10 + n)
    clock.set(start + LIFETIME - timedelta(days=1))
    runs: list[expiry.WarningRun] = []
    lock = threading.Lock()

    def work(_index: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        run = expiry.warn(db, clock, program_id=program.id, batch_size=7)
        with lock:
            runs.append(run)

    run_threads(2, work)
    assert sum(r.members for r in runs) == 30
    assert sorted(w["subject"] for w in warnings(db, program)) == sorted(m.id for m in members)


def test_points_spent_after_the_candidates_were_read_are_not_announced(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """The job reads its candidates, then claims them in batches: what a warning says is read again in the
    claiming transaction (a purchase paid with points may come in between)."""
    member, _ = earn_three_lots(db, clock, program)
    until = clock.now() + timedelta(days=30)
    with db.read() as conn:
        candidates = [expiry._Due.of(row) for row in conn.execute(expiry._due(program.id, clock.now(), until))]
    assert [(c.member_id, c.points) for c in candidates] == [(member.id, 100)]
    adjust(db, clock, program, member, -90)  # the 40 and 50 of the 60
    with db.write() as conn:
        expiry._claim_and_emit(conn, program.id, candidates, clock.now(), until, expiry._Names("points", None))
    assert [w["points"] for w in warnings(db, program)] == [10]


def test_the_warning_names_the_points_as_the_members_language_does(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    names = ProgramUpdate.model_validate({"points_name": "stars", "points_name_by_language": {"fr": "étoiles"}})
    with db.write() as conn:
        program = programs.update_program(conn=conn, clock=clock, program_id=program.id, changes=names, actor="test")
    earn_three_lots(db, clock, program)  # a French-speaking member
    expiry.warn(db, clock, program_id=program.id)
    assert [(w["points"], w["points_name"]) for w in warnings(db, program)] == [(100, "étoiles")]
