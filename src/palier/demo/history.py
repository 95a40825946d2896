"""A year of Maison Fournil, planned day by day before any of it is sent: pure, seeded, no I/O.

The plan says who joins, who buys what where, what comes back, which cards get linked and which
duplicate accounts get merged, each on its day. ``build.py`` then plays it through the services.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from palier.demo import catalog
from palier.demo.people import FIRST_NAMES, LAST_NAMES, Person, Registry

PARIS = ZoneInfo("Europe/Paris")
HISTORY_DAYS = 395  # a year and a month: the first month's points have expired by today
CATALOG_OPENS_DAYS = 100  # the reward catalog (demo/rewards.py) opens this many days before today
# (share, store visits, web orders, phone orders per week)
SEGMENTS = {
    "regular": (0.12, 4.0, 0.02, 0.03),
    "weekly": (0.33, 1.2, 0.05, 0.04),
    "occasional": (0.35, 0.35, 0.03, 0.03),
    "web": (0.20, 0.15, 0.30, 0.02),
}


@dataclass
class Purchase:
    when: datetime
    order_id: str  # its prefix (LYO, WEB…) until the day's purchases are numbered
    channel: str
    store_id: str | None
    basket: catalog.Basket
    person: int | None  # None: a passer-by, not a member (paying by card, or anonymous)
    ref: str  # member_id | card | payment_card | phone | email | anonymous
    pan: str | None = None  # passers-by only (members' cards are on their Person)
    shipping: int = 0


@dataclass
class Return:
    when: datetime
    order_id: str
    lines: list[tuple[str, int]] | None = None
    amount: int | None = None
    reason: str | None = None


@dataclass
class Adjustment:
    person: int
    points: int
    reason: str


@dataclass
class Day:
    day: date
    close: datetime  # when the day's activity is booked and the jobs run
    enrolments: list[int] = field(default_factory=list)
    purchases: list[Purchase] = field(default_factory=list)
    returns: list[Return] = field(default_factory=list)
    adjustments: list[Adjustment] = field(default_factory=list)
    card_links: list[int] = field(default_factory=list)
    merges: list[int] = field(default_factory=list)  # duplicate persons merged into their original


@dataclass
class Plan:
    start: datetime
    people: list[Person]
    passers_by: list[tuple[str, str]]  # (test PAN, usual store)
    days: list[Day]


def local(day: date, hour: float) -> datetime:
    minutes = int(hour * 60)
    return datetime.combine(day, time(minutes // 60, minutes % 60), PARIS).astimezone(UTC)


def plan_history(*, members: int, seed: int, end: datetime) -> Plan:
    rng = random.Random(seed)
    first_day = end.astimezone(PARIS).date() - timedelta(days=HISTORY_DAYS)
    days = [first_day + timedelta(days=n) for n in range(HISTORY_DAYS + 1)]
    start = local(first_day, 7.5)
    registry = Registry(rng)
    people = [_person(rng, registry, i, first_day, end) for i in range(members)]
    _add_duplicates(rng, registry, people, end)
    _link_later(rng, people, end)
    passers_by = [(registry.payment_card(), rng.choice(list(catalog.STORES))) for _ in range(max(3, members // 12))]
    plan = Plan(start, people, passers_by, [Day(d, min(local(d, 22.0), end)) for d in days])
    _plan_days(rng, plan, end)
    _walk_ins(random.Random(seed * 7919 + 1), plan)  # its own generator: the members' year stays as it was
    return plan


WALK_INS_PER_DAY = 3  # shoppers who are not members, on average, across the stores


def _walk_ins(rng: random.Random, plan: Plan) -> None:
    """Shoppers who are not members: each sale is sent with no member (for the members vs non-members KPIs)."""
    stores = list(catalog.STORES)
    for d in plan.days:
        weekend = d.day.weekday() >= 5
        count = sum(rng.random() < WALK_INS_PER_DAY / 6 for _ in range(6))
        for n in range(count):
            store = rng.choice(stores)
            basket, hours = catalog.store_visit(rng, weekend=weekend)
            when = local(d.day, rng.uniform(*hours))
            if when < d.close:
                order_id = f"{catalog.STORE_CODES[store]}-{d.day:%y%m%d}-P{n + 1:02d}"
                d.purchases.append(Purchase(when, order_id, "store", store, basket, None, "anonymous"))
        d.purchases.sort(key=lambda p: p.when)


def _person(rng: random.Random, registry: Registry, index: int, first_day: date, end: datetime) -> Person:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    founder = rng.random() < 0.3
    offset = rng.uniform(0, 14) if founder else rng.uniform(14, HISTORY_DAYS - 2)
    enrol_at = local(first_day + timedelta(days=int(offset)), rng.uniform(8, 19))
    segment = rng.choices(list(SEGMENTS), [s[0] for s in SEGMENTS.values()])[0]
    _, store_rate, web_rate, phone_rate = SEGMENTS[segment]
    quits = rng.random() < 0.22
    person = Person(
        index=index,
        first_name=first,
        last_name=last,
        email=registry.email(first, last),
        phone=registry.phone() if rng.random() < 0.85 else None,
        birthday=date(rng.randint(1950, 2006), rng.randint(1, 12), rng.randint(1, 28)) if rng.random() < 0.8 else None,
        language="fr" if rng.random() < 0.9 else "en",
        loyalty_card=registry.loyalty_card(),
        home_store=rng.choices(list(catalog.STORES), [3, 4, 2, 2])[0],
        enrol_at=min(enrol_at, end - timedelta(days=1)),
        enrol_channel=rng.choices(["store", "web", "app"], [55, 30, 15])[0],
        store_rate=store_rate * rng.uniform(0.6, 1.4),
        web_rate=web_rate * rng.uniform(0.5, 1.5),
        app_user=rng.random() < 0.3,
        phone_rate=phone_rate,
        consents={"email_marketing": rng.random() < 0.6, "sms_marketing": rng.random() < 0.3},
    )
    if quits:
        person.quits_at = person.enrol_at + timedelta(days=rng.uniform(30, 200))
    if rng.random() < 0.35:
        person.payment_card = registry.payment_card()
    return person


def _add_duplicates(rng: random.Random, registry: Registry, people: list[Person], end: datetime) -> None:
    """One or two people open a second account in store (card only), merged into the first later."""
    early = [p for p in people if p.enrol_at < end - timedelta(days=200) and p.quits_at is None]
    for original in rng.sample(early, min(len(early), 1 if len(people) < 100 else 2)):
        enrol_at = original.enrol_at + timedelta(days=rng.uniform(20, 60))
        people.append(
            Person(
                index=len(people),
                first_name=original.first_name,
                last_name=original.last_name,
                email=None,
                phone=None,
                birthday=None,
                language=original.language,
                loyalty_card=registry.loyalty_card(),
                home_store=rng.choice([s for s in catalog.STORES if s != original.home_store]),
                enrol_at=enrol_at,
                enrol_channel="store",
                store_rate=1.0,
                web_rate=0.0,
                app_user=False,
                phone_rate=0.0,
                duplicate_of=original.index,
                merge_at=enrol_at + timedelta(days=rng.uniform(30, 90)),
            )
        )


def _link_later(rng: random.Random, people: list[Person], end: datetime) -> None:
    """A couple of members pay by card for weeks before linking it: those purchases wait, unclaimed."""
    candidates = [p for p in people if p.payment_card and p.duplicate_of is None and p.quits_at is None]
    for person in rng.sample(candidates, min(2, len(candidates))):
        person.card_linked_at = min(person.enrol_at + timedelta(days=rng.uniform(40, 120)), end - timedelta(days=3))


def _plan_days(rng: random.Random, plan: Plan, end: datetime) -> None:
    counters: dict[str, int] = {}
    by_day = {d.day: d for d in plan.days}
    catalog_opens = end.astimezone(PARIS).date() - timedelta(days=CATALOG_OPENS_DAYS)

    def order_id(prefix: str, day: date) -> str:
        # at most 9 digits in a row: a 12-digit run could pass for a card number (and be refused)
        key = f"{prefix}-{day:%y%m%d}"
        counters[key] = counters.get(key, 0) + 1
        return f"{key}-{counters[key]:03d}"

    def day_of(when: datetime) -> Day | None:
        return by_day.get(when.astimezone(PARIS).date()) if when <= end else None

    for person in sorted(plan.people, key=lambda p: p.enrol_at):
        if (d := day_of(person.enrol_at)) is not None:
            d.enrolments.append(person.index)
        for when, attr in ((person.card_linked_at, "card_links"), (person.merge_at, "merges")):
            if when is not None and (d := day_of(when)) is not None:
                getattr(d, attr).append(person.index)
    for d in plan.days:
        weekend = d.day.weekday() >= 5
        for person in plan.people:
            _shop(rng, d, person, weekend)
        for pan, store in plan.passers_by:
            if rng.random() < 0.25 / 7:  # a visit every four weeks or so
                basket, hours = catalog.store_visit(rng, weekend=weekend)
                when = local(d.day, rng.uniform(*hours))
                d.purchases.append(
                    Purchase(
                        when,
                        catalog.STORE_CODES[store],
                        "store",
                        store,
                        basket,
                        None,
                        "payment_card",
                        pan,
                    )
                )
        d.purchases = sorted((p for p in d.purchases if p.when < d.close), key=lambda p: p.when)
        for purchase in d.purchases:  # numbered in the order they were rung up
            purchase.order_id = order_id(purchase.order_id, d.day)
        for purchase in d.purchases:
            ret = _maybe_return(rng, purchase)
            later = day_of(ret.when) if ret is not None else None
            if ret is not None and later is not None and ret.when < later.close:
                later.returns.append(ret)
        _adjustments(rng, d, plan.people)
        if d.day >= catalog_opens:  # free coffees are coupons now (demo/rewards.py), not manual debits
            d.adjustments = [a for a in d.adjustments if a.points > 0]


def _active(person: Person, when: datetime) -> bool:
    return person.enrol_at < when and (person.quits_at is None or when < person.quits_at)


def _shop(rng: random.Random, d: Day, person: Person, weekend: bool) -> None:
    """The person's purchases of the day, each with the prefix of its order id (numbered later)."""
    boost = 1.5 if weekend else 1.0
    if rng.random() < person.store_rate * boost / 7:
        app = person.app_user and rng.random() < 0.35
        basket, hours = catalog.app_order(rng, weekend=weekend) if app else catalog.store_visit(rng, weekend=weekend)
        when = local(d.day, rng.uniform(*hours))
        if _active(person, when):
            prefix = "APP" if app else catalog.STORE_CODES[person.home_store]
            ref = "member_id" if app else _till_ref(rng, person)
            channel = "app" if app else "store"
            d.purchases.append(Purchase(when, prefix, channel, person.home_store, basket, person.index, ref))
    if person.email and rng.random() < person.web_rate / 7:
        when = local(d.day, rng.uniform(8, 23.5))
        if _active(person, when):
            basket = catalog.web_order(rng, december=d.day.month == 12)
            ref = "member_id" if rng.random() < 0.7 else "email"
            shipping = catalog.shipping_for(basket)
            d.purchases.append(Purchase(when, "WEB", "web", None, basket, person.index, ref, shipping=shipping))
    if rng.random() < person.phone_rate / 7:
        when = local(d.day, rng.uniform(9, 18))
        if _active(person, when):
            ref = "phone" if person.phone else "card"
            basket = catalog.phone_order(rng)
            d.purchases.append(Purchase(when, "TEL", "phone", person.home_store, basket, person.index, ref))


def _till_ref(rng: random.Random, person: Person) -> str:
    """How the till finds the member: scanned loyalty card, the card they paid with, or their phone."""
    roll = rng.random()
    if person.payment_card and roll < 0.35:
        return "payment_card"
    if person.phone and roll > 0.88:
        return "phone"
    return "card"


def _maybe_return(rng: random.Random, purchase: Purchase) -> Return | None:
    if purchase.channel == "web" and rng.random() < 0.05:
        returnable = [(sku, q) for sku, q in purchase.basket.items() if not sku.startswith("CADEAU")]
        if returnable:
            sku, _ = rng.choice(returnable)
            when = purchase.when + timedelta(days=rng.uniform(3, 12))
            return Return(when, purchase.order_id, lines=[(sku, 1)], reason="Returned by post")
    if purchase.channel == "phone" and rng.random() < 0.04:
        when = purchase.when + timedelta(days=rng.uniform(0.2, 2))
        return Return(when, purchase.order_id, amount=500, reason="Cake damaged at pick-up: partial refund")
    if purchase.channel == "store" and "PAT-FRAISIER" in purchase.basket and rng.random() < 0.1:
        when = purchase.when + timedelta(days=rng.uniform(0.1, 1))
        return Return(when, purchase.order_id, lines=[("PAT-FRAISIER", 1)], reason="Wrong cake")
    return None


def _adjustments(rng: random.Random, d: Day, people: list[Person]) -> None:
    members = [p for p in people if p.duplicate_of is None]
    if rng.random() < len(members) / 25 / 365:  # goodwill credits: one a year per 25 members
        person = rng.choice(members)
        if _active(person, d.close):
            reason = rng.choice(["Geste commercial : commande web livrée en retard", "Désolé pour l'attente en caisse"])
            d.adjustments.append(Adjustment(person.index, rng.choice((20, 30, 50)), reason))
    if rng.random() < len(members) / 12 / 365:  # rewards taken at the till, before the catalog opened
        person = rng.choice(members)
        if _active(person, d.close):
            d.adjustments.append(Adjustment(person.index, -30, "Free café crème taken at the till"))
