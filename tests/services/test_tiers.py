"""Tiers: upgrade on the crossing event, requalification at the period's end in the program's time zone,
grace periods, one-level steps, returns, manual tiers, merges, and the multiplier on what members earn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import PalierError
from palier.notify.outbox import recent
from palier.programs.models import Program
from palier.programs.service import get_program
from palier.rules.preview import PreviewIn, preview
from palier.tiers import service as tiers
from palier.tiers.models import ManualTier, TierPolicy
from palier.web import portal_view
from tests.services.factories import ACTOR, add_identity, enrol, line, luhn_card, merge, purchase, return_

GOLD = {"fr": "Or", "en": "Gold"}


def policy(**overrides: Any) -> TierPolicy:
    """Bronze at 0, Silver at €100, Gold at €500 of yearly spend, straight down at the year's end."""
    return TierPolicy.model_validate(
        {
            "metric": "spend",
            "window": "calendar_year",
            "downgrade": "period_end",
            "tiers": [
                {"code": "bronze", "name": {"fr": "Bronze", "en": "Bronze"}, "threshold": 0},
                {"code": "silver", "name": {"fr": "Argent", "en": "Silver"}, "threshold": 100_00},
                {"code": "gold", "name": GOLD, "threshold": 500_00, "multiplier_percent": 150},
            ],
        }
        | overrides
    )


def with_tiers(db: Database, clock: FrozenClock, program: Program, **overrides: Any) -> Program:
    with db.write() as conn:
        tiers.set_policy(conn=conn, clock=clock, program=program, policy=policy(**overrides), actor=ACTOR)
        return get_program(conn=conn, program_id=program.id)


def tier_of(db: Database, member_id: str) -> str | None:
    with db.read() as conn:
        return tiers.member_tier(conn, member_id=member_id)


def spend(db: Database, clock: FrozenClock, program: Program, who: Any, euros: int, **kwargs: Any) -> Any:
    return purchase(db, clock, program, who, lines=[line("SKU", euros * 100)], **kwargs)


def requalify(db: Database, clock: FrozenClock, program: Program) -> int:
    return tiers.requalify(db, clock, program_id=program.id)


def test_the_purchase_that_crosses_the_threshold_upgrades_at_once(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_tiers(db, clock, program)
    ann = enrol(db, clock, program, first_name="Ann", email="ann@example.com", language="en")
    assert tier_of(db, ann.id) == "bronze"  # Bronze asks for nothing: a new member starts there
    spend(db, clock, program, ann, 60)
    assert tier_of(db, ann.id) == "bronze"
    spend(db, clock, program, ann, 50)  # 110 €: Silver on this very purchase
    assert tier_of(db, ann.id) == "silver"
    with db.read() as conn:
        shown = tiers.progress(conn=conn, clock=clock, program=program, member_id=ann.id)
        events = recent(conn, program_id=program.id, types=["tier_upgraded", "tier_placed"])
    assert (shown.value, shown.next_tier, shown.needed_for_next, shown.needed_to_keep) == (110_00, "gold", 390_00, 0)
    assert shown.message == "€390.00 more before 31 December to reach Gold"
    # starting in Bronze is not an upgrade to congratulate: a mailer listening to tier_upgraded hears Silver only
    assert [(e["type"], e["payload"]["to"]) for e in events] == [("tier_upgraded", "silver"), ("tier_placed", "bronze")]
    assert [c.reason for c in shown.history] == ["upgrade", "placed"]
    assert events[0]["payload"] == {  # and to whom, in which language, a congratulation goes
        "member_id": ann.id, "email": "ann@example.com", "language": "en",
        "from": "bronze", "to": "silver", "reason": "upgrade",
    }  # fmt: skip


def test_a_member_not_yet_placed_is_shown_the_tier_they_earn(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Tiers set on a program with members: until the job places them, progress shows what they earn,
    never "€0.00 more to reach Bronze"."""
    ann = enrol(db, clock, program, first_name="Ann", language="fr")
    program = with_tiers(db, clock, program)
    assert tier_of(db, ann.id) is None
    with db.read() as conn:
        shown = tiers.progress(conn=conn, clock=clock, program=program, member_id=ann.id)
    assert (shown.tier, shown.next_tier, shown.needed_for_next) == ("bronze", "silver", 100_00)
    assert shown.message.startswith("Encore 100,00")


def test_tiers_on_orders_count_orders_not_fully_refunded(db: Database, clock: FrozenClock, program: Program) -> None:
    orders = [{"code": "regular", "name": {"fr": "Habitué", "en": "Regular"}, "threshold": 2}]
    program = with_tiers(db, clock, program, metric="orders", tiers=orders, returns_downgrade=True)
    max_ = enrol(db, clock, program, first_name="Max")
    spend(db, clock, program, max_, 20, order_id="M-1")
    spend(db, clock, program, max_, 20, order_id="M-2")
    assert tier_of(db, max_.id) == "regular"  # the second order crosses
    return_(db, clock, program, "M-2", lines=[("SKU", 1)])  # refunded whole: it no longer counts
    assert tier_of(db, max_.id) is None


def test_one_order_to_go_is_told_in_the_singular_in_french(db: Database, clock: FrozenClock, program: Program) -> None:
    orders = [{"code": "regular", "name": {"fr": "Habitué", "en": "Regular"}, "threshold": 2}]
    program = with_tiers(db, clock, program, metric="orders", tiers=orders)
    lea = enrol(db, clock, program, first_name="Léa", language="fr")
    spend(db, clock, program, lea, 20)
    with db.read() as conn:
        told = tiers.progress(conn=conn, clock=clock, program=program, member_id=lea.id).message
    assert told == "Encore 1 commande avant le 31 décembre pour atteindre Habitué"


def test_gold_earns_half_as_much_again(db: Database, clock: FrozenClock, program: Program) -> None:
    program = with_tiers(db, clock, program)
    bo = enrol(db, clock, program, first_name="Bo")
    spend(db, clock, program, bo, 500)
    assert tier_of(db, bo.id) == "gold"
    cart = PreviewIn.model_validate({"member_id": bo.id, "lines": [{"sku": "SKU", "quantity": 1, "unit_price": 4000}]})
    with db.read() as conn:
        told = preview(conn=conn, clock=clock, program=program, data=cart)
    earned = spend(db, clock, program, bo, 40)
    assert earned.points == 60  # 40 at the base rate, +20 for Gold ×1.5
    assert [a.text for a in earned.awards] == ["Gold ×1.5: +20"]
    assert told.points == 60 and told.lines[-1].text == "Gold ×1.5: +20"  # the preview said so beforehand


def test_purchases_of_a_card_linked_later_count_for_the_tier_at_once(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_tiers(db, clock, program)
    ann = enrol(db, clock, program, first_name="Ann")
    card = luhn_card()
    spend(db, clock, program, ann, 60)
    spend(db, clock, program, ("payment_card", card), 60)  # a card nobody has linked yet: unclaimed
    assert tier_of(db, ann.id) == "bronze"
    add_identity(db, clock, program, ann, "payment_card", card)
    assert tier_of(db, ann.id) == "silver"  # €120 of the year now hers: Silver on the link, not at her next order


def test_a_purchase_sent_late_earns_with_the_tier_of_its_day(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A till that was offline, or a history loaded after the fact: today's Gold does not multiply a purchase
    made while the member was Bronze, nor one made before they joined."""
    program = with_tiers(db, clock, program)
    clock.advance(days=-10)
    bo = enrol(db, clock, program, first_name="Bo")
    clock.advance(days=5)
    spend(db, clock, program, bo, 500)  # Gold from this purchase, 5 days ago
    clock.advance(days=5)
    assert tier_of(db, bo.id) == "gold"
    today = spend(db, clock, program, bo, 40)
    assert [a.text for a in today.awards] == ["Gold ×1.5: +20"]
    while_bronze = spend(db, clock, program, bo, 40, occurred_at=clock.now() - timedelta(days=7))
    assert (while_bronze.points, while_bronze.awards) == (40, [])
    before_joining = spend(db, clock, program, bo, 40, occurred_at=clock.now() - timedelta(days=30))
    assert (before_joining.points, before_joining.awards) == (40, [])


def test_requalification_at_new_year_in_the_programs_time_zone(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    program = with_tiers(db, clock, new_program(timezone="America/New_York"))
    cy = enrol(db, clock, program, first_name="Cy")
    spend(db, clock, program, cy, 150, occurred_at=clock.now())
    assert tier_of(db, cy.id) == "silver"
    clock.set(datetime(2027, 1, 1, 4, 59, tzinfo=UTC))  # still 31 December, 23:59 in New York
    assert requalify(db, clock, program) == 0
    clock.set(datetime(2027, 1, 1, 5, 0, tzinfo=UTC))  # midnight in New York
    assert requalify(db, clock, program) == 1
    assert tier_of(db, cy.id) == "silver"  # 150 € in 2026: kept for 2027
    assert requalify(db, clock, program) == 0  # twice changes nothing
    clock.set(datetime(2028, 1, 1, 5, 0, tzinfo=UTC))  # nothing bought in 2027
    requalify(db, clock, program)
    assert tier_of(db, cy.id) == "bronze"  # everyone is Bronze (threshold 0)


def test_downgrade_only_after_the_grace_period(db: Database, clock: FrozenClock, new_program: Any) -> None:
    program = with_tiers(db, clock, new_program(timezone="UTC"), downgrade="grace", grace_months=3)
    di = enrol(db, clock, program, first_name="Di")
    spend(db, clock, program, di, 600)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    clock.set(datetime(2028, 1, 1, tzinfo=UTC))  # nothing in 2027: grace until 1 April
    requalify(db, clock, program)
    assert tier_of(db, di.id) == "gold"
    clock.set(datetime(2028, 3, 31, 23, 59, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, di.id) == "gold"
    clock.set(datetime(2028, 4, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, di.id) == "bronze"
    with db.read() as conn:
        reasons = [c.reason for c in tiers.progress(conn=conn, clock=clock, program=program, member_id=di.id).history]
    assert reasons[:2] == ["downgrade", "grace_started"]


def test_buying_during_the_grace_period_keeps_the_tier(db: Database, clock: FrozenClock, new_program: Any) -> None:
    program = with_tiers(db, clock, new_program(timezone="UTC"), downgrade="grace", grace_months=3)
    ed = enrol(db, clock, program, first_name="Ed")
    spend(db, clock, program, ed, 120)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    clock.set(datetime(2028, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)  # grace
    clock.set(datetime(2028, 2, 1, tzinfo=UTC))
    spend(db, clock, program, ed, 100, occurred_at=clock.now())  # Silver again this year: grace over
    clock.set(datetime(2028, 4, 2, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, ed.id) == "silver"


def test_one_level_at_a_time(db: Database, clock: FrozenClock, new_program: Any) -> None:
    program = with_tiers(db, clock, new_program(timezone="UTC"), downgrade_step="one_level")
    fa = enrol(db, clock, program, first_name="Fa")
    spend(db, clock, program, fa, 700)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    clock.set(datetime(2028, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, fa.id) == "silver"  # not straight to nothing
    clock.set(datetime(2029, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, fa.id) == "bronze"


@pytest.mark.parametrize("returns_downgrade", [False, True])
def test_a_return_under_the_threshold_does_as_the_policy_says(
    db: Database, clock: FrozenClock, program: Program, returns_downgrade: bool
) -> None:
    program = with_tiers(db, clock, program, returns_downgrade=returns_downgrade)
    gus = enrol(db, clock, program, first_name="Gus")
    spend(db, clock, program, gus, 80)
    spend(db, clock, program, gus, 30, order_id="G-2")
    assert tier_of(db, gus.id) == "silver"
    return_(db, clock, program, "G-2", lines=[("SKU", 1)])  # back to 80 €
    assert tier_of(db, gus.id) == ("bronze" if returns_downgrade else "silver")
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, gus.id) == "bronze"  # the year's end judges the net spend either way


def test_a_return_does_not_take_back_a_tier_kept_from_last_year(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """returns_downgrade takes a tier back when a return undoes its crossing, not when a January return finds
    the new year's spend still below the tier that last year's spend kept."""
    program = with_tiers(db, clock, new_program(timezone="UTC"), returns_downgrade=True)
    ida = enrol(db, clock, program, first_name="Ida")
    spend(db, clock, program, ida, 150, order_id="I-1")
    clock.set(datetime(2026, 12, 28, 10, tzinfo=UTC))
    spend(db, clock, program, ida, 20, order_id="I-2", occurred_at=clock.now())
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, ida.id) == "silver"  # €170 in 2026: Silver for 2027
    clock.set(datetime(2027, 1, 3, tzinfo=UTC))
    return_(db, clock, program, "I-2", lines=[("SKU", 1)])  # a December order back: 2026 still €150
    assert tier_of(db, ida.id) == "silver"
    spend(db, clock, program, ida, 30, order_id="I-3", occurred_at=clock.now())
    return_(db, clock, program, "I-3", lines=[("SKU", 1)])  # this year's order back: no crossing undone
    assert tier_of(db, ida.id) == "silver"
    spend(db, clock, program, ida, 520, order_id="I-4", occurred_at=clock.now())
    assert tier_of(db, ida.id) == "gold"  # Gold crossed this year
    return_(db, clock, program, "I-4", lines=[("SKU", 1)])  # and undone: back to the Silver kept from 2026
    assert tier_of(db, ida.id) == "silver"


def test_a_manual_tier_holds_until_its_end_date(db: Database, clock: FrozenClock, program: Program) -> None:
    program = with_tiers(db, clock, program)
    hal = enrol(db, clock, program, first_name="Hal")
    until = clock.now() + timedelta(days=400)
    with db.write() as conn:
        shown = tiers.assign(
            conn=conn, clock=clock, program=program, member_id=hal.id,
            data=ManualTier(tier="gold", reason="Press partner", until=until), actor=ACTOR,
        )  # fmt: skip
    assert shown.tier == "gold" and shown.manual_until == until
    clock.set(datetime(2027, 1, 1, 1, tzinfo=UTC))
    requalify(db, clock, program)
    assert tier_of(db, hal.id) == "gold"
    clock.set(until + timedelta(days=1))
    requalify(db, clock, program)
    assert tier_of(db, hal.id) == "bronze"  # what his (empty) spend gives
    with db.write() as conn, pytest.raises(PalierError) as caught:
        tiers.assign(
            conn=conn, clock=clock, program=program, member_id=hal.id,
            data=ManualTier(tier="platinum", reason="Oops", until=until + timedelta(days=9)), actor=ACTOR,
        )  # fmt: skip
    assert caught.value.code == "tier_not_found"


def test_a_tier_taken_away_by_hand_is_not_given_back_by_the_next_purchase(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Lowered by hand (a suspected fraud, under review) until a date: the member's next purchases do not undo
    it; a tier given by hand above what they earn still lets them climb higher by buying."""
    program = with_tiers(db, clock, program)
    jo, kim = enrol(db, clock, program, first_name="Jo"), enrol(db, clock, program, first_name="Kim")
    spend(db, clock, program, jo, 150)
    until = clock.now() + timedelta(days=30)
    with db.write() as conn:
        for who, tier in ((jo, None), (kim, "silver")):
            tiers.assign(
                conn=conn, clock=clock, program=program, member_id=who.id,
                data=ManualTier(tier=tier, reason="Under review" if tier is None else "Press", until=until),
                actor=ACTOR,
            )  # fmt: skip
    spend(db, clock, program, jo, 10)
    assert tier_of(db, jo.id) is None  # held down until the review ends
    spend(db, clock, program, kim, 600)
    assert tier_of(db, kim.id) == "gold"  # a gift is a floor, not a ceiling
    clock.set(until + timedelta(minutes=1))
    requalify(db, clock, program)
    assert tier_of(db, jo.id) == "silver"  # then the metric judges again


def test_a_member_held_down_by_hand_is_told_until_when_not_what_is_left_to_climb(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Gold by their spend, lowered to Silver by hand until a date: buying cannot take them back up before it, so
    neither the API nor the portal tells them "€0.00 more to reach Gold"; both say until when the tier holds."""
    program = with_tiers(db, clock, program)
    jo, kim = enrol(db, clock, program, first_name="Jo"), enrol(db, clock, program, first_name="Kim")
    spend(db, clock, program, jo, 600)
    spend(db, clock, program, kim, 150)
    until = datetime(2026, 4, 1, 22, 0, tzinfo=UTC)  # midnight in Paris: through 1 April
    with db.write() as conn:
        for who, tier in ((jo, "silver"), (kim, None)):
            tiers.assign(
                conn=conn, clock=clock, program=program, member_id=who.id,
                data=ManualTier(tier=tier, reason="Under review", until=until), actor=ACTOR,
            )  # fmt: skip
    with db.read() as conn:
        shown = tiers.progress(conn=conn, clock=clock, program=program, member_id=jo.id)
        portal = {lang: portal_view.tier_view(conn, clock, program, jo.id, lang) for lang in ("fr", "en")}
        none = tiers.progress(conn=conn, clock=clock, program=program, member_id=kim.id)
        none_portal = portal_view.tier_view(conn, clock, program, kim.id, "en")
    assert shown.tier == "silver"
    assert shown.message == "Niveau Argent jusqu'au 1er avril 2026."
    assert portal["fr"] is not None and portal["fr"].message == "Niveau Argent jusqu'au 1er avril 2026."
    assert portal["en"] is not None and portal["en"].message == "Silver tier until 1 April 2026."
    assert none.tier is None and none.message == "Sans niveau jusqu'au 1er avril 2026."
    assert none_portal is not None and none_portal.message == "No tier until 1 April 2026."


def test_a_merge_keeps_the_higher_tier(db: Database, clock: FrozenClock, program: Program) -> None:
    program = with_tiers(db, clock, program)
    old, new = enrol(db, clock, program, first_name="Old"), enrol(db, clock, program, first_name="New")
    spend(db, clock, program, old, 600)
    spend(db, clock, program, new, 20)
    merge(db, clock, program, old, new)
    assert tier_of(db, new.id) == "gold" and tier_of(db, old.id) is None
    with db.read() as conn:  # New became Gold by the merge: a change of its own, told like any other
        shown = tiers.progress(conn=conn, clock=clock, program=program, member_id=new.id)
        [event] = recent(conn, program_id=program.id, types=["tier_upgraded"])[:1]
    assert (shown.history[0].reason, shown.history[0].from_tier, shown.history[0].to_tier) == (
        "merged",
        "bronze",
        "gold",
    )
    assert (event["subject_id"], event["payload"]["to"], event["payload"]["reason"]) == (new.id, "gold", "merged")


def test_a_merge_whose_combined_spend_crosses_a_threshold_upgrades_at_once(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_tiers(db, clock, program)
    old, new = enrol(db, clock, program, first_name="Old"), enrol(db, clock, program, first_name="New")
    spend(db, clock, program, old, 300)
    spend(db, clock, program, new, 250)
    assert (tier_of(db, old.id), tier_of(db, new.id)) == ("silver", "silver")
    merge(db, clock, program, old, new)
    assert tier_of(db, new.id) == "gold"  # €550 of the year, one person's: Gold at the merge, as a card's link
    with db.read() as conn:
        shown = tiers.progress(conn=conn, clock=clock, program=program, member_id=new.id)
    assert (shown.tier, shown.value, shown.next_tier, shown.needed_for_next) == ("gold", 550_00, None, None)
    assert (shown.history[0].reason, shown.history[0].from_tier, shown.history[0].to_tier) == (
        "upgrade",
        "silver",
        "gold",
    )
    assert spend(db, clock, program, new, 10).points == 15  # the next purchase: 10, +5 for Gold ×1.5


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"tiers": [{"code": "a", "name": GOLD, "threshold": 10}, {"code": "b", "name": GOLD, "threshold": 10}]},
         "thresholds_not_increasing"),
        ({"tiers": [{"code": "a", "name": GOLD, "threshold": 10}, {"code": "b", "name": GOLD, "threshold": 5}]},
         "thresholds_not_increasing"),
        ({"window": "lifetime"}, "window_has_no_period"),
        ({"window": "rolling_months"}, "rolling_months_required"),
        ({"downgrade": "grace"}, "grace_months_required"),
        ({"tiers": [{"code": "a", "name": GOLD, "threshold": 1}, {"code": "a", "name": GOLD, "threshold": 2}]},
         "duplicate_tier_code"),
    ],
)  # fmt: skip
def test_inconsistent_policies_are_refused(change: dict[str, Any], code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        policy(**change)
    assert code in str(caught.value)


def test_rolling_and_anniversary_windows(db: Database, clock: FrozenClock, new_program: Any) -> None:
    program = with_tiers(db, clock, new_program(timezone="UTC"), window="rolling_months", rolling_months=12)
    ivy = enrol(db, clock, program, first_name="Ivy")
    spend(db, clock, program, ivy, 150)
    with db.read() as conn:  # the window rolls on every night: no "before <today>" deadline
        told = tiers.progress(conn=conn, clock=clock, program=program, member_id=ivy.id).message
    assert told == "Encore 350,00\u00a0€ pour atteindre Or"
    clock.advance(days=200)
    requalify(db, clock, program)
    assert tier_of(db, ivy.id) == "silver"
    clock.advance(days=200)  # the purchase has left the 12-month window
    requalify(db, clock, program)
    assert tier_of(db, ivy.id) == "bronze"
    with db.read() as conn:
        start, end = tiers.window(
            policy(window="anniversary_year"), program, at=datetime(2027, 2, 1, tzinfo=UTC),
            enrolled_at=datetime(2024, 2, 29, 10, tzinfo=UTC),
        )  # fmt: skip
        del conn
    assert (start, end) == (datetime(2027, 2, 28, tzinfo=UTC) - timedelta(days=365), datetime(2027, 2, 28, tzinfo=UTC))
    # on 28 February of a year without a 29th, a member who joined on a 29 February starts a new year: the
    # window holds that day (a purchase then counts, and upgrades at once)
    on_the_day = tiers.window(
        policy(window="anniversary_year"), program, at=datetime(2027, 2, 28, 12, tzinfo=UTC),
        enrolled_at=datetime(2024, 2, 29, 10, tzinfo=UTC),
    )  # fmt: skip
    assert on_the_day == (datetime(2027, 2, 28, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC))


def test_tiers_set_on_a_program_with_members_place_them(db: Database, clock: FrozenClock, program: Program) -> None:
    big, small = enrol(db, clock, program, first_name="Big"), enrol(db, clock, program, first_name="Small")
    spend(db, clock, program, big, 600)
    spend(db, clock, program, small, 20)
    program = with_tiers(db, clock, program)
    assert (tier_of(db, big.id), tier_of(db, small.id)) == (None, None)
    assert requalify(db, clock, program) == 2  # both placed
    assert (tier_of(db, big.id), tier_of(db, small.id)) == ("gold", "bronze")
    assert requalify(db, clock, program) == 0
    with db.read() as conn:  # Gold by past spend is an upgrade to congratulate; starting in Bronze is not
        changes = recent(conn, program_id=program.id, types=["tier_placed", "tier_upgraded", "tier_downgraded"])
        told = {e["subject_id"]: e["type"] for e in changes}
    assert (told[big.id], told[small.id]) == ("tier_upgraded", "tier_placed")


def test_several_workers_judge_each_member_exactly_once(db: Database, clock: FrozenClock, new_program: Any) -> None:
    program = with_tiers(db, clock, new_program(timezone="UTC"))
    people = [enrol(db, clock, program, first_name=f"W{i}") for i in range(12)]
    for i, person in enumerate(people):
        spend(db, clock, program, person, [20, 150, 600][i % 3])  # bronze, silver, gold
    clock.set(datetime(clock.now().year + 1, 1, 1, tzinfo=UTC))
    assert tiers.requalify(db, clock, program_id=program.id, batch_size=2, workers=3) == 12
    assert [tier_of(db, p.id) for p in people] == ["bronze", "silver", "gold"] * 4  # each kept for the new year
    with db.read() as conn:
        histories = [tiers.progress(conn=conn, clock=clock, program=program, member_id=p.id).history for p in people]
    placed, upgraded = ["requalified", "placed"], ["requalified", "upgrade", "placed"]  # judged once each
    assert [[c.reason for c in h] for h in histories] == [placed, upgraded, upgraded] * 4
    assert tiers.requalify(db, clock, program_id=program.id, workers=3) == 0


def test_anniversary_years_are_judged_on_each_members_own_year(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    program = with_tiers(db, clock, new_program(timezone="UTC"), window="anniversary_year")
    joined = clock.now()
    fay = enrol(db, clock, program, first_name="Fay")
    spend(db, clock, program, fay, 150)
    assert tier_of(db, fay.id) == "silver"
    clock.set(joined + timedelta(days=200))
    assert requalify(db, clock, program) == 0  # her year is not over
    clock.set(joined + timedelta(days=367))
    assert requalify(db, clock, program) == 1
    assert tier_of(db, fay.id) == "silver"  # 150 € in her first year: kept for the second
    clock.set(joined + timedelta(days=731))  # her second year ended yesterday; nothing bought in it
    assert requalify(db, clock, program) == 1
    assert tier_of(db, fay.id) == "bronze"


def test_after_a_merge_anniversary_years_run_from_the_earlier_enrolment(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    program = with_tiers(db, clock, new_program(timezone="UTC"), window="anniversary_year")
    joined = clock.now()
    old = enrol(db, clock, program, first_name="Old")  # 2 March
    clock.set(joined + timedelta(days=100))
    new = enrol(db, clock, program, first_name="New")  # 10 June
    spend(db, clock, program, new, 150)
    merge(db, clock, program, old, new)  # a member since 2 March: the year ends on 2 March
    with db.read() as conn:
        shown = tiers.progress(conn=conn, clock=clock, program=program, member_id=new.id)
    day = joined.replace(hour=0)
    assert (shown.tier, shown.window_start, shown.window_end) == ("silver", day, day.replace(year=2027))
    clock.set(joined.replace(year=2027) + timedelta(days=1))
    assert requalify(db, clock, program) == 1  # judged when the year shown ends
    assert tier_of(db, new.id) == "silver"  # 150 € in that year: kept
    clock.set(joined.replace(year=2028) + timedelta(days=1))
    assert requalify(db, clock, program) == 1
    assert tier_of(db, new.id) == "bronze"


@pytest.mark.parametrize("metric", ["points", "spend", "orders"])
@pytest.mark.parametrize("window", ["lifetime", "calendar_year", "rolling_months", "anniversary_year"])
def test_every_metric_and_window_upgrades_shows_progress_and_requalifies(
    db: Database, clock: FrozenClock, program: Program, metric: str, window: str
) -> None:
    """Each way of counting, on each window, on both engines: purchases, a return, progress, the yearly job."""
    silver = {"points": 100, "spend": 100_00, "orders": 2}[metric]
    program = with_tiers(
        db, clock, program, metric=metric, window=window, returns_downgrade=True,
        downgrade="never" if window == "lifetime" else "period_end",
        rolling_months=12 if window == "rolling_months" else None,
        tiers=[
            {"code": "bronze", "name": {"fr": "Bronze", "en": "Bronze"}, "threshold": 0},
            {"code": "silver", "name": {"fr": "Argent", "en": "Silver"}, "threshold": silver},
        ],
    )  # fmt: skip
    ann = enrol(db, clock, program, first_name="Ann")
    first = spend(db, clock, program, ann, 60)
    spend(db, clock, program, ann, 60)
    assert tier_of(db, ann.id) == "silver"
    return_(db, clock, program, first.external_id, amount=60_00)
    assert tier_of(db, ann.id) == "bronze"  # the return undid the crossing
    with db.read() as conn:
        shown = tiers.progress(conn=conn, clock=clock, program=program, member_id=ann.id)
    assert (shown.tier, shown.next_tier) == ("bronze", "silver") and shown.needed_for_next > 0
    clock.advance(days=400)
    requalify(db, clock, program)
    assert tier_of(db, ann.id) == "bronze"
