"""The debts job: members left owing points while holding some (by versions before stop 24) repay them."""

from __future__ import annotations

from datetime import timedelta

from palier.clock import FrozenClock
from palier.db import Database
from palier.jobs import debts
from palier.ledger import operations as ledger
from palier.ledger.post import write_with
from palier.programs.models import Program
from tests.services.factories import adjust, balance, enrol, history, purchase, return_


def test_a_member_left_owing_and_holding_points_repays_them_and_only_once(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    ann, bob = enrol(db, clock, program), enrol(db, clock, program)
    order = purchase(db, clock, program, ann, amount=5000, occurred_at=clock.now() - timedelta(days=20))
    adjust(db, clock, program, ann, -50, reason="Redeemed in store")
    return_(db, clock, program, order.external_id, lines=[("SKU-1", 1)])  # Ann owes 50
    adjust(db, clock, program, bob, 20, reason="Birthday gift")  # Bob owes nothing: left alone
    with db.write() as conn:  # 80 points credited as an older version did, without repaying the debt
        now = clock.now()
        booking = ledger.Booking(
            program_id=program.id, member_id=ann.id, kind="adjust", reason="Old credit", reason_code="adjustment",
            now=now, effective_at=now,
        )  # fmt: skip
        plan = ledger.plan_earn(booking, amount=80, source="adjustment", label="Old credit", matures_at=None,
                                expires_at=None, owed_debt=0)  # fmt: skip
        write_with(conn, plan.entries, rows=plan.rows)
    shown = balance(db, program, ann)
    assert (shown.available, shown.debt) == (80, 50)
    assert debts.settle_all(db, clock, program_id=program.id) == 1
    shown = balance(db, program, ann)
    assert (shown.available, shown.debt) == (30, 0)
    assert [line.reason_code for line in history(db, program, ann)][-1] == "debt_repaid"
    assert balance(db, program, bob).available == 20
    assert debts.settle_all(db, clock, program_id=program.id) == 0  # settled once
