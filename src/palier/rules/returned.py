"""What a return gives back of an order's awards: the share of a campaign's points it takes back, worked out on
everything returned so far, so that an order returned in parts gives back exactly what one full return would.
Pure arithmetic over the order's lines, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from palier.programs.models import Program
from palier.rules.engine import name_key
from palier.rules.models import PerItem, Rule
from palier.units import split_proportionally


@dataclass(frozen=True)
class Returned:
    """How much of a purchase had been returned before a return and after it, out of the ``whole``."""

    whole: int
    before: int
    after: int

    def share(self, of: int) -> int:
        """The part of ``of`` this return takes back. Of everything returned so far, less what earlier returns
        took: an order returned in several parts takes back exactly what one full return would."""
        if self.whole <= 0:
            return 0
        return of * min(self.after, self.whole) // self.whole - of * min(self.before, self.whole) // self.whole


@dataclass(frozen=True)
class LinesReturned:
    """An order's lines as stored (``quantity``, ``points``) with the units of each returned before a return and
    after it: a campaign whose rule counts some lines only (a pastry bonus) gets back what those lines gave."""

    lines: Sequence[Mapping[str, Any]]
    before: Sequence[int]
    after: Sequence[int]


def counts_some_lines(rule: Rule) -> bool:
    c = rule.conditions
    return c.skus is not None or c.categories is not None or c.brands is not None


def kept_on_lines(lines: Sequence[Mapping[str, Any]], rule_id: str, of: int) -> list[int] | None:
    """The ``of`` points a campaign rule gave, on the order's lines as the purchase kept them
    (``campaign_points``); None when the lines do not hold them all (an order recorded before they were kept)."""
    split = [int((line.get("campaign_points") or {}).get(rule_id, 0)) for line in lines]
    return split if of > 0 and sum(split) == of else None


def split_on_lines(
    program: Program, rule: Rule, of: int, bought: Sequence[Mapping[str, Any]], count: int
) -> list[int] | None:
    """``of`` points of ``rule`` over the order's lines it counts, as it gave them: per item by quantity, else
    by amount. None when the lines cannot tell (a body kept without them): the order's share serves then."""
    if len(bought) != count:
        return None
    c = rule.conditions
    categories = {name_key(name) for name in c.categories or ()}
    brands = {name_key(name) for name in c.brands or ()}

    def counts(line: Mapping[str, Any]) -> bool:
        return (
            (line.get("kind") != "gift_card" or program.earn_on_gift_cards)
            and (c.skus is None or line.get("sku") in c.skus)
            and (c.categories is None or name_key(line.get("category")) in categories)
            and (c.brands is None or name_key(line.get("brand")) in brands)
        )

    def quantity(line: Mapping[str, Any]) -> int:
        return int(line.get("quantity") or 0)

    def amount(line: Mapping[str, Any]) -> int:
        return quantity(line) * int(line.get("unit_price") or 0) - int(line.get("discount") or 0)

    by_quantity = [quantity(line) if counts(line) else 0 for line in bought]
    by_amount = [amount(line) if counts(line) else 0 for line in bought]
    weights = by_quantity if isinstance(rule.effect, PerItem) or not any(by_amount) else by_amount
    return split_proportionally(of, weights) if any(weights) else None


def share_on_lines(split: Sequence[int], lines: LinesReturned, points: Returned) -> int:
    """What a return gives back of an award whose points fell on the lines as ``split``: the points of its own
    lines returned, and of the rest the share a refund by amount took of the order's points not returned by
    line. Worked out on everything returned so far, less what earlier returns gave back: returned in parts or
    at once, the order gives back all of the award, exactly."""
    of = sum(split)

    def lost(returned: Sequence[int], taken: int) -> int:
        if taken >= points.whole:
            return of
        per_line = [(int(line["quantity"]), int(line["points"])) for line in lines.lines]
        mine = sum(p * r // q for p, r, (q, _) in zip(split, returned, per_line, strict=True) if q > 0)
        order = min(sum(p * r // q for r, (q, p) in zip(returned, per_line, strict=True) if q > 0), points.whole)
        by_amount = max(min(taken, points.whole) - order, 0)
        rest = points.whole - order
        return mine + ((of - mine) * by_amount // rest if rest > 0 else 0)

    return lost(lines.after, points.after) - lost(lines.before, points.before)
