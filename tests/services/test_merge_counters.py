"""A merge adds up the rules' per-member counters as one person's: campaign caps, spend_step running spend,
behaviour-action limits and the year's birthday gift."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import delete

from palier.activity.models import EventResult
from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import Unprocessable
from palier.members import service as members
from palier.members.models import MemberUpdate
from palier.programs.models import Program
from palier.rules import gifts
from palier.rules.tables import counters
from tests.services.factories import (
    ACTOR,
    apply_rules,
    balance,
    enrol,
    merge,
    purchase,
    purchase_body,
    return_,
    send_purchase,
)
from tests.services.test_actions_gifts import act
from tests.services.test_actions_gifts import with_rules as with_actions
from tests.services.test_concurrency import Outcome, run_threads
from tests.services.test_rules import BASE, counters_of, document, with_ten_for_every_hundred

WEEKEND = {
    "id": "weekend",
    "name": {"en": "Weekend"},
    "starts": "2026-01-01T00:00:00",
    "ends": "2027-01-01T00:00:00",
    "member_cap": 200,
}
DOUBLE_BONUS = {**BASE, "id": "weekend-bonus", "name": {"en": "Weekend bonus"}, "campaign": "weekend"}
DOUBLE_BONUS["effect"] = {"type": "points_per_amount", "points": 2, "per_amount": 100}


def with_capped_campaign(db: Database, clock: FrozenClock, program: Program) -> Program:
    """The base rule and 2 points per euro more in campaign ``weekend``, capped at 200 points per member."""
    return apply_rules(db, clock, program, document(DOUBLE_BONUS, campaigns=[WEEKEND]))


def bonus_of(result: EventResult) -> int:
    return sum(a.points for a in result.awards if a.rule_id == "weekend-bonus")


def test_after_a_merge_the_member_cap_counts_what_both_accounts_got(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_capped_campaign(db, clock, program)
    x, y = enrol(db, clock, program), enrol(db, clock, program)
    at_cap = purchase(db, clock, program, x, amount=20000)
    assert bonus_of(at_cap) == 200  # X is at the cap
    assert bonus_of(purchase(db, clock, program, y, amount=9000)) == 180
    result = merge(db, clock, program, x, y)
    with db.read() as conn:
        assert counters_of(conn, program, x.id) == {}
        assert counters_of(conn, program, y.id) == {"campaign:weekend": 380}
    assert result.source_member_id == x.id
    after = purchase(db, clock, program, y, amount=20000)
    assert (after.points, bonus_of(after)) == (200, 0)  # one person, 380 campaign points: nothing more

    # X's order, now Y's, returned: its campaign points come back to Y's cap (the one they are counted in)
    return_(db, clock, program, at_cap.external_id, lines=[("SKU-1", 1)])
    with db.read() as conn:
        assert counters_of(conn, program, y.id) == {"campaign:weekend": 180}
    assert bonus_of(purchase(db, clock, program, y, amount=5000)) == 20


def test_after_a_merge_spend_steps_count_the_spend_of_both_accounts(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_ten_for_every_hundred(db, clock, program)
    x, y = enrol(db, clock, program), enrol(db, clock, program)

    def coupons(result: EventResult) -> int:
        return sum(a.points for a in result.awards if a.kind == "coupon")

    assert coupons(purchase(db, clock, program, x, amount=15000)) == 1  # 150 €: the first step
    assert coupons(purchase(db, clock, program, y, amount=3000)) == 0
    merge(db, clock, program, x, y)
    with db.read() as conn:
        assert counters_of(conn, program, x.id) == {}
        assert counters_of(conn, program, y.id) == {"spend:ten-for-hundred": 18000, "steps:ten-for-hundred": 1}
    assert coupons(purchase(db, clock, program, y, amount=3000)) == 1  # 210 € in all: the second step
    assert coupons(purchase(db, clock, program, y, amount=5000)) == 0  # 260 €: the third is at 300 €
    with db.read() as conn:
        assert counters_of(conn, program, y.id) == {"spend:ten-for-hundred": 26000, "steps:ten-for-hundred": 2}


@pytest.mark.parametrize("older", ["source", "target", "both"])
def test_a_merge_counts_the_steps_paid_by_counters_kept_before_steps_were_recorded(
    db: Database, clock: FrozenClock, program: Program, older: str
) -> None:
    """Counters written before the steps paid were recorded hold only the running spend: the steps it crossed
    were paid. A merge counts them so, each account on its own: none is paid twice, none is lost."""
    program = with_ten_for_every_hundred(db, clock, program)
    x, y = enrol(db, clock, program), enrol(db, clock, program)

    def coupons(result: EventResult) -> int:
        return sum(a.points for a in result.awards if a.kind == "coupon")

    assert coupons(purchase(db, clock, program, x, amount=15000)) == 1
    assert coupons(purchase(db, clock, program, y, amount=15000)) == 1
    with db.write() as conn:  # as such counters were: the running spend alone
        for who in [x, y] if older == "both" else [x] if older == "source" else [y]:
            conn.execute(
                delete(counters).where(
                    counters.c.program_id == program.id,
                    counters.c.member_id == who.id,
                    counters.c.name == "steps:ten-for-hundred",
                )
            )
    merge(db, clock, program, x, y)
    with db.read() as conn:  # 300 € spent, two steps paid
        assert counters_of(conn, program, y.id) == {"spend:ten-for-hundred": 30000, "steps:ten-for-hundred": 2}
    assert coupons(purchase(db, clock, program, y, amount=100)) == 1  # the third step, at 300 €
    assert coupons(purchase(db, clock, program, y, amount=9800)) == 0  # 399 €
    assert coupons(purchase(db, clock, program, y, amount=100)) == 1  # 400 €


def test_purchases_racing_a_merge_lose_no_campaign_points_from_the_cap(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_capped_campaign(db, clock, program)
    x, y = enrol(db, clock, program), enrol(db, clock, program)
    buyers = [x, y] * 4
    bodies = [purchase_body(program, who, clock=clock, amount=2000) for who in buyers]
    outcome = Outcome()
    merged: list[object] = []

    def work(index: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        if index == len(bodies):
            merged.append(outcome.run(lambda: merge(db, clock, program, x, y)))
        else:
            outcome.run(lambda: send_purchase(db, clock, program, bodies[index]))

    run_threads(len(bodies) + 1, work)
    assert [f for f in outcome.failures if not f.startswith("member_merged")] == []
    assert merged[0] is not None
    given = sum(bonus_of(result) for result in outcome.results if result is not None)
    with db.read() as conn:
        assert counters_of(conn, program, x.id) == {}
        assert counters_of(conn, program, y.id) == {"campaign:weekend": given}
    assert bonus_of(purchase(db, clock, program, y, amount=20000)) == max(200 - given, 0)


def test_after_a_merge_action_limits_count_what_both_accounts_did(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_actions(db, clock, program)
    x, y = enrol(db, clock, program), enrol(db, clock, program)
    act(db, clock, program, x.id, "newsletter", "x-email")
    act(db, clock, program, x.id, "review", "rev-1")
    act(db, clock, program, x.id, "review", "rev-2")
    merge(db, clock, program, x, y)
    for action, reference in (("newsletter", "y-email"), ("review", "rev-3")):  # once ever; 2 a day, done today
        with pytest.raises(Unprocessable) as refused:
            act(db, clock, program, y.id, action, reference)
        assert refused.value.code == "action_limit_reached"
    again, replayed = act(db, clock, program, x.id, "review", "rev-1")  # X's review resent: its first answer
    assert (again.points, replayed) == (10, True)
    clock.advance(days=1)
    assert act(db, clock, program, y.id, "review", "rev-3")[0].points == 10
    assert balance(db, program, y).available == 30 + 30 + 20 + 10 + 10 + 10


def test_after_a_merge_the_birthday_gift_of_the_year_is_not_given_again(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_actions(db, clock, program)
    day = clock.now().date()
    x, y = enrol(db, clock, program, birthday=day.replace(year=1990)), enrol(db, clock, program)
    assert gifts.birthdays(db, clock, program_id=program.id).members == 1  # X's gift
    merge(db, clock, program, x, y)
    with db.write() as conn:
        members.update_member(
            conn=conn, clock=clock, program=program, member_id=y.id,
            changes=MemberUpdate(birthday=day.replace(year=1990)), actor=ACTOR,
        )  # fmt: skip
    assert gifts.birthdays(db, clock, program_id=program.id).members == 0  # one person, one gift this year
    assert balance(db, program, y).available == 30 + 30 + 100
    clock.set(clock.now().replace(year=clock.now().year + 1))
    assert gifts.birthdays(db, clock, program_id=program.id).members == 1  # next year's, once


def test_after_a_merge_the_anniversary_is_the_earlier_enrolments(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_actions(db, clock, program)
    joined = clock.now()
    x = enrol(db, clock, program)  # 2 March
    clock.advance(days=100)
    y = enrol(db, clock, program)  # 10 June
    merge(db, clock, program, x, y)
    clock.set(joined.replace(year=joined.year + 1))
    assert gifts.anniversaries(db, clock, program_id=program.id).members == 1  # a year since the person joined
    clock.advance(days=100)
    assert gifts.anniversaries(db, clock, program_id=program.id).members == 0  # one anniversary a year
    assert balance(db, program, y).available == 30 + 30 + 200


def test_after_a_merge_the_member_joined_where_the_earlier_enrolment_was_made(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Joined in a store in March, again on the web in June: one member since March, in store."""
    x = enrol(db, clock, program, channel="store")
    clock.advance(days=100)
    y = enrol(db, clock, program, channel="web")
    merge(db, clock, program, x, y)
    with db.read() as conn:
        kept = members.get_member(conn=conn, program_id=program.id, member_id=y.id)
    assert (kept.enrolled_at, kept.enrolment_channel) == (x.enrolled_at, "store")
    z = enrol(db, clock, program, channel="app")  # later than y: y's date and channel stay
    merge(db, clock, program, z, y)
    with db.read() as conn:
        kept = members.get_member(conn=conn, program_id=program.id, member_id=y.id)
    assert (kept.enrolled_at, kept.enrolment_channel) == (x.enrolled_at, "store")


def test_a_merge_keeps_the_birthday_and_names_only_the_closed_account_knew(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_actions(db, clock, program)
    day = clock.now().date()
    x = enrol(db, clock, program, first_name="Ann", last_name="Martin", birthday=day.replace(year=1990))
    y, z = enrol(db, clock, program), enrol(db, clock, program, first_name="Anne", birthday=date(1991, 1, 1))
    merge(db, clock, program, x, y)  # before the day's birthday job
    with db.read() as conn:
        kept = members.get_member(conn=conn, program_id=program.id, member_id=y.id)
    assert (kept.first_name, kept.last_name, kept.birthday) == ("Ann", "Martin", day.replace(year=1990))
    assert gifts.birthdays(db, clock, program_id=program.id).members == 1  # the person's birthday
    assert balance(db, program, y).available == 30 + 30 + 100
    other = enrol(db, clock, program, first_name="Annie", birthday=day.replace(year=1992))
    merge(db, clock, program, other, z)
    with db.read() as conn:
        kept = members.get_member(conn=conn, program_id=program.id, member_id=z.id)
    assert (kept.first_name, kept.last_name, kept.birthday) == ("Anne", None, date(1991, 1, 1))  # its own stay


def test_after_a_merge_a_first_purchase_bonus_is_not_paid_again(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    first = {**BASE, "id": "first", "name": {"en": "First order"}, "conditions": {"first_purchase": True}}
    first["effect"] = {"type": "fixed", "points": 100}
    program = apply_rules(db, clock, program, document(first))
    x, y = enrol(db, clock, program), enrol(db, clock, program)
    assert purchase(db, clock, program, x, amount=1000).points == 110
    merge(db, clock, program, x, y)
    assert purchase(db, clock, program, y, amount=1000).points == 10  # the person has bought before


@pytest.mark.parametrize("gifted", ["source", "target"])
def test_a_merge_committed_while_the_birthday_job_picks_its_members_gives_no_second_gift(
    db: Database, clock: FrozenClock, program: Program, monkeypatch: pytest.MonkeyPatch, gifted: str
) -> None:
    """The job chose its members, then a merge came before it locked them: one person, one gift this year."""
    program = with_actions(db, clock, program)
    day = clock.now().date()
    x, y = enrol(db, clock, program, birthday=day.replace(year=1990)), enrol(db, clock, program)
    with db.write() as conn:
        members.update_member(
            conn=conn, clock=clock, program=program, member_id=y.id,
            changes=MemberUpdate(birthday=day.replace(year=1990)), actor=ACTOR,
        )  # fmt: skip
    first, other = (x, y) if gifted == "source" else (y, x)
    with db.write() as conn:  # this year's gift went to one account only (a job that ran before the other joined)
        gifts._give(
            conn, clock, program, gifts.rules_at(conn=conn, program=program, when=clock.now()), first.id, "birthday",
            f"{first.id}:{day.year}", clock.now(), "Happy birthday!",
        )  # fmt: skip
    real_lock = gifts.try_lock_members

    def merge_then_lock(conn: object, member_ids: list[str]) -> set[str]:
        assert member_ids == [other.id]
        members.merge(conn=conn, clock=clock, program=program, source_id=x.id, target_id=y.id, actor=ACTOR)  # type: ignore[arg-type]
        return real_lock(conn, member_ids)  # type: ignore[arg-type]

    monkeypatch.setattr(gifts, "try_lock_members", merge_then_lock)
    assert gifts.birthdays(db, clock, program_id=program.id).members == 0
    assert balance(db, program, y).available == 30 + 30 + 100  # two welcome gifts, one birthday
