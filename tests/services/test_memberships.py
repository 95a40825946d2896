"""Paid VIP membership: trial, payment, renewal, cancellation, lapse, period rewards, the plan's multiplier,
plans open to a segment or by invitation, and invite-only programs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import PalierError
from palier.members.models import MemberCreate
from palier.memberships import service as memberships
from palier.memberships.models import (
    InvitationsIn,
    JoinIn,
    Membership,
    MembershipPaymentIn,
    MembershipRefund,
    MembershipRefundIn,
    PlanIn,
)
from palier.memberships.tables import memberships as membership_rows
from palier.notify.outbox import recent, undelivered
from palier.programs.models import Program
from palier.programs.service import get_program
from palier.programs.tables import audit_entries
from palier.rewards import service as rewards
from palier.rewards.models import CouponUse
from tests.services.factories import ACTOR, CARD_KEY, enrol, line, merge, purchase
from tests.services.test_rewards import add_reward
from tests.services.test_segments import define


def add_plan(db: Database, clock: FrozenClock, program: Program, **fields: Any) -> Program:
    data = {"code": "club", "name": {"fr": "Club", "en": "Club"}, "price": 499, "period": "monthly"} | fields
    with db.write() as conn:
        memberships.create_plan(conn=conn, clock=clock, program=program, data=PlanIn.model_validate(data), actor=ACTOR)
        return get_program(conn=conn, program_id=program.id)


def pay(db: Database, clock: FrozenClock, program: Program, member_id: str, **fields: Any) -> Membership:
    data = {"payment_id": f"fee-{clock.now().isoformat()}", "member_id": member_id, "plan": "club", "amount": 499,
            "paid_at": clock.now()} | fields  # fmt: skip
    with db.write() as conn:
        found, _ = memberships.record_payment(
            conn=conn, clock=clock, program=program, data=MembershipPaymentIn.model_validate(data)
        )
    return found


def refused(code: str, call: Any, *args: Any, **kwargs: Any) -> PalierError:
    with pytest.raises(PalierError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.detail
    return caught.value


def test_trial_payment_renewal_cancel_and_lapse(db: Database, clock: FrozenClock, program: Program) -> None:
    delivery = add_reward(db, clock, program, kind="free_shipping", amount=None, cost_points=300)
    program = add_plan(db, clock, program, trial_days=14, benefits={"period_rewards": [delivery.id]})
    ann = enrol(db, clock, program, first_name="Ann")
    with db.write() as conn:
        trial = memberships.start_trial(
            conn=conn, clock=clock, program=program, member_id=ann.id, data=JoinIn(plan="club")
        )
    assert trial.state == "trial" and trial.period_end == clock.now() + timedelta(days=14)
    clock.advance(days=10)
    paid = pay(db, clock, program, ann.id, payment_id="fee-1")
    assert paid.state == "active" and paid.period_start == clock.now()
    assert pay(db, clock, program, ann.id, payment_id="fee-1") == paid  # the same payment again: no second month
    refused("payment_conflict", pay, db, clock, program, ann.id, payment_id="fee-1", amount=498)  # not the same
    clock.advance(days=29)
    renewed = pay(db, clock, program, ann.id, payment_id="fee-2")
    assert renewed.period_start == paid.period_end  # renewal runs on from the paid period, nothing lost
    ahead = refused("paid_ahead", pay, db, clock, program, ann.id, payment_id="fee-3")  # a third month at once
    assert (ahead.field, ahead.extra["paid_until"]) == ("paid_at", renewed.period_end.isoformat())
    with db.read() as conn:
        coupons = rewards.member_coupons(conn=conn, program_id=program.id, member_id=ann.id)
    assert len(coupons) == 3 and all(c.points == 0 for c in coupons)  # one free delivery per period, trial too
    with db.write() as conn:
        cancelled = memberships.cancel(conn=conn, clock=clock, program=program, member_id=ann.id, membership_id=paid.id)
    assert cancelled.state == "cancelled" and cancelled.period_end == renewed.period_end
    assert memberships.lapse(db, clock, program_id=program.id) == 0  # benefits last to the period's end
    clock.set(renewed.period_end)
    assert memberships.lapse(db, clock, program_id=program.id) == 1
    assert memberships.lapse(db, clock, program_id=program.id) == 0
    with db.read() as conn:
        kinds = [e["type"] for e in reversed(recent(conn, program_id=program.id))]
    assert [k for k in kinds if k.startswith("membership")] == [
        "membership_started",
        "membership_started",
        "membership_renewed",
        "membership_cancelled",
        "membership_lapsed",
    ]
    with db.read() as conn:
        ended = recent(conn, program_id=program.id, types=["membership_cancelled", "membership_lapsed"])
    told = {e["type"]: e["payload"] for e in ended}
    until = {"member_id": ann.id, "plan": "club", "period_end": renewed.period_end.isoformat()}
    contact = {"email": ann.email, "language": ann.language}  # to whom, and in which language, the mail goes
    assert told == {"membership_cancelled": until | contact, "membership_lapsed": until | contact}  # until when


def test_monthly_renewals_keep_the_day_they_started_on(db: Database, new_program: Any) -> None:
    """Joined on 31 January: renews on 28 February, 31 March, 30 April; never drifts to the 28th."""
    clock = FrozenClock(datetime(2027, 1, 31, 18, 0, tzinfo=UTC))
    program = add_plan(db, clock, new_program(timezone="UTC"))
    ann = enrol(db, clock, program, first_name="Ann")
    ends = [pay(db, clock, program, ann.id, payment_id="fee-jan").period_end]
    for month in ("feb", "mar", "apr"):
        clock.set(ends[-1] - timedelta(hours=2))  # the processor charges on the day
        ends.append(pay(db, clock, program, ann.id, payment_id=f"fee-{month}").period_end)
    assert [end.date().isoformat() for end in ends] == ["2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31"]
    assert {end.time().isoformat() for end in ends} == {"18:00:00"}


def test_an_invitation_expiry_without_an_offset_is_the_programs_time(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    program = new_program(timezone="Europe/Paris")
    with db.write() as conn:
        made = memberships.create_invitations(
            conn=conn, clock=clock, program=program, actor=ACTOR,
            data=InvitationsIn.model_validate({"count": 1, "expires_at": "2026-12-31T23:59:00"}),
        )  # fmt: skip
    assert made[0].expires_at == datetime(2026, 12, 31, 22, 59, tzinfo=UTC)  # 23:59 in Paris


def test_billing_dates_are_on_the_programs_calendar(db: Database, new_program: Any) -> None:
    """Paid at 00:30 on 31 August in Paris (22:30 UTC on the 30th): renews on 30 September, then 31 October,
    at 00:30 Paris time."""
    paris = ZoneInfo("Europe/Paris")
    clock = FrozenClock(datetime(2026, 8, 31, 0, 30, tzinfo=paris).astimezone(UTC))
    program = add_plan(db, clock, new_program(timezone="Europe/Paris"))
    ann = enrol(db, clock, program, first_name="Ann")
    ends = [pay(db, clock, program, ann.id, payment_id="fee-aug").period_end]
    clock.set(ends[-1] - timedelta(hours=1))
    ends.append(pay(db, clock, program, ann.id, payment_id="fee-sep").period_end)
    local = [end.astimezone(paris) for end in ends]
    assert [(d.month, d.day, d.hour, d.minute) for d in local] == [(9, 30, 0, 30), (10, 31, 0, 30)]


def test_a_renewal_a_few_days_late_keeps_the_billing_dates(db: Database, clock: FrozenClock, program: Program) -> None:
    """A card payment retried two days late renews the membership from where it ended; the lapse job waits
    three days for it; benefits pause meanwhile."""
    program = add_plan(db, clock, program, benefits={"multiplier_percent": 200})
    bo = enrol(db, clock, program, first_name="Bo")
    first = pay(db, clock, program, bo.id, payment_id="fee-1")
    clock.set(first.period_end + timedelta(days=2))
    assert memberships.lapse(db, clock, program_id=program.id) == 0  # still waiting for the payment
    assert purchase(db, clock, program, bo, lines=[line("A", 2_000)]).points == 20  # not paid: no multiplier
    late = pay(db, clock, program, bo.id, payment_id="fee-2")
    assert (late.id, late.state, late.period_start) == (first.id, "active", first.period_end)
    assert purchase(db, clock, program, bo, lines=[line("A", 2_000)]).points == 40
    clock.set(late.period_end + timedelta(days=3, hours=1))
    assert memberships.lapse(db, clock, program_id=program.id) == 1
    dated = late.period_end + timedelta(days=2)  # paid in the grace, recorded after the job lapsed it
    revived = pay(db, clock, program, bo.id, payment_id="fee-3", paid_at=dated)
    assert (revived.id, revived.state, revived.period_start) == (first.id, "active", late.period_end)
    clock.set(revived.period_end + timedelta(days=10))
    assert memberships.lapse(db, clock, program_id=program.id) == 1
    again = pay(db, clock, program, bo.id, payment_id="fee-4")  # long after: a new membership
    assert again.id != first.id and again.period_start == clock.now()


def test_a_membership_paid_before_billing_dates_were_kept_is_renewed_in_its_grace_too(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = add_plan(db, clock, program)
    bo = enrol(db, clock, program, first_name="Bo")
    first = pay(db, clock, program, bo.id, payment_id="fee-1")
    with db.write() as conn:  # as a membership paid before the upgrade that added billing dates
        conn.execute(update(membership_rows).where(membership_rows.c.id == first.id).values(billing_anchor=None))
    clock.set(first.period_end + timedelta(days=3, hours=1))
    assert memberships.lapse(db, clock, program_id=program.id) == 1
    revived = pay(db, clock, program, bo.id, payment_id="fee-2", paid_at=first.period_end + timedelta(days=1))
    assert (revived.id, revived.period_start) == (first.id, first.period_end)


def test_the_plan_multiplier_applies_while_the_membership_lives(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = add_plan(db, clock, program, benefits={"multiplier_percent": 200})
    bo = enrol(db, clock, program, first_name="Bo")
    pay(db, clock, program, bo.id)
    assert purchase(db, clock, program, bo, lines=[line("A", 2_000)]).points == 40
    clock.advance(days=40)
    memberships.lapse(db, clock, program_id=program.id)
    assert purchase(db, clock, program, bo, lines=[line("A", 2_000)]).points == 20


def test_the_plan_multiplier_applies_to_purchases_made_while_the_membership_lived(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A purchase sent late, or a history imported after joining, earns with the plans of its own day."""
    program = add_plan(db, clock, program, benefits={"multiplier_percent": 200})
    bo = enrol(db, clock, program, first_name="Bo")
    pay(db, clock, program, bo.id)
    before = purchase(db, clock, program, bo, lines=[line("A", 2_000)], occurred_at=clock.now() - timedelta(days=20))
    assert before.points == 20  # made before the membership began
    clock.advance(days=40)
    memberships.lapse(db, clock, program_id=program.id)
    during = purchase(db, clock, program, bo, lines=[line("A", 2_000)], occurred_at=clock.now() - timedelta(days=30))
    assert during.points == 40  # made while it lived, though it has lapsed since


def test_refusals(db: Database, clock: FrozenClock, program: Program) -> None:
    program = add_plan(db, clock, program)
    cy = enrol(db, clock, program, first_name="Cy")
    error = refused("payment_amount_mismatch", pay, db, clock, program, cy.id, amount=399)
    assert error.extra["price"] == 499
    ahead = refused("occurred_in_future", pay, db, clock, program, cy.id, paid_at=clock.now() + timedelta(days=1500))
    assert ahead.field == "paid_at"
    pay(db, clock, program, cy.id, paid_at=clock.now() + timedelta(minutes=2))  # a till's clock a little fast
    with db.read() as conn:
        [fast] = memberships.member_memberships(conn=conn, program_id=program.id, member_id=cy.id)
    assert fast.period_start == clock.now()
    with db.write() as conn:
        refused("no_trial", memberships.start_trial, conn=conn, clock=clock, program=program, member_id=cy.id,
                data=JoinIn(plan="club"))  # fmt: skip
        refused("plan_not_found", memberships.start_trial, conn=conn, clock=clock, program=program, member_id=cy.id,
                data=JoinIn(plan="gold"))  # fmt: skip
    with pytest.raises(ValidationError):
        PlanIn.model_validate({"code": "x", "name": {"fr": "x", "en": "x"}, "period": "monthly"})  # no price
    with pytest.raises(ValidationError) as caught:
        PlanIn.model_validate({"code": "x", "name": {"fr": "x", "en": "x"}, "price": 1, "period": "monthly",
                               "access": "segment"})  # fmt: skip
    assert "segment_required" in str(caught.value)


def test_a_plan_open_to_a_segment_only(db: Database, clock: FrozenClock, program: Program) -> None:
    from palier.segments import service as segments

    big, small = enrol(db, clock, program, first_name="Big"), enrol(db, clock, program, first_name="Small")
    purchase(db, clock, program, big, lines=[line("A", 90_000)])
    purchase(db, clock, program, small, lines=[line("A", 1_000)])
    define(db, clock, program, code="top", kind="top_revenue", percent=50)
    segments.refresh(db, clock, program_id=program.id)
    program = add_plan(db, clock, program, access="segment", segment="top")
    refused("not_in_segment", pay, db, clock, program, small.id)
    assert pay(db, clock, program, big.id).state == "active"


def test_invitations_open_a_plan_or_the_program_once(db: Database, clock: FrozenClock, new_program: Any) -> None:
    program = new_program(enrolment="invitation")
    program = add_plan(db, clock, program, access="invitation")
    with db.write() as conn:
        week = InvitationsIn(count=2, expires_at=clock.now() + timedelta(days=7))
        codes = memberships.create_invitations(conn=conn, clock=clock, program=program, data=week, actor=ACTOR)
        plan_code = memberships.create_invitations(
            conn=conn, clock=clock, program=program, data=InvitationsIn(purpose="plan", plan="club"), actor=ACTOR
        )[0].code

    def join(code: str | None) -> Any:
        from palier.members import service as members

        with db.write() as conn:
            data = MemberCreate(first_name="Guest", invitation_code=code)
            return members.enrol(conn=conn, clock=clock, program=program, data=data, card_key=CARD_KEY, actor=ACTOR)

    refused("invitation_required", join, None)
    refused("invitation_code_mistyped", join, "NOT-A-CODE")
    first = join(codes[0].code)
    refused("invitation_used", join, codes[0].code)
    refused("invitation_not_found", join, plan_code)  # a plan's invitation does not open the program
    clock.advance(days=8)
    refused("invitation_expired", join, codes[1].code)
    refused("invitation_required", pay, db, clock, program, first.id)
    assert pay(db, clock, program, first.id, invitation_code=plan_code).state == "active"


def coupons_of(db: Database, program: Program, member_id: str) -> list[Any]:
    with db.read() as conn:
        return rewards.member_coupons(conn=conn, program_id=program.id, member_id=member_id)


def test_backdated_payments_give_no_coupon_for_periods_already_over(db: Database, new_program: Any) -> None:
    """A processor replaying a year of payments: each is recorded and the membership runs on from them, but
    only the period that contains now hands out its period rewards."""
    clock = FrozenClock(datetime(2025, 11, 1, 9, 0, tzinfo=UTC))
    program = new_program(timezone="UTC")
    delivery = add_reward(db, clock, program, kind="free_shipping", amount=None, cost_points=300)
    program = add_plan(db, clock, program, benefits={"multiplier_percent": 200, "period_rewards": [delivery.id]})
    bo = enrol(db, clock, program, first_name="Bo")
    clock.set(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    months = [(2025, 12)] + [(2026, m) for m in range(1, 12)]  # 10 December 2025 … 10 November 2026
    answers = [
        pay(db, clock, program, bo.id, payment_id=f"fee-{y}-{m}", paid_at=datetime(y, m, 10, 8, 0, tzinfo=UTC))
        for y, m in months
    ]
    skipped = [[(r.reward_id, r.reason) for r in a.period_rewards_not_given] for a in answers[:-1]]
    assert skipped == [[(delivery.id, "period_ended")]] * 11
    assert answers[-1].period_rewards_not_given == []
    last = answers[-1]
    assert (last.state, last.started_at, last.period_start, last.period_end) == (
        "active", answers[0].started_at, datetime(2026, 11, 10, 8, tzinfo=UTC), datetime(2026, 12, 10, 8, tzinfo=UTC)
    )  # fmt: skip
    [coupon] = coupons_of(db, program, bo.id)  # this month's free delivery only
    assert coupon.issued_at == clock.now()
    may = purchase(db, clock, program, bo, lines=[line("A", 2_000)], occurred_at=datetime(2026, 5, 2, tzinfo=UTC))
    assert may.points == 40  # a paid month: the plan's bonus


def test_a_membership_never_starts_before_the_member_enrolled_or_the_plan_existed(
    db: Database, new_program: Any
) -> None:
    """A payment dated before the member enrolled (or the plan was created) counts from then, on its own billing
    dates; one whose whole period was over by then paid for nothing the member could have: 422 on paid_at."""
    clock = FrozenClock(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    program = add_plan(db, clock, new_program(timezone="UTC"), benefits={"multiplier_percent": 200})
    cy = enrol(db, clock, program, first_name="Cy")
    error = refused("paid_before_enrolment", pay, db, clock, program, cy.id, paid_at=datetime(2026, 10, 10, tzinfo=UTC))
    assert (error.field, error.extra["period_end"]) == ("paid_at", "2026-11-10T00:00:00+00:00")
    paid = pay(db, clock, program, cy.id, payment_id="fee-nov", paid_at=datetime(2026, 11, 10, tzinfo=UTC))
    assert (paid.started_at, paid.period_start, paid.period_end) == (
        clock.now(), clock.now(), datetime(2026, 12, 10, tzinfo=UTC)
    )  # fmt: skip
    before = purchase(db, clock, program, cy, lines=[line("A", 2_000)], occurred_at=datetime(2026, 11, 12, tzinfo=UTC))
    assert before.points == 20  # made before Cy enrolled: no plan bonus
    assert purchase(db, clock, program, cy, lines=[line("A", 2_000)]).points == 40
    clock.advance(days=2)
    program = add_plan(db, clock, program, code="gold")  # a plan created today
    october = datetime(2026, 10, 21, tzinfo=UTC)
    error = refused("paid_before_plan", pay, db, clock, program, cy.id, plan="gold", paid_at=october)
    assert error.field == "paid_at"
    gold = pay(db, clock, program, cy.id, plan="gold", paid_at=datetime(2026, 11, 21, tzinfo=UTC))
    assert (gold.started_at, gold.period_end) == (clock.now(), datetime(2026, 12, 21, tzinfo=UTC))


def test_a_period_reward_out_of_stock_does_not_refuse_the_payment(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """The processor has taken the money: the membership starts (or renews), the coupon is skipped and the
    answer says so, as it is for each member once the last unit is gone."""
    delivery = add_reward(db, clock, program, kind="free_shipping", amount=None, cost_points=300, stock=1)
    program = add_plan(db, clock, program, trial_days=7, benefits={"period_rewards": [delivery.id]})
    ann, bo, cy = (enrol(db, clock, program, first_name=name) for name in ("Ann", "Bo", "Cy"))
    assert pay(db, clock, program, ann.id, payment_id="fee-ann").period_rewards_not_given == []
    paid = pay(db, clock, program, bo.id, payment_id="fee-bo")
    assert [(r.reward_id, r.reason) for r in paid.period_rewards_not_given] == [(delivery.id, "out_of_stock")]
    assert pay(db, clock, program, bo.id, payment_id="fee-bo") == paid  # the same payment: the same answer
    with db.write() as conn:
        join = JoinIn(plan="club")
        trial = memberships.start_trial(conn=conn, clock=clock, program=program, member_id=cy.id, data=join)
    assert trial.state == "trial" and [r.reason for r in trial.period_rewards_not_given] == ["out_of_stock"]
    assert [len(coupons_of(db, program, m.id)) for m in (ann, bo, cy)] == [1, 0, 0]
    with db.read() as conn:
        assert rewards.get_reward(conn=conn, program_id=program.id, reward_id=delivery.id).stock_left == 0
        [bo_membership] = memberships.member_memberships(conn=conn, program_id=program.id, member_id=bo.id)
    assert bo_membership.state == "active"


def test_a_merge_keeps_the_membership_paid_furthest_ahead(db: Database, clock: FrozenClock, program: Program) -> None:
    """Sam paid two months; his duplicate account Tom has just started a 3-day trial. Merged, Tom's account
    keeps Sam's paid months (the trial ends) and the processor's next payment renews them."""
    program = add_plan(db, clock, program, trial_days=3, benefits={"multiplier_percent": 200})
    sam, tom = enrol(db, clock, program, first_name="Sam"), enrol(db, clock, program, first_name="Tom")
    first = pay(db, clock, program, sam.id, payment_id="fee-sam-1")
    clock.set(first.period_end - timedelta(hours=1))
    paid = pay(db, clock, program, sam.id, payment_id="fee-sam-2")
    with db.write() as conn:
        memberships.start_trial(conn=conn, clock=clock, program=program, member_id=tom.id, data=JoinIn(plan="club"))
    merge(db, clock, program, sam, tom)
    with db.read() as conn:
        held = memberships.member_memberships(conn=conn, program_id=program.id, member_id=tom.id)
    assert {(m.id, m.state, m.period_end) for m in held if m.state != "lapsed"} == {
        (paid.id, "active", paid.period_end)
    }  # fmt: skip
    assert [m.state for m in held if m.id != paid.id] == ["lapsed"]  # the trial
    clock.set(paid.period_end - timedelta(hours=2))
    renewed = pay(db, clock, program, tom.id, payment_id="fee-tom-1")
    assert (renewed.id, renewed.period_start) == (paid.id, paid.period_end)  # runs on from Sam's paid months


def test_a_merge_keeps_the_targets_membership_when_it_is_paid_further(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = add_plan(db, clock, program, trial_days=3)
    sam, tom = enrol(db, clock, program, first_name="Sam"), enrol(db, clock, program, first_name="Tom")
    with db.write() as conn:
        memberships.start_trial(conn=conn, clock=clock, program=program, member_id=sam.id, data=JoinIn(plan="club"))
    paid = pay(db, clock, program, tom.id, payment_id="fee-tom-1")
    merge(db, clock, program, sam, tom)
    with db.read() as conn:
        held = memberships.member_memberships(conn=conn, program_id=program.id, member_id=tom.id)
    assert sorted((m.id == paid.id, m.state) for m in held) == [(False, "lapsed"), (True, "active")]


def test_a_plan_changes_its_benefits_for_running_memberships_and_archived_is_no_longer_offered(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    from palier.memberships.models import PlanUpdate

    program = add_plan(db, clock, program, trial_days=14)
    ann, bo = enrol(db, clock, program, first_name="Ann"), enrol(db, clock, program, first_name="Bo")
    pay(db, clock, program, ann.id, payment_id="fee-ann-1")

    def change(**fields: Any) -> Any:
        with db.write() as conn:
            return memberships.update_plan(
                conn=conn, clock=clock, program=program, code="club", changes=PlanUpdate.model_validate(fields),
                actor=ACTOR,
            )  # fmt: skip

    richer = change(benefits={"multiplier_percent": 200}, name={"fr": "Club Or", "en": "Gold club"})
    assert richer.benefits.multiplier_percent == 200 and richer.price == 499  # the rest stays
    assert purchase(db, clock, program, ann.id, lines=[line("CAKE", 1000)]).points == 20  # at once, mid-period
    refused("price_fixed", change, price=599)  # members are charged it at every renewal
    refused("price_fixed", change, period="yearly")
    assert change(price=499).price == 499  # its own price is no change
    refused("segment_required", change, access="segment")
    refused("reward_not_found", change, benefits={"period_rewards": ["rwd_nothing"]})

    assert change(status="archived").status == "archived"
    with db.write() as conn:
        refused(
            "plan_archived", memberships.start_trial, conn=conn, clock=clock, program=program, member_id=bo.id,
            data=JoinIn(plan="club"),
        )  # fmt: skip
    clock.advance(days=30)
    renewed = pay(db, clock, program, ann.id, payment_id="fee-ann-2")  # the processor still charges Ann
    assert renewed.state == "active" and renewed.period_end > clock.now()
    assert change(status="active").status == "active"


def test_a_trial_converted_the_day_it_began_gives_the_paid_months_coupon_too(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """One free delivery per period, trial too: paid two hours into the trial, the first paid month has its own."""
    delivery = add_reward(db, clock, program, kind="free_shipping", amount=None, cost_points=300)
    program = add_plan(db, clock, program, trial_days=14, benefits={"period_rewards": [delivery.id]})
    ann = enrol(db, clock, program, first_name="Ann")
    with db.write() as conn:
        memberships.start_trial(conn=conn, clock=clock, program=program, member_id=ann.id, data=JoinIn(plan="club"))
    clock.advance(hours=2)
    paid = pay(db, clock, program, ann.id, payment_id="fee-1")
    assert paid.state == "active" and paid.period_rewards_not_given == []
    with db.read() as conn:
        coupons = rewards.member_coupons(conn=conn, program_id=program.id, member_id=ann.id)
    assert len(coupons) == 2
    assert pay(db, clock, program, ann.id, payment_id="fee-1") == paid  # the payment again: no third
    with db.read() as conn:
        assert len(rewards.member_coupons(conn=conn, program_id=program.id, member_id=ann.id)) == 2


def refund(db: Database, clock: FrozenClock, program: Program, payment_id: str, **fields: Any) -> MembershipRefund:
    with db.write() as conn:
        return memberships.refund_payment(
            conn=conn,
            clock=clock,
            program=program,
            payment_id=payment_id,
            data=MembershipRefundIn.model_validate(fields),
            actor=ACTOR,
        )


def test_a_fee_refunded_while_its_month_runs_ends_the_membership_and_cancels_its_unused_coupon(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A withdrawal three days in: the benefits stop now, the month's free delivery is cancelled; once only."""
    delivery = add_reward(db, clock, program, kind="free_shipping", amount=None, cost_points=300)
    program = add_plan(db, clock, program, benefits={"period_rewards": [delivery.id], "multiplier_percent": 200})
    ann = enrol(db, clock, program, first_name="Ann")
    paid = pay(db, clock, program, ann.id, payment_id="fee-1")
    clock.advance(days=3)
    refunded = refund(db, clock, program, "fee-1", note="Withdrawal within 14 days")
    assert refunded.time_taken_back and refunded.amount == 499 and len(refunded.coupons_cancelled) == 1
    assert refunded.membership.state == "lapsed"
    assert refunded.membership.period_end == refunded.membership.ended_at == clock.now()
    with db.read() as conn:
        assert memberships.live_plans(conn, program_id=program.id, member_id=ann.id, now=clock.now()) == frozenset()
        (coupon,) = rewards.member_coupons(conn=conn, program_id=program.id, member_id=ann.id)
        assert (coupon.code, coupon.state) == (refunded.coupons_cancelled[0], "cancelled")
        kinds = [e["type"] for e in recent(conn, program_id=program.id)]
        (note,) = conn.execute(
            select(audit_entries.c.details).where(
                audit_entries.c.program_id == program.id, audit_entries.c.action == "membership_payment.refunded"
            )
        ).scalars()
    assert kinds.count("membership_refunded") == 1 and note["note"] == "Withdrawal within 14 days"
    assert purchase(db, clock, program, ann, lines=[line("A", 1_000)]).points == 10  # no more ×2
    clock.advance(minutes=1)
    assert refund(db, clock, program, "fee-1") == refunded  # sent again: the first answer, nothing more
    with db.read() as conn:
        assert [e["type"] for e in recent(conn, program_id=program.id)].count("membership_refunded") == 1
    assert paid.period_end > refunded.membership.period_end


def test_a_refunded_renewal_paid_ahead_takes_back_that_month_only(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Renewed a day early, then refunded: the membership ends where the first month does; the first month's
    fee cannot be refunded before the second's."""
    program = add_plan(db, clock, program)
    ann = enrol(db, clock, program, first_name="Ann")
    first = pay(db, clock, program, ann.id, payment_id="fee-1")
    clock.set(first.period_end - timedelta(days=1))
    second = pay(db, clock, program, ann.id, payment_id="fee-2")
    out_of_order = refused("payment_not_latest", refund, db, clock, program, "fee-1")
    assert (out_of_order.field, out_of_order.extra["later_payment_id"]) == ("payment_id", "fee-2")
    taken = refund(db, clock, program, "fee-2")
    assert taken.time_taken_back and taken.coupons_cancelled == []
    assert (taken.membership.state, taken.membership.period_end) == ("active", first.period_end)
    assert second.period_end > first.period_end
    with db.read() as conn:
        assert memberships.live_plans(conn, program_id=program.id, member_id=ann.id, now=clock.now()) == frozenset(
            {"club"}
        )


def test_a_fee_refunded_after_its_month_keeps_the_membership_and_its_used_coupon(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    delivery = add_reward(db, clock, program, kind="free_shipping", amount=None, cost_points=300)
    program = add_plan(db, clock, program, benefits={"period_rewards": [delivery.id]})
    ann = enrol(db, clock, program, first_name="Ann")
    first = pay(db, clock, program, ann.id, payment_id="fee-1")
    with db.write() as conn:
        (coupon,) = rewards.member_coupons(conn=conn, program_id=program.id, member_id=ann.id)
        rewards.use_coupon(
            conn=conn, clock=clock, program=program, code=coupon.code,
            use=CouponUse(channel="web", order_id="W-1", shipping=490),
        )  # fmt: skip
    clock.set(first.period_end - timedelta(hours=1))
    pay(db, clock, program, ann.id, payment_id="fee-2")
    clock.advance(days=2)
    kept = refund(db, clock, program, "fee-1")
    assert not kept.time_taken_back and (kept.coupons_cancelled, kept.coupons_used) == ([], [coupon.code])
    assert kept.membership.state == "active" and kept.membership.period_end > clock.now()
    refused("payment_not_found", refund, db, clock, program, "fee-nobody-paid")


def test_a_merge_tells_the_merchants_systems_which_membership_lapsed_and_an_erasure_only_that_the_member_went(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Sam's paid months stay on Tom's account; Tom's trial lapses. A mirror of the memberships (a CRM, a
    webhook) learns it, with ``reason: merged`` so a mailer does not write "your VIP has ended" to someone who
    still has it. An erasure lapses the member's plan too, and writes nothing but ``member_erased``."""
    from palier.members.erasure import erase

    program = add_plan(db, clock, program, trial_days=3)
    sam, tom = enrol(db, clock, program, first_name="Sam"), enrol(db, clock, program, first_name="Tom")
    pay(db, clock, program, sam.id, payment_id="fee-sam-1")
    with db.write() as conn:
        trial = memberships.start_trial(
            conn=conn, clock=clock, program=program, member_id=tom.id, data=JoinIn(plan="club")
        )
    merge(db, clock, program, sam, tom)
    with db.read() as conn:
        lapsed = recent(conn, program_id=program.id, types=["membership_lapsed"])
    assert [(e["subject_id"], e["payload"]) for e in lapsed] == [
        (tom.id, {"member_id": tom.id, "plan": "club", "period_end": trial.period_end.isoformat(), "reason": "merged",
                  "email": tom.email, "language": tom.language})
    ]  # fmt: skip
    with db.write() as conn:
        erase(
            conn=conn, clock=clock, program=program, member_id=tom.id, reason="Asked to be forgotten",
            forfeit_store_credit=False, actor=ACTOR,
        )  # fmt: skip
    with db.read() as conn:
        waiting = undelivered(conn, program_id=program.id).items
        about_tom = [e.type for e in waiting if e.subject_id == tom.id]
        held = memberships.member_memberships(conn=conn, program_id=program.id, member_id=tom.id)
    assert {m.state for m in held} == {"lapsed"}
    assert about_tom == ["member_erased"]  # what was not delivered about Tom is never sent now
