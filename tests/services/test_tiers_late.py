"""Tiers and purchases recorded after the window they were made in was judged (a till offline over New Year)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from palier.clock import FrozenClock
from palier.db import Database
from palier.notify.outbox import recent
from palier.tiers import service as tiers
from tests.services.factories import enrol, merge
from tests.services.test_tiers import requalify, spend, tier_of, with_tiers


def test_a_purchase_of_last_year_recorded_after_new_year_counts_for_the_year_it_was_made(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    program = with_tiers(db, clock, new_program(timezone="Europe/Paris"))
    ann = enrol(db, clock, program, first_name="Ann", language="en")
    spend(db, clock, program, ann, 90)
    assert tier_of(db, ann.id) == "bronze"
    clock.set(datetime(2027, 1, 1, 0, 1, tzinfo=UTC))  # 01:01 in Paris: the job judges 2026 (€90: Bronze)
    requalify(db, clock, program)
    assert tier_of(db, ann.id) == "bronze"
    clock.set(datetime(2027, 1, 2, 9, 0, tzinfo=UTC))  # the shop's till, offline over New Year, sends its sales
    spend(db, clock, program, ann, 20, occurred_at=datetime(2026, 12, 31, 22, 30, tzinfo=UTC))  # 23:30 in Paris
    assert tier_of(db, ann.id) == "silver"  # €110 of 2026: Silver for 2027, as on time it would have been
    assert requalify(db, clock, program) == 0
    with db.read() as conn:
        events = recent(conn, program_id=program.id, types=["tier_upgraded"])
    assert [(e["payload"]["to"], e["payload"]["reason"]) for e in events] == [("silver", "upgrade")]


def test_a_late_purchase_that_makes_last_years_spend_reach_the_tier_ends_its_grace(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    program = with_tiers(db, clock, new_program(timezone="Europe/Paris"), downgrade="grace", grace_months=3)
    bo = enrol(db, clock, program, first_name="Bo")
    spend(db, clock, program, bo, 120)  # Silver in 2026
    clock.set(datetime(2027, 1, 1, 0, 1, tzinfo=UTC))
    requalify(db, clock, program)  # Silver for 2027
    spend(db, clock, program, bo, 10)
    clock.set(datetime(2028, 1, 1, 0, 1, tzinfo=UTC))  # €10 in 2027: Silver kept in grace until April
    requalify(db, clock, program)
    spend(db, clock, program, bo, 95, occurred_at=datetime(2027, 12, 31, 18, 0, tzinfo=UTC))  # sent on the 1st
    clock.set(datetime(2028, 4, 2, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, bo.id) == "silver"  # €105 of 2027: Silver kept for 2028, its grace over


def test_two_accounts_merged_after_new_year_count_last_years_orders_together(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    program = with_tiers(db, clock, new_program(timezone="Europe/Paris"))
    cy = enrol(db, clock, program, first_name="Cy")
    dup = enrol(db, clock, program, first_name="Cy")
    spend(db, clock, program, cy, 60)
    spend(db, clock, program, dup, 60)
    clock.set(datetime(2027, 1, 3, tzinfo=UTC))
    requalify(db, clock, program)  # each €60 of 2026: Bronze for 2027
    merge(db, clock, program, dup, cy)
    assert tier_of(db, cy.id) == "silver"  # €120 of 2026 between them, as a merge in December would have made it


def test_a_late_purchase_of_a_year_before_the_tiers_existed_does_not_judge_that_year(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """Tiers set in 2026 place members on 2026's spend: an order of 2025 sent late (or merged in) gives no tier
    for a year nobody was judged on."""
    program = new_program(timezone="Europe/Paris")
    eve = enrol(db, clock, program, first_name="Eve")
    twin = enrol(db, clock, program, first_name="Eve")
    spend(db, clock, program, twin, 90, occurred_at=datetime(2025, 6, 1, tzinfo=UTC))
    program = with_tiers(db, clock, program)  # 2 March 2026
    requalify(db, clock, program)  # placed on 2026's spend: Bronze
    spend(db, clock, program, eve, 60, occurred_at=datetime(2025, 12, 31, 12, 0, tzinfo=UTC))
    assert tier_of(db, eve.id) == "bronze"
    merge(db, clock, program, twin, eve)  # €150 in 2025 between them, a year the tiers did not judge
    assert tier_of(db, eve.id) == "bronze"


def test_a_rolling_window_judged_every_night_writes_history_only_when_the_tier_changes(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """A rolling window closes every night, so the job judges every member every day: a member who keeps their
    tier gets no history line for it (their tier page would show nothing but "requalified" within weeks)."""
    program = with_tiers(db, clock, new_program(timezone="UTC"), window="rolling_months", rolling_months=12)
    ivy = enrol(db, clock, program, first_name="Ivy")
    spend(db, clock, program, ivy, 150)  # Silver
    for _ in range(5):
        clock.advance(days=1)
        assert requalify(db, clock, program) == 1  # judged every night
    with db.read() as conn:
        shown = tiers.progress(conn=conn, clock=clock, program=program, member_id=ivy.id)
    assert [c.reason for c in shown.history] == ["upgrade", "placed"]
