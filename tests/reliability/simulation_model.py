"""The reference model of the deterministic simulation: a member's points as the README and DESIGN describe
them, in plain Python, written without the engine's code.

- A purchase earns 1 point per 1.00 of its amount, rounded down; its shipping earns nothing. In a program with
  the "big basket" rule (``BIG_BASKET``), goods of 40.00 or more earn 7 points more. Its points make
  one lot, pending until the return window has passed (available at once without one), expiring 12 calendar
  months after the purchase (the day clamped to the month's end). Points that become available repay debt
  first. A purchase sent after its points' life has ended earns them expired: never spendable.
- Spending (a redemption's hold, a payment in points) takes the soonest-expiring lots first, never-expiring
  last, older before newer. A redemption holds its cost; using the coupon keeps the points spent, cancelling
  it gives each part back to its lot unless that lot has expired since, whose part expires.
- A refund by amount refunds the goods first, a refund of shipping refunds no goods; a return takes back what
  the refunded share of the goods earned (all of it once the whole order is refunded) — cumulative over the
  order's returns —
  from the order's own lot first (pending or available), then nothing for the part of that lot which has
  expired (it already left the member), then other available points soonest-expiring first, and what is
  still missing becomes debt. A pending lot emptied by returns is reversed. What the return took from other
  lots or booked as debt stands in for the own lot's points that were out: when those come back (a coupon
  cancelled), they cancel that debt (while owed), then go back to those lots (longest-lasting first; expiring
  if that lot has expired since), and only the rest to their own lot.
- The maturity job makes due pending lots available (repaying debt first, lot by lot); the expiry job
  expires every due available lot, taking what is left of it. A debit (a redemption, a payment in points, a
  return that takes points back, a debt repaid) first does both for its member, as the jobs would; a refused
  one does neither. A balance is shown as it stands once the jobs have run.
- A merge moves the duplicate's lots, holds, coupons, orders and debt to the member who remains.
- A member never owes points while holding some to spend: after a merge, and when a cancelled coupon gives
  points back, those repay the debt at once, soonest-expiring first.
"""

from __future__ import annotations

import calendar
import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

LIFETIME_MONTHS = 12
PER_POINT = 100  # minor units per point
BIG_BASKET = (4_000, 7)  # goods of at least this much (minor units) earn these points more, when the rule is on


def add_months(when: datetime, months: int) -> datetime:
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    return when.replace(year=year, month=month, day=min(when.day, calendar.monthrange(year, month)[1]))


@dataclass
class Lot:
    order_id: str
    member: str
    amount: int
    remaining: int
    state: str  # pending, active, expired, reversed
    earned_at: datetime
    matures_at: datetime
    expires_at: datetime
    expired_part: int = 0  # what the expiry took from it (a return later excuses up to this much)
    # what a return of its order took elsewhere in place of its points that were out: [lot or None (debt), points]
    stand_ins: list[list[Any]] = field(default_factory=list)

    def sort_key(self) -> tuple[datetime, datetime, str]:
        return (self.expires_at, self.earned_at, self.order_id)


@dataclass
class Order:
    order_id: str
    member: str
    total: int
    points: int
    lot: Lot | None
    shipping: int = 0
    refunded: int = 0  # shipping included
    shipping_refunded: int = 0
    returned: int = 0  # points taken back so far
    excused: int = 0  # expired points of the own lot already excused by earlier returns


@dataclass
class Coupon:
    key: str
    member: str
    cost: int
    parts: list[tuple[Lot, int]]
    state: str = "issued"  # issued, used, cancelled


@dataclass
class Account:
    available: int = 0
    pending: int = 0
    held: int = 0
    debt: int = 0


class Refused(Exception):
    """The model's refusal; ``code`` is the problem code the engine must answer with."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Model:
    window_days: int
    now: datetime
    big_basket: bool = False  # whether the program has the BIG_BASKET earning rule
    accounts: dict[str, Account] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)
    lots: list[Lot] = field(default_factory=list)
    orders: dict[str, Order] = field(default_factory=dict)
    coupons: dict[str, Coupon] = field(default_factory=dict)

    def enrol(self, member: str) -> None:
        self.accounts[member] = Account()

    def active_members(self) -> list[str]:
        return [m for m in self.accounts if m not in self.merged_into]

    # --- earning ---

    def purchase(
        self, member: str, order_id: str, amount: int, *, shipping: int = 0, occurred: datetime | None = None
    ) -> int:
        occurred = occurred or self.now
        points = amount // PER_POINT
        if self.big_basket and amount >= BIG_BASKET[0]:
            points += BIG_BASKET[1]
        account = self.accounts[member]
        lot = None
        if points > 0:
            matures, expires = occurred + timedelta(days=self.window_days), add_months(occurred, LIFETIME_MONTHS)
            lot = Lot(order_id, member, points, points, "pending", occurred, matures, expires)
            self.lots.append(lot)
            if expires <= self.now:  # its life is over: gone as it comes
                lot.state, lot.remaining, lot.expired_part = "expired", 0, points
            elif matures > self.now:
                account.pending += points
            else:
                lot.state = "active"
                self._credit(account, lot)
        self.orders[order_id] = Order(order_id, member, amount + shipping, points, lot, shipping)
        return points

    def _credit(self, account: Account, lot: Lot) -> None:
        """``lot`` becomes spendable: it repays debt first."""
        repay = min(account.debt, lot.remaining)
        account.debt -= repay
        lot.remaining -= repay
        account.available += lot.remaining

    # --- spending ---

    def _take(self, member: str, amount: int, *, exclude: Lot | None = None) -> list[tuple[Lot, int]]:
        parts, left = [], amount
        for lot in sorted(self._spendable(member), key=Lot.sort_key):
            if left == 0:
                break
            if lot is exclude:
                continue
            part = min(left, lot.remaining)
            lot.remaining -= part
            parts.append((lot, part))
            left -= part
        return parts

    def _spendable(self, member: str) -> list[Lot]:
        return [lot for lot in self.lots if lot.member == member and lot.state == "active" and lot.remaining > 0]

    def _debit(self, member: str, points: int) -> None:
        """The member caught up for a debit of ``points``, or refused with nothing changed."""
        trial = copy.deepcopy(self)
        trial.catch_up(member)
        if trial.accounts[member].available < points:
            raise Refused("insufficient_points")
        self.catch_up(member)

    def redeem(self, member: str, key: str, cost: int) -> None:
        self._debit(member, cost)
        account = self.accounts[member]
        parts = self._take(member, cost)
        account.available -= cost
        account.held += cost
        self.coupons[key] = Coupon(key, member, cost, parts)

    def use(self, key: str) -> None:
        coupon = self.coupons[key]
        if coupon.state != "issued":
            raise Refused("coupon_used" if coupon.state == "used" else "coupon_cancelled")
        coupon.state = "used"
        self.accounts[coupon.member].held -= coupon.cost

    def _settle(self, member: str) -> None:
        """A member who owes points and has some to spend repays the debt from them, soonest-expiring first."""
        if self.accounts[member].debt <= 0:
            return
        self.catch_up(member)
        account = self.accounts[member]
        repay = min(account.debt, account.available)
        self._take(member, repay)
        account.available -= repay
        account.debt -= repay

    def cancel(self, key: str) -> None:
        coupon = self.coupons[key]
        if coupon.state == "cancelled":
            return  # cancelling twice is the same cancellation
        if coupon.state == "used":
            raise Refused("coupon_used")
        coupon.state = "cancelled"
        account = self.accounts[coupon.member]
        account.held -= coupon.cost
        for lot, part in coupon.parts:
            for stand_in in sorted(lot.stand_ins, key=self._stand_in_order):
                instead, owed = stand_in
                back = min(part, owed, account.debt) if instead is None else min(part, owed)
                stand_in[1] -= back
                part -= back
                if instead is None:
                    account.debt -= back
                else:
                    self._give_back(account, instead, back)
            self._give_back(account, lot, part)
        self._settle(coupon.member)

    def _stand_in_order(self, stand_in: list[Any]) -> tuple[Any, ...]:
        """Debt first, then the lots lasting longest, the newest first."""
        lot = stand_in[0]
        if lot is None:
            return (0,)
        return (1, -lot.expires_at.timestamp(), -lot.earned_at.timestamp())

    def _give_back(self, account: Account, lot: Lot, part: int) -> None:
        if lot.state == "active" and lot.expires_at > self.now:
            lot.remaining += part
            account.available += part
        else:  # the part expires with its lot: it leaves the member, and a return of the order excuses it
            lot.expired_part += part

    def pay(self, member: str, points: int) -> None:
        self._debit(member, points)
        account = self.accounts[member]
        self._take(member, points)
        account.available -= points

    # --- returns ---

    def refund(self, order_id: str, amount: int = 0, *, shipping: int = 0) -> int:
        """A refund by amount, or of shipping; the points taken back."""
        order = self.orders[order_id]
        if shipping > order.shipping - order.shipping_refunded or amount + shipping > order.total - order.refunded:
            raise Refused("return_exceeds_purchase")  # nor more than the order cost, however it was refunded
        order.refunded += amount + shipping
        order.shipping_refunded += shipping
        goods, goods_refunded = order.total - order.shipping, order.refunded - order.shipping_refunded
        if order.refunded >= order.total:
            earned_back = order.points
        else:
            earned_back = order.points * min(goods_refunded, goods) // goods
        owed = max(0, earned_back - order.returned)
        order.returned += owed
        if owed == 0:
            return 0
        member = order.member
        self.catch_up(member)
        account = self.accounts[member]
        taken = 0
        lot = order.lot
        if lot is not None and lot.state in ("pending", "active"):
            part = min(owed, lot.remaining)
            lot.remaining -= part
            if lot.state == "pending":
                account.pending -= part
                if lot.remaining == 0:
                    lot.state = "reversed"
            else:
                account.available -= part
            taken += part
        lapsed = (lot.expired_part - order.excused) if lot is not None else 0
        excused = min(max(lapsed, 0), owed - taken)
        order.excused += excused
        rest = owed - taken - excused
        for instead, part in self._take(member, rest, exclude=lot):
            account.available -= part
            taken += part
            rest -= part
            if lot is not None:
                lot.stand_ins.append([instead, part])
        account.debt += rest
        if lot is not None and rest:
            lot.stand_ins.append([None, rest])
        return owed

    # --- jobs ---

    def catch_up(self, member: str) -> None:
        self.mature(member)
        self.expire(member)

    def mature(self, member: str | None = None) -> None:
        due = [
            lot
            for lot in self.lots
            if lot.state == "pending" and lot.matures_at <= self.now and member in (None, lot.member)
        ]
        for lot in sorted(due, key=lambda lot: (lot.matures_at, lot.order_id)):
            account = self.accounts[lot.member]
            lot.state = "active"
            account.pending -= lot.remaining
            self._credit(account, lot)

    def expire(self, member: str | None = None) -> None:
        """Every available lot past its date expires (a spent one too, with nothing left to take)."""
        for lot in self.lots:
            if lot.state == "active" and lot.expires_at <= self.now and member in (None, lot.member):
                self.accounts[lot.member].available -= lot.remaining
                lot.expired_part += lot.remaining
                lot.remaining = 0
                lot.state = "expired"

    def merge(self, source: str, target: str) -> None:
        self.catch_up(source)  # points past their date mature or expire on the account they were on
        a, b = self.accounts[source], self.accounts[target]
        b.available += a.available
        b.pending += a.pending
        b.held += a.held
        b.debt += a.debt
        self.accounts[source] = Account()
        self.merged_into[source] = target
        for lot in self.lots:
            if lot.member == source:
                lot.member = target
        self._settle(target)  # what one owed, the other's points repay at once
        for order in self.orders.values():
            if order.member == source:
                order.member = target
        for coupon in self.coupons.values():
            if coupon.member == source:
                coupon.member = target
