"""Integer points and money, and the one rounding function every conversion goes through.

Points and money are always ``int`` (money in minor units: cents). Any division that can leave a
remainder goes through :func:`divide`, with the rounding mode named explicitly.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from enum import StrEnum
from functools import partial
from itertools import accumulate
from typing import Annotated, Any

from pydantic import BeforeValidator

_DIGITS = re.compile(r"\s*[+-]?\d+\s*")


def _whole(value: Any) -> Any:
    """Refuse what a lax integer would quietly bend: ``true`` as 1, ``"10.00"`` as 10, and any JSON number with
    a decimal point, ``10.00`` or ``1000.0`` alike (euros read as cents: a hundred times less than meant).
    Digits in a string stay accepted: a CSV file or a form sends nothing else."""
    if isinstance(value, bool):
        raise ValueError(f"invalid_type: {str(value).lower()} is not a number")
    if isinstance(value, float | Decimal):  # even 10.0: whoever wrote the point meant a decimal amount
        raise ValueError(
            "invalid_type: a whole number is expected, without a decimal point "
            "(points, a quantity, or money in minor units: 12.50 is 1250)"
        )
    if isinstance(value, str) and not _DIGITS.fullmatch(value):  # not echoed: it may be a pasted card number
        raise ValueError(
            "invalid_type: a whole number is expected (points, a quantity, or money in minor units: 12.50 is 1250)"
        )
    return value


Whole = Annotated[int, BeforeValidator(_whole)]
"""A whole number as the API takes it: points, money in minor units, a quantity."""


class Rounding(StrEnum):
    """How a fractional number of points is rounded to an integer."""

    FLOOR = "floor"  # toward minus infinity: 9.99 € at 1 pt/€ earns 9
    HALF_UP = "half_up"  # nearest, halves away from zero: 2.5 -> 3
    HALF_EVEN = "half_even"  # nearest, halves to even (banker's): 2.5 -> 2, 3.5 -> 4
    CEILING = "ceiling"  # toward plus infinity


def divide(numerator: int, denominator: int, mode: Rounding) -> int:
    """Return ``numerator / denominator`` rounded with ``mode``, in exact integer arithmetic."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(numerator, denominator)  # floor division; 0 <= remainder < denominator
    if remainder == 0 or mode is Rounding.FLOOR:
        return quotient
    if mode is Rounding.CEILING:
        return quotient + 1
    twice = 2 * remainder
    if twice > denominator:
        return quotient + 1
    if twice < denominator:
        return quotient
    # exactly half-way
    if mode is Rounding.HALF_UP:
        return quotient + 1 if numerator >= 0 else quotient
    return quotient + (quotient % 2)  # HALF_EVEN


def divider(mode: Rounding) -> Callable[[int, int], int]:
    """:func:`divide` with ``mode`` fixed, for code that divides in a loop; the denominator must be positive.

    Rounding down is plain floor division (``divide`` gives the same, after checking the denominator)."""
    return _DIVIDERS[mode]


def points_for_amount(amount: int, *, points: int, per_amount: int, mode: Rounding) -> int:
    """Points earned by ``amount`` minor units at a rate of ``points`` per ``per_amount`` minor units."""
    return divide(amount * points, per_amount, mode)


def split_proportionally(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` over ``weights`` so the parts sum exactly to ``total``, each part within one of its
    exact share (``total * weight / sum(weights)``, rounded down or up).

    Used to attribute a purchase's points to its lines, so returning every line gives back exactly
    what the purchase earned, never one point more or less.
    """
    if total == 0 or len(weights) <= 1:
        return [total if any(weights) else 0] * len(weights)
    return list(Shares(weights).split(total))


class Shares:
    """Splits of many totals over the same weights (one rule after another over a cart's lines).

    Cumulative rounding: the parts up to line ``i`` add up to ``total * (w0 + … + wi) // sum(weights)``, so
    the parts sum exactly to ``total`` and each is its exact share rounded down or up (a zero weight gets
    zero). The running sums are worked out once, so a split is one pass without sorting.
    """

    __slots__ = ("_running", "_sum", "size")

    def __init__(self, weights: Sequence[int]) -> None:
        self._running = list(accumulate(weights))
        self._sum = self._running[-1] if self._running else 0
        self.size = len(self._running)

    def split(self, total: int) -> tuple[int, ...]:
        """``total`` over the weights (all zeros when the weights are)."""
        weight_sum = self._sum
        if weight_sum == 0:
            return (0,) * self.size
        bounds = [total * running // weight_sum for running in self._running]
        return tuple(map(operator.sub, bounds, [0, *bounds]))


_DIVIDERS: dict[Rounding, Callable[[int, int], int]] = {
    mode: operator.floordiv if mode is Rounding.FLOOR else partial(divide, mode=mode) for mode in Rounding
}


NARROW_SPACE = "\u202f"  # between groups of digits in French: 1 212,50 €
NO_BREAK_SPACE = "\u00a0"  # between a figure and its currency: "12,50" and "€" never on two lines
_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF", "CAD": "$"}


def money(amount: int, currency: str, exponent: int, language: str) -> str:
    """``amount`` minor units as a person reads them: ``€1,212.50`` in English, ``1 212,50 €`` in French."""
    if amount < 0:
        return "-" + money(-amount, currency, exponent, language)
    major = f"{amount / 10**exponent:,.{exponent}f}"
    symbol = _SYMBOLS.get(currency, currency)
    if language == "fr":
        return major.replace(",", NARROW_SPACE).replace(".", ",") + NO_BREAK_SPACE + symbol
    return f"{symbol}{major}" if symbol in ("€", "$", "£") else major + NO_BREAK_SPACE + symbol
