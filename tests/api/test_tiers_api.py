"""Tiers and VIP plans through the API: refusals name the field at fault, as every other refusal does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.helpers import ApiProgram, assert_problem

BRONZE = {"code": "bronze", "name": {"fr": "Bronze", "en": "Bronze"}, "threshold": 0}
GOLD = {"code": "gold", "name": {"fr": "Or", "en": "Gold"}, "threshold": 500_00, "multiplier_percent": 150}


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"window": "lifetime", "downgrade": "period_end"}, "window_has_no_period", "downgrade"),
        ({"tiers": [BRONZE, GOLD, GOLD | {"threshold": 900_00}]}, "duplicate_tier_code", "tiers[2].code"),
        ({"tiers": [BRONZE, GOLD | {"threshold": 0}]}, "thresholds_not_increasing", "tiers[1].threshold"),
        ({"downgrade": "grace"}, "grace_months_required", "grace_months"),
        ({"metric": "visits"}, "invalid_choice", "metric"),
    ],
)
def test_a_policy_refused_names_its_field(
    module_programs: Callable[..., ApiProgram], change: dict[str, Any], code: str, field: str
) -> None:
    program = module_programs()
    body = {"metric": "spend", "window": "calendar_year", "tiers": [BRONZE, GOLD]} | change
    assert_problem(program.call("PUT", "/v1/tiers", json=body), 422, code, field)
    assert program.call("GET", "/v1/tiers").json() is None  # nothing written


def test_a_plan_naming_a_reward_that_does_not_exist_names_it_by_its_place(
    module_programs: Callable[..., ApiProgram],
) -> None:
    program = module_programs()
    plan = {"code": "club", "name": {"fr": "Club", "en": "Club"}, "price": 499, "period": "monthly",
            "benefits": {"period_rewards": ["rwd_01M95BV6Q32YB3HR4P9FQ7QH49"]}}  # fmt: skip
    assert_problem(program.call("POST", "/v1/plans", json=plan), 404, "reward_not_found", "benefits.period_rewards[0]")
    assert program.call("GET", "/v1/plans").json() == []
