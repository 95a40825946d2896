"""A tier policy that changes under members: a new window, a tier removed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete

from palier.clock import FrozenClock
from palier.db import Database
from palier.ledger.locks import lock_members
from palier.members.erasure import erase
from palier.notify.outbox import recent
from palier.tiers import service as tiers
from palier.tiers.models import ManualTier
from palier.tiers.tables import member_tiers
from tests.services.factories import ACTOR, enrol, make_program
from tests.services.test_tiers import policy, requalify, spend, tier_of, with_tiers


def test_lifetime_tiers_moved_to_a_yearly_window_are_judged_at_the_years_end(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """A program whose tiers counted lifetime spend moves to calendar years judged at their end: the members
    placed under the lifetime window are judged at the end of the year too, not kept for ever."""
    program = with_tiers(db, clock, new_program(timezone="UTC"), window="lifetime", downgrade="never")
    cy = enrol(db, clock, program, first_name="Cy")
    spend(db, clock, program, cy, 150)
    assert tier_of(db, cy.id) == "silver"
    program = with_tiers(db, clock, program)  # calendar_year, period_end
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, cy.id) == "silver"  # €150 in 2026: kept for 2027
    clock.set(datetime(2028, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, cy.id) == "bronze"  # nothing in 2027


def test_a_tier_only_erased_members_held_can_be_removed(db: Database, clock: FrozenClock, program: Any) -> None:
    program = with_tiers(db, clock, program)
    di = enrol(db, clock, program, first_name="Di")
    spend(db, clock, program, di, 600)
    assert tier_of(db, di.id) == "gold"
    with db.write() as conn:
        erase(
            conn=conn, clock=clock, program=program, member_id=di.id, reason="GDPR", forfeit_store_credit=True,
            actor=ACTOR,
        )  # fmt: skip
    fewer = policy().model_dump(mode="json")
    fewer["tiers"] = fewer["tiers"][:2]
    with db.write() as conn:
        tiers.set_policy(conn=conn, clock=clock, program=program, policy=policy(tiers=fewer["tiers"]), actor=ACTOR)
    with db.read() as conn:  # the erased member's record still reads
        assert tiers.progress(conn=conn, clock=clock, program=program, member_id=di.id).tier is None


def test_lifetime_tiers_moved_to_anniversary_years_run_on_each_members_year(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    joined = clock.now()
    program = with_tiers(db, clock, new_program(timezone="UTC"), window="lifetime", downgrade="never")
    cy = enrol(db, clock, program, first_name="Cy")
    spend(db, clock, program, cy, 150)
    clock.advance(minutes=5)
    program = with_tiers(db, clock, program, window="anniversary_year")
    requalify(db, clock, program)
    assert tier_of(db, cy.id) == "silver"  # judged on what the lifetime window counted: kept
    with db.read() as conn:
        shown = tiers.progress(conn=conn, clock=clock, program=program, member_id=cy.id)
    assert (shown.window_start, shown.window_end) == (joined.replace(hour=0), joined.replace(hour=0, year=2027))
    clock.set(joined.replace(year=2027) + timedelta(days=1))
    requalify(db, clock, program)
    assert tier_of(db, cy.id) == "silver"  # €150 in her first year
    clock.set(joined.replace(year=2028) + timedelta(days=1))
    requalify(db, clock, program)
    assert tier_of(db, cy.id) == "bronze"


def test_a_member_placed_by_a_purchase_is_told_placed_not_upgraded(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """Members who were there before the tiers and buy before the job places them (always so on anniversary
    years): starting in Bronze is tier_placed, as for a new member, never an upgrade to congratulate."""
    program = new_program(timezone="UTC")
    ann, bo = enrol(db, clock, program, first_name="Ann"), enrol(db, clock, program, first_name="Bo")
    program = with_tiers(db, clock, program, window="anniversary_year")
    spend(db, clock, program, ann, 5)
    spend(db, clock, program, bo, 150)
    with db.read() as conn:
        changes = recent(conn, program_id=program.id, types=["tier_placed", "tier_upgraded", "tier_downgraded"])
        told = {e["subject_id"]: (e["type"], e["payload"]["to"]) for e in changes}
        shown = tiers.progress(conn=conn, clock=clock, program=program, member_id=ann.id)
    assert told[ann.id] == ("tier_placed", "bronze")
    assert told[bo.id] == ("tier_upgraded", "silver")  # placed above the first tier: that is worth telling
    assert [c.reason for c in shown.history] == ["placed"]


def test_a_tier_removed_while_a_purchase_reached_it_breaks_neither_purchases_nor_the_job(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """Gold removed while a till's purchase, under the policy read when it began, makes a member Gold: the
    member's next purchase, their tier page and the requalification job go on, and the member is judged under
    the tiers there are."""
    program = new_program(timezone="UTC")
    stale = with_tiers(db, clock, program)  # what a request that began before the change read
    cy = enrol(db, clock, stale, first_name="Cy")
    spend(db, clock, stale, cy, 20)
    fewer = policy().model_dump(mode="json")["tiers"][:2]
    program = with_tiers(db, clock, program, tiers=fewer)  # nobody holds Gold yet: accepted
    spend(db, clock, stale, cy, 600)  # the till's purchase, on the policy it read
    assert tier_of(db, cy.id) == "gold"  # a tier the program no longer has
    spend(db, clock, program, cy, 10)
    with db.read() as conn:
        assert tiers.progress(conn=conn, clock=clock, program=program, member_id=cy.id).value == 630_00
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, cy.id) == "silver"  # the highest there is for €630


def test_members_who_reach_a_lowered_threshold_move_up_at_the_next_requalification(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """Gold lowered from €500 to €300: a member with €400 this year is Gold after the next requalification
    run, not Silver with "€0.00 more to reach Gold" until the year's end or their next purchase; a member
    held down by hand stays so, and nobody is lowered by the change before their period's end."""
    program = with_tiers(db, clock, new_program(timezone="UTC"))
    ann, bo, cy = (enrol(db, clock, program, first_name=n) for n in ("Ann", "Bo", "Cy"))
    spend(db, clock, program, ann, 400)
    spend(db, clock, program, bo, 400)
    spend(db, clock, program, cy, 150)
    with db.write() as conn:
        tiers.assign(
            conn=conn, clock=clock, program=program, member_id=bo.id,
            data=ManualTier(tier=None, reason="Under review", until=datetime(2026, 6, 1, tzinfo=UTC)), actor=ACTOR,
        )  # fmt: skip
    lowered = policy().model_dump(mode="json")["tiers"]
    lowered[1]["threshold"], lowered[2]["threshold"] = 200_00, 300_00
    program = with_tiers(db, clock, program, tiers=lowered)
    assert requalify(db, clock, program) == 1
    assert [tier_of(db, m.id) for m in (ann, bo, cy)] == ["gold", None, "silver"]
    with db.read() as conn:
        told = [
            (e["subject_id"], e["payload"]["to"]) for e in recent(conn, program_id=program.id, types=["tier_upgraded"])
        ]
    assert told[0] == (ann.id, "gold")
    assert requalify(db, clock, program) == 0  # once


def test_the_tier_jobs_leave_a_member_a_command_holds_to_that_command(
    postgresql_db: Database, clock: FrozenClock
) -> None:
    """A purchase (or return, or merge) holds its member while it judges their tier; a requalification, an
    upgrade pass or a placing batch running then would judge them on what it read before the purchase
    committed, and undo or repeat what the purchase decided. The jobs skip a member held (the purchase judges,
    or the next run does) and commands wait for a batch that holds theirs. PostgreSQL: SQLite runs one writer
    at a time."""
    db = postgresql_db
    program = with_tiers(db, clock, make_program(db, clock, timezone="UTC"))
    cy, di = enrol(db, clock, program, first_name="Cy"), enrol(db, clock, program, first_name="Di")
    spend(db, clock, program, cy, 600)
    assert tier_of(db, cy.id) == "gold"
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)  # 2026's €600 keep Gold for 2027
    assert tier_of(db, cy.id) == "gold"
    clock.set(datetime(2028, 1, 1, tzinfo=UTC))  # nothing bought in 2027: Cy is due to go down
    with db.write() as conn:
        lock_members(conn, [cy.id])  # a purchase of Cy's, in flight
        requalify(db, clock, program)
        assert tier_of(db, cy.id) == "gold"  # left to the purchase
    requalify(db, clock, program)  # the next run judges her
    assert tier_of(db, cy.id) == "bronze"

    with db.write() as conn:  # a new member's first purchase in flight while the tiers are placed
        newcomer = enrol(db, clock, program, first_name="Ed")
        conn.execute(delete(member_tiers).where(member_tiers.c.member_id == newcomer.id))
    with db.write() as conn:
        lock_members(conn, [newcomer.id])
        assert tiers.place(db, clock, program_id=program.id) == 0  # held: not placed, and the run ends
        assert tier_of(db, newcomer.id) is None
    assert tiers.place(db, clock, program_id=program.id) == 1
    assert tier_of(db, newcomer.id) == "bronze" and tier_of(db, di.id) == "bronze"
