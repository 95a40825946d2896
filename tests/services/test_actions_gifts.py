"""Behaviour actions (limits, unique references) and gifts: welcome, birthdays and anniversaries by job."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import Conflict, InvalidInput, Unprocessable
from palier.programs.models import Program
from palier.rules import gifts
from palier.rules.actions import ActionIn, record_action
from palier.rules.calendar import birthday_in
from palier.web import history_text
from tests.services.factories import apply_rules, balance, enrol, history

BASE = {
    "id": "base",
    "name": {"en": "1 point per euro"},
    "event": "purchase",
    "effect": {"type": "points_per_amount", "points": 1, "per_amount": 100},
}
ACTIONS = [
    {
        "id": "newsletter",
        "name": {"en": "Newsletter sign-up", "fr": "Inscription à la newsletter"},
        "points": 20,
        "limit": {"count": 1, "per": "ever"},
    },
    {"id": "review", "name": {"en": "Product review"}, "points": 10, "limit": {"count": 2, "per": "day"}},
]
GIFTS = [
    {
        "id": "welcome",
        "name": {"en": "A free drink for joining"},
        "event": "enrolment",
        "effect": {"type": "fixed", "points": 30},
    },
    {
        "id": "birthday",
        "name": {"en": "Birthday gift"},
        "event": "birthday",
        "effect": {"type": "fixed", "points": 100},
    },
    {
        "id": "anniversary",
        "name": {"en": "Anniversary gift"},
        "event": "anniversary",
        "effect": {"type": "fixed", "points": 200},
    },
]


def with_rules(db: Database, clock: FrozenClock, program: Program) -> Program:
    return apply_rules(db, clock, program, {"actions": ACTIONS, "rules": [BASE, *GIFTS]})


def act(
    db: Database, clock: FrozenClock, program: Program, member_id: str, action: str, reference: str, **extra: Any
) -> Any:
    with db.write() as conn:
        return record_action(
            conn=conn,
            clock=clock,
            program=program,
            member_id=member_id,
            data=ActionIn(action=action, reference=reference, **extra),
        )


def test_an_action_pays_once_per_reference_and_refuses_above_its_limit(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_rules(db, clock, program)
    member = enrol(db, clock, program)
    result, replayed = act(db, clock, program, member.id, "review", "rev-1")
    assert (result.points, replayed, result.awards[0].rule_id) == (10, False, "action:review")
    again, replayed = act(db, clock, program, member.id, "review", "rev-1")
    assert (again, replayed) == (result, True)  # the same review is never paid twice
    act(db, clock, program, member.id, "review", "rev-2")
    with pytest.raises(Unprocessable) as refused:
        act(db, clock, program, member.id, "review", "rev-3")
    assert (refused.value.code, refused.value.field, refused.value.extra["per"]) == (
        "action_limit_reached",
        "action",
        "day",
    )
    clock.advance(days=1)
    assert act(db, clock, program, member.id, "review", "rev-3")[0].points == 10  # a new day in Paris
    assert balance(db, program, member).available == 30 + 30


def test_an_action_sent_twice_at_once_answers_the_first_result_not_its_limit(
    db: Database, clock: FrozenClock, program: Program, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A till retrying a newsletter sign-up (once ever) while the first request is still running: the retry
    looked for the reference before the first committed, then waited for the member's lock. It must answer the
    first result, not action_limit_reached for the very sign-up that was paid."""
    from palier.rules import actions

    program = with_rules(db, clock, program)
    member = enrol(db, clock, program)
    first, _ = act(db, clock, program, member.id, "newsletter", "camille@example.fr")
    looked_up = actions.replay
    calls: list[int] = []

    def before_the_first_committed(**kwargs: Any) -> Any:
        calls.append(1)
        return None if len(calls) == 1 else looked_up(**kwargs)

    monkeypatch.setattr(actions, "replay", before_the_first_committed)
    again, replayed = act(db, clock, program, member.id, "newsletter", "camille@example.fr")
    assert (again, replayed) == (first, True)
    assert balance(db, program, member).available == 30 + 20


def test_once_ever_and_unknown_actions_and_other_members(db: Database, clock: FrozenClock, program: Program) -> None:
    program = with_rules(db, clock, program)
    member, other = enrol(db, clock, program), enrol(db, clock, program)
    act(db, clock, program, member.id, "newsletter", "member-email")
    with pytest.raises(Unprocessable):
        act(db, clock, program, member.id, "newsletter", "another-email")
    with pytest.raises(InvalidInput) as unknown:
        act(db, clock, program, member.id, "dance", "x")
    assert (unknown.value.code, unknown.value.field) == ("unknown_action", "action")
    with pytest.raises(Conflict):  # the same reference sent for another member
        act(db, clock, program, other.id, "newsletter", "member-email")


def test_an_action_dated_before_the_member_joined_is_refused(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_rules(db, clock, program)  # in force since 2 March 2026
    clock.advance(days=2)
    member = enrol(db, clock, program)  # joined 4 March, 09:00 UTC
    with pytest.raises(InvalidInput) as refused:
        act(db, clock, program, member.id, "review", "rev-0", occurred_at=clock.now() - timedelta(days=1))
    assert (refused.value.code, refused.value.field) == ("action_before_enrolment", "occurred_at")
    assert refused.value.extra["enrolled_at"] == "2026-03-04T09:00:00+00:00"
    # a till's clock a few minutes slow, the newsletter ticked at the sign-up: paid
    assert act(db, clock, program, member.id, "newsletter", "nl", occurred_at=clock.now() - timedelta(minutes=3))[0]
    assert balance(db, program, member).available == 30 + 20


def test_an_action_is_dated_at_most_a_week_back(db: Database, clock: FrozenClock, program: Program) -> None:
    """Limits count the period an action is dated in: older dates would claim every past day's allowance."""
    program = with_rules(db, clock, program)
    member = enrol(db, clock, program)
    clock.advance(days=30)
    for back in range(8):  # today and each of the 7 days before, at this hour: 7 × 24 hours back at most
        for n in (1, 2):
            act(db, clock, program, member.id, "review", f"rev-{back}-{n}", occurred_at=clock.now() - timedelta(back))
    with pytest.raises(InvalidInput) as refused:
        act(db, clock, program, member.id, "review", "rev-old", occurred_at=clock.now() - timedelta(days=7, minutes=1))
    assert (refused.value.code, refused.value.field) == ("action_too_old", "occurred_at")
    assert refused.value.extra["earliest"] == "2026-03-25T09:00:00+00:00"
    assert balance(db, program, member).available == 30 + 8 * 2 * 10


def test_the_welcome_gift_is_given_on_enrolment(db: Database, clock: FrozenClock, program: Program) -> None:
    program = with_rules(db, clock, program)
    member = enrol(db, clock, program)
    assert balance(db, program, member).available == 30
    assert [line.reason for line in history(db, program, member)] == ["A free drink for joining"]


@pytest.mark.parametrize(
    ("birthday", "year", "celebrated"),
    [
        (date(1992, 2, 29), 2027, date(2027, 2, 28)),
        (date(1992, 2, 29), 2028, date(2028, 2, 29)),
        (date(1990, 7, 14), 2026, date(2026, 7, 14)),
    ],
)
def test_29_february_is_celebrated_on_28_february_in_other_years(birthday: date, year: int, celebrated: date) -> None:
    assert birthday_in(year, birthday) == celebrated


def test_birthday_gifts_once_a_year_on_the_local_day_by_a_job_safe_to_run_twice(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    program = with_rules(db, clock, new_program(timezone="Pacific/Auckland"))
    leap = enrol(db, clock, program, birthday=date(1992, 2, 29))
    today = enrol(db, clock, program, birthday=date(1990, 3, 3))
    # 2 March 2026 at 12:00 UTC is already 3 March (01:00) in Auckland
    clock.set(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    first = gifts.birthdays(db, clock, program_id=program.id)
    second = gifts.birthdays(db, clock, program_id=program.id)
    assert (first.members, first.points, second.members) == (1, 100, 0)
    assert balance(db, program, today).available == 30 + 100
    clock.set(datetime(2027, 2, 28, 0, 0, tzinfo=UTC))  # 28 Feb 2027 in Auckland (13:00): no 29 Feb that year
    assert gifts.birthdays(db, clock, program_id=program.id).members == 1
    assert balance(db, program, leap).available == 30 + 100


def test_a_birthday_missed_while_no_job_ran_is_given_within_a_week_once(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    clock.set(datetime(2026, 2, 1, 9, 0, tzinfo=UTC))
    program = with_rules(db, clock, program)  # Paris
    missed = enrol(db, clock, program, birthday=date(1985, 2, 26))  # 4 days before the job: the worker was down
    too_old = enrol(db, clock, program, birthday=date(1985, 2, 20))  # 10 days before: past the catch-up
    clock.set(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    late = enrol(db, clock, program, birthday=date(1985, 2, 28))  # joined after that birthday: not this year
    first = gifts.birthdays(db, clock, program_id=program.id)
    assert (first.members, gifts.birthdays(db, clock, program_id=program.id).members) == (1, 0)
    assert balance(db, program, missed).available == 30 + 100
    assert balance(db, program, too_old).available == balance(db, program, late).available == 30
    clock.set(datetime(2027, 2, 26, 12, 0, tzinfo=UTC))  # a year on: 26 February's, and 20 February's (in the week)
    assert gifts.birthdays(db, clock, program_id=program.id).members == 2
    clock.set(datetime(2027, 3, 1, 12, 0, tzinfo=UTC))  # the late joiner's first birthday with us
    assert gifts.birthdays(db, clock, program_id=program.id).members == 1
    assert [balance(db, program, m).available for m in (missed, too_old, late)] == [230, 130, 130]


def test_a_birthday_caught_up_after_new_year_counts_for_the_year_it_fell_in(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_rules(db, clock, program)
    member = enrol(db, clock, program, birthday=date(1990, 12, 30))
    clock.set(datetime(2027, 1, 2, 9, 0, tzinfo=UTC))  # the jobs were off over the holidays
    assert gifts.birthdays(db, clock, program_id=program.id).members == 1
    clock.set(datetime(2027, 12, 30, 9, 0, tzinfo=UTC))  # 2027's birthday is still given
    assert gifts.birthdays(db, clock, program_id=program.id).members == 1
    assert gifts.birthdays(db, clock, program_id=program.id).members == 0
    assert balance(db, program, member).available == 30 + 100 + 100


def test_membership_anniversaries_are_given_once(db: Database, clock: FrozenClock, program: Program) -> None:
    program = with_rules(db, clock, program)
    member = enrol(db, clock, program)  # joined 2 March 2026, 10:00 in Paris
    clock.set(datetime(2027, 3, 1, 22, 0, tzinfo=UTC))  # 23:00 on 1 March in Paris: not yet
    assert gifts.anniversaries(db, clock, program_id=program.id).members == 0
    clock.set(datetime(2027, 3, 1, 23, 30, tzinfo=UTC))  # 00:30 on 2 March in Paris
    assert gifts.anniversaries(db, clock, program_id=program.id).members == 1
    assert gifts.anniversaries(db, clock, program_id=program.id).members == 0
    assert balance(db, program, member).available == 30 + 200


def test_a_member_who_joined_on_the_programs_first_evening_west_of_utc_has_anniversaries(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """The program opened on 31 December in Los Angeles, when it was already 1 January in UTC: a member who
    joined that evening joined on 31 December, and is celebrated on 31 December."""
    clock.set(datetime(2027, 1, 1, 5, 0, tzinfo=UTC))  # 31 December 2026, 21:00 in Los Angeles
    program = with_rules(db, clock, new_program(timezone="America/Los_Angeles"))
    member = enrol(db, clock, program)
    clock.set(datetime(2027, 12, 31, 20, 0, tzinfo=UTC))  # 31 December 2027, noon in Los Angeles
    assert gifts.anniversaries(db, clock, program_id=program.id).members == 1
    assert gifts.anniversaries(db, clock, program_id=program.id).members == 0
    assert balance(db, program, member).available == 30 + 200


def test_history_names_the_rule_behind_a_bonus_or_gift_in_the_members_language(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_rules(db, clock, program)
    member = enrol(db, clock, program, birthday=date(1990, 3, 2))
    act(db, clock, program, member.id, "newsletter", "nl-1")
    gifts.birthdays(db, clock, program_id=program.id)
    lines = history(db, program, member)
    with db.read() as conn:
        french = history_text.describe(conn, program, lines, "fr")
        english = history_text.describe(conn, program, lines, "en")
    assert [(d.title, d.detail) for d in french] == [  # oldest first
        ("Cadeau de bienvenue", "A free drink for joining"),  # the rule has no French name: its English one
        ("Bonus", "Inscription à la newsletter"),
        ("Anniversaire", "Birthday gift"),
    ]
    assert [d.detail for d in english] == ["A free drink for joining", "Newsletter sign-up", "Birthday gift"]


def test_history_names_the_campaign_that_added_to_an_action_or_a_purchase_in_the_members_language(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A review paid double by a campaign reads "Avis produit · Semaine des avis" in French (not the English
    reason because two rules paid it), and a purchase the campaign doubled names it after its order."""
    from tests.services.factories import purchase

    campaign = {"id": "reviews", "name": {"en": "Review week", "fr": "Semaine des avis"},
                "starts": "2026-01-01T00:00:00", "ends": "2027-01-01T00:00:00"}  # fmt: skip
    double = {"id": "double", "name": {"en": "Double points", "fr": "Points doublés"}, "event": "action",
              "campaign": "reviews", "effect": {"type": "multiplier", "factor": 2}}  # fmt: skip
    on_purchases = double | {"id": "double-buy", "event": "purchase"}
    actions = [{**ACTIONS[1], "name": {"en": "Product review", "fr": "Avis produit"}}]
    program = apply_rules(db, clock, program, {"actions": actions, "campaigns": [campaign],
                                               "rules": [BASE, double, on_purchases]})  # fmt: skip
    member = enrol(db, clock, program)
    assert act(db, clock, program, member.id, "review", "rev-1")[0].points == 20
    order = purchase(db, clock, program, member, amount=1000)
    assert order.points == 20
    lines = history(db, program, member)
    with db.read() as conn:
        french = [d.detail for d in history_text.describe(conn, program, lines, "fr")]
        english = [d.detail for d in history_text.describe(conn, program, lines, "en")]
    assert french[0] == "Avis produit · Semaine des avis"
    assert english[0] == "Product review · Review week"
    assert french[1].startswith(f"Commande n°{order.external_id}") and french[1].endswith(" · Semaine des avis")
    assert english[1].endswith(" · Review week"), english


def test_action_and_birthday_rules_for_a_tier_pay_members_of_that_tier(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """A tier condition reads the member's tier on every event, not on purchases only: "Gold reviews count
    double" and "a bigger birthday gift for Gold" pay Gold members, and only them."""
    from tests.services.factories import purchase
    from tests.services.test_tiers import with_tiers

    program = with_tiers(db, clock, new_program(timezone="UTC"))
    gold_only = {"tiers": ["gold"]}
    program = apply_rules(
        db, clock, program,
        {"actions": ACTIONS, "rules": [
            BASE,
            {"id": "gold-reviews", "name": {"en": "Gold reviews"}, "event": "action", "conditions": gold_only,
             "effect": {"type": "multiplier", "factor": 2}},
            {"id": "gold-birthday", "name": {"en": "Gold birthday"}, "event": "birthday", "conditions": gold_only,
             "effect": {"type": "fixed", "points": 500}},
        ]},
    )  # fmt: skip
    gold = enrol(db, clock, program, birthday=date(1990, 3, 3))
    bronze = enrol(db, clock, program, birthday=date(1990, 3, 3))
    purchase(db, clock, program, gold, amount=600_00)
    assert act(db, clock, program, gold.id, "review", "g-1")[0].points == 20
    assert act(db, clock, program, bronze.id, "review", "b-1")[0].points == 10
    clock.set(datetime(2026, 3, 3, 9, tzinfo=UTC))
    assert gifts.birthdays(db, clock, program_id=program.id).points == 500
    assert "Gold birthday" in [line.reason for line in history(db, program, gold)]


def test_a_welcome_gift_for_one_channel_goes_to_members_who_join_there(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """ "A free drink for joining in the app": the enrolment's channel is the event's; a birthday has none, so a
    birthday rule on a channel, which could never pay, is refused."""
    from palier.errors import PalierError

    app_only = {**GIFTS[0], "conditions": {"channels": ["app"]}}
    program = apply_rules(db, clock, program, {"rules": [BASE, app_only]})
    assert balance(db, program, enrol(db, clock, program, channel="app")).available == 30
    assert balance(db, program, enrol(db, clock, program, channel="web")).available == 0
    with pytest.raises(PalierError) as refused:
        apply_rules(db, clock, program, {"rules": [{**GIFTS[1], "conditions": {"channels": ["app"]}}]})
    assert (refused.value.code, refused.value.field) == ("condition_not_applicable", "rules[0].conditions.channels")
