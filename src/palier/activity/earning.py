"""What a purchase earns, line by line: pure arithmetic, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from palier.activity.models import PurchaseIn
from palier.programs.models import ProgramSettings
from palier.units import Rounding, divide, points_for_amount, split_proportionally


@dataclass(frozen=True)
class Earning:
    total: int  # everything paid: lines, shipping, tax
    eligible: int  # the part that earns points
    points: int
    line_eligible: list[int]
    line_points: list[int]


def purchase_earning(purchase: PurchaseIn, program: ProgramSettings, *, paid_otherwise: int = 0) -> Earning:
    """Points for the eligible part of the order at the program's base rate and rounding.

    ``paid_otherwise``: minor units of the order paid with points or store credit. Points are earned
    only on the part paid with money, so the eligible amount shrinks in the same proportion.

    The order's points are then split over its lines (largest remainder) so returning every line
    gives back exactly what the order earned.
    """
    line_eligible = [
        line.amount if line.kind != "gift_card" or program.earn_on_gift_cards else 0 for line in purchase.lines
    ]
    eligible = sum(line_eligible)
    if program.earn_on_shipping:
        eligible += purchase.shipping
    if program.earn_on_tax:
        eligible += purchase.tax
    total = order_total(purchase)
    if paid_otherwise and total:
        eligible = divide(eligible * max(total - paid_otherwise, 0), total, Rounding.FLOOR)
    points = points_for_amount(
        eligible,
        points=program.earn_points,
        per_amount=program.earn_per_amount,
        mode=Rounding(program.rounding),
    )
    return Earning(
        total=total,
        eligible=eligible,
        points=points,
        line_eligible=line_eligible,
        line_points=split_proportionally(points, line_eligible),
    )


def order_total(purchase: PurchaseIn) -> int:
    """Everything the order costs: its lines (after their discounts), shipping and tax."""
    return sum(line.amount for line in purchase.lines) + purchase.shipping + purchase.tax


def anonymous_earning(purchase: PurchaseIn, program: ProgramSettings) -> Earning:
    """A purchase by a shopper who is not a member: its amounts are kept (basket size), it earns nothing."""
    base = purchase_earning(purchase, program)
    return Earning(
        total=base.total,
        eligible=base.eligible,
        points=0,
        line_eligible=base.line_eligible,
        line_points=[0] * len(purchase.lines),
    )
