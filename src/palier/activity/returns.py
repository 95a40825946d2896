"""What a return takes back: pure arithmetic over an order's lines and what was returned before.

Everything is cumulative: after each return we compute what the *whole* returned part of the order
earned and take back the difference with what was already taken. So several partial returns of one
order add up exactly to what a single full return would take, never a point more or less.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from palier.activity.models import ReturnIn, ReturnLine
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


def _tax(order: dict[str, Any], lines: list[dict[str, Any]]) -> int:
    """The order's tax: what its total holds besides its lines and shipping."""
    return max(int(order["total"]) - sum(int(line["amount"]) for line in lines) - int(order["shipping"]), 0)


def _lines_refund(order: dict[str, Any], lines: list[dict[str, Any]]) -> int:
    """What the items returned so far refund: their amounts and their share of the order's tax (in proportion
    to the lines' amounts), cumulatively, so that returning every line refunds all of the tax once."""
    value = sum(_line_value(line, line["returned"]) for line in lines)
    goods = sum(int(line["amount"]) for line in lines)
    return value + (_tax(order, lines) * value // goods if goods > 0 else 0)


def returned_points(order: dict[str, Any], lines: list[dict[str, Any]], refunded: int) -> int:
    """Points earned by everything returned or refunded so far, never more than the order earned.

    Returned items give back their own points, and refund their share of the tax with them. A refund by
    amount refunds the goods first: it gives back a share of the points not already returned, in proportion
    to the money not already refunded (the items returned and their tax left out), shipping left out when it
    earned nothing when the order was recorded (refunding €50 of a €50 order shipped for €5 takes every point;
    a refund of its shipping takes none). Tax and gift cards are shared in proportion (a refund of an item
    refunds its tax); return gift-card lines by line. A fully refunded order keeps no points.
    """
    points, total = int(order["points"]), int(order["total"])
    if refunded >= total:
        return points
    by_lines = min(sum(_line_points(line, line["returned"]) for line in lines), points)
    # an item returned before items took their tax with them refunded its amount alone: never below nothing
    by_lines_value = min(_lines_refund(order, lines), refunded)
    by_amount_value, rest_total = refunded - by_lines_value, total - by_lines_value
    if int(order["shipping_eligible"]) == 0:  # shipping earned nothing when the order was recorded
        by_amount_value -= int(order["shipping_refunded"])
        rest_total -= int(order["shipping"])
    rest_points = points - by_lines
    by_amount = rest_points * min(max(by_amount_value, 0), rest_total) // rest_total if rest_total > 0 else 0
    return min(points, by_lines + by_amount)


def _matching(order: dict[str, Any], lines: list[dict[str, Any]], wanted: ReturnLine, i: int) -> list[dict[str, Any]]:
    """The order's lines a returned item can come from: its ``line``, or every line of its SKU."""
    if wanted.line is not None:
        matching = [lines[wanted.line]] if wanted.line < len(lines) and lines[wanted.line]["sku"] == wanted.sku else []
    else:
        matching = [line for line in lines if line["sku"] == wanted.sku]
    if not matching:
        where = f" at line {wanted.line}" if wanted.line is not None else ""
        raise Unprocessable(
            "line_not_in_order",
            f"Order #{order['order_id']} has no item {wanted.sku!r}{where}.",
            field=f"lines[{i}].line" if wanted.line is not None else f"lines[{i}].sku",
        )
    return matching


def _refuse_ambiguous(
    order: dict[str, Any], lines: list[dict[str, Any]], matching: list[dict[str, Any]], wanted: ReturnLine, i: int
) -> None:
    """Some of a SKU bought on several lines at different prices: which ones came back decides the points."""
    open_lines = [line for line in matching if line["quantity"] > line["returned"]]
    prices = {Fraction(int(line["amount"]), int(line["quantity"])) for line in open_lines}
    if len(prices) > 1:
        raise Unprocessable(
            "line_ambiguous",
            f"Order #{order['order_id']} has {wanted.sku!r} on several lines at different prices: say which with "
            "`line` (its position in the order's lines, from 0).",
            field=f"lines[{i}].line",
            lines=[n for n, line in enumerate(lines) if any(line is o for o in open_lines)],
        )


def plan_return(*, order: dict[str, Any], ret: ReturnIn, program: Program) -> ReturnPlan:
    lines = copy.deepcopy(order["lines"])
    refunded_before = int(order["refunded"])
    refund = 0
    items = 0
    if ret.lines is not None:
        for i, wanted in enumerate(ret.lines):
            matching = _matching(order, lines, wanted, i)
            returnable = sum(line["quantity"] - line["returned"] for line in matching)
            if wanted.line is None and wanted.quantity < returnable:
                _refuse_ambiguous(order, lines, matching, wanted, i)
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
        # the items' share of the tax comes back with them; never beyond what is left to refund once the goods
        # are (an order refunded by amount first may have had its tax refunded already)
        tax = _lines_refund(order, lines) - _lines_refund(order, order["lines"]) - refund
        refund += max(min(tax, int(order["total"]) - refunded_before - refund), 0)
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
    after = returned_points(now_refunded, lines, refunded_before + refund)
    # never negative: a later item return can re-spread earlier refunds, but points only ever go back
    return ReturnPlan(points=max(0, after - before), refund=refund, items=items, lines=lines, shipping=shipping)
