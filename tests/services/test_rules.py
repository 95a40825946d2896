"""Purchases under earning rules: the version in force when they occurred, awards, returns, budgets and caps."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import InvalidInput
from palier.programs.models import Program
from palier.rewards import service as rewards
from palier.rewards.models import RewardIn, RewardUpdate
from palier.rewards.tables import coupons
from palier.rules import service as rules
from palier.rules.tables import awards, counters
from tests.services.factories import (
    apply_rules,
    assert_ledger_sound,
    balance,
    enrol,
    line,
    luhn_card,
    purchase,
    purchase_body,
    return_,
    return_body,
    send_purchase,
    send_return,
)
from tests.services.test_concurrency import Outcome, run_threads
from tests.services.test_rewards import use
from tests.services.test_tiers import with_tiers

BASE = {
    "id": "base",
    "name": {"en": "1 point per euro"},
    "event": "purchase",
    "effect": {"type": "points_per_amount", "points": 1, "per_amount": 100},
}
PASTRY = {
    "id": "pastry",
    "name": {"en": "Pastry bonus"},
    "event": "purchase",
    "conditions": {"categories": ["viennoiserie"]},
    "effect": {"type": "per_item", "points": 5},
}
DOUBLE = {"id": "double", "name": {"en": "Double points"}, "event": "purchase"}
DOUBLE["effect"] = {"type": "multiplier", "factor": 2}


def document(*extra: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return {"rules": [BASE, *extra], **sections}


def with_campaign_bonus(
    db: Database, clock: FrozenClock, program: Program, campaign_id: str, points: int, **limits: int
) -> Program:
    """The base rule and a fixed bonus of ``points`` per purchase (rule ``<campaign_id>-x``) under a campaign
    running through 2026 with the given ``budget`` and/or ``member_cap``."""
    campaign = {
        "id": campaign_id,
        "name": {"en": campaign_id.title()},
        "starts": "2026-01-01T00:00:00",
        "ends": "2027-01-01T00:00:00",
        **limits,
    }
    bonus = {
        "id": f"{campaign_id}-x",
        "name": {"en": f"{campaign_id.title()} bonus"},
        "event": "purchase",
        "campaign": campaign_id,
        "effect": {"type": "fixed", "points": points},
    }
    return apply_rules(db, clock, program, document(bonus, campaigns=[campaign]))


def with_ten_for_every_hundred(db: Database, clock: FrozenClock, program: Program, **voucher_fields: Any) -> Program:
    """The base rule and "€10 for every €100" (rule ``ten-for-hundred``), granting a €10 voucher per step."""
    voucher = {"kind": "amount_off", "cost_points": 1000, "amount": 1000, "title": {"fr": "Bon de 10 €", "en": "€10"}}
    voucher |= voucher_fields
    with db.write() as conn:
        reward = rewards.create_reward(
            conn=conn, clock=clock, program=program, data=RewardIn.model_validate(voucher), actor="test"
        )
    step = {
        "id": "ten-for-hundred",
        "name": {"en": "€10 for every €100"},
        "event": "purchase",
        "effect": {"type": "spend_step", "step": 10000, "reward_id": reward.id},
    }
    return apply_rules(db, clock, program, document(step))


def awards_of(db: Database, program: Program, event_id: str) -> list[tuple[str, int, int]]:
    with db.read() as conn:
        rows = conn.execute(
            select(awards.c.rule_id, awards.c.rule_version, awards.c.points)
            .where(awards.c.program_id == program.id, awards.c.event_id == event_id)
            .order_by(awards.c.id)
        )
        return [tuple(row) for row in rows]


def test_without_rules_a_purchase_earns_the_base_rate_and_records_no_award(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    result = purchase(db, clock, program, member, amount=1250)
    assert (result.points, result.awards) == (12, [])
    assert awards_of(db, program, result.event_id) == []


def test_a_purchase_earns_what_the_rules_award_each_with_rule_and_version(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = apply_rules(db, clock, program, document(PASTRY))
    member = enrol(db, clock, program)
    lines = [line("CROISSANT", 130, 2, category="viennoiserie"), line("CAFE", 320)]
    result = purchase(db, clock, program, member, lines=lines)
    assert result.points == 5 + 10
    assert [a.text for a in result.awards] == ["1 point per euro: +5", "Pastry bonus +5/item: +10"]
    assert awards_of(db, program, result.event_id) == [("base", 1, 5), ("pastry", 1, 10)]
    assert balance(db, program, member).pending == 15


def test_returns_give_back_exactly_what_the_returned_lines_earned(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = apply_rules(db, clock, program, document(PASTRY))
    member = enrol(db, clock, program)
    lines = [line("CROISSANT", 130, 2, category="viennoiserie"), line("CAFE", 320)]
    order = purchase(db, clock, program, member, lines=lines)
    first = return_(db, clock, program, order.external_id, lines=[("CROISSANT", 1)])
    second = return_(db, clock, program, order.external_id, lines=[("CROISSANT", 1), ("CAFE", 1)])
    assert -first.points - second.points == order.points
    assert balance(db, program, member).pending == 0


def test_an_event_is_evaluated_with_the_rules_in_force_when_it_occurred(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    before_rules = clock.now()
    clock.advance(hours=1)
    program = apply_rules(db, clock, program, document())
    clock.advance(hours=1)
    version_1 = clock.now()
    clock.advance(hours=1)
    program = apply_rules(db, clock, program, document(PASTRY))
    clock.advance(hours=1)
    lines = [line("CROISSANT", 130, 2, category="viennoiserie")]
    late = purchase(db, clock, program, member, lines=lines, occurred_at=before_rules)
    older = purchase(db, clock, program, member, lines=lines, occurred_at=version_1)
    now = purchase(db, clock, program, member, lines=lines)
    assert (late.points, late.awards) == (2, [])  # the base rate: no rules yet when it happened
    assert [(a.rule_id, a.version) for a in older.awards] == [("base", 1)]
    assert [(a.rule_id, a.version) for a in now.awards] == [("base", 2), ("pastry", 2)]
    with db.read() as conn:
        page = rules.versions(conn=conn, program_id=program.id, cursor=None, limit=20)
        assert [v.version for v in page.items] == [2, 1] and page.next_cursor is None


def test_first_purchase_bonus_is_paid_once(db: Database, clock: FrozenClock, program: Program) -> None:
    first = {
        "id": "first",
        "name": {"en": "First order"},
        "event": "purchase",
        "conditions": {"first_purchase": True},
        "effect": {"type": "fixed", "points": 100},
    }
    program = apply_rules(db, clock, program, document(first))
    member = enrol(db, clock, program)
    assert purchase(db, clock, program, member, amount=1000).points == 110
    assert purchase(db, clock, program, member, amount=1000).points == 10


def test_a_member_cap_limits_what_one_member_gets_from_a_campaign(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_campaign_bonus(db, clock, program, "spring", 10, member_cap=25)
    member, other = enrol(db, clock, program), enrol(db, clock, program)
    got = [purchase(db, clock, program, member, amount=100).points for _ in range(4)]
    assert got == [11, 11, 6, 1]
    assert purchase(db, clock, program, other, amount=100).points == 11


def test_a_tier_multiplies_what_the_campaign_cap_let_through_not_what_it_cut(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_campaign_bonus(db, clock, program, "spring", 100, member_cap=100)
    program = with_tiers(db, clock, program)  # Gold ×1.5 from €500 of spend in the year
    member = enrol(db, clock, program)
    first = purchase(db, clock, program, member, amount=500_00)  # 500 base + 100 bonus: the cap is reached
    assert first.points == 600  # not Gold yet when it was bought
    after = purchase(db, clock, program, member, amount=10_00)  # 10 base, the bonus capped away to 0
    assert [a.text for a in after.awards if a.rule_id.startswith("tier:")] == ["Gold ×1.5: +5"]
    assert after.points == 15  # not 10 + 5 + half of the 100 the cap did not pay


def with_budgeted_bonus_and_double(db: Database, clock: FrozenClock, program: Program, **limits: int) -> Program:
    """The base rule, a 1 point per euro bonus in campaign ``flash2`` with ``limits``, and a ×2 multiplier."""
    flash = {"id": "flash2", "name": {"en": "Flash"}, "starts": "2026-01-01T00:00:00", "ends": "2027-01-01T00:00:00"}
    bonus = {**BASE, "id": "bonus", "name": {"en": "Flash bonus"}, "campaign": "flash2"}
    return apply_rules(db, clock, program, document(bonus, DOUBLE, campaigns=[{**flash, **limits}]))


def test_a_multiplier_multiplies_what_the_campaign_budget_granted_not_what_it_refused(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_budgeted_bonus_and_double(db, clock, program, budget=10)
    member = enrol(db, clock, program)
    first, second, third = (purchase(db, clock, program, member, amount=5000) for _ in range(3))
    assert [a.text for a in first.awards] == ["1 point per euro: +50", "Flash bonus: +10", "Double points ×2: +60"]
    assert first.points == 120
    for later in (second, third):  # the budget is spent: ×2 of the base alone
        assert [a.text for a in later.awards] == ["1 point per euro: +50", "Double points ×2: +50"]
        assert later.points == 100
    assert awards_of(db, program, first.event_id) == [("base", 1, 50), ("bonus", 1, 10), ("double", 1, 60)]
    assert balance(db, program, member).pending == 120 + 100 + 100


def test_a_multiplier_multiplies_what_the_member_cap_granted_not_what_it_cut(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_budgeted_bonus_and_double(db, clock, program, member_cap=30)
    member, other = enrol(db, clock, program), enrol(db, clock, program)
    assert [purchase(db, clock, program, member, amount=2000).points for _ in range(3)] == [80, 60, 40]
    assert purchase(db, clock, program, other, amount=2000).points == 80  # another member has their own cap


def test_a_multiplier_in_a_budgeted_campaign_is_cut_by_its_own_budget_after_it_is_worked_out(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    weekend = {"id": "weekend", "name": {"en": "Weekend"}, "starts": "2026-01-01T00:00:00"}
    weekend |= {"ends": "2027-01-01T00:00:00", "budget": 70}
    flash = {**weekend, "id": "flash2", "name": {"en": "Flash"}, "budget": 10}
    bonus = {**BASE, "id": "bonus", "name": {"en": "Flash bonus"}, "campaign": "flash2"}
    double = {**DOUBLE, "name": {"en": "Double weekend"}, "campaign": "weekend"}
    program = apply_rules(db, clock, program, document(bonus, double, campaigns=[flash, weekend]))
    member = enrol(db, clock, program)
    first = purchase(db, clock, program, member, amount=5000)
    assert [(a.rule_id, a.points) for a in first.awards] == [("base", 50), ("bonus", 10), ("double", 60)]
    second = purchase(db, clock, program, member, amount=5000)  # ×2 of the 50 granted: 10 left in its budget
    assert [(a.rule_id, a.points) for a in second.awards] == [("base", 50), ("double", 10)]
    assert purchase(db, clock, program, member, amount=5000).points == 50
    assert campaign_counters_by_name(db, program) == {"campaign:flash2": 10, "campaign:weekend": 70}


def campaign_counters_by_name(db: Database, program: Program) -> dict[str, int]:
    with db.read() as conn:
        return counters_of(conn, program, "")


def campaign_counters(db: Database, program: Program) -> dict[str, int]:
    """What each campaign counter holds: "" for the program-wide budget, else the member's id."""
    with db.read() as conn:
        rows = conn.execute(select(counters.c.member_id, counters.c.value).where(counters.c.program_id == program.id))
        return {str(member_id): int(value) for member_id, value in rows}


def test_a_return_gives_back_to_the_budget_and_the_cap_the_share_of_campaign_points_it_takes_back(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_campaign_bonus(db, clock, program, "spring", 20, budget=20, member_cap=20)
    member, other = enrol(db, clock, program), enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=[line("BREAD", 500), line("CAKE", 500)])
    assert order.points == 10 + 20
    assert purchase(db, clock, program, other, amount=1000).points == 10  # the budget is spent
    assert campaign_counters(db, program) == {"": 20, member.id: 20}

    half = return_(db, clock, program, order.external_id, lines=[("BREAD", 1)])
    assert half.points == -15  # half the order's points: half its campaign points come back
    assert campaign_counters(db, program) == {"": 10, member.id: 10}
    rest = return_(db, clock, program, order.external_id, lines=[("CAKE", 1)])
    assert rest.points == -15
    assert campaign_counters(db, program) == {"": 0, member.id: 0}

    assert purchase(db, clock, program, other, amount=1000).points == 10 + 20  # the budget serves again
    assert purchase(db, clock, program, member, amount=1000).points == 10  # the budget, not the cap, is spent
    assert campaign_counters(db, program) == {"": 20, member.id: 0, other.id: 20}


def test_a_returned_item_gives_back_to_the_cap_and_budget_the_bonus_of_its_own_line(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A pastry bonus (10 per croissant, 10 at most per member) on bread and a croissant: the croissant returned
    takes back its 10 bonus points, so the cap and budget get all 10 back and the next croissant earns its bonus
    again (not 1 point, as if the bread's share of the order had been returned). The bread returned gives back
    none of it; a refund by amount its share of what lines have not given back."""
    campaign = {"id": "pastry", "name": {"en": "Pastry week"}, "starts": "2026-01-01T00:00:00",
                "ends": "2027-01-01T00:00:00", "member_cap": 10, "budget": 1000}  # fmt: skip
    bonus = {"id": "pastry-x", "name": {"en": "Pastry bonus"}, "event": "purchase", "campaign": "pastry",
             "conditions": {"categories": ["viennoiserie"]}, "effect": {"type": "per_item", "points": 10}}  # fmt: skip
    program = apply_rules(db, clock, program, {"campaigns": [campaign], "rules": [BASE, bonus]})
    ann = enrol(db, clock, program)
    croissant = line("CROISSANT", 100, category="viennoiserie")
    order = purchase(db, clock, program, ann, lines=[line("BREAD", 9000), croissant])
    assert order.points == 90 + 1 + 10 and campaign_counters(db, program) == {"": 10, ann.id: 10}
    assert return_(db, clock, program, order.external_id, lines=[("CROISSANT", 1)]).points == -11
    assert campaign_counters(db, program) == {"": 0, ann.id: 0}
    again = purchase(db, clock, program, ann, lines=[croissant])
    assert (again.points, campaign_counters(db, program)) == (1 + 10, {"": 10, ann.id: 10})
    assert return_(db, clock, program, order.external_id, lines=[("BREAD", 1)]).points == -90
    assert campaign_counters(db, program) == {"": 10, ann.id: 10}  # the bread gave none of the bonus

    two = purchase(db, clock, program, ann, lines=[line("BREAD", 9000), croissant])  # the cap is reached: no bonus
    assert two.points == 91 and campaign_counters(db, program) == {"": 10, ann.id: 10}
    third = [line("BREAD", 1000, quantity=2), line("PAIN-CHOC", 120, quantity=2, category="viennoiserie")]
    clock.advance(days=1)
    bob = enrol(db, clock, program)
    mixed = purchase(db, clock, program, bob, lines=third)  # 20 + 2 + 10 (the cap)
    assert mixed.points == 32 and campaign_counters(db, program)[bob.id] == 10
    return_(db, clock, program, mixed.external_id, amount=1000)  # a refund by amount: a share of everything
    return_(db, clock, program, mixed.external_id, lines=[("PAIN-CHOC", 1)])
    assert 0 < campaign_counters(db, program)[bob.id] < 10
    return_(db, clock, program, mixed.external_id, lines=[("PAIN-CHOC", 1), ("BREAD", 1)])
    assert campaign_counters(db, program) == {"": 10, ann.id: 10, bob.id: 0}  # all of it back, exactly
    assert_ledger_sound(db, program)


def test_an_item_returned_gives_back_to_the_budget_exactly_the_multiplier_points_of_its_own_line(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Double points in a campaign of 20 points: a €10 croissant (10 + a 10-point pastry bonus, doubled: +10) and
    a €10 bread (10, doubled: +10) take the whole budget. The croissant returned takes back its own +10 of the
    campaign, not 12 (its 30 of the order's 50 points): the bread's +10 is kept, so the budget has 10 to give,
    and what members keep of the campaign never goes above its 20."""
    campaign = {"id": "double", "name": {"en": "Double week"}, "starts": "2026-01-01T00:00:00",
                "ends": "2027-01-01T00:00:00", "budget": 20}  # fmt: skip
    pastry = PASTRY | {"effect": {"type": "per_item", "points": 10}}
    program = apply_rules(db, clock, program, document(pastry, DOUBLE | {"campaign": "double"}, campaigns=[campaign]))
    ann, bob = enrol(db, clock, program), enrol(db, clock, program)
    order = purchase(
        db, clock, program, ann, lines=[line("CROISSANT", 1000, category="viennoiserie"), line("BREAD", 1000)]
    )
    assert order.points == 10 + 10 + 10 + 20 and campaign_counters(db, program) == {"": 20}
    assert return_(db, clock, program, order.external_id, lines=[("CROISSANT", 1)]).points == -30
    assert campaign_counters(db, program) == {"": 10}
    later = purchase(db, clock, program, bob, lines=[line("BREAD", 2000)])
    assert later.points == 20 + 10  # what is left of the budget: 10, not 12
    assert return_(db, clock, program, order.external_id, lines=[("BREAD", 1)]).points == -20
    assert campaign_counters(db, program) == {"": 10}


def test_a_free_item_returned_gives_back_none_of_the_per_item_bonus_it_did_not_earn(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A pastry bonus of 10 per item bought, in a campaign with a cap: two croissants bought and one given free
    earn 20 of it. The free one and a bread returned together give back none of the bonus: the cap stays at 20."""
    campaign = {"id": "pastry", "name": {"en": "Pastry week"}, "starts": "2026-01-01T00:00:00",
                "ends": "2027-01-01T00:00:00", "member_cap": 100}  # fmt: skip
    bonus = PASTRY | {"campaign": "pastry", "effect": {"type": "per_item", "points": 10}}
    program = apply_rules(db, clock, program, document(bonus, campaigns=[campaign]))
    ann = enrol(db, clock, program)
    bought = line("CROISSANT", 100, quantity=2, category="viennoiserie")
    given = line("PAIN-CHOC", 100, category="viennoiserie", discount=100)
    order = purchase(db, clock, program, ann, lines=[bought, given, line("BREAD", 500)])
    assert order.points == 2 + 20 + 5 and campaign_counters(db, program) == {ann.id: 20}
    assert return_(db, clock, program, order.external_id, lines=[("PAIN-CHOC", 1), ("BREAD", 1)]).points == -5
    assert campaign_counters(db, program) == {ann.id: 20}
    assert return_(db, clock, program, order.external_id, lines=[("CROISSANT", 2)]).points == -22
    assert campaign_counters(db, program) == {ann.id: 0}


def test_an_item_returned_before_its_card_was_linked_gives_back_the_bonus_of_its_own_line(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    from tests.services.factories import add_identity

    campaign = {"id": "pastry", "name": {"en": "Pastry week"}, "starts": "2026-01-01T00:00:00",
                "ends": "2027-01-01T00:00:00", "member_cap": 10}  # fmt: skip
    bonus = {"id": "pastry-x", "name": {"en": "Pastry bonus"}, "event": "purchase", "campaign": "pastry",
             "conditions": {"categories": ["viennoiserie"]}, "effect": {"type": "per_item", "points": 10}}  # fmt: skip
    program = apply_rules(db, clock, program, {"campaigns": [campaign], "rules": [BASE, bonus]})
    card = luhn_card()
    croissant = line("CROISSANT", 100, category="viennoiserie")
    order = purchase(db, clock, program, ("payment_card", card), lines=[line("BREAD", 9000), croissant])
    return_(db, clock, program, order.external_id, lines=[("CROISSANT", 1)])
    ann = enrol(db, clock, program)
    add_identity(db, clock, program, ann, "payment_card", card)
    assert balance(db, program, ann).pending == 90 and campaign_counters(db, program) == {ann.id: 0}
    assert purchase(db, clock, program, ann, lines=[croissant]).points == 1 + 10  # the cap serves again
    return_(db, clock, program, order.external_id, lines=[("BREAD", 1)])
    assert campaign_counters(db, program) == {ann.id: 10}


def test_once_an_exclusive_launch_rule_has_nothing_left_to_give_the_base_rate_pays_again(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A launch pays 3 points per euro instead of the base rate (exclusive), 100 points in all, 60 at most per
    member. A member at their cap, then everyone once the budget is spent, earns the base rate again (and the
    preview says so), not nothing; what is left of the launch pays when it pays more than the base rate."""
    from palier.rules.preview import PreviewIn, preview

    campaign = {"id": "launch", "name": {"en": "Launch"}, "starts": "2026-01-01T00:00:00",
                "ends": "2027-01-01T00:00:00", "budget": 100, "member_cap": 60}  # fmt: skip
    launch = {"id": "launch-x", "name": {"en": "Launch: 3 a euro"}, "event": "purchase", "campaign": "launch",
              "priority": 10, "exclusive": True,
              "effect": {"type": "points_per_amount", "points": 3, "per_amount": 100}}  # fmt: skip
    program = apply_rules(db, clock, program, document(launch, campaigns=[campaign]))
    ann, bob, cyd = enrol(db, clock, program), enrol(db, clock, program), enrol(db, clock, program)

    def earned(who: Any, amount: int = 2000) -> list[tuple[str, int]]:
        return [(a.rule_id, a.points) for a in purchase(db, clock, program, who, amount=amount).awards]

    def previewed(who: Any) -> int:
        cart = PreviewIn.model_validate(
            {"member_id": who.id, "lines": [{"sku": "S", "quantity": 1, "unit_price": 2000}]}
        )
        with db.read() as conn:
            return preview(conn=conn, clock=clock, program=program, data=cart).points

    assert earned(ann, 1500) == [("launch-x", 45)]
    assert previewed(ann) == 20 and earned(ann) == [("base", 20)]  # 15 left of her cap: the base rate pays more
    assert campaign_counters(db, program) == {"": 45, ann.id: 45}
    assert earned(ann, 500) == [("launch-x", 15)]  # 15 for €5: the launch still pays more
    assert previewed(ann) == 20 and earned(ann) == [("base", 20)]  # her cap is reached: the base rate
    assert previewed(bob) == 40 and earned(bob) == [("launch-x", 40)]  # the last 40 of the budget
    assert previewed(cyd) == 20 and earned(cyd) == [("base", 20)]  # the budget is spent: the base rate
    assert earned(bob) == [("base", 20)]
    assert campaign_counters(db, program) == {"": 100, ann.id: 60, bob.id: 40}


def test_a_campaign_counts_what_it_gave_under_its_id_across_versions(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Raising a spent budget gives the difference; the same campaign moved to other dates goes on from what it
    gave; next month's offer under a new id starts afresh (as the README tells marketers)."""
    program = with_campaign_bonus(db, clock, program, "launch", 30, budget=30)
    member = enrol(db, clock, program)
    assert purchase(db, clock, program, member, amount=100).points == 1 + 30
    assert purchase(db, clock, program, member, amount=100).points == 1  # spent
    program = with_campaign_bonus(db, clock, program, "launch", 30, budget=40)
    assert purchase(db, clock, program, member, amount=100).points == 1 + 10  # the 10 the new budget added
    program = with_campaign_bonus(db, clock, program, "december", 30, budget=30)
    assert purchase(db, clock, program, member, amount=100).points == 1 + 30  # a new id: a new budget


def test_sixteen_purchases_racing_never_spend_more_than_the_budget(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_campaign_bonus(db, clock, program, "launch", 30, budget=100)
    buyers = [enrol(db, clock, program) for _ in range(16)]
    outcome = Outcome()

    def work(index: int, barrier: threading.Barrier) -> None:
        body = purchase_body(program, buyers[index], clock=clock, amount=100)
        barrier.wait()
        outcome.run(lambda: send_purchase(db, clock, program, body))

    run_threads(16, work)
    assert outcome.failures == []
    bonuses = [a.points for r in outcome.results for a in r.awards if a.rule_id == "launch-x"]
    assert sum(bonuses) == 100
    assert sorted(bonuses) == [10, 30, 30, 30]
    assert sum(r.points for r in outcome.results) == 16 + 100


def test_sixteen_purchases_racing_for_an_exclusive_launchs_last_points_each_earn_at_least_the_base_rate(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """3 points per euro instead of 1 while 100 launch points last: of sixteen €20 purchases at once, the launch
    pays 60 and 40 (never more than its 100), and the fourteen that find it spent earn the base 20, not 0."""
    campaign = {"id": "launch", "name": {"en": "Launch"}, "starts": "2026-01-01T00:00:00",
                "ends": "2027-01-01T00:00:00", "budget": 100}  # fmt: skip
    launch = {"id": "launch-x", "name": {"en": "Launch"}, "event": "purchase", "campaign": "launch", "priority": 10,
              "exclusive": True, "effect": {"type": "points_per_amount", "points": 3, "per_amount": 100}}  # fmt: skip
    program = apply_rules(db, clock, program, document(launch, campaigns=[campaign]))
    buyers = [enrol(db, clock, program) for _ in range(16)]
    outcome = Outcome()

    def work(index: int, barrier: threading.Barrier) -> None:
        body = purchase_body(program, buyers[index], clock=clock, amount=2000)
        barrier.wait()
        outcome.run(lambda: send_purchase(db, clock, program, body))

    run_threads(16, work)
    assert outcome.failures == []
    assert sorted(r.points for r in outcome.results) == [20] * 14 + [40, 60]
    assert campaign_counters(db, program) == {"": 100}


def test_returns_racing_purchases_keep_the_budget_equal_to_what_members_keep(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_campaign_bonus(db, clock, program, "launch", 30, budget=100)
    first = [enrol(db, clock, program) for _ in range(4)]
    orders = [purchase(db, clock, program, m, amount=100) for m in first]  # 30 + 30 + 30 + 10: all of it
    later = [enrol(db, clock, program) for _ in range(12)]
    outcome = Outcome()

    def work(index: int, barrier: threading.Barrier) -> None:
        if index < len(orders):
            body = return_body(orders[index].external_id, clock=clock, lines=[("SKU-1", 1)])
            barrier.wait()
            outcome.run(lambda: send_return(db, clock, program, body))
        else:
            body = purchase_body(program, later[index - len(orders)], clock=clock, amount=100)
            barrier.wait()
            outcome.run(lambda: send_purchase(db, clock, program, body))

    run_threads(len(orders) + len(later), work)
    assert outcome.failures == []
    with db.read() as conn:
        kept = conn.execute(
            select(func.sum(awards.c.points)).where(awards.c.program_id == program.id, awards.c.rule_id == "launch-x")
        ).scalar_one()
    taken_again = kept - 100  # every first order was returned whole: its bonus came back
    assert 0 <= taken_again <= 100  # how much depends on who won the races; never above the budget
    assert campaign_counters(db, program) == {"": taken_again}
    after = purchase(db, clock, program, enrol(db, clock, program), amount=100)
    assert after.points == 1 + min(30, 100 - taken_again)  # what is left of the budget serves the next one


def test_unclaimed_purchases_earn_by_the_rules_too(db: Database, clock: FrozenClock, program: Program) -> None:
    program = apply_rules(db, clock, program, document(PASTRY))
    body = purchase_body(
        program,
        ("payment_card", luhn_card()),
        clock=clock,
        lines=[line("CROISSANT", 130, 2, category="viennoiserie")],
    )
    result, _ = send_purchase(db, clock, program, body)
    assert (result.status, result.points) == ("unclaimed", 12)


def test_ten_euros_for_every_hundred_spent_grants_a_coupon_per_step_crossed(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_ten_for_every_hundred(db, clock, program)
    member = enrol(db, clock, program)
    granted, texts = [], []
    for amount in (6000, 5000, 25000):
        result = purchase(db, clock, program, member, amount=amount)
        granted.append([a.points for a in result.awards if a.kind == "coupon"])
        texts += [a.text for a in result.awards if a.kind == "coupon"]
    assert granted == [[0], [1], [2]]  # 60 €, 110 €, 360 €: the counter crossed 100, then 200 and 300
    assert texts == [
        "€10 for every €100: €40.00 to the next reward",
        "€10 for every €100: 1 reward (€90.00 to the next)",
        "€10 for every €100: 2 rewards (€40.00 to the next)",
    ]
    with db.read() as conn:
        given = conn.execute(
            select(coupons.c.source_ref).where(coupons.c.program_id == program.id, coupons.c.member_id == member.id)
        ).all()
    assert len(given) == 3


def test_a_step_voucher_out_of_stock_or_archived_is_not_given_and_stock_never_goes_above_its_total(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    program = with_ten_for_every_hundred(db, clock, program, stock=2)
    with db.read() as conn:
        voucher = rewards.list_rewards(conn=conn, program_id=program.id)[0]
    first, second = enrol(db, clock, program), enrol(db, clock, program)
    order = purchase(db, clock, program, first, amount=30000)  # three steps, two vouchers left in stock
    assert [(a.points, a.text) for a in order.awards if a.kind == "coupon"] == [
        (2, "€10 for every €100: 2 rewards (€100.00 to the next)")
    ]
    later = purchase(db, clock, program, second, amount=10000)
    assert [a.points for a in later.awards if a.kind == "coupon"] == [0]  # none left: none given
    assert step_coupons(db, program, second.id) == []

    def stock_left() -> int | None:
        with db.read() as conn:
            return rewards.get_reward(conn=conn, program_id=program.id, reward_id=voucher.id).stock_left

    assert stock_left() == 0
    return_(db, clock, program, order.external_id, lines=[("SKU-1", 1)])  # refunded whole: both cancelled
    assert step_coupons(db, program, first.id) == ["cancelled", "cancelled"] and stock_left() == 2
    with db.write() as conn:
        rewards.update_reward(
            conn=conn, clock=clock, program=program, reward_id=voucher.id,
            changes=RewardUpdate.model_validate({"status": "archived"}), actor="test",
        )  # fmt: skip
    withdrawn = purchase(db, clock, program, second, amount=10000)  # the second step of a withdrawn voucher
    assert [a.points for a in withdrawn.awards if a.kind == "coupon"] == [0] and step_coupons(
        db, program, second.id
    ) == []
    assert stock_left() == 2
    assert_ledger_sound(db, program)


def test_purchases_with_a_card_not_yet_linked_cannot_take_a_member_past_a_campaigns_cap(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Three purchases with a card nobody has linked, then the card linked: the capped bonus (50 for one
    member) is given once, not three times over; the points of the purchases themselves all come."""
    from tests.services.factories import add_identity

    program = with_campaign_bonus(db, clock, program, "launch", 50, member_cap=50)
    ann = enrol(db, clock, program)
    card = luhn_card()
    for _ in range(3):  # each receipt says what the purchase earns for sure: none of the capped bonus
        unclaimed = purchase(db, clock, program, ("payment_card", card), amount=1000)
        assert (unclaimed.points, [a.rule_id for a in unclaimed.awards]) == (10, ["base"])
    add_identity(db, clock, program, ann, "payment_card", card)
    assert balance(db, program, ann).pending == 3 * 10 + 50
    assert purchase(db, clock, program, ann, amount=1000).points == 10  # the cap was reached by the claim


def test_a_card_purchase_spends_its_campaign_budget_only_once_claimed_and_a_return_gives_it_back(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    from tests.services.factories import add_identity

    program = with_campaign_bonus(db, clock, program, "launch", 30, budget=100, member_cap=40)
    card = luhn_card()
    order = purchase(db, clock, program, ("payment_card", card), amount=1000)
    assert campaign_counters(db, program) == {}  # nobody is credited: no budget is spent
    ann = enrol(db, clock, program)
    add_identity(db, clock, program, ann, "payment_card", card)
    assert balance(db, program, ann).pending == 10 + 30
    assert campaign_counters(db, program) == {"": 30, ann.id: 30}
    return_(db, clock, program, order.external_id, amount=1000)
    assert campaign_counters(db, program) == {"": 0, ann.id: 0}
    assert balance(db, program, ann).pending == 0


def test_a_card_purchase_kept_by_an_earlier_version_gives_back_the_budget_it_held_when_claimed(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Earlier versions spent the budget when an unclaimed purchase came, on an award to nobody."""
    from palier.rules import counters as counting
    from tests.services.factories import add_identity

    program = with_campaign_bonus(db, clock, program, "launch", 30, budget=100)
    card = luhn_card()
    order = purchase(db, clock, program, ("payment_card", card), amount=1000)
    with db.write() as conn:  # what an earlier version wrote for it
        conn.execute(
            awards.insert().values(
                program_id=program.id, member_id=None, event_id=order.event_id, rule_id="launch-x", rule_version=1,
                campaign_id="launch", kind="points", points=30, amount=0, created_at=clock.now(),
            )
        )  # fmt: skip
        counting.add(conn, program_id=program.id, member_id=counting.PROGRAM_WIDE, name="campaign:launch", delta=30)
    ann = enrol(db, clock, program)
    add_identity(db, clock, program, ann, "payment_card", card)
    assert balance(db, program, ann).pending == 10 + 30
    assert campaign_counters(db, program) == {"": 30}  # the claim's, not twice
    with db.read() as conn:
        owners = conn.execute(select(awards.c.member_id).where(awards.c.event_id == order.event_id)).scalars().all()
    assert set(owners) == {ann.id}


def test_the_preview_gives_as_many_step_vouchers_as_the_stock_and_catalog_let_the_purchase_give(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    from palier.rules.preview import PreviewIn, preview

    program = with_ten_for_every_hundred(db, clock, program, stock=2)
    member = enrol(db, clock, program)
    cart_line = {"sku": "SKU-1", "quantity": 1, "unit_price": 30000}
    cart = PreviewIn.model_validate({"member_id": member.id, "lines": [cart_line]})

    def told() -> list[str]:
        with db.read() as conn:
            found = preview(conn=conn, clock=clock, program=program, data=cart).lines
        return [a.text for a in found if a.kind == "coupon"]

    said = told()
    order = purchase(db, clock, program, member, amount=30000)
    assert (
        said
        == [a.text for a in order.awards if a.kind == "coupon"]
        == ["€10 for every €100: 2 rewards (€100.00 to the next)"]
    )
    with db.read() as conn:
        voucher = rewards.list_rewards(conn=conn, program_id=program.id)[0]
    with db.write() as conn:
        rewards.update_reward(
            conn=conn, clock=clock, program=program, reward_id=voucher.id,
            changes=RewardUpdate.model_validate({"status": "archived"}), actor="test",
        )  # fmt: skip
    assert told() == ["€10 for every €100: €100.00 to the next reward"]  # as the purchase would say


def step_coupons(db: Database, program: Program, member_id: str) -> list[str]:
    with db.read() as conn:
        found = rewards.member_coupons(conn=conn, program_id=program.id, member_id=member_id)
    return sorted(c.state for c in found)


def test_a_refund_cancels_the_unused_step_coupons_its_spend_no_longer_covers(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A €300 order refunded whole does not leave its three €10 vouchers to spend: they are cancelled, and the
    steps are paid again when the spend is made again."""
    program = with_ten_for_every_hundred(db, clock, program)
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=[line("COAT", 20000), line("HAT", 10000)])
    assert step_coupons(db, program, member.id) == ["issued"] * 3
    return_(db, clock, program, order.external_id, lines=[("HAT", 1)])  # €100 back: €200 still covers two
    assert step_coupons(db, program, member.id) == ["cancelled", "issued", "issued"]
    return_(db, clock, program, order.external_id, lines=[("COAT", 1)])
    assert step_coupons(db, program, member.id) == ["cancelled"] * 3
    with db.read() as conn:
        assert counters_of(conn, program, member.id) == {"spend:ten-for-hundred": 0, "steps:ten-for-hundred": 0}
    again = purchase(db, clock, program, member, amount=12000)  # €120 spent again: the first step pays again
    assert sum(a.points for a in again.awards if a.kind == "coupon") == 1
    assert_ledger_sound(db, program)


def test_spend_taken_back_by_a_return_must_be_spent_again_before_the_next_step_pays(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Once its voucher is used, a step stays paid: the spend a return took back must be made again first."""
    program = with_ten_for_every_hundred(db, clock, program)
    member = enrol(db, clock, program)

    def coupons_of(result: Any) -> int:
        return sum(a.points for a in result.awards if a.kind == "coupon")

    order = purchase(db, clock, program, member, lines=[line("COAT", 8000), line("HAT", 4000)])
    assert coupons_of(order) == 1  # 120 €: the first step
    with db.read() as conn:
        [voucher] = rewards.member_coupons(conn=conn, program_id=program.id, member_id=member.id)
    use(db, clock, program, voucher.code)
    return_(db, clock, program, order.external_id, lines=[("COAT", 1)])  # 80 € back: 40 € kept
    with db.read() as conn:
        kept = counters_of(conn, program, member.id)
    assert kept == {"spend:ten-for-hundred": 4000, "steps:ten-for-hundred": 1}
    assert step_coupons(db, program, member.id) == ["used"]
    small = purchase(db, clock, program, member, amount=1000)  # 50 € kept, step 1 paid: the next is at 200 €
    assert [a.text for a in small.awards if a.kind == "coupon"] == ["€10 for every €100: €150.00 to the next reward"]
    assert coupons_of(purchase(db, clock, program, member, amount=8000)) == 0  # 130 € kept: step 1 was paid
    assert coupons_of(purchase(db, clock, program, member, amount=7000)) == 1  # 200 € kept: step 2 pays
    with db.read() as conn:
        assert counters_of(conn, program, member.id) == {"spend:ten-for-hundred": 20000, "steps:ten-for-hundred": 2}


def counters_of(conn: Any, program: Program, member_id: str) -> dict[str, int]:
    rows = conn.execute(
        select(counters.c.name, counters.c.value).where(
            counters.c.program_id == program.id, counters.c.member_id == member_id
        )
    )
    return {str(name): int(value) for name, value in rows}


def test_a_spend_step_naming_an_unknown_reward_is_refused(db: Database, clock: FrozenClock, program: Program) -> None:
    step = {
        "id": "s",
        "name": {"en": "S"},
        "event": "purchase",
        "effect": {"type": "spend_step", "step": 100, "reward_id": "rwd_nope"},
    }
    with pytest.raises(InvalidInput) as refused:
        apply_rules(db, clock, program, document(step))
    assert (refused.value.code, refused.value.field) == ("unknown_reward", "rules[1].effect.reward_id")


def test_a_step_given_no_voucher_is_taken_back_first_by_a_return(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """€300 with two vouchers left in stock gives two; the €100 returned takes back the step that gave none, and
    the €200 kept still has its two vouchers; refunded whole, the steps are paid again on the next €100."""
    program = with_ten_for_every_hundred(db, clock, program, stock=2)
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=[line("COAT", 20000), line("HAT", 10000)])
    assert step_coupons(db, program, member.id) == ["issued", "issued"]
    return_(db, clock, program, order.external_id, lines=[("HAT", 1)])  # €200 kept: two steps, two vouchers
    assert step_coupons(db, program, member.id) == ["issued", "issued"]
    return_(db, clock, program, order.external_id, lines=[("COAT", 1)])
    assert step_coupons(db, program, member.id) == ["cancelled", "cancelled"]
    with db.read() as conn:
        assert counters_of(conn, program, member.id) == {
            "spend:ten-for-hundred": 0, "steps:ten-for-hundred": 0, "bare:ten-for-hundred": 0
        }  # fmt: skip
    again = purchase(db, clock, program, member, amount=10000)
    assert sum(a.points for a in again.awards if a.kind == "coupon") == 1
    assert_ledger_sound(db, program)


def test_a_refunded_order_beyond_max_per_purchase_does_not_hold_back_later_vouchers(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """€2,000 gives its 10 vouchers (20 steps paid); refunded whole, the next €100 gives a voucher again, not
    after €1,000 more (the ten steps paid with none were kept as paid)."""
    program = with_ten_for_every_hundred(db, clock, program)
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, amount=200000)
    assert step_coupons(db, program, member.id) == ["issued"] * 10
    return_(db, clock, program, order.external_id, lines=[("SKU-1", 1)])
    assert step_coupons(db, program, member.id) == ["cancelled"] * 10
    again = purchase(db, clock, program, member, amount=10000)
    assert sum(a.points for a in again.awards if a.kind == "coupon") == 1
    assert_ledger_sound(db, program)


def test_an_order_bought_and_returned_keeps_no_voucher_after_a_capped_order(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """€2,000 kept gives 10 vouchers for its 20 steps (max_per_purchase); a €100 order returned whole still loses
    its voucher: the big order's steps that gave none are not a reserve to keep it with."""
    program = with_ten_for_every_hundred(db, clock, program)
    member = enrol(db, clock, program)
    purchase(db, clock, program, member, amount=200000)
    small = purchase(db, clock, program, member, amount=10000)
    assert sum(a.points for a in small.awards if a.kind == "coupon") == 1
    return_(db, clock, program, small.external_id, lines=[("SKU-1", 1)])
    assert step_coupons(db, program, member.id) == ["cancelled"] + ["issued"] * 10
    assert_ledger_sound(db, program)
