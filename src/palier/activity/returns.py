"""What a return takes back: pure arithmetic over an order's lines and what was returned before.

Everything is cumulative: after each return we compute what the *whole* returned part of the order
earned and take back the difference with what was already taken. So several partial returns of one
order add up exactly to what a single full return would take, never a point more or less.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from palier.activity.models import ReturnIn
from palier.errors import Unprocessable
from palier.programs.models import Program


@dataclass(frozen=True)
class ReturnPlan:
    points: int  # to take back now
    refund: int  # money refunded by this return, minor units, shipping included
    items: int  # units returned by this return (0 for a refund by amount)
    lines: list[dict[str, Any]]  # the order's lines with updated returned quantities
    shipping: int = 0  # shipping refunded by this return (part of ``refund``)

    def label(self, order_id: str) -> str:
        if self.items:
            return f"Returned {self.items} item{'s' if self.items > 1 else ''} from order #{order_id}"
        if self.shipping == self.refund:
            return f"Shipping refunded on order #{order_id}"
        return f"Refund on order #{order_id}"


def _line_value(line: dict[str, Any], returned: int) -> int:
    return int(line["amount"]) * returned // int(line["quantity"])


def _line_points(line: dict[str, Any], returned: int) -> int:
    return int(line["points"]) * returned // int(line["quantity"])


def _returned_points(order: dict[str, Any], lines: list[dict[str, Any]], refunded: int) -> int:
    """Points earned by everything returned or refunded so far (capped at what the order earned).

    Returned items give back their own points. A refund by amount refunds the goods first: it gives back a
    share of the points not already returned, in proportion to the money not already refunded, shipping
    left out when it earned nothing when the order was recorded (refunding €50 of a €50 order shipped for
    €5 takes every point; a refund of its shipping takes none). Tax and gift cards are shared in
    proportion (a refund of an item refunds its tax); return gift-card lines by line. A fully refunded
    order keeps no points.
    """
    points, total = int(order["points"]), int(order["total"])
    if refunded >= total:
        return points
    by_lines = sum(_line_points(line, line["returned"]) for line in lines)
    by_lines_value = sum(_line_value(line, line["returned"]) for line in lines)
    by_amount_value, rest_total = refunded - by_lines_value, total - by_lines_value
    if int(order["shipping_eligible"]) == 0:  # shipping earned nothing when the order was recorded
        by_amount_value -= int(order["shipping_refunded"])
        rest_total -= int(order["shipping"])
    rest_points = points - by_lines
    by_amount = rest_points * min(by_amount_value, rest_total) // rest_total if rest_total > 0 else 0
    return min(points, by_lines + by_amount)


def plan_return(*, order: dict[str, Any], ret: ReturnIn, program: Program) -> ReturnPlan:
    lines = copy.deepcopy(order["lines"])
    refunded_before = int(order["refunded"])
    refund = 0
    items = 0
    if ret.lines is not None:
        for i, wanted in enumerate(ret.lines):
            matching = [line for line in lines if line["sku"] == wanted.sku]
            if not matching:
                raise Unprocessable(
                    "line_not_in_order",
                    f"Order #{order['order_id']} has no item {wanted.sku!r}.",
                    field=f"lines[{i}].sku",
                )
            returnable = sum(line["quantity"] - line["returned"] for line in matching)
            if wanted.quantity > returnable:
                raise Unprocessable(
                    "return_exceeds_purchase",
                    f"Only {returnable} of {wanted.sku!r} can still be returned on order #{order['order_id']}.",
                    field=f"lines[{i}].quantity",
                    returnable=returnable,
                )
            left = wanted.quantity
            for line in matching:
                part = min(left, line["quantity"] - line["returned"])
                refund += _line_value(line, line["returned"] + part) - _line_value(line, line["returned"])
                line["returned"] += part
                left -= part
            items += wanted.quantity
    elif ret.amount is not None:
        refundable = int(order["total"]) - refunded_before
        if ret.amount > refundable:
            raise Unprocessable(
                "return_exceeds_purchase",
                f"Only {program.money(refundable)} of order #{order['order_id']} can still be refunded.",
                field="amount",
                refundable=refundable,
            )
        refund = ret.amount
    shipping = ret.shipping or 0
    if shipping:
        left = int(order["shipping"]) - int(order["shipping_refunded"])
        if shipping > left:
            raise Unprocessable(
                "return_exceeds_purchase",
                f"Only {program.money(left)} of shipping on order #{order['order_id']} can still be refunded.",
                field="shipping",
                refundable=left,
            )
        refund += shipping
    if refunded_before + refund > int(order["total"]):
        left = int(order["total"]) - refunded_before
        raise Unprocessable(
            "return_exceeds_purchase",
            f"This return would refund more than the order cost: {program.money(left)} can still be refunded.",
            field="lines" if ret.lines is not None else "amount" if ret.amount is not None else "shipping",
            refundable=left,
        )
    before = int(order["points_returned"])  # what was actually taken back so far
    now_refunded = {**order, "shipping_refunded": int(order["shipping_refunded"]) + shipping}
    after = _returned_points(now_refunded, lines, refunded_before + refund)
    # never negative: a later item return can re-spread earlier refunds, but points only ever go back
    return ReturnPlan(points=max(0, after - before), refund=refund, items=items, lines=lines, shipping=shipping)
