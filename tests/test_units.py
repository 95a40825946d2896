"""Points arithmetic: the one rounding function and the exact proportional split."""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
import types
import typing
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

import palier
from palier.text import points_word
from palier.units import Rounding, Shares, Whole, divide, money, points_for_amount, split_proportionally


def reference(value: Fraction, mode: Rounding) -> int:
    """What each mode means, said with exact fractions."""
    if mode is Rounding.FLOOR:
        return math.floor(value)
    if mode is Rounding.CEILING:
        return math.ceil(value)
    if mode is Rounding.HALF_UP:  # halves away from zero
        return int(math.copysign(math.floor(abs(value) + Fraction(1, 2)), value))
    return round(value)  # Fraction rounds halves to even


@given(
    numerator=st.integers(min_value=-(10**12), max_value=10**12),
    denominator=st.integers(min_value=1, max_value=10**6),
    mode=st.sampled_from(Rounding),
)
def test_divide_matches_exact_fractions(numerator: int, denominator: int, mode: Rounding) -> None:
    assert divide(numerator, denominator, mode) == reference(Fraction(numerator, denominator), mode)


@given(half=st.integers(min_value=-1000, max_value=1000), mode=st.sampled_from(Rounding))
def test_divide_on_exact_halves(half: int, mode: Rounding) -> None:
    # Random numerators rarely land on a half: this is where HALF_UP and HALF_EVEN differ.
    numerator = 2 * half + 1
    assert divide(numerator, 2, mode) == reference(Fraction(numerator, 2), mode)


@pytest.mark.parametrize(
    ("numerator", "mode", "expected"),
    [
        (5, Rounding.HALF_UP, 3),
        (-5, Rounding.HALF_UP, -3),
        (5, Rounding.HALF_EVEN, 2),
        (7, Rounding.HALF_EVEN, 4),
        (-5, Rounding.HALF_EVEN, -2),
        (-5, Rounding.FLOOR, -3),
        (-5, Rounding.CEILING, -2),
    ],
)
def test_divide_by_two_examples(numerator: int, mode: Rounding, expected: int) -> None:
    assert divide(numerator, 2, mode) == expected


@pytest.mark.parametrize("denominator", [0, -3])
def test_divide_refuses_non_positive_denominators(denominator: int) -> None:
    with pytest.raises(ValueError, match="denominator"):
        divide(10, denominator, Rounding.FLOOR)


def test_points_for_amount_at_one_point_per_euro() -> None:
    assert points_for_amount(999, points=1, per_amount=100, mode=Rounding.FLOOR) == 9
    assert points_for_amount(950, points=1, per_amount=100, mode=Rounding.HALF_UP) == 10


@given(
    total=st.integers(min_value=-(10**9), max_value=10**9),
    weights=st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=40).filter(any),
)
def test_split_sums_to_total_and_each_part_is_within_one_of_its_share(total: int, weights: list[int]) -> None:
    parts = split_proportionally(total, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - Fraction(total * weight, sum(weights))) < 1


def test_split_with_no_weight_gives_nothing() -> None:
    assert split_proportionally(100, [0, 0]) == [0, 0]


@given(
    totals=st.lists(st.integers(min_value=-(10**6), max_value=10**6), min_size=1, max_size=5),
    weights=st.lists(st.integers(min_value=0, max_value=10**5), min_size=2, max_size=20).filter(any),
)
def test_shares_split_many_totals_over_the_same_weights_as_split_does(totals: list[int], weights: list[int]) -> None:
    shares = Shares(weights)
    for total in totals:
        parts = shares.split(total)
        assert list(parts) == split_proportionally(total, weights)
        assert all(part == 0 for part, weight in zip(parts, weights, strict=True) if weight == 0)


def test_translate_on_sqlite_does_what_postgresqls_does() -> None:
    from palier.text import ACCENTED, PLAIN, folded, translate

    assert translate("Élodie Gérard", ACCENTED, PLAIN) == "Elodie Gerard"
    assert translate("12345", "143", "ax") == "a2x5"  # PostgreSQL: the 3, beyond "ax", is deleted
    assert translate(None, "a", "b") is None
    assert folded("ÉLODIE") == "elodie"


def test_the_points_name_agrees_with_its_count() -> None:
    assert [points_word(n, "points", "en") for n in (0, 1, -1, 2)] == ["points", "point", "point", "points"]
    assert [points_word(n, "étoiles", "fr") for n in (0, 1, 2, 1000)] == ["étoile", "étoile", "étoiles", "étoiles"]
    assert points_word(1, "miles", "en") == "mile" and points_word(1, "Fournil", "fr") == "Fournil"


# --- whole numbers as clients send them ---

WHOLE = TypeAdapter(Whole)


@pytest.mark.parametrize("sent", [10.0, 1000.0, 10.5, 0.0, Decimal("10")])
def test_a_number_with_a_decimal_point_is_no_whole_number(sent: object) -> None:
    """10.00 sent for a price meant euros: read as 10 cents it would be a hundred times less, so it is refused."""
    with pytest.raises(ValidationError, match="invalid_type"):
        WHOLE.validate_python(sent)


@pytest.mark.parametrize(("sent", "read"), [(10, 10), ("1250", 1250), (" -3 ", -3), (0, 0)])
def test_integers_and_digit_strings_stay_whole_numbers(sent: object, read: int) -> None:
    assert WHOLE.validate_python(sent) == read
    assert WHOLE.validate_json(json.dumps(sent)) == read


SERVER_COUNTED = {"currency_exponent", "rules_version", "status_version", "stock_left", "members_count"}


def _bare_ints(annotation: Any, path: str, checked: bool, seen: set[type]) -> list[str]:
    """The places under ``annotation`` typed ``int`` without Whole's check."""
    if annotation is int:
        return [] if checked else [path]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return []
        seen.add(annotation)
        return [
            bad
            for name, field in annotation.model_fields.items()
            for bad in _bare_ints(field.annotation, f"{path}.{name}", _WHOLE in field.metadata, seen)
        ]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        return _bare_ints(base, path, checked or _WHOLE in metadata, seen)
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        return [bad for arg in typing.get_args(annotation) for bad in _bare_ints(arg, path, checked, seen)]
    return []


_WHOLE = Whole.__metadata__[0]


def _subclasses(base: type[BaseModel]) -> list[type[BaseModel]]:
    return [found for sub in base.__subclasses__() for found in (sub, *_subclasses(sub))]


def test_every_integer_a_client_sends_is_whole() -> None:
    """Models that refuse unknown fields are what clients send: none takes 10.0 for 10."""
    for module in pkgutil.walk_packages(palier.__path__, "palier."):
        importlib.import_module(module.name)
    sent = [
        m
        for m in _subclasses(BaseModel)
        if m.__module__.startswith("palier.") and m.model_config.get("extra") == "forbid"
    ]
    bare = [path for model in sorted(sent, key=repr) for path in _bare_ints(model, model.__name__, False, set())]
    assert [path for path in bare if path.rsplit(".", 1)[1] not in SERVER_COUNTED] == []


def test_an_amount_and_its_currency_are_never_split_across_two_lines() -> None:
    """French writes "1 234,50 €": a no-break space before the symbol (a plain one lets "€" wrap alone onto
    the next line of a phone's screen), a narrow no-break space between groups of digits."""
    assert money(123450, "EUR", 2, "fr") == "1\u202f234,50\u00a0€"
    assert money(123450, "CHF", 2, "en") == "1,234.50\u00a0CHF"
    assert money(123450, "EUR", 2, "en") == "€1,234.50"
