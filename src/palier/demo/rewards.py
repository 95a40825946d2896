"""Maison Fournil's reward catalog, and the few redemptions members make once it opens.

The catalog opens ``CATALOG_OPENS_DAYS`` before today. Each scheduled redemption runs at opening time
(7 a.m.) on the first morning of the week it falls in, before that week's enrolments and purchases,
through the same services as the API: redeeming holds the points and issues a coupon, using it at the
till captures them and the order is then recorded with the coupon's discount, cancelling gives the
points back, an unused coupon expires with the weekly jobs; store credit lands in the wallet; points
pay part of a web order before the order is recorded. The member is the one who has just reached the
cost (the fewest points among those who can afford it) and has not redeemed yet, so every step is one
the engine accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from palier.activity.models import Line, PurchaseIn
from palier.activity.service import record_purchase
from palier.clock import FrozenClock
from palier.demo import catalog
from palier.demo.history import CATALOG_OPENS_DAYS, Day, local
from palier.demo.people import Person
from palier.ledger.tables import accounts
from palier.programs.models import Program
from palier.rewards import payments
from palier.rewards import service as rewards
from palier.rewards.models import CouponUse, PaymentIn, RedeemIn, RewardIn

COFFEE = "BOI-CAFE-CREME"


def _reward(kind: str, cost: int, fr: str, en: str, about_fr: str, about_en: str, **fields: Any) -> RewardIn:
    return RewardIn.model_validate(
        {
            "kind": kind,
            "cost_points": cost,
            "title": {"fr": fr, "en": en},
            "description": {"fr": about_fr, "en": about_en},
            **fields,
        }
    )


REWARDS = {
    "coffee": _reward(
        "free_product", 100, "Café crème offert", "Free café crème",
        "Un café crème offert en boutique ou à emporter.", "A café crème on us, in store or to take away.",
        sku=COFFEE,
    ),
    "delivery": _reward(
        "free_shipping", 300, "Frais de port offerts", "Shipping on us",
        "Les frais de port de votre prochaine commande en ligne.", "Shipping on your next online order.",
        channels=["web", "app"],
    ),
    "voucher": _reward(
        "amount_off", 500, "Bon de 5 €", "€5 voucher",
        "5 € de réduction sur votre prochain achat.", "€5 off your next purchase.",
        amount=500,
    ),
    "tote": _reward(
        "gift", 700, "Tote bag Maison Fournil", "Maison Fournil tote bag",
        "Notre tote bag en coton bio, à retirer en boutique.", "Our organic cotton tote bag, to collect in store.",
        stock=50,
    ),
    "credit": _reward(
        "store_credit", 1000, "10 € d'avoir", "€10 store credit",
        "1 000 points deviennent 10 € d'avoir, utilisables en boutique et en ligne.",
        "1,000 points become €10 of store credit, to spend in store and online.",
        amount=1000,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Planned:
    days_before_end: int
    reward: str  # a key of REWARDS
    then: str  # "use" at the till (or online), "cancel", "keep" (still open today), "lapse", "credit", "pay"


# "pay" is not a reward: points pay part of a web order directly.
PAY_POINTS = 1500
SCHEDULE = [
    Planned(92, "coffee", "use"),
    Planned(80, "voucher", "use"),
    Planned(66, "coffee", "use"),
    Planned(60, "tote", "use"),
    Planned(52, "coffee", "lapse"),
    Planned(45, "delivery", "use"),
    Planned(38, "voucher", "cancel"),
    Planned(30, "coffee", "use"),
    Planned(24, "credit", "credit"),
    Planned(17, "pay", "pay"),
    Planned(10, "tote", "keep"),
]


class Redeemer:
    """Plays the schedule for one demo program; the player calls it at the start of every week."""

    def __init__(
        self, clock: FrozenClock, program: Program, people: list[Person], last_day: date, card_key: bytes
    ) -> None:
        self.clock, self.program, self.people, self.card_key = clock, program, people, card_key
        self.end_day = last_day
        self.reward_ids: dict[str, str] = {}
        self.redeemed: set[str] = set()  # members who have had their turn
        self.orders = 0

    def morning(self, conn: Connection, days: list[Day], member_ids: dict[int, str]) -> None:
        """The week's first morning: the catalog opens (that week), then the week's redemptions."""
        week = {d.day for d in days}
        opening = time_of(days[0], 0)
        if self.end_day - timedelta(days=CATALOG_OPENS_DAYS) in week:
            self.clock.set(opening)
            for key, data in REWARDS.items():
                reward = rewards.create_reward(
                    conn=conn, clock=self.clock, program=self.program, data=data, actor="demo"
                )
                self.reward_ids[key] = reward.id
        for n, redemption in enumerate(r for r in SCHEDULE if self._day(r) in week):
            self.clock.set(time_of(days[0], 10 * (n + 1)))
            self._run(conn, redemption, member_ids)

    def _day(self, r: Planned) -> date:
        return self.end_day - timedelta(days=r.days_before_end)

    def _run(self, conn: Connection, redemption: Planned, member_ids: dict[int, str]) -> None:
        cost = PAY_POINTS if redemption.then == "pay" else REWARDS[redemption.reward].cost_points
        person = self._first_to_afford(conn, member_ids, cost)
        if person is None:  # a small demo: nobody can afford it this week
            return
        member_id = member_ids[person.index]
        self.redeemed.add(member_id)
        if redemption.then == "pay":
            self._pay_with_points(conn, member_id)
            return
        channel = "web" if redemption.reward in ("delivery", "credit") else "store"
        data = RedeemIn.model_validate({"reward_id": self.reward_ids[redemption.reward], "channel": channel})
        coupon = rewards.redeem(conn=conn, clock=self.clock, program=self.program, member_id=member_id, data=data)
        code = coupon.coupon.code
        if redemption.then == "cancel":  # changed their mind at the till
            self.clock.advance(minutes=5)
            rewards.cancel_coupon(conn=conn, clock=self.clock, program=self.program, code=code, actor="demo")
        elif redemption.then == "use":
            self._use(conn, person, member_id, redemption.reward, code)

    def _first_to_afford(self, conn: Connection, member_ids: dict[int, str], cost: int) -> Person | None:
        """The member with the fewest available points (at least ``cost``) who still shops and has not redeemed."""
        index = {member_id: i for i, member_id in member_ids.items()}
        rows = conn.execute(
            select(accounts.c.member_id, accounts.c.balance).where(
                accounts.c.program_id == self.program.id, accounts.c.kind == "available", accounts.c.balance >= cost
            )
        ).all()
        now = self.clock.now()
        for member_id, _ in sorted(rows, key=lambda r: (r.balance, index.get(r.member_id, -1))):
            person = self.people[index[member_id]] if member_id in index else None
            if (
                person is not None
                and member_id not in self.redeemed
                and person.duplicate_of is None
                and (person.quits_at is None or now < person.quits_at)
            ):
                return person
        return None

    def _use(self, conn: Connection, person: Person, member_id: str, reward: str, code: str) -> None:
        """The coupon goes on an order at the till (or online for delivery), then the order is recorded."""
        web = reward == "delivery"
        basket = {"EPI-CAFE-GRAINS-250": 2, "EPI-CONFITURE": 1} if web else _till_basket(reward)
        lines = [Line.model_validate(line) for line in catalog.lines(basket)]
        shipping = catalog.SHIPPING if web else 0
        order_id = self._order_id("WEB" if web else catalog.STORE_CODES[person.home_store])
        store = None if web else person.home_store
        use = CouponUse(
            channel="web" if web else "store",
            order_id=order_id,
            store_id=store,
            member_id=member_id,
            lines=lines,
            shipping=shipping,
        )
        used, _ = rewards.use_coupon(conn=conn, clock=self.clock, program=self.program, code=code, use=use)
        off = used.discount or 0
        if reward == "delivery":
            shipping -= off
        elif off:  # the discount goes on the line it is for (the coffee), or the dearest line
            target = next((line for line in lines if line.sku == COFFEE), None) if reward == "coffee" else None
            target = target or max(lines, key=lambda line: line.amount)
            lines = [line.model_copy(update={"discount": off}) if line is target else line for line in lines]
        self._record(conn, member_id, order_id, store, lines, shipping)

    def _pay_with_points(self, conn: Connection, member_id: str) -> None:
        """A gift box ordered online, about a fifth of it paid with points at checkout, then the order recorded."""
        basket = {"EPI-COFFRET-THE": 1, "EPI-CAFE-GRAINS-1K": 1, "PAT-MACARONS-12": 1}
        lines = [Line.model_validate(line) for line in catalog.lines(basket)]
        total = sum(line.amount for line in lines)  # 77 €: shipping is free from 49 €
        order_id = self._order_id("WEB")
        pay = PaymentIn(kind="points", order_id=order_id, order_total=total, points=PAY_POINTS, channel="web")
        payments.pay(conn=conn, clock=self.clock, program=self.program, member_id=member_id, data=pay)
        self._record(conn, member_id, order_id, None, lines, 0)

    def _record(
        self, conn: Connection, member_id: str, order_id: str, store: str | None, lines: list[Line], shipping: int
    ) -> None:
        purchase = PurchaseIn.model_validate(
            {
                "order_id": order_id,
                "member": {"member_id": member_id},
                "channel": "store" if store else "web",
                "store_id": store,
                "store_name": catalog.STORES[store] if store else None,
                "occurred_at": self.clock.now(),
                "currency": self.program.currency,
                "lines": [line.model_dump() for line in lines],
                "shipping": shipping,
            }
        )
        record_purchase(conn=conn, clock=self.clock, program=self.program, purchase=purchase, card_key=self.card_key)

    def _order_id(self, prefix: str) -> str:
        self.orders += 1
        return f"{prefix}-{self.clock.now():%y%m%d}-R{self.orders:02d}"


def time_of(day: Day, minutes: int) -> datetime:
    """``minutes`` past opening time (7 a.m., before anyone enrols) on ``day``."""
    return local(day.day, 7.0) + timedelta(minutes=minutes)


def _till_basket(reward: str) -> catalog.Basket:
    if reward == "coffee":
        return {COFFEE: 1, "VIE-CROISSANT": 2}
    if reward == "voucher":
        return {"PAT-FRAISIER": 1, "PAIN-BAGUETTE": 1}
    return {"VIE-PAIN-CHOC": 2, "BOI-EXPRESSO": 1, "PAIN-BAGUETTE": 1}  # the tote bag, with breakfast
