"""PUT /v1/tiers refusals name the field at fault, as every other refusal does."""

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
