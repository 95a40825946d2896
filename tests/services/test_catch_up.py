"""Points are gone the instant they expire, and spendable the instant their return window closes, whether or
not the jobs have run: a debit first matures and expires the member's due lots as a sweep would (the same
history lines, once), and balances never show expired points. Each program's ledger verifies clean."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from palier.clock import FrozenClock, utc
from palier.db import Database
from palier.errors import Unprocessable
from palier.jobs import sweeps
from palier.ledger.tables import allocations, lots
from palier.members.models import Member
from palier.programs.models import Program
from tests.services.factories import adjust, balance, enrol, history, merge, purchase, return_
from tests.services.test_concurrency import Outcome, beside, run_threads
from tests.services.test_redemption import a_reward, redeem
from tests.services.test_sweeps import aged, lot_of, sweep_details

SECOND = timedelta(seconds=1)


def expiry_of(db: Database, lot_id: str) -> datetime:
    with db.read() as conn:
        return utc(conn.execute(select(lots.c.expires_at).where(lots.c.id == lot_id)).scalar_one())


def lines(db: Database, program: Program, member: Member, kind: str) -> list[tuple[str, int]]:
    return [(line.reason_code, line.available) for line in history(db, program, member) if line.kind == kind]


def a_member_whose_old_points_just_expired(db: Database, clock: FrozenClock, program: Program) -> tuple[Member, str]:
    """100 points earned long ago that expired a second ago, and 50 newer points still good; returns the
    member and the expired lot."""
    member = enrol(db, clock, program)
    old = lot_of(db, purchase(db, clock, program, member, amount=10000, **aged(clock, days=30)))
    purchase(db, clock, program, member, amount=5000, **aged(clock, days=20))
    clock.set(expiry_of(db, old) + SECOND)
    return member, old


def test_points_expired_a_second_ago_cannot_be_redeemed(db: Database, clock: FrozenClock, program: Program) -> None:
    member, _ = a_member_whose_old_points_just_expired(db, clock, program)
    assert balance(db, program, member).available == 150  # the job has not run yet
    reward = a_reward(db, clock, program, cost_points=120)

    with pytest.raises(Unprocessable) as refused:
        redeem(db, clock, program, member, reward)

    assert refused.value.code == "insufficient_points"
    assert "50" in refused.value.detail  # what the member has now, not what the job has yet to take
    shown = balance(db, program, member, clock)
    assert (shown.available, shown.held) == (50, 0)
    # the refusal wrote nothing: the job expires the lot, once
    assert sweeps.expire(db, clock, program_id=program.id).lots == 1
    assert lines(db, program, member, "expire") == [("expired", -100)]


def test_a_debit_expires_the_due_points_first_as_the_job_would(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member, old = a_member_whose_old_points_just_expired(db, clock, program)
    with pytest.raises(Unprocessable) as refused:
        adjust(db, clock, program, member, -60, reason="Damaged parcel")
    assert refused.value.code == "insufficient_points"

    adjust(db, clock, program, member, -30, reason="Damaged parcel")

    assert balance(db, program, member).available == 20  # as stored, before any job
    assert lines(db, program, member, "expire") == [("expired", -100)]
    assert sweep_details(db, program, "expire") == [{"lot_id": old}]
    assert sweeps.expire(db, clock, program_id=program.id).lots == 0  # nothing left for the job
    assert lines(db, program, member, "expire") == [("expired", -100)]
    with db.read() as conn:
        spent_from = conn.execute(
            select(allocations.c.lot_id).where(allocations.c.member_id == member.id, allocations.c.purpose == "spend")
        ).scalars()
        assert old not in set(spent_from)


def test_a_redemption_expires_the_due_points_then_holds_from_the_rest(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member, _ = a_member_whose_old_points_just_expired(db, clock, program)
    done = redeem(db, clock, program, member, a_reward(db, clock, program, cost_points=40))
    assert (done.available, done.held) == (10, 40)
    assert lines(db, program, member, "expire") == [("expired", -100)]
    assert sweeps.expire(db, clock, program_id=program.id).lots == 0


def test_points_past_their_return_window_are_spendable_before_the_job(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    purchase(db, clock, program, member, amount=8000)
    with db.read() as conn:
        matures_at = conn.execute(select(lots.c.matures_at).where(lots.c.member_id == member.id)).scalar_one()
    clock.set(utc(matures_at) + SECOND)
    shown = balance(db, program, member, clock)
    assert (shown.available, shown.pending, shown.next_maturity) == (80, 0, None)

    adjust(db, clock, program, member, -80, reason="Voucher by phone")

    assert [line.reason_code for line in history(db, program, member) if line.kind == "mature"] == ["matured"]
    assert sweeps.mature(db, clock, program_id=program.id).lots == 0
    shown = balance(db, program, member, clock)
    assert (shown.available, shown.pending) == (0, 0)


def test_the_balance_shown_leaves_out_points_past_their_expiry(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member, old = a_member_whose_old_points_just_expired(db, clock, program)
    adjust(db, clock, program, member, 7)  # a credit catches no one up: it takes nothing

    shown = balance(db, program, member, clock)

    assert shown.available == 57
    assert shown.next_expiry is not None and shown.next_expiry.expires_at > clock.now()
    assert shown.next_expiry.points == 50
    assert balance(db, program, member, FrozenClock(expiry_of(db, old) - SECOND)).available == 157


def test_a_debit_waits_for_a_sweep_holding_its_lot_and_never_spends_it(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A job's batch has claimed the member's expired lot (PostgreSQL: it holds the row) when the member
    spends: the debit waits for that batch rather than skipping the lot and spending it."""
    member, old = a_member_whose_old_points_just_expired(db, clock, program)

    def claim_lot(conn: object) -> None:
        conn.execute(select(lots.c.id).where(lots.c.id == old).with_for_update())  # type: ignore[attr-defined]

    _, spent = beside(db, claim_lot, lambda: adjust(db, clock, program, member, -120, reason="Gift"))

    assert isinstance(spent, Unprocessable) and spent.code == "insufficient_points", spent
    adjust(db, clock, program, member, -50, reason="Gift")
    assert lines(db, program, member, "expire") == [("expired", -100)]
    assert balance(db, program, member, clock).available == 0


def test_sweeps_and_debits_at_once_expire_each_lot_once_and_spend_none_of_them(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    people = [enrol(db, clock, program) for _ in range(4)]
    due = {
        lot_of(db, purchase(db, clock, program, people[i % 4], amount=1000 + 100 * i, **aged(clock, days=40)))
        for i in range(12)
    }
    for member in people:
        purchase(db, clock, program, member, amount=20000, **aged(clock, days=20))  # 200 points still good
    clock.set(max(expiry_of(db, lot) for lot in due) + SECOND)
    outcome = Outcome()

    def worker(index: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        if index < 2:
            outcome.run(lambda: sweeps.expire(db, clock, batch_size=2, program_id=program.id))
            return
        for k in range(6):
            member = people[(index + k) % 4]
            outcome.run(lambda member=member: adjust(db, clock, program, member, -5, reason="Coffee"))

    run_threads(5, worker)
    sweeps.expire(db, clock, program_id=program.id)

    assert outcome.failures == [], outcome.failures
    expired = [details["lot_id"] for details in sweep_details(db, program, "expire")]
    assert Counter(expired) == Counter(due)  # each due lot expired, once
    with db.read() as conn:
        spent = conn.execute(
            select(func.count()).where(allocations.c.lot_id.in_(due), allocations.c.purpose == "spend")
        ).scalar_one()
    assert spent == 0
    assert sum(balance(db, program, m).available for m in people) == 4 * 200 - 5 * 18


def test_a_return_after_the_order_points_expired_excuses_them_before_the_job(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """The order's points expired a second ago: the return does not take them back (they are gone), nor
    any other points, exactly as if the job had run first."""
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, amount=10000, **aged(clock, days=30))
    purchase(db, clock, program, member, amount=5000, **aged(clock, days=20))
    clock.set(expiry_of(db, lot_of(db, order)) + SECOND)

    returned = return_(db, clock, program, order.external_id, lines=[("SKU-1", 1)])

    assert (returned.details["excused_expired"], returned.details["from_available"]) == (100, 0)
    shown = balance(db, program, member, clock)
    assert (shown.available, shown.debt) == (50, 0)
    assert lines(db, program, member, "expire") == [("expired", -100)]
    assert sweeps.expire(db, clock, program_id=program.id).lots == 0


def test_a_debit_days_after_an_expiry_dates_it_when_the_points_expired(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member, old = a_member_whose_old_points_just_expired(db, clock, program)
    clock.set(expiry_of(db, old) + timedelta(days=5))  # no job ran meanwhile (the 50 points last 5 more days)

    adjust(db, clock, program, member, -30, reason="Damaged parcel")

    expired = [line for line in history(db, program, member) if line.kind == "expire"]
    assert [(line.available, line.occurred_at, line.booked_at) for line in expired] == [
        (-100, expiry_of(db, old), clock.now())
    ]


def test_a_merge_moves_the_points_still_good_and_leaves_the_expiry_with_the_account_they_expired_on(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    source, old = a_member_whose_old_points_just_expired(db, clock, program)  # 100 expired, 50 good
    target = enrol(db, clock, program)
    clock.set(expiry_of(db, old) + timedelta(days=3))  # no job ran meanwhile

    result = merge(db, clock, program, source, target)

    assert result.moved == {"available": 50}  # as the balance showed them, not the 100 gone already
    assert [(line.available, line.occurred_at) for line in history(db, program, source) if line.kind == "expire"] == [
        (-100, expiry_of(db, old))
    ]
    assert lines(db, program, target, "expire") == []
    assert balance(db, program, target, clock).available == 50
    assert sweeps.expire(db, clock, program_id=program.id).lots == 0
