"""The KPIs of the dashboard, read set-based from the ledger and the stored purchases (both engines).

A period is a range of days in the program's time zone, first and last day included; weeks start on
Monday. Points figures come from the ledger's program accounts: *issued* is what left ``issued`` (net of
returns taken back), *redeemed* what reached ``redeemed`` (coupons used, points paid at checkout, net of
refunds), *expired* what reached ``expired``, *debited* what reached ``adjusted`` (points taken by hand or
by an erasure, net of debits reversed): issued − redeemed − expired − debited is what members' balances gained.
Outstanding points are what members hold now, as their balances show them: available, pending and held, less
points past their expiry the job has not swept yet and less what a member owes (``debt``, which their points
repay first), never below 0 for one member; the liability is what they are worth at the program's redemption
value (``redeem_points`` points = ``redeem_amount`` minor units). What members owe beyond what they hold is
no liability, but it is shown (``owed_by_members``): the flows add up to what members hold less it.

By channel: members by the channel they joined on; purchases and active members by the order's channel;
points issued for purchases made on that channel (net of what their returns took back); points redeemed
by the channel the coupon was used or the order paid on; points expired by the channel of the purchase
that earned them. Programme-wide
movements with no channel (welcome points, manual adjustments, points debited) count only without a channel
filter.

Orders are those placed in the period; their revenue (and basket) is net of what their returns refunded so
far, whenever the return came. A non-member purchase is one with no member: sent anonymously, or paid with
a payment card nobody has linked yet. The repeat-purchase rate is a members' figure (non-members cannot
be recognised twice).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, case, distinct, func, literal, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from palier.activity.tables import events, purchases
from palier.ledger.tables import accounts, allocations, ledger_transactions, lot_state_is, lots, postings
from palier.members.tables import members, merges
from palier.programs.models import Program
from palier.rewards.payments import points_value
from palier.rewards.tables import coupons, order_payments

CHANNELS = ("web", "store", "phone", "app", "partner")
FLOWS = ("issued", "redeemed", "expired", "adjusted")


@dataclass(frozen=True)
class Period:
    """Days ``first`` to ``last`` (both included), in the program's time zone."""

    first: date
    last: date

    @classmethod
    def last_weeks(cls, today: date, weeks: int) -> Period:
        """The ``weeks`` whole weeks up to and including the current one (Monday-based)."""
        monday = today - timedelta(days=today.weekday())
        return cls(monday - timedelta(weeks=weeks - 1), today)

    def bounds(self, program: Program) -> tuple[datetime, datetime]:
        """[start, end) in UTC."""
        zone = ZoneInfo(program.timezone)
        start = datetime.combine(self.first, time(), zone).astimezone(UTC)
        end = datetime.combine(self.last + timedelta(days=1), time(), zone).astimezone(UTC)
        return start, end

    def weeks(self) -> list[date]:
        """The Mondays of the weeks the period touches."""
        monday = self.first - timedelta(days=self.first.weekday())
        found = []
        while monday <= self.last:
            found.append(monday)
            monday += timedelta(weeks=1)
        return found


@dataclass(frozen=True)
class WeekPoints:
    week: date  # its Monday
    issued: int
    redeemed: int
    expired: int
    debited: int = 0  # taken out by hand (a debit adjustment) or by an erasure, net of debits reversed


@dataclass(frozen=True)
class Orders:
    """Orders of one kind of shopper in the period: how many, what they paid, the average basket."""

    orders: int = 0
    revenue: int = 0  # minor units: what the orders came to, less what their returns refunded so far

    @property
    def basket(self) -> int | None:
        """Average order value (net of refunds) in minor units, rounded half up, or None without orders."""
        return (2 * self.revenue + self.orders) // (2 * self.orders) if self.orders else None


@dataclass(frozen=True)
class Kpis:
    period: Period
    channel: str | None
    members: int  # enrolled by the end of the period (not merged away)
    new_members: int  # enrolled during the period
    active_members: int  # members with at least one purchase in the period
    buying_members_repeat: int  # of those, how many bought at least twice
    weeks: list[WeekPoints]
    outstanding_points: int  # held by members now: available + pending + held
    liability: int  # minor units: outstanding points at the program's redemption value
    store_credit: int = 0  # minor units: what members hold in their wallets, owed as money
    owed_by_members: int = 0  # points members owe beyond what they hold (a return took back points they had spent)
    member_orders: Orders = field(default_factory=Orders)
    non_member_orders: Orders = field(default_factory=Orders)

    @property
    def owed(self) -> int:
        """Everything the program owes its members now, in minor units: their points' worth and store credit."""
        return self.liability + self.store_credit

    @property
    def issued(self) -> int:
        return sum(w.issued for w in self.weeks)

    @property
    def redeemed(self) -> int:
        return sum(w.redeemed for w in self.weeks)

    @property
    def expired(self) -> int:
        return sum(w.expired for w in self.weeks)

    @property
    def debited(self) -> int:
        return sum(w.debited for w in self.weeks)

    @property
    def redemption_rate(self) -> float | None:
        """Points redeemed per point issued in the period (None when nothing was issued)."""
        return self.redeemed / self.issued if self.issued > 0 else None

    @property
    def breakage_rate(self) -> float | None:
        """Points that expired per point issued in the period, the part of what the program gives that is never
        redeemed (None when nothing was issued). Like the redemption rate, it sets one period's flows side by
        side: the points expiring now were mostly issued a lifetime earlier."""
        return self.expired / self.issued if self.issued > 0 else None

    @property
    def repeat_rate(self) -> float | None:
        """Share of the period's buying members who bought at least twice in it."""
        return self.buying_members_repeat / self.active_members if self.active_members else None


def kpis(*, conn: Connection, program: Program, period: Period, now: datetime, channel: str | None = None) -> Kpis:
    """Every figure of the dashboard for ``period`` (and ``channel``, when given); what members hold, at ``now``."""
    if channel is not None and channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    start, end = period.bounds(program)
    enrolled, new = _members(conn, program, start, end, channel)
    active, repeat = _repeat(conn, program, start, end, channel)
    outstanding, owed = _outstanding(conn, program, now)
    member_orders, non_member_orders = _orders(conn, program, start, end, channel)
    return Kpis(
        period=period,
        channel=channel,
        members=enrolled,
        new_members=new,
        active_members=active,
        buying_members_repeat=repeat,
        weeks=_weekly_points(conn, program, period, channel),
        outstanding_points=outstanding,
        liability=points_value(program, outstanding),
        store_credit=_store_credit(conn, program),
        owed_by_members=owed,
        member_orders=member_orders,
        non_member_orders=non_member_orders,
    )


def _members(
    conn: Connection, program: Program, start: datetime, end: datetime, channel: str | None
) -> tuple[int, int]:
    new = case((members.c.enrolled_at >= start, 1), else_=0)
    query = select(func.count(), func.coalesce(func.sum(new), 0)).where(
        members.c.program_id == program.id, members.c.status == "active", members.c.enrolled_at < end
    )
    if channel is not None:
        query = query.where(members.c.enrolment_channel == channel)
    total, joined = conn.execute(query).one()
    return int(total), int(joined)


def _purchases_in(program: Program, start: datetime, end: datetime, channel: str | None) -> list[ColumnElement[bool]]:
    where = [
        events.c.program_id == program.id,
        events.c.type == "purchase",
        events.c.occurred_at >= start,
        events.c.occurred_at < end,
    ]
    if channel is not None:
        where.append(events.c.channel == channel)
    return where


def _orders(
    conn: Connection, program: Program, start: datetime, end: datetime, channel: str | None
) -> tuple[Orders, Orders]:
    is_member = case((purchases.c.member_id.is_(None), 0), else_=1).label("is_member")
    rows = conn.execute(
        select(is_member, func.count(), func.coalesce(func.sum(purchases.c.total - purchases.c.refunded), 0))
        .select_from(events.join(purchases, purchases.c.event_id == events.c.id))
        .where(*_purchases_in(program, start, end, channel))
        .group_by(is_member)
    ).all()
    found = {int(flag): Orders(orders=int(n), revenue=int(total)) for flag, n, total in rows}
    return found.get(1, Orders()), found.get(0, Orders())


def _repeat(conn: Connection, program: Program, start: datetime, end: datetime, channel: str | None) -> tuple[int, int]:
    per_member = (
        select(purchases.c.member_id, func.count().label("orders"))
        .select_from(events.join(purchases, purchases.c.event_id == events.c.id))
        .where(*_purchases_in(program, start, end, channel), purchases.c.member_id.is_not(None))
        .group_by(purchases.c.member_id)
        .subquery()
    )
    buyers, repeat = conn.execute(
        select(func.count(), func.coalesce(func.sum(case((per_member.c.orders >= 2, 1), else_=0)), 0))
    ).one()
    return int(buyers), int(repeat)


def _past_expiry(program: Program, now: datetime) -> list[list[ColumnElement[bool]]]:
    """Lots whose points are gone at ``now`` but that the expiry job has not swept yet: active ones, and
    pending ones due to mature and expire at once. The program's id is compared through an expression so
    that SQLite reads the jobs' partial indexes of due lots (a few rows), not every lot of the program."""
    mine = lots.c.program_id.concat("") == program.id
    return [
        [mine, lot_state_is("active"), lots.c.expires_at <= now, lots.c.remaining > 0],
        [mine, lot_state_is("pending"), lots.c.matures_at <= now, lots.c.expires_at <= now, lots.c.remaining > 0],
    ]


def _outstanding(conn: Connection, program: Program, now: datetime) -> tuple[int, int]:
    """The points members hold now, as their balances show them: available, pending and held, less the points
    of lots past their expiry that the job has not swept yet (gone the instant they expire), and less what a
    member owes (``debt``: their points repay it before they can be spent), never below 0 for one member; and
    what members owe beyond what they hold (the debt their points do not cover yet)."""
    kinds = ("available", "pending", "held", "debt")
    mine = and_(accounts.c.program_id == program.id, accounts.c.member_id.is_not(None), accounts.c.asset == "PTS")
    held = conn.execute(
        select(func.coalesce(func.sum(accounts.c.balance), 0)).where(
            mine, accounts.c.kind.in_(("available", "pending", "held"))
        )
    ).scalar()
    # The few members whose balances are not simply what they hold: those who owe points, and those with
    # points past their expiry (read from the expiry job's indexes of due lots).
    due = union_all(
        *(select(lots.c.member_id, lots.c.remaining).where(*where) for where in _past_expiry(program, now))
    ).subquery()
    gone = select(due.c.member_id, func.sum(due.c.remaining).label("gone")).group_by(due.c.member_id).subquery()
    owing = select(accounts.c.member_id).where(mine, accounts.c.kind == "debt", accounts.c.balance < 0)
    special = owing.union(select(gone.c.member_id)).subquery()
    per_member = (
        select(
            accounts.c.member_id,
            func.sum(accounts.c.balance).label("total"),
            func.sum(case((accounts.c.kind == "debt", 0), else_=accounts.c.balance)).label("counted"),
        )
        .where(mine, accounts.c.kind.in_(kinds), accounts.c.member_id.in_(select(special.c.member_id)))
        .group_by(accounts.c.member_id)
        .subquery()
    )
    net = per_member.c.total - func.coalesce(gone.c.gone, 0)
    correction, owed = conn.execute(
        select(
            func.coalesce(func.sum(case((net > 0, net), else_=0) - per_member.c.counted), 0),
            func.coalesce(func.sum(case((net < 0, -net), else_=0)), 0),
        ).select_from(per_member.outerjoin(gone, gone.c.member_id == per_member.c.member_id))
    ).one()
    return int(held or 0) + int(correction or 0), int(owed or 0)


def _store_credit(conn: Connection, program: Program) -> int:
    held = conn.execute(
        select(func.coalesce(func.sum(accounts.c.balance), 0)).where(
            accounts.c.program_id == program.id, accounts.c.member_id.is_not(None), accounts.c.kind == "wallet"
        )
    ).scalar()
    return int(held or 0)


def _week_of(column: Any, program: Program, period: Period) -> Any:
    """The index of the week ``column`` falls in (weeks begin Monday 00:00, local time), as SQL.

    A balanced tree of CASEs over the weeks' starts in UTC: log2(weeks) comparisons a row, the same on
    both engines, and exact across daylight-saving changes (each boundary is its own local midnight).
    """
    zone = ZoneInfo(program.timezone)
    starts = [datetime.combine(monday, time(), zone).astimezone(UTC) for monday in period.weeks()]

    def tree(lo: int, hi: int) -> Any:  # weeks lo..hi (inclusive)
        if lo == hi:
            return literal(lo)
        mid = (lo + hi + 1) // 2
        return case((column < starts[mid], tree(lo, mid - 1)), else_=tree(mid, hi))

    return tree(0, len(starts) - 1)


def _weekly_points(conn: Connection, program: Program, period: Period, channel: str | None) -> list[WeekPoints]:
    start, end = period.bounds(program)
    when = ledger_transactions.c.effective_at
    in_period = and_(ledger_transactions.c.program_id == program.id, when >= start, when < end)
    week = _week_of(when, program, period).label("week")
    totals: dict[tuple[int, str], int] = {}
    if channel is None:
        # Driven by the period's transactions (index program_id, effective_at), not by a year of postings.
        # Program legs are the postings without a member; their account id names the kind (see accounts.py).
        rows = conn.execute(
            select(week, postings.c.account_id, func.sum(postings.c.amount))
            .select_from(ledger_transactions.join(postings, postings.c.transaction_id == ledger_transactions.c.id))
            .where(in_period, postings.c.member_id.is_(None))
            .group_by(week, postings.c.account_id)
        ).all()
        for w, account_id, total in rows:
            kind = str(account_id).split(":")[1]
            if kind in FLOWS:
                totals[(int(w), kind)] = totals.get((int(w), kind), 0) + int(total)
    else:
        totals = _channel_flows(conn, program, week, in_period, channel)
    return [
        WeekPoints(
            week=monday,
            issued=-totals.get((n, "issued"), 0),
            redeemed=totals.get((n, "redeemed"), 0),
            expired=totals.get((n, "expired"), 0),
            debited=totals.get((n, "adjusted"), 0),
        )
        for n, monday in enumerate(period.weeks())
    ]


returns = events.alias("returns")


def _channel_flows(
    conn: Connection, program: Program, week: Any, in_period: ColumnElement[bool], channel: str
) -> dict[tuple[int, str], int]:
    """Issued, redeemed and expired points of one channel, by week (see the module's note)."""
    on_accounts = postings.join(accounts, accounts.c.id == postings.c.account_id).join(
        ledger_transactions, ledger_transactions.c.id == postings.c.transaction_id
    )
    totals: dict[tuple[int, str], int] = {}
    # issued: the purchases of the channel (and their claims, which carry the purchase's event), net of what
    # their returns took back (a return has no channel: it is its order's, found by the order id it names)
    issued_legs = and_(in_period, accounts.c.program_id == program.id, accounts.c.kind == "issued")
    returned_order = ledger_transactions.c.details["order_id"].as_string()
    issued = [
        *conn.execute(
            select(week, func.sum(postings.c.amount))
            .select_from(on_accounts.join(events, events.c.id == ledger_transactions.c.event_id))
            .where(issued_legs, events.c.channel == channel)
            .group_by(week)
        ).all(),
        *conn.execute(
            select(week, func.sum(postings.c.amount))
            .select_from(
                on_accounts.join(returns, returns.c.id == ledger_transactions.c.event_id)
                .join(purchases, and_(purchases.c.program_id == program.id, purchases.c.order_id == returned_order))
                .join(events, events.c.id == purchases.c.event_id)
            )
            .where(issued_legs, returns.c.type == "return", events.c.channel == channel)
            .group_by(week)
        ).all(),
    ]
    # redeemed: coupons used on the channel; orders paid with points on it, and the points given back
    # when such an order is returned (each path joined on its own key, so that each uses an index)
    program_legs = and_(in_period, accounts.c.program_id == program.id, accounts.c.kind == "redeemed")
    coupon_id = ledger_transactions.c.details["coupon_id"].as_string()
    payment_id = ledger_transactions.c.details["payment_id"].as_string()
    redeemed = [
        *conn.execute(
            select(week, func.sum(postings.c.amount))
            .select_from(on_accounts.join(coupons, coupons.c.id == coupon_id))
            .where(program_legs, coupons.c.channel == channel)
            .group_by(week)
        ).all(),
        *conn.execute(
            select(week, func.sum(postings.c.amount))
            .select_from(on_accounts)
            .where(
                program_legs,
                ledger_transactions.c.id.in_(
                    select(order_payments.c.transaction_id).where(
                        order_payments.c.program_id == program.id, order_payments.c.channel == channel
                    )
                ),
            )
            .group_by(week)
        ).all(),
        *conn.execute(
            select(week, func.sum(postings.c.amount))
            .select_from(on_accounts.join(order_payments, order_payments.c.id == payment_id))
            .where(program_legs, order_payments.c.channel == channel)
            .group_by(week)
        ).all(),
    ]
    # expired: what lapsed from lots earned by the channel's purchases (the period's expiry transactions)
    expired = conn.execute(
        select(week, func.sum(allocations.c.amount))
        .select_from(
            ledger_transactions.join(allocations, allocations.c.transaction_id == ledger_transactions.c.id)
            .join(lots, lots.c.id == allocations.c.lot_id)
            .join(events, events.c.id == lots.c.event_id)
        )
        .where(in_period, allocations.c.purpose == "expire", events.c.channel == channel)
        .group_by(week)
    ).all()
    for kind, rows in (("issued", issued), ("redeemed", redeemed), ("expired", expired)):
        for w, total in rows:
            totals[(int(w), kind)] = totals.get((int(w), kind), 0) + int(total or 0)
    return totals


def channel_mix(conn: Connection, program: Program, period: Period) -> dict[str, int]:
    """Orders per channel in the period (for the channel filter's counts)."""
    start, end = period.bounds(program)
    rows = conn.execute(
        select(events.c.channel, func.count(distinct(events.c.id)))
        .where(*_purchases_in(program, start, end, None))
        .group_by(events.c.channel)
    ).all()
    return {str(ch): int(n) for ch, n in rows}


# --- the dashboard's cache ------------------------------------------------------------------------------
#
# A year of a busy program is tens of thousands of transactions to add up: too slow for a page that is
# opened again and again. The figures are kept per process, keyed by what they are computed from: the
# program's settings (all of them), the period and channel, and a *data version* that changes with any
# write the figures depend on. Every ledger write bumps the ``version`` of the program accounts it posts
# to (issued, redeemed, expired, adjusted); purchases by non-members and their returns (which lower the
# revenue) write no ledger line but add an event, and a card's purchase claimed when it is linked becomes a
# member's even if it earns nothing (counted by the purchases not yet claimed); enrolments add a member,
# merges and erasures close one (counted apart: they leave as many member rows, and a merge moves points
# between members only, an erasure of a member without points writes none). So an unchanged version
# means unchanged figures, and a changed one is never served stale. What moves without a program posting
# (maturity, holds, a maturing lot repaying debt) leaves every figure as it was; points reaching their
# expiry before the job sweeps them leave what members hold, and the count of such lots is part of the
# version too.


@dataclass(frozen=True)
class Dashboard:
    kpis: Kpis
    mix: dict[str, int]  # orders per channel in the period


_CACHE: OrderedDict[tuple[Any, ...], Dashboard] = OrderedDict()
_CACHE_SIZE = 128
_cache_lock = threading.Lock()


def data_version(conn: Connection, program: Program, now: datetime) -> tuple[int, ...]:
    """(Σ versions of the program accounts, purchases and returns received, purchases by a card nobody has
    linked yet, members, merges, erasures, lots past their expiry not swept yet): cheap reads."""
    row = conn.execute(
        select(
            select(func.coalesce(func.sum(accounts.c.version), 0))
            .where(accounts.c.program_id == program.id, accounts.c.member_id.is_(None))
            .scalar_subquery(),
            select(func.count())
            .select_from(events)
            .where(events.c.program_id == program.id, events.c.type.in_(("purchase", "return")))
            .scalar_subquery(),
            select(func.count())
            .select_from(events)
            .where(events.c.program_id == program.id, events.c.status == "unclaimed")
            .scalar_subquery(),
            select(func.count()).select_from(members).where(members.c.program_id == program.id).scalar_subquery(),
            select(func.count()).select_from(merges).where(merges.c.program_id == program.id).scalar_subquery(),
            select(func.count())
            .select_from(members)
            .where(members.c.program_id == program.id, members.c.status == "erased")
            .scalar_subquery(),
            *(
                select(func.count()).select_from(lots).where(*where).scalar_subquery()
                for where in _past_expiry(program, now)
            ),
        )
    ).one()
    return tuple(int(value) for value in row)


def dashboard(
    *, conn: Connection, program: Program, period: Period, now: datetime, channel: str | None = None
) -> Dashboard:
    """:func:`kpis` and :func:`channel_mix`, computed once per data version (see the note above)."""
    key = (program.model_dump_json(), period, channel, data_version(conn, program, now))
    with _cache_lock:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    made = Dashboard(
        kpis(conn=conn, program=program, period=period, now=now, channel=channel), channel_mix(conn, program, period)
    )
    with _cache_lock:
        _CACHE[key] = made
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return made
