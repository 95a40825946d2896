"""The maturity and expiry sweeps: set-based batches that repay debt, respect holds, skip busy members and
never sweep a lot twice, however many workers run. Each program's ledger verifies clean at teardown."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select

from palier.activity.models import EventResult
from palier.clock import FrozenClock, utc
from palier.db import Database
from palier.jobs import sweeps
from palier.ledger.locks import lock_members
from palier.ledger.tables import accounts, allocations, ledger_transactions, lots
from palier.programs.models import Program
from palier.rewards import service as rewards
from palier.rewards.models import RedeemIn, RewardIn
from tests.services.factories import adjust, balance, enrol, history, mature, purchase, return_
from tests.services.test_concurrency import Outcome, beside, run_threads


def aged(clock: FrozenClock, days: int = 20) -> dict[str, object]:
    """Purchase arguments for an order old enough that its points are already available."""
    return {"occurred_at": clock.now() - timedelta(days=days)}


def lot_of(db: Database, earned: EventResult) -> str:
    """The lot a purchase made."""
    with db.read() as conn:
        return str(conn.execute(select(lots.c.id).where(lots.c.transaction_id == earned.transaction_id)).scalar_one())


def sweep_details(db: Database, program: Program, kind: str) -> list[dict[str, object]]:
    with db.read() as conn:
        query = select(ledger_transactions.c.details).where(
            ledger_transactions.c.program_id == program.id, ledger_transactions.c.kind == kind
        )
        return list(conn.execute(query.order_by(ledger_transactions.c.id)).scalars())


def expired_total(db: Database, program: Program) -> int:
    with db.read() as conn:
        query = select(func.coalesce(func.sum(accounts.c.balance), 0)).where(
            accounts.c.program_id == program.id, accounts.c.kind == "expired"
        )
        return int(conn.execute(query).scalar_one())


def test_lots_maturing_together_repay_debt_in_turn(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, amount=10000, **aged(clock))
    adjust(db, clock, program, member, -80, reason="Redeemed a voucher")
    return_(db, clock, program, order.external_id, lines=[("SKU-1", 1)])
    assert balance(db, program, member).debt == 80
    first = purchase(db, clock, program, member, amount=5000)
    second = purchase(db, clock, program, member, amount=4500)
    clock.advance(days=15)

    result = mature(db, clock, program)

    assert (result.lots, result.points, result.batches) == (2, 95, 1)
    shown = balance(db, program, member)
    assert (shown.available, shown.pending, shown.debt) == (15, 0, 0)
    assert sweep_details(db, program, "mature") == [
        {"lot_id": lot_of(db, first), "debt_repaid": 50},
        {"lot_id": lot_of(db, second), "debt_repaid": 30},
    ]
    lines = [line for line in history(db, program, member) if line.kind == "mature"]
    assert [(line.reason_code, line.pending, line.available, line.debt) for line in lines] == [
        ("matured", -50, 0, -50),
        ("matured", -45, 15, -30),
    ]
    assert lines[0].reason == f"Purchase #{first.external_id} in store: points now available"


def test_expiry_takes_what_is_left_and_leaves_held_points_alone(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    start = clock.now()
    member = enrol(db, clock, program)
    old = purchase(db, clock, program, member, amount=10000, **aged(clock))  # 100 points, expire first
    spent = purchase(db, clock, program, member, amount=3000, **aged(clock, days=19))  # 30 points, next
    purchase(db, clock, program, member, amount=2000)  # 20 pending points, expiring last
    adjust(db, clock, program, member, -40, reason="Coffee voucher")  # old: 60 left
    hold_points(db, clock, program, member.id, 20)  # a redemption holds 20 of old: 40 left
    adjust(db, clock, program, member, -60, reason="Lunch voucher")  # old: 0 left, spent: 10 left
    shown = balance(db, program, member)
    assert (shown.available, shown.held, shown.pending) == (10, 20, 20)
    clock.advance(days=15)
    mature(db, clock, program)
    clock.set(start + timedelta(days=360))  # old and spent are past their expiry, the third lot is not

    result = sweeps.expire(db, clock, program_id=program.id)

    assert (result.lots, result.points) == (2, 10)  # old had nothing left: it only changes state
    shown = balance(db, program, member)
    assert (shown.available, shown.held, shown.pending) == (20, 20, 0)  # held points are not expired
    assert expired_total(db, program) == 10
    with db.read() as conn:
        states = dict(conn.execute(select(lots.c.id, lots.c.state).where(lots.c.member_id == member.id)).all())
    assert states[lot_of(db, old)] == states[lot_of(db, spent)] == "expired"
    expired = [line for line in history(db, program, member) if line.kind == "expire"]
    assert [(line.reason, line.reason_code, line.available) for line in expired] == [
        (f"10 points from Purchase #{spent.external_id} in store expired", "expired", -10)
    ]
    assert sweeps.expire(db, clock, program_id=program.id).lots == 0  # expired once


def hold_points(db: Database, clock: FrozenClock, program: Program, member_id: str, points: int) -> None:
    """An open redemption hold: a coupon redeemed for ``points`` (available -> held, allocated from lots)."""
    data = RewardIn(kind="gift", cost_points=points, title={"fr": "Cadeau", "en": "Gift"})
    with db.write() as conn:
        reward = rewards.create_reward(conn=conn, clock=clock, program=program, data=data, actor="test")
        rewards.redeem(conn=conn, clock=clock, program=program, member_id=member_id, data=RedeemIn(reward_id=reward.id))


def test_one_point_expiring_reads_1_point(db: Database, clock: FrozenClock, program: Program) -> None:
    """The expiry job's line and the one of a purchase recorded already expired agree with their count."""
    start = clock.now()
    member = enrol(db, clock, program)
    swept = purchase(db, clock, program, member, amount=100, **aged(clock))  # 1 point
    clock.set(start + timedelta(days=400))
    late = purchase(db, clock, program, member, amount=150, occurred_at=start - timedelta(days=30))  # 1, expired
    mature(db, clock, program)
    sweeps.expire(db, clock, program_id=program.id)
    expired = sorted(line.reason for line in history(db, program, member) if line.kind == "expire")
    assert expired == sorted(
        f"1 point from Purchase #{earned.external_id} in store expired" for earned in (swept, late)
    )


def test_a_member_busy_with_a_command_is_skipped_then_swept(db: Database, clock: FrozenClock, program: Program) -> None:
    busy, free = enrol(db, clock, program), enrol(db, clock, program)
    for member in (busy, free):
        purchase(db, clock, program, member, amount=1000)
    later = FrozenClock(clock.now() + timedelta(days=15))

    _, during = beside(
        db,
        lambda conn: lock_members(conn, [busy.id]),  # a command of `busy` holds its member lock
        lambda: sweeps.mature(db, later, program_id=program.id),
    )

    assert not isinstance(during, Exception), during
    if db.is_postgres:  # the sweep did not wait: it left `busy` for the next run
        assert during.lots == 1 and balance(db, program, busy).pending == 10
        assert sweeps.mature(db, later, program_id=program.id).lots == 1
    else:  # SQLite: the sweep queued for the write lock, then swept both
        assert during.lots == 2
    assert [balance(db, program, m).available for m in (busy, free)] == [10, 10]


def test_expiry_workers_beside_purchases_expire_each_lot_once(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    people = [enrol(db, clock, program) for _ in range(5)]
    earned = [purchase(db, clock, program, people[i % 5], amount=300 + 41 * i, **aged(clock)) for i in range(30)]
    due = {lot_of(db, result) for result in earned}
    clock.set(clock.now() + timedelta(days=366))
    outcome = Outcome()

    def worker(index: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        if index < 2:  # two sweeps at once, each with two workers in small batches: four writers in all
            outcome.run(lambda: sweeps.expire(db, clock, batch_size=4, workers=2, program_id=program.id))
            return
        for k in range(4):
            member = people[(index + k) % 5]
            outcome.run(lambda member=member: purchase(db, clock, program, member, amount=700, **aged(clock)))

    run_threads(6, worker)
    sweeps.expire(db, clock, program_id=program.id)  # whatever the busy workers had to skip

    assert outcome.failures == [], outcome.failures
    expired = [details["lot_id"] for details in sweep_details(db, program, "expire")]
    assert [lot for lot, n in Counter(expired).items() if n > 1] == []  # none expired twice
    assert set(expired) == due
    with db.read() as conn:
        taken = conn.execute(
            select(func.sum(allocations.c.amount)).where(
                allocations.c.program_id == program.id, allocations.c.purpose == "expire"
            )
        ).scalar_one()
        states = Counter(conn.execute(select(lots.c.state).where(lots.c.id.in_(due))).scalars())
    assert states == Counter({"expired": 30})
    assert expired_total(db, program) == taken == sum(result.points for result in earned)
    with db.read() as conn:  # each dated when its lot expired, whichever worker booked it
        dated = conn.execute(
            select(ledger_transactions.c.effective_at, lots.c.expires_at)
            .join(allocations, allocations.c.transaction_id == ledger_transactions.c.id)
            .join(lots, lots.c.id == allocations.c.lot_id)
            .where(ledger_transactions.c.program_id == program.id, ledger_transactions.c.kind == "expire")
        ).all()
    assert len(dated) == 30 and all(utc(effective) == utc(expires) for effective, expires in dated)
    assert sum(balance(db, program, m).available for m in people) == 7 * len(outcome.results)


def due_dates(db: Database, lot_id: str) -> tuple[datetime, datetime]:
    """When a lot matures and when it expires."""
    with db.read() as conn:
        row = conn.execute(select(lots.c.matures_at, lots.c.expires_at).where(lots.c.id == lot_id)).one()
    return utc(row.matures_at), utc(row.expires_at)


def test_a_worker_off_for_ten_days_dates_each_maturity_and_expiry_when_it_fell_due(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    old = lot_of(db, purchase(db, clock, program, member, amount=10000, **aged(clock)))  # 100 points
    _, expires = due_dates(db, old)
    clock.set(expires - timedelta(days=16))
    fresh = lot_of(db, purchase(db, clock, program, member, amount=4000))  # 40 points, pending for 14 days
    matures, _ = due_dates(db, fresh)
    assert matures < expires
    clock.set(expires + timedelta(days=10))  # the worker was off from before the maturity until now
    shown_before = balance(db, program, member, clock)

    assert mature(db, clock, program).lots == 1
    assert sweeps.expire(db, clock, program_id=program.id).lots == 1

    dated = [(line.kind, line.occurred_at, line.booked_at) for line in history(db, program, member)]
    assert dated[-2:] == [("mature", matures, clock.now()), ("expire", expires, clock.now())]
    shown = balance(db, program, member, clock)
    assert (shown.available, shown.pending) == (shown_before.available, shown_before.pending) == (40, 0)


def test_points_still_pending_at_their_expiry_expire_when_they_mature(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """A return window longer than the points' life: they stay pending past their expiry, then go at once."""
    program = new_program(points_lifetime_months=1, return_window_days=60)
    member = enrol(db, clock, program)
    lot = lot_of(db, purchase(db, clock, program, member, amount=4000))
    matures, expires = due_dates(db, lot)
    assert expires < matures
    assert balance(db, program, member, FrozenClock(matures - timedelta(seconds=1))).pending == 40
    clock.set(matures + timedelta(days=10))

    mature(db, clock, program)
    sweeps.expire(db, clock, program_id=program.id)

    dated = [(line.kind, line.occurred_at) for line in history(db, program, member)]
    assert dated[-2:] == [("mature", matures), ("expire", matures)]
    assert balance(db, program, member, clock).available == 0
