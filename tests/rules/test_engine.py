"""Pure evaluation: conditions, effects, stacking, limits and the split of points over lines (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palier.errors import InvalidInput
from palier.rules.document import parse_data, parse_text
from palier.rules.engine import (
    EventSnapshot,
    LineSnapshot,
    MemberContext,
    Timeline,
    compile_rules,
    total_points,
    within_limits,
)
from palier.rules.explain import money
from palier.rules.models import WEEKDAYS
from palier.units import Rounding

BASE = {
    "id": "base",
    "name": {"en": "1 point per euro"},
    "event": "purchase",
    "effect": {"type": "points_per_amount", "points": 1, "per_amount": 100},
}
# Monday 2 March 2026, 08:30 in Paris (07:30 UTC)
MONDAY_MORNING = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)
SATURDAY_NOON = datetime(2026, 3, 7, 11, 0, tzinfo=UTC)


def rules(*extra: dict[str, Any], rounding: str = "floor", **sections: Any) -> Any:
    document = parse_data({"rules": [BASE, *extra], **sections})
    return compile_rules(document, version=3, timezone="Europe/Paris", rounding=rounding)


def cart(*lines: LineSnapshot, **extra: Any) -> EventSnapshot:
    return EventSnapshot(type="purchase", channel=extra.pop("channel", "store"), lines=lines, **extra)


CROISSANT = LineSnapshot(sku="CROISSANT", quantity=2, amount=260, category="viennoiserie")
COFFEE = LineSnapshot(sku="CAFE", quantity=1, amount=320, category="coffee")
CAKE = LineSnapshot(sku="CAKE", quantity=1, amount=2450, category="patisserie")


def test_the_base_rule_earns_per_amount_with_the_program_rounding() -> None:
    event = cart(LineSnapshot(sku="A", quantity=1, amount=999))
    assert [a.points for a in rules().evaluate(event, MemberContext(), MONDAY_MORNING)] == [9]
    assert [a.points for a in rules(rounding="half_up").evaluate(event, MemberContext(), MONDAY_MORNING)] == [10]


def test_every_award_names_its_rule_and_version() -> None:
    [award] = rules().evaluate(cart(CAKE), MemberContext(), MONDAY_MORNING)
    assert (award.rule_id, award.version, award.line()) == ("base", 3, "1 point per euro: +24")


def test_a_weekday_morning_multiplier_doubles_in_the_program_time_zone() -> None:
    morning = {
        "id": "mornings",
        "name": {"en": "Double points weekday mornings", "fr": "Points doublés le matin"},
        "event": "purchase",
        "conditions": {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "hours": {"start": "07:00", "end": "10:00"}},
        "effect": {"type": "multiplier", "factor": 2},
    }
    compiled = rules(morning)
    found = compiled.evaluate(cart(CAKE), MemberContext(), MONDAY_MORNING)
    assert [a.line() for a in found] == ["1 point per euro: +24", "Double points weekday mornings ×2: +24"]
    assert found[1].line("fr") == "Points doublés le matin ×2 : +24"
    one_and_half = rules({**morning, "effect": {"type": "multiplier", "factor": "1.5"}})
    found = one_and_half.evaluate(cart(CAKE), MemberContext(), MONDAY_MORNING)
    assert (found[1].line(), found[1].line("fr")) == (
        "Double points weekday mornings ×1.5: +12",
        "Points doublés le matin ×1,5 : +12",
    )
    # 10:00 in Paris is 09:00 UTC: the window is closed
    assert len(compiled.evaluate(cart(CAKE), MemberContext(), datetime(2026, 3, 2, 9, 0, tzinfo=UTC))) == 1
    assert len(compiled.evaluate(cart(CAKE), MemberContext(), SATURDAY_NOON)) == 1


def test_an_evening_window_may_end_at_midnight() -> None:
    evening = {
        "id": "evenings",
        "name": {"en": "Late bonus", "fr": "Bonus du soir"},
        "event": "purchase",
        "conditions": {"hours": {"start": "22:00", "end": "24:00"}},
        "effect": {"type": "multiplier", "factor": 2},
    }
    compiled = rules(evening)
    paris = ZoneInfo("Europe/Paris")
    at = [datetime(2026, 3, 2, h, m, tzinfo=paris) for h, m in ((21, 59), (22, 0), (23, 59), (0, 0))]
    assert [len(compiled.evaluate(cart(CAKE), MemberContext(), moment)) for moment in at] == [1, 2, 2, 1]
    assert (
        rules({**evening, "conditions": {"hours": {"start": "22:00", "end": "00:00"}}}).evaluate(
            cart(CAKE), MemberContext(), at[2]
        )[1:]
        != []
    )  # 00:00 reads as the same midnight


def test_an_evening_window_written_to_23_59_runs_to_midnight() -> None:
    """ "From 20:00 to 23:59" is the evening to its end: a sale at 23:59:30 gets the bonus, as with "24:00"."""
    for end in ("23:59", "23:59:59"):
        evening = {
            "id": "evenings",
            "name": {"en": "Late bonus"},
            "event": "purchase",
            "conditions": {"hours": {"start": "20:00", "end": end}},
            "effect": {"type": "multiplier", "factor": 2},
        }
        compiled = rules(evening)
        paris = ZoneInfo("Europe/Paris")
        at = [datetime(2026, 3, 2, 23, 59, s, 500_000, tzinfo=paris) for s in (0, 30, 59)]
        assert [len(compiled.evaluate(cart(CAKE), MemberContext(), moment)) for moment in at] == [2, 2, 2], end


def test_line_filters_count_only_their_lines() -> None:
    pastry = {
        "id": "pastry",
        "name": {"en": "Pastry bonus"},
        "event": "purchase",
        "conditions": {"categories": ["viennoiserie", "patisserie"]},
        "effect": {"type": "per_item", "points": 5},
    }
    found = rules(pastry).evaluate(cart(CROISSANT, COFFEE, CAKE), MemberContext(), MONDAY_MORNING)
    bonus = found[1]
    assert (bonus.points, bonus.lines, bonus.line_points) == (15, (0, 2), (10, 5))  # croissants and cake
    assert total_points(found, 3) == (45, [12, 3, 30])  # with the base rule: 30 points for €30.30, 2 + 3 + 25
    assert bonus.line() == "Pastry bonus +5/item: +15"
    assert rules(pastry).evaluate(cart(COFFEE), MemberContext(), MONDAY_MORNING)[1:] == []


def test_categories_and_brands_match_whatever_the_case_the_accents_or_their_encoding() -> None:
    """A till sends "Pâtisserie" or "PATISSERIE", a Mac writes the rules file's "pâtisserie" as p-a-◌̂: the bonus
    for pâtisserie is theirs all the same (a category is a name people type, not a code)."""
    pastry = {
        "id": "pastry",
        "name": {"en": "Pastry bonus"},
        "event": "purchase",
        "conditions": {"categories": ["pa\u0302tisserie"], "brands": ["Maison Dupré"]},
        "effect": {"type": "per_item", "points": 5},
    }
    compiled = rules(pastry)
    sent = [("Pâtisserie", "MAISON DUPRÉ"), ("PATISSERIE", "maison  dupre"), ("pâtisserie", "Maison Dupré")]
    for category, brand in sent:
        cake = LineSnapshot(sku="CAKE", quantity=1, amount=2450, category=category, brand=brand)
        assert [a.line() for a in compiled.evaluate(cart(cake), MemberContext(), MONDAY_MORNING)][1:] == [
            "Pastry bonus +5/item: +5"
        ], (category, brand)
    other = LineSnapshot(sku="CAKE", quantity=1, amount=2450, category="pâtisseries", brand="Maison Dupré")
    assert compiled.evaluate(cart(other), MemberContext(), MONDAY_MORNING)[1:] == []


def test_items_given_free_earn_no_per_item_bonus_and_do_not_count_towards_a_minimum_quantity() -> None:
    """A croissant redeemed with a coupon (its line discounted to nothing), or a cart paid wholly with points,
    was not bought with money: it earns no "+5 per item", and "from 3 pastries" is not met by two bought and one
    given."""
    pastry = {"id": "pastry", "name": {"en": "Pastry bonus"}, "event": "purchase",
              "conditions": {"categories": ["viennoiserie"]}, "effect": {"type": "per_item", "points": 5}}  # fmt: skip
    three = {"id": "three", "name": {"en": "Three pastries"}, "event": "purchase",
             "conditions": {"categories": ["viennoiserie"], "min_quantity": 3},
             "effect": {"type": "fixed", "points": 20}}  # fmt: skip
    free = LineSnapshot(sku="CROISSANT", quantity=1, amount=0, category="viennoiserie")
    found = rules(pastry, three).evaluate(cart(CROISSANT, free), MemberContext(), MONDAY_MORNING)
    assert [(a.rule_id, a.points, a.line_points) for a in found] == [("base", 2, (2, 0)), ("pastry", 10, (10, 0))]
    paid_with_points = LineSnapshot(sku="CROISSANT", quantity=3, amount=0, category="viennoiserie")
    assert rules(pastry, three).evaluate(cart(paid_with_points), MemberContext(), MONDAY_MORNING) == []
    bought = LineSnapshot(sku="CROISSANT", quantity=3, amount=390, category="viennoiserie")
    found = rules(pastry, three).evaluate(cart(bought, free), MemberContext(), MONDAY_MORNING)
    assert [(a.rule_id, a.points) for a in found] == [("base", 3), ("pastry", 15), ("three", 20)]


def test_a_cashback_award_reads_as_money_in_the_program_currency() -> None:
    cashback = {
        "id": "cashback",
        "name": {"en": "Cashback", "fr": "Remboursement"},
        "event": "purchase",
        "effect": {"type": "cashback_percent", "percent": "2.5"},
    }
    [_, award] = rules(cashback).evaluate(cart(CAKE, COFFEE), MemberContext(), MONDAY_MORNING)
    assert (award.kind, award.amount) == ("cashback", 69)  # 2.5 % of €27.70, rounded down
    # in French as how-to-earn writes it: "2,5 %" (a decimal comma, a space before % and before the colon)
    french = award.line("fr", money=lambda cents: money(cents, "EUR", 2, "fr"))
    assert french == "Remboursement 2,5\u00a0% : 0,69\u00a0€"
    assert award.line("en", money=lambda cents: money(cents, "EUR", 2, "en")) == "Cashback 2.5%: €0.69"


def test_an_exclusive_rule_stops_the_rules_after_it() -> None:
    big = {
        "id": "big",
        "name": {"en": "Big basket"},
        "event": "purchase",
        "priority": 10,
        "exclusive": True,
        "conditions": {"min_spend": 2000},
        "effect": {"type": "fixed", "points": 100},
    }
    found = rules(big).evaluate(cart(CAKE), MemberContext(), MONDAY_MORNING)
    assert [a.rule_id for a in found] == ["big"]
    assert [a.rule_id for a in rules(big).evaluate(cart(COFFEE), MemberContext(), MONDAY_MORNING)] == ["base"]


def test_campaign_windows_are_read_in_the_program_time_zone() -> None:
    weekend = {
        "id": "weekend",
        "name": {"en": "Weekend"},
        "starts": "2026-03-07T00:00:00",
        "ends": "2026-03-09T00:00:00",
    }
    double = {
        "id": "double",
        "name": {"en": "Double points weekend"},
        "event": "purchase",
        "campaign": "weekend",
        "effect": {"type": "multiplier", "factor": 2},
    }
    compiled = rules(double, campaigns=[weekend])
    assert len(compiled.evaluate(cart(CAKE), MemberContext(), SATURDAY_NOON)) == 2
    # Friday 23:30 in Paris (22:30 UTC) is before the weekend, Sunday 23:30 is in it
    assert len(compiled.evaluate(cart(CAKE), MemberContext(), datetime(2026, 3, 6, 22, 30, tzinfo=UTC))) == 1
    assert len(compiled.evaluate(cart(CAKE), MemberContext(), datetime(2026, 3, 8, 22, 30, tzinfo=UTC))) == 2


def test_a_campaign_ending_at_23_59_59_or_23_59_runs_to_the_end_of_that_day_across_the_october_clock_change() -> None:
    """ "Double points this weekend", Saturday 00:00 to Sunday 23:59:59 in Paris, the weekend the clocks go back
    (25 October 2026, CEST to CET): a purchase at 23:59:59.5 on Sunday, or in the last minute of an end written
    23:59, is still in the weekend; Monday 00:00 is not; Friday 22:30 UTC (Saturday 00:30 in Paris) is in it."""
    double = {
        "id": "double",
        "name": {"en": "Double points weekend"},
        "event": "purchase",
        "campaign": "weekend",
        "effect": {"type": "multiplier", "factor": 2},
    }
    for ends in ("2026-10-25T23:59:59", "2026-10-25T23:59"):
        weekend = {"id": "weekend", "name": {"en": "Weekend"}, "starts": "2026-10-24T00:00:00", "ends": ends}
        compiled = rules(double, campaigns=[weekend])

        def doubled(at: datetime, compiled: Any = compiled) -> bool:
            return len(compiled.evaluate(cart(CAKE), MemberContext(), at)) == 2

        assert not doubled(datetime(2026, 10, 23, 21, 59, 59, tzinfo=UTC))  # Friday 23:59:59 CEST
        assert doubled(datetime(2026, 10, 23, 22, 30, tzinfo=UTC))  # Saturday 00:30 CEST
        assert doubled(datetime(2026, 10, 25, 22, 59, 30, tzinfo=UTC)), ends  # Sunday 23:59:30 CET
        assert doubled(datetime(2026, 10, 25, 22, 59, 59, 500_000, tzinfo=UTC)), ends
        assert not doubled(datetime(2026, 10, 25, 23, 0, tzinfo=UTC))  # Monday 00:00 CET


def test_a_campaign_given_by_its_days_runs_on_its_last_day_too() -> None:
    """ "starts: 2026-11-28, ends: 2026-11-29" is the weekend, both days included, as `dates` are: Sunday 23:30
    is in it (it was read as Sunday 00:00, and the campaign stopped a day early); one day is its own window."""
    double = {
        "id": "double",
        "name": {"en": "Double points weekend"},
        "event": "purchase",
        "campaign": "weekend",
        "effect": {"type": "multiplier", "factor": 2},
    }
    paris = ZoneInfo("Europe/Paris")
    for starts, ends in (("2026-11-28", "2026-11-29"), (date(2026, 11, 28), date(2026, 11, 29))):
        weekend = {"id": "weekend", "name": {"en": "Weekend"}, "starts": starts, "ends": ends}
        compiled = rules(double, campaigns=[weekend])
        found = [
            len(compiled.evaluate(cart(CAKE), MemberContext(), datetime(2026, 11, day, hour, 30, tzinfo=paris)))
            for day, hour in ((27, 23), (28, 0), (29, 23))
        ]
        assert found == [1, 2, 2], (starts, ends)
        assert len(compiled.evaluate(cart(CAKE), MemberContext(), datetime(2026, 11, 30, tzinfo=paris))) == 1
    saturday = {"id": "weekend", "name": {"en": "Saturday"}, "starts": "2026-11-28", "ends": "2026-11-28"}
    compiled = rules(double, campaigns=[saturday])
    assert len(compiled.evaluate(cart(CAKE), MemberContext(), datetime(2026, 11, 28, 23, 59, tzinfo=paris))) == 2


def test_first_purchase_tier_segment_and_attribute_conditions_read_the_member_context() -> None:
    def bonus(rule_id: str, **conditions: Any) -> dict[str, Any]:
        return {
            "id": rule_id,
            "name": {"en": rule_id},
            "event": "purchase",
            "conditions": conditions,
            "effect": {"type": "fixed", "points": 1},
        }

    compiled = rules(
        bonus("first", first_purchase=True),
        bonus("gold", tiers=["gold"]),
        bonus("vip", segments=["vip", "top20"]),
        bonus("fr", attributes={"language": "fr"}),
    )
    assert compiled.needs_first_purchase and compiled.needs_attributes
    nobody = compiled.evaluate(cart(CAKE), MemberContext(), MONDAY_MORNING)
    member = MemberContext(
        tier="gold", segments=frozenset({"top20"}), attributes={"language": "fr"}, first_purchase=True
    )
    everybody = compiled.evaluate(cart(CAKE), member, MONDAY_MORNING)
    assert [a.rule_id for a in nobody] == ["base"]
    assert [a.rule_id for a in everybody] == ["base", "first", "gold", "vip", "fr"]


TEN_PER_HUNDRED = {
    "id": "ten-per-hundred",
    "name": {"en": "€10 for every €100"},
    "event": "purchase",
    "effect": {"type": "spend_step", "step": 10000, "reward_id": "rwd_10"},
}


def test_spend_steps_count_each_crossing() -> None:
    compiled = rules(TEN_PER_HUNDRED)
    event = cart(LineSnapshot(sku="A", quantity=1, amount=25000))
    [_, award] = compiled.evaluate(event, MemberContext(counters={"spend:ten-per-hundred": 9000}), MONDAY_MORNING)
    assert (award.kind, award.amount, award.coupons, award.reward_id) == ("coupon", 25000, 3, "rwd_10")
    [_, award] = compiled.evaluate(event, MemberContext(counters={"spend:ten-per-hundred": 0}), MONDAY_MORNING)
    assert award.coupons == 2


def test_the_steps_paid_tell_what_is_still_owed_and_without_them_the_running_spend_does() -> None:
    """180 € spent over two merged accounts, no step paid yet: 1 € more pays the first. Counters kept before
    the steps paid were recorded hold the spend alone: the steps it crossed were paid."""
    compiled = rules(TEN_PER_HUNDRED)
    event = cart(LineSnapshot(sku="A", quantity=1, amount=100))
    merged = {"spend:ten-per-hundred": 18000, "steps:ten-per-hundred": 0}
    [_, award] = compiled.evaluate(event, MemberContext(counters=merged), MONDAY_MORNING)
    assert (award.coupons, award.steps, award.to_next) == (1, 1, 1900)  # the next at 200 €
    older = {"spend:ten-per-hundred": 18000}
    [_, award] = compiled.evaluate(event, MemberContext(counters=older), MONDAY_MORNING)
    assert (award.coupons, award.steps) == (0, 1)


def test_one_purchase_brings_at_most_max_per_purchase_step_coupons() -> None:
    """A €10M order (or a price typed with too many zeros) does not mint 100,000 vouchers."""
    step = {
        "id": "ten-per-hundred",
        "name": {"en": "€10 for every €100"},
        "event": "purchase",
        "effect": {"type": "spend_step", "step": 10000, "reward_id": "rwd_10"},
    }
    huge = cart(LineSnapshot(sku="A", quantity=1, amount=1_000_000_000))
    [_, award] = rules(step).evaluate(huge, MemberContext(), MONDAY_MORNING)
    assert (award.coupons, award.steps) == (10, 100_000)  # the default: 10, and the steps beyond count as paid
    three = {**step, "effect": {**step["effect"], "max_per_purchase": 3}}
    [_, award] = rules(three).evaluate(
        cart(LineSnapshot(sku="A", quantity=1, amount=50000)), MemberContext(), MONDAY_MORNING
    )
    assert award.coupons == 3


def test_actions_earn_their_points_and_multipliers_apply_to_them() -> None:
    compiled = rules(
        {
            "id": "review-week",
            "name": {"en": "Reviews week"},
            "event": "action",
            "conditions": {"actions": ["review"]},
            "effect": {"type": "multiplier", "factor": "1.5"},
        },
        actions=[{"id": "review", "name": {"en": "Review"}, "points": 25}],
    )
    found = compiled.evaluate(EventSnapshot(type="action", action="review"), MemberContext(), MONDAY_MORNING)
    assert [(a.rule_id, a.points) for a in found] == [("action:review", 25), ("review-week", 12)]


def test_limits_cut_awards_and_keep_line_points_summing() -> None:
    campaign = {"id": "c", "name": {"en": "C"}, "starts": "2026-01-01T00:00:00", "ends": "2027-01-01T00:00:00"}
    bonus = {
        "id": "b",
        "name": {"en": "B"},
        "event": "purchase",
        "campaign": "c",
        "effect": {"type": "points_per_amount", "points": 5, "per_amount": 100},
    }
    found = rules(bonus, campaigns=[campaign]).evaluate(cart(CROISSANT, COFFEE, CAKE), MemberContext(), MONDAY_MORNING)
    cut = within_limits(found, {"c": 7}, Rounding.FLOOR)
    assert [a.points for a in cut] == [30, 7]
    assert sum(cut[1].line_points) == 7
    assert within_limits(found, {"c": 0}, Rounding.FLOOR)[1:] == []


FLASH = {"id": "flash", "name": {"en": "Flash"}, "starts": "2026-01-01T00:00:00", "ends": "2027-01-01T00:00:00"}
FLASH_BONUS = {**BASE, "id": "bonus", "name": {"en": "Flash bonus"}, "campaign": "flash"}
DOUBLE = {"id": "double", "name": {"en": "Double points"}, "event": "purchase"}
DOUBLE["effect"] = {"type": "multiplier", "factor": 2}


def test_a_multiplier_multiplies_what_the_budget_let_through_not_what_it_cut() -> None:
    compiled = rules(FLASH_BONUS, DOUBLE, campaigns=[FLASH])
    found = compiled.evaluate(cart(LineSnapshot(sku="A", quantity=1, amount=5000)), MemberContext(), MONDAY_MORNING)
    assert [(a.rule_id, a.points) for a in found] == [("base", 50), ("bonus", 50), ("double", 100)]  # uncut
    cut = within_limits(found, {"flash": 10}, Rounding.FLOOR)
    assert [(a.rule_id, a.points) for a in cut] == [("base", 50), ("bonus", 10), ("double", 60)]
    spent = within_limits(found, {"flash": 0}, Rounding.FLOOR)
    assert [(a.rule_id, a.points) for a in spent] == [("base", 50), ("double", 50)]
    assert spent[-1].line() == "Double points ×2: +50"


def test_a_multiplier_on_cut_points_counts_its_own_lines_only_then_is_cut_by_its_own_budget() -> None:
    pastry_double = {**DOUBLE, "campaign": "flash", "conditions": {"categories": ["viennoiserie"]}}
    promo = {**FLASH, "id": "promo", "name": {"en": "Promo"}}
    compiled = rules({**FLASH_BONUS, "campaign": "promo"}, pastry_double, campaigns=[FLASH, promo])
    pastry = LineSnapshot(sku="P", quantity=1, amount=1000, category="viennoiserie")
    coffee = LineSnapshot(sku="C", quantity=1, amount=3000, category="coffee")
    found = compiled.evaluate(cart(pastry, coffee), MemberContext(), MONDAY_MORNING)
    assert [(a.rule_id, a.points, a.line_points) for a in found] == [
        ("base", 40, (10, 30)),
        ("bonus", 40, (10, 30)),
        ("double", 20, (20,)),  # on the pastry's 10 + 10
    ]
    cut = within_limits(found, {"promo": 8, "flash": 100}, Rounding.FLOOR)
    assert [(a.rule_id, a.points, a.line_points) for a in cut] == [
        ("base", 40, (10, 30)),
        ("bonus", 8, (2, 6)),
        ("double", 12, (12,)),  # the pastry kept 10 + 2
    ]
    own_budget = within_limits(found, {"promo": 8, "flash": 5}, Rounding.FLOOR)
    assert [(a.rule_id, a.points) for a in own_budget] == [("base", 40), ("bonus", 8), ("double", 5)]


def test_the_timeline_picks_the_version_in_force() -> None:
    one, two = rules(), rules()
    line = Timeline(starts=(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)), versions=(one, two))
    assert line.at(datetime(2025, 12, 31, tzinfo=UTC)) is None
    assert line.at(datetime(2026, 2, 28, tzinfo=UTC)) is one
    assert line.at(datetime(2026, 3, 1, tzinfo=UTC)) is two


line_strategy = st.builds(
    LineSnapshot,
    sku=st.sampled_from(["A", "B", "C"]),
    quantity=st.integers(1, 5),
    amount=st.integers(0, 50_000),
    earns=st.booleans(),
    category=st.sampled_from(["viennoiserie", "coffee", None]),
)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(line_strategy, min_size=1, max_size=20),
    shipping=st.integers(0, 2000),
    factor=st.sampled_from(["1.5", "2", "3"]),
)
def test_line_points_always_sum_to_the_total(lines: list[LineSnapshot], shipping: int, factor: str) -> None:
    compiled = rules(
        {"id": "x", "name": {"en": "x"}, "event": "purchase", "effect": {"type": "multiplier", "factor": factor}},
        {
            "id": "v",
            "name": {"en": "v"},
            "event": "purchase",
            "conditions": {"categories": ["viennoiserie"]},
            "effect": {"type": "per_item", "points": 3},
        },
        {
            "id": "f",
            "name": {"en": "f"},
            "event": "purchase",
            "conditions": {"min_spend": 100},
            "effect": {"type": "fixed", "points": 7},
        },
        rounding="half_even",
    )
    found = compiled.evaluate(cart(*lines, extra_eligible=shipping), MemberContext(), MONDAY_MORNING)
    total, per_line = total_points(found, len(lines))
    assert sum(per_line) == total == sum(a.points for a in found)
    assert all(p >= 0 for p in per_line)
    assert all(
        per_line[i] == 0
        for i, line in enumerate(lines)
        if not line.earns and total > 0 and any(x.earns and x.amount for x in lines)
    )


@pytest.mark.parametrize(
    "hours", ["{start: 22:00, end: 24:00}", "{start: 08:00, end: 12:00}", '{start: "22:00Z", end: "23:00"}']
)
def test_hours_written_without_quotes_or_with_an_offset_are_refused(hours: str) -> None:
    """Unquoted, YAML reads 22:00 as the number 1320 (which was taken as 00:22 UTC, a time no purchase could be
    compared with); a local hour has no offset either. Refused at the field, never a crash."""
    text = f"rules:\n- id: late\n  name: {{en: Late}}\n  event: purchase\n  conditions: {{hours: {hours}}}\n"
    with pytest.raises(InvalidInput) as caught:
        parse_text(text + "  effect: {type: fixed, points: 5}\n")
    assert caught.value.code == "invalid_time" and caught.value.field.startswith("rules[0].conditions.hours.")
    assert '"22:00"' in caught.value.detail


# --- refusals: precise paths, the whole file ---


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"conditions": {"weekdays": ["mon", "someday"]}}, "invalid_choice", "rules[1].conditions.weekdays[1]"),
        ({"effect": {"type": "multiplier", "factor": -2}}, "out_of_range", "rules[1].effect.factor"),
        ({"colour": "red"}, "unknown_field", "rules[1].colour"),
        ({"event": "pageview"}, "invalid_choice", "rules[1].event"),
        ({"conditions": {"hours": {"start": "10:00", "end": "10:00"}}}, "empty_window", "rules[1].conditions.hours"),
        ({"campaign": "nope"}, "unknown_campaign", "rules[1].campaign"),
        ({"id": "base"}, "duplicate_id", "rules[1].id"),
        (
            {"event": "birthday", "effect": {"type": "per_item", "points": 5}},
            "effect_not_applicable",
            "rules[1].effect.type",
        ),
        ({"effect": {"type": "teleport"}}, "invalid_choice", "rules[1].effect"),
    ],
)
def test_a_bad_rule_is_refused_with_the_path_of_the_field(change: dict[str, Any], code: str, field: str) -> None:
    rule = {
        "id": "other",
        "name": {"en": "Other"},
        "event": "purchase",
        "effect": {"type": "fixed", "points": 5},
    } | change
    with pytest.raises(InvalidInput) as caught:
        parse_data({"rules": [BASE, rule]})
    assert (caught.value.code, caught.value.field) == (code, field), caught.value.extra


def test_every_problem_of_a_file_is_reported() -> None:
    text = """
rules:
  - id: a
    name: {en: A}
    event: purchase
    effect: {type: fixed, points: 0}
  - id: b
    name: {en: B}
    event: purchase
    conditions: {dates: {start: 2026-05-02, end: 2026-05-01}}
    effect: {type: fixed, points: 5}
"""
    with pytest.raises(InvalidInput) as caught:
        parse_text(text)
    fields = [e["field"] for e in caught.value.extra["errors"]]
    assert fields == ["rules[0].effect.points", "rules[1].conditions.dates"]


def test_overlapping_exclusive_campaigns_are_reported() -> None:
    campaigns = [
        {"id": "a", "name": {"en": "A"}, "starts": "2026-03-01T00:00:00", "ends": "2026-03-10T00:00:00"},
        {"id": "b", "name": {"en": "B"}, "starts": "2026-03-09T00:00:00", "ends": "2026-03-20T00:00:00"},
    ]
    rule = {
        "name": {"en": "x"},
        "event": "purchase",
        "exclusive": True,
        "priority": 5,
        "effect": {"type": "fixed", "points": 5},
    }
    with pytest.raises(InvalidInput) as caught:
        parse_data(
            {
                "campaigns": campaigns,
                "rules": [rule | {"id": "x", "campaign": "a"}, rule | {"id": "y", "campaign": "b"}],
            }
        )
    assert (caught.value.code, caught.value.field) == ("overlapping_exclusive_rules", "rules[1].exclusive")
    campaigns[1]["starts"] = "2026-03-10T00:00:00"
    parse_data(
        {"campaigns": campaigns, "rules": [rule | {"id": "x", "campaign": "a"}, rule | {"id": "y", "campaign": "b"}]}
    )


def test_exclusive_rules_that_can_never_meet_on_one_purchase_are_not_called_overlapping() -> None:
    """ "Not with other offers" for Black Friday and for Christmas, told apart by their dates rather than by
    campaigns, or one for the web shop and one for the stores: no purchase can meet both, so which wins is
    never in doubt and the same priority is fine. Dates or channels in common still overlap."""
    rule = {"name": {"en": "x"}, "event": "purchase", "exclusive": True, "effect": {"type": "fixed", "points": 5}}
    base = {"id": "base", "name": {"en": "b"}, "event": "purchase", "priority": 10}
    base["effect"] = {"type": "points_per_amount", "points": 1, "per_amount": 100}
    friday = {"dates": {"start": "2026-11-27", "end": "2026-11-30"}}
    christmas = {"dates": {"start": "2026-12-20", "end": "2026-12-24"}}
    apart = [
        (friday, christmas),
        ({"channels": ["web"]}, {"channels": ["store", "phone"]}),
        ({"weekdays": ["sat", "sun"]}, {"weekdays": ["mon"], "channels": ["web"]}),
    ]
    for one, other in apart:
        parse_data({"rules": [base, rule | {"id": "x", "conditions": one}, rule | {"id": "y", "conditions": other}]})
    together = [
        (friday, {"dates": {"start": "2026-11-30", "end": "2026-12-24"}}),  # 30 November in both
        ({"channels": ["web"]}, {"channels": ["web", "store"]}),
        (friday, {"channels": ["web"]}),  # a web purchase on Black Friday meets both
    ]
    for one, other in together:
        with pytest.raises(InvalidInput) as caught:
            parse_data(
                {"rules": [base, rule | {"id": "x", "conditions": one}, rule | {"id": "y", "conditions": other}]}
            )
        assert caught.value.code == "overlapping_exclusive_rules"


def test_a_field_written_twice_in_a_rules_file_is_refused_at_both_lines_not_overwritten() -> None:
    """YAML (and JSON) keep the last of two keys of one mapping: a second `conditions` pasted under a pastry
    bonus would silently drop the first and pay the bonus on every purchase. Refused, naming both lines."""
    text = (
        "rules:\n"
        "  - id: pastry\n"
        "    name: {en: Pastry bonus}\n"
        "    event: purchase\n"
        "    conditions: {categories: [viennoiserie]}\n"
        "    effect: {type: per_item, points: 2, points: 20}\n"
        "    conditions: {channels: [store]}\n"
    )
    with pytest.raises(InvalidInput) as caught:
        parse_text(text)
    assert caught.value.code == "duplicate_key" and caught.value.field == "rules[0].effect.points"
    assert [e["field"] for e in caught.value.extra["errors"]] == ["rules[0].effect.points", "rules[0].conditions"]
    assert "lines 5 and 7" in caught.value.extra["errors"][1]["message"]
    as_json = '{"rules": [{"id": "a", "id": "b", "name": {"en": "A"}, "event": "purchase",\n'
    as_json += '"effect": {"type": "fixed", "points": 3}}]}'
    with pytest.raises(InvalidInput) as caught:
        parse_text(as_json)
    assert (caught.value.code, caught.value.field) == ("duplicate_key", "rules[0].id")


def test_no_code_is_ever_evaluated() -> None:
    with pytest.raises(InvalidInput):
        parse_text("rules: !!python/object/apply:os.system ['true']")


# The index: each rule's channel, store, action, weekday, tier, segment and line filters are answered by bit
# masks. Whatever the rules, the member, the day and the cart, the rules it lets through (and the lines each
# counts) are those the conditions name.
VALUES = ["a", "b", "c"]
maybe_values = st.none() | st.lists(st.sampled_from(VALUES), min_size=1, max_size=2, unique=True)


@st.composite
def filtered_rules(draw: st.DrawFn) -> dict[str, Any]:
    conditions = {
        "channels": draw(st.none() | st.lists(st.sampled_from(["web", "store", "app"]), min_size=1, unique=True)),
        "stores": draw(maybe_values),
        "skus": draw(maybe_values),
        "categories": draw(maybe_values),
        "brands": draw(maybe_values),
        "weekdays": draw(st.none() | st.lists(st.sampled_from(["mon", "tue", "sat"]), min_size=1, unique=True)),
        "tiers": draw(st.none() | st.lists(st.sampled_from(["gold", "silver"]), min_size=1, unique=True)),
        "segments": draw(st.none() | st.lists(st.sampled_from(["vip", "new"]), min_size=1, unique=True)),
    }
    return {
        "name": {"en": "promo"},
        "event": "purchase",
        "conditions": {k: v for k, v in conditions.items() if v is not None},
        "effect": {"type": "fixed", "points": draw(st.integers(1, 50))},
        "priority": draw(st.integers(-2, 2)),
    }


lines_of_any_kind = st.builds(
    LineSnapshot,
    sku=st.sampled_from(VALUES),
    quantity=st.integers(1, 3),
    amount=st.integers(0, 500),
    earns=st.booleans(),
    category=st.none() | st.sampled_from(VALUES),
    brand=st.none() | st.sampled_from(VALUES),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(filtered_rules(), min_size=1, max_size=12),
    st.lists(lines_of_any_kind, min_size=1, max_size=6),
    st.sampled_from(["web", "store", "app"]),
    st.none() | st.sampled_from(VALUES),
    st.builds(
        MemberContext,
        tier=st.none() | st.sampled_from(["gold", "silver"]),
        segments=st.frozensets(st.sampled_from(["vip", "new", "lapsed"])),
    ),
    st.integers(0, 6),
)
def test_the_rule_index_lets_through_exactly_the_rules_whose_filters_hold(
    drawn: list[dict[str, Any]],
    lines: list[LineSnapshot],
    channel: str,
    store: str | None,
    member: MemberContext,
    days_after_monday: int,
) -> None:
    document = parse_data({"rules": [{"id": f"r{i}", **rule} for i, rule in enumerate(drawn)]})
    compiled = compile_rules(document, version=1, timezone="UTC", rounding="floor")
    event = EventSnapshot(type="purchase", channel=channel, store_id=store, lines=tuple(lines))

    def counts(rule: Any, line: LineSnapshot) -> bool:
        c = rule.conditions
        return line.earns and all(
            wanted is None or value in wanted
            for wanted, value in ((c.skus, line.sku), (c.categories, line.category), (c.brands, line.brand))
        )

    expected = {}
    for rule in document.rules:
        c = rule.conditions
        if (c.channels is not None and channel not in c.channels) or (c.stores is not None and store not in c.stores):
            continue
        if c.weekdays is not None and WEEKDAYS[days_after_monday] not in c.weekdays:
            continue
        if (c.tiers is not None and member.tier not in c.tiers) or (
            c.segments is not None and not member.segments & set(c.segments)
        ):
            continue
        filtered = c.skus is not None or c.categories is not None or c.brands is not None
        counted = [line for line in lines if counts(rule, line)] if filtered else [line for line in lines if line.earns]
        if filtered and not counted:
            continue
        expected[rule.id] = rule.effect.points  # type: ignore[union-attr]
    awards = compiled.evaluate(event, member, MONDAY_MORNING + timedelta(days=days_after_monday))
    assert {a.rule_id: a.points for a in awards} == expected
    ordered = [r.id for r in sorted(document.rules, key=lambda r: -r.priority)]  # stable: as written on ties
    assert [a.rule_id for a in awards] == [rule_id for rule_id in ordered if rule_id in expected]


def test_how_to_earn_says_one_item_in_the_singular() -> None:
    from palier.rules.explain import how_to_earn

    two_or_one = [
        {"id": f"q{n}", "name": {"en": f"Q{n}"}, "event": "purchase", "conditions": {"min_quantity": n},
         "effect": {"type": "fixed", "points": 5}}
        for n in (1, 2)
    ]  # fmt: skip
    compiled = rules(*two_or_one)
    now = datetime(2026, 3, 2, tzinfo=UTC)
    said = {
        lang: how_to_earn(compiled, now=now, language=lang, currency="EUR", exponent=2, points_name="points")
        for lang in ("en", "fr")
    }
    assert said["en"][1:] == ["Q1 — 5 points per purchase from 1 item", "Q2 — 5 points per purchase from 2 items"]
    assert said["fr"][1:] == ["Q1 — 5 points par achat dès 1 article", "Q2 — 5 points par achat dès 2 articles"]
