"""A tier given (or taken away) by hand that ends: the member goes back to what the metric gave them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from palier.clock import FrozenClock
from palier.db import Database
from palier.tiers import service as tiers
from palier.tiers.models import ManualTier
from tests.services.factories import ACTOR, enrol, merge, return_
from tests.services.test_tiers import requalify, spend, tier_of, with_tiers


def give(db: Database, clock: FrozenClock, program: Any, member_id: str, tier: str | None, until: datetime) -> None:
    with db.write() as conn:
        tiers.assign(
            conn=conn, clock=clock, program=program, member_id=member_id,
            data=ManualTier(tier=tier, reason="Goodwill", until=until), actor=ACTOR,
        )  # fmt: skip


def test_a_tier_given_by_hand_for_a_month_leaves_the_member_the_tier_they_kept_for_the_year(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """Silver kept for 2027 by 2026's spend; Gold given by hand for February: on 1 March the member is back to
    Silver (what the metric gives them for 2027), not Bronze for an empty January and February."""
    program = with_tiers(db, clock, new_program(timezone="UTC"))
    ann = enrol(db, clock, program, first_name="Ann")
    spend(db, clock, program, ann, 150)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, ann.id) == "silver"
    clock.set(datetime(2027, 2, 1, tzinfo=UTC))
    give(db, clock, program, ann.id, "gold", datetime(2027, 3, 1, tzinfo=UTC))
    assert tier_of(db, ann.id) == "gold"
    clock.set(datetime(2027, 3, 1, 0, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, ann.id) == "silver"
    clock.set(datetime(2028, 1, 1, tzinfo=UTC))  # nothing bought in 2027: the year's end judges it
    requalify(db, clock, program)
    assert tier_of(db, ann.id) == "bronze"


def test_a_tier_given_by_hand_across_new_year_ends_on_what_last_year_earned(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """Gold given in December until mid-January: 2026's €150 would have kept Silver for 2027."""
    program = with_tiers(db, clock, new_program(timezone="UTC"))
    bo = enrol(db, clock, program, first_name="Bo")
    spend(db, clock, program, bo, 150)
    clock.set(datetime(2026, 12, 1, tzinfo=UTC))
    give(db, clock, program, bo.id, "gold", datetime(2027, 1, 15, tzinfo=UTC))
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, bo.id) == "gold"
    clock.set(datetime(2027, 1, 15, 0, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, bo.id) == "silver"


def test_a_tier_taken_away_during_a_review_is_not_given_back_when_its_orders_were_refunded(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """returns_downgrade: Silver crossed this year, taken away by hand for a review, the order refunded during
    it: at the review's end the member is what the year's net spend gives, not the Silver of before."""
    program = with_tiers(db, clock, new_program(timezone="UTC"), returns_downgrade=True)
    jo = enrol(db, clock, program, first_name="Jo")
    spend(db, clock, program, jo, 150, order_id="J-1")
    assert tier_of(db, jo.id) == "silver"
    give(db, clock, program, jo.id, None, datetime(2026, 4, 1, tzinfo=UTC))
    return_(db, clock, program, "J-1", lines=[("SKU", 1)])
    clock.set(datetime(2026, 4, 1, 0, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, jo.id) == "bronze"


def test_a_grace_period_ends_at_midnight_in_the_programs_time_zone_across_a_clock_change(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """Paris: the year ends at 23:00 UTC (winter time), and three months of grace end on 1 April at midnight,
    summer time by then: 22:00 UTC, not an hour later."""
    program = with_tiers(db, clock, new_program(timezone="Europe/Paris"), downgrade="grace", grace_months=3)
    di = enrol(db, clock, program, first_name="Di")
    spend(db, clock, program, di, 600)
    clock.set(datetime(2026, 12, 31, 23, 0, tzinfo=UTC))
    requalify(db, clock, program)  # Gold kept for 2027
    clock.set(datetime(2027, 12, 31, 23, 0, tzinfo=UTC))
    requalify(db, clock, program)  # nothing in 2027: grace
    with db.read() as conn:
        shown = tiers.progress(conn=conn, clock=clock, program=program, member_id=di.id)
    assert shown.grace_until == datetime(2028, 3, 31, 22, 0, tzinfo=UTC)
    clock.set(datetime(2028, 3, 31, 22, 30, tzinfo=UTC))  # 00:30 on 1 April in Paris
    requalify(db, clock, program)
    assert tier_of(db, di.id) == "bronze"


def test_a_grace_month_after_an_anniversary_year_ending_on_the_first_runs_to_the_next_first(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """Joined on 1 March in Paris: the year ends on 1 March at midnight there (28 February, 23:00 UTC), and
    one month of grace runs to 1 April, not to 29 March."""
    program = with_tiers(
        db, clock, new_program(timezone="Europe/Paris"), window="anniversary_year", downgrade="grace", grace_months=1
    )
    clock.set(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    ed = enrol(db, clock, program, first_name="Ed")
    spend(db, clock, program, ed, 600)
    clock.set(datetime(2027, 3, 1, 9, 0, tzinfo=UTC))
    requalify(db, clock, program)  # Gold kept for the second year
    clock.set(datetime(2028, 3, 1, 9, 0, tzinfo=UTC))
    requalify(db, clock, program)  # nothing in it: a month of grace
    with db.read() as conn:
        shown = tiers.progress(conn=conn, clock=clock, program=program, member_id=ed.id)
    assert shown.grace_until == datetime(2028, 3, 31, 22, 0, tzinfo=UTC)  # 1 April, midnight in Paris
    clock.set(datetime(2028, 3, 30, 9, 0, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, ed.id) == "gold"


def test_a_tier_taken_away_by_hand_is_not_given_back_by_merging_another_account(
    db: Database, clock: FrozenClock, program: Any
) -> None:
    """Under review until a date, tier taken away: merging the person's other account (Silver) into it, or it
    into that one, does not end the review; the higher tier waits for the review's end."""
    program = with_tiers(db, clock, program)
    held, other = enrol(db, clock, program, first_name="Held"), enrol(db, clock, program, first_name="Other")
    held2, other2 = enrol(db, clock, program, first_name="Held2"), enrol(db, clock, program, first_name="Other2")
    for who in (held, other, held2, other2):
        spend(db, clock, program, who, 150)
    until = clock.now() + timedelta(days=30)
    give(db, clock, program, held.id, None, until)
    give(db, clock, program, held2.id, None, until)
    merge(db, clock, program, other, held)  # the other account into the one under review
    merge(db, clock, program, held2, other2)  # the one under review into the other
    assert (tier_of(db, held.id), tier_of(db, other2.id)) == (None, None)
    spend(db, clock, program, held, 10)
    assert tier_of(db, held.id) is None
    clock.set(until + timedelta(minutes=1))
    requalify(db, clock, program)
    assert (tier_of(db, held.id), tier_of(db, other2.id)) == ("silver", "silver")  # €300 of the year: Silver


def test_tier_history_is_read_by_program_and_member(db: Database, clock: FrozenClock, new_program: Any) -> None:
    """A member's tier history is found through its (program, member) index, as every member-scoped read is:
    never a scan of every program's history, on the tier page, a late purchase, a hold or the job."""
    from sqlalchemy import event

    program = with_tiers(db, clock, new_program(timezone="UTC"))
    ann, bo = enrol(db, clock, program, first_name="Ann"), enrol(db, clock, program, first_name="Bo")
    spend(db, clock, program, ann, 150)
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "tier_history" in statement and not statement.lstrip().upper().startswith("INSERT"):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.read() as conn:
            tiers.progress(conn=conn, clock=clock, program=program, member_id=ann.id)
        give(db, clock, program, bo.id, None, datetime(2026, 4, 1, tzinfo=UTC))
        spend(db, clock, program, bo, 10)  # held down: the hold is looked up
        spend(db, clock, program, ann, 10, occurred_at=clock.now() - timedelta(days=1))  # late: the tier of its day
        clock.set(datetime(2026, 4, 2, tzinfo=UTC))
        requalify(db, clock, program)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(seen) >= 4
    assert all("tier_history.program_id" in s for s in seen), [s for s in seen if "tier_history.program_id" not in s]


def test_how_it_works_says_one_month_in_the_singular() -> None:
    from palier.web.howto import _tier_rule
    from tests.services.test_tiers import policy

    monthly = policy(window="rolling_months", rolling_months=1, downgrade="grace", grace_months=1)
    assert _tier_rule(monthly, "en") == (
        "Tiers are reached over the last month. If you no longer qualify, you keep your tier for 1 more month."
    )
    assert _tier_rule(monthly, "fr").startswith("Les niveaux se gagnent sur le dernier mois.")
    yearly = policy(window="rolling_months", rolling_months=12, downgrade="grace", grace_months=3)
    assert _tier_rule(yearly, "en") == (
        "Tiers are reached over the last 12 months. If you no longer qualify, you keep your tier for 3 more months."
    )


def test_how_it_works_says_whose_tier_is_reviewed_and_when() -> None:
    """ "Tiers are reached over the calendar year. It is reviewed…": "it" had nothing to stand for. A rolling
    window is reviewed every night, not at the end of a period the member never sees."""
    from palier.web.howto import _tier_rule
    from tests.services.test_tiers import policy

    assert _tier_rule(policy(), "en") == (
        "Tiers are reached over the calendar year. Your tier is reviewed at the end of each year."
    )
    assert _tier_rule(policy(), "fr") == (
        "Les niveaux se gagnent sur l'année civile. Votre niveau est revu à la fin de chaque année."
    )
    rolling = policy(window="rolling_months", rolling_months=12)
    assert _tier_rule(rolling, "en") == "Tiers are reached over the last 12 months. Your tier is reviewed every night."
    assert _tier_rule(rolling, "fr") == (
        "Les niveaux se gagnent sur les 12 derniers mois. Votre niveau est revu chaque nuit."
    )
    anniversary = policy(window="anniversary_year")
    assert _tier_rule(anniversary, "en").endswith(" Your tier is reviewed on each anniversary of the day you joined.")
    assert _tier_rule(anniversary, "fr").endswith(" Votre niveau est revu à chaque anniversaire de votre inscription.")


def test_a_tier_given_by_hand_during_a_grace_ends_on_that_grace_not_a_whole_year(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """Gold kept only by its grace (to 1 April), Platinum-like gift by hand for February: in March the member is
    Gold to the grace's end, then the metric judges, as if the gift had not been."""
    program = with_tiers(db, clock, new_program(timezone="UTC"), downgrade="grace", grace_months=3)
    di = enrol(db, clock, program, first_name="Di")
    spend(db, clock, program, di, 600)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    clock.set(datetime(2028, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)  # nothing in 2027: Gold in grace until 1 April
    clock.set(datetime(2028, 2, 1, tzinfo=UTC))
    give(db, clock, program, di.id, "silver", datetime(2028, 3, 1, tzinfo=UTC))
    clock.set(datetime(2028, 3, 1, 0, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, di.id) == "gold"
    with db.read() as conn:
        assert tiers.progress(conn=conn, clock=clock, program=program, member_id=di.id).grace_until == datetime(
            2028, 4, 1, tzinfo=UTC
        )
    clock.set(datetime(2028, 4, 1, 0, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, di.id) == "bronze"
