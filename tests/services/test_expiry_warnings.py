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
from tests.services.factories import adjust, enrol, expire, mature, purchase
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


def run_days(db: Database, clock: FrozenClock, program: Program, days: int) -> None:
    """The worker's day, ``days`` times: points mature, members are warned, points expire; then a day passes."""
    for _ in range(days):
        mature(db, clock, program)
        expiry.warn(db, clock, program_id=program.id)
        expire(db, clock, program)
        clock.advance(days=1)


def test_points_that_mature_within_a_window_already_announced_are_announced_too(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """A lifetime shorter than the return window and the warning window together: each order's points are
    inside the window the day they mature, while the member is still quiet after the last order's warning."""
    program = new_program(points_lifetime_months=1, return_window_days=14)
    member = enrol(db, clock, program)
    orders = []
    for points in (10, 20, 30):  # a week apart
        order = purchase(db, clock, program, member, amount=points * 100)
        orders.append((points, clock.now()))
        assert order.points == points
        run_days(db, clock, program, 7)
    run_days(db, clock, program, 60)
    announced = warnings(db, program)
    assert sum(w["points"] for w in announced) == 60  # every point, once
    assert [w["points"] for w in announced] == [10, 20, 30]  # each at maturity, days before it expires
    for warning, (_, bought) in zip(announced, orders, strict=True):
        assert warning["first_expiry"] > (bought + timedelta(days=14)).isoformat(timespec="seconds")


def test_points_recorded_late_within_a_window_already_announced_are_announced(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member, _ = earn_three_lots(db, clock, program)
    expiry.warn(db, clock, program_id=program.id)  # the 40 and the 60, until 30 days from now
    receipt = purchase(db, clock, program, member, amount=2500, occurred_at=clock.now() - LIFETIME + timedelta(days=20))
    assert receipt.points == 25  # a receipt found late: its points expire in 20 days, within the window
    run_days(db, clock, program, 1)
    assert [w["points"] for w in warnings(db, program)] == [100, 25]
    run_days(db, clock, program, 60)
    assert [w["points"] for w in warnings(db, program)] == [100, 25, 100]  # and none twice


def test_points_that_mature_within_the_window_are_announced_at_once_not_when_the_last_window_ends(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program = new_program(points_lifetime_months=1, return_window_days=14)
    member = enrol(db, clock, program)
    adjust(db, clock, program, member, 10)  # expires in a month
    clock.advance(days=2)
    expiry.warn(db, clock, program_id=program.id)  # the 10, within 30 days; the window ends in 30 days
    clock.advance(days=1)
    purchase(db, clock, program, member, amount=2500)  # 25 points, pending 14 days, expiring 2 days after the window
    run_days(db, clock, program, 14)
    assert [w["points"] for w in warnings(db, program)] == [10]  # still pending
    run_days(db, clock, program, 1)  # they mature: 20 days before they expire
    assert [w["points"] for w in warnings(db, program)] == [10, 25]
    run_days(db, clock, program, 40)
    assert [w["points"] for w in warnings(db, program)] == [10, 25]
