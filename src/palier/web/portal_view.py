"""What the member portal shows, built from the same services as the API, for one signed-in member.

Every function here takes the member from a :class:`~palier.web.portal_auth.SignedIn` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import segno
from markupsafe import Markup
from sqlalchemy import Connection, or_, select

from palier.clock import Clock
from palier.ledger import operations as ledger
from palier.ledger.tables import lots
from palier.members import service as members
from palier.members.models import Balance, HistoryLine, Member
from palier.memberships import service as memberships
from palier.programs.models import Program
from palier.rewards import service as rewards
from palier.rewards.models import CLOSED_STATES, CatalogItem, Coupon
from palier.text import points_word
from palier.tiers import service as tiers
from palier.tiers.models import TierPolicy
from palier.web import history_text, i18n, present

REACH_CARDS = 4
RECENT = 5
RECENT_SCAN = 25


@dataclass(frozen=True)
class RewardView:
    id: str
    title: str
    gives: str
    description: str
    cost: int
    needed: int
    redeemable: bool
    blocked_by: str | None
    percent: int  # how far the available points go towards it
    message: str
    kind: str = ""  # the reward's kind: store_credit is credited at once, not set aside
    until: str | None = None  # the last day it is on offer ("8 mars 2026"), when it ends
    where: str | None = None  # the channels it is limited to ("uniquement en ligne ou dans l'appli")


@dataclass(frozen=True)
class TierView:
    name: str | None
    next_name: str | None
    percent: int
    message: str
    keep: str | None
    grace: str | None
    perks: list[str]


@dataclass(frozen=True)
class HistoryView:
    when: str
    title: str
    detail: str
    points: int
    pending: int
    held: int
    owed: int = 0  # points the member owes more (a return after they were spent), or fewer (< 0: repaid)


@dataclass(frozen=True)
class CouponView:
    id: str
    code: str
    display_code: str
    title: str
    gives: str
    state: str
    expires: str | None
    qr_svg: Markup | None
    where: str | None = None  # the channels it is limited to ("online or in the app only")


@dataclass
class Dashboard:
    member: Member
    balance: Balance
    within_reach: list[RewardView]
    tier: TierView | None
    vip: list[str] = field(default_factory=list)
    recent: list[HistoryView] = field(default_factory=list)
    store_credit: str | None = None  # the wallet's balance, in the member's language, when there is some


def reward_views(items: list[CatalogItem], program: Program, language: str, available: int) -> list[RewardView]:
    t = i18n.translator(language)
    views = []
    for item in items:
        reward = item.reward
        title = i18n.localized(reward.title, language)
        needed = item.points_needed
        message = (
            t("dash.yours_now", title=title)
            if needed == 0 and item.redeemable
            else f"{t('rewards.blocked.' + str(item.blocked_by))}{' :' if language == 'fr' else ':'} {title}"
            if needed == 0
            else t(
                "dash.points_to",
                points=present.number(needed, language),
                name=points_word(needed, program.points_name_in(language), language),
                title=title,
            )
        )
        views.append(
            RewardView(
                id=reward.id,
                title=title,
                gives=present.coupon_gives(reward, program, language),  # its minimum order too, before redeeming
                description=i18n.localized(reward.description, language) if reward.description else "",
                cost=reward.cost_points,
                needed=needed,
                redeemable=item.redeemable,
                blocked_by=item.blocked_by,
                percent=min(100, available * 100 // max(1, reward.cost_points)),
                message=message,
                kind=reward.kind,
                until=present.last_day(reward.ends_at, program, language) if reward.ends_at else None,
                where=present.only_on(reward.channels, language),
            )
        )
    return views


def catalog(conn: Connection, clock: Clock, program: Program, member_id: str, language: str) -> list[RewardView]:
    """The rewards this member may have, nearest first (``rewards.service.catalog``, as the API)."""
    items = rewards.catalog(conn=conn, clock=clock, program=program, member_id=member_id)
    available = members.balance(conn=conn, clock=clock, program=program, member_id=member_id).available
    return reward_views(items, program, language, available)


def _amount(policy: TierPolicy, value: int, program: Program, language: str) -> str:
    if policy.metric == "spend":
        return present.money(value, program, language)
    if policy.metric == "orders":
        return i18n.translate(language, present.orders_key(value), count=present.number(value, language))
    return f"{present.number(value, language)} {points_word(value, program.points_name_in(language), language)}"


def tier_view(conn: Connection, clock: Clock, program: Program, member_id: str, language: str) -> TierView | None:
    policy = tiers.get_policy(conn, program_id=program.id)
    if policy is None:
        return None
    progress = tiers.progress(conn=conn, clock=clock, program=program, member_id=member_id)
    t = i18n.translator(language)
    current = policy.tier(progress.tier)
    following = policy.tier(progress.next_tier)
    name = i18n.localized(current.name, language) if current else None
    next_name = i18n.localized(following.name, language) if following else None
    perks = [i18n.localized(p, language) for p in current.perks] if current else []
    held = tiers.held_down_until(conn=conn, clock=clock, program_id=program.id, member_id=member_id)
    if held is not None:  # lowered by hand: what is left to climb means nothing before then
        until = present.last_day(held, program, language)
        message = t("dash.tier_held", tier=name, date=until) if name else t("dash.tier_held_none", date=until)
        return TierView(name, None, 100, message, None, None, perks)
    grace = _grace(progress.grace_until, program, language)
    if following is None or progress.needed_for_next is None:
        return TierView(name, None, 100, t("dash.tier_top"), None, grace, perks)
    amount = _amount(policy, progress.needed_for_next, program, language)
    if progress.window_end is not None and policy.window != "rolling_months":  # rolling: it closes every night
        by = present.day(progress.window_end - timedelta(seconds=1), program, language)
        message = t("dash.tier_next_by", amount=amount, date=by, tier=next_name)
    else:
        message = t("dash.tier_next", amount=amount, tier=next_name)
    keep = None
    if current is not None and progress.needed_to_keep:
        keep = t("dash.tier_keep", amount=_amount(policy, progress.needed_to_keep, program, language), tier=name)
    return TierView(
        name=name,
        next_name=next_name,
        percent=min(100, progress.value * 100 // max(1, following.threshold)),
        message=message,
        keep=keep,
        grace=grace,
        perks=perks,
    )


def _grace(until: datetime | None, program: Program, language: str) -> str | None:
    if until is None:
        return None
    return i18n.translate(language, "dash.tier_grace", date=present.last_day(until, program, language))


def vip_lines(conn: Connection, clock: Clock, program: Program, member_id: str, language: str) -> list[str]:
    """One line per membership still giving benefits: 'Club membership — active until 1 April 2026'."""
    now = clock.now()
    t = i18n.translator(language)
    lines = []
    for m in memberships.member_memberships(conn=conn, program_id=program.id, member_id=member_id):
        if m.state not in ("trial", "active", "cancelled") or m.period_end <= now:
            continue
        date = present.last_day(m.period_end, program, language)
        key = {"trial": "dash.vip_trial", "active": "dash.vip_until", "cancelled": "dash.vip_ending"}[m.state]
        lines.append(f"{t('dash.vip', plan=i18n.localized(m.plan_name, language))} — {t(key, date=date)}")
    return lines


def history_views(conn: Connection, lines: list[HistoryLine], program: Program, language: str) -> list[HistoryView]:
    views = []
    for line, said in zip(lines, history_text.describe(conn, program, lines, language), strict=True):
        matured = line.reason_code == "matured"  # pending → available: one move, shown as the points gained
        views.append(
            HistoryView(
                when=present.moment(line.occurred_at, program, language),
                title=said.title,
                detail=said.detail,
                points=line.available,
                pending=0 if matured else line.pending,
                held=line.held,
                owed=line.debt,
            )
        )
    return views


def history(
    conn: Connection, program: Program, member_id: str, language: str, *, cursor: str | None, limit: int
) -> tuple[list[HistoryView], str | None]:
    page = members.history(conn=conn, program=program, member_id=member_id, cursor=cursor, limit=limit, strict=False)
    return history_views(conn, page.items, program, language), page.next_cursor


def _recent(conn: Connection, program: Program, member_id: str, language: str, now: datetime) -> list[HistoryView]:
    """The latest lines that mean something to the member: points maturing after the return window are
    left out here (the full history has them), or a week of them would hide every purchase. So a line whose
    points have matured since shows them as earned, not "pending" beside a pending balance of 0."""
    page = members.history(conn=conn, program=program, member_id=member_id, cursor=None, limit=RECENT_SCAN)
    meaningful = [line for line in page.items if line.reason_code != "matured"][:RECENT]
    views = history_views(conn, meaningful, program, language)
    waiting = [line.id for line in meaningful if line.pending > 0]
    matured = set(
        conn.execute(
            select(lots.c.transaction_id).where(
                lots.c.transaction_id.in_(waiting),
                lots.c.member_id == member_id,
                or_(lots.c.state.in_(("active", "spent", "expired")), lots.c.matures_at <= now),
            )
        ).scalars()
    )
    return [
        replace(view, points=view.points + view.pending, pending=0) if line.id in matured else view
        for line, view in zip(meaningful, views, strict=True)
    ]


def dashboard(conn: Connection, clock: Clock, program: Program, member_id: str, language: str) -> Dashboard:
    balance = members.balance(conn=conn, clock=clock, program=program, member_id=member_id)
    items = rewards.catalog(conn=conn, clock=clock, program=program, member_id=member_id)
    reachable = [i for i in items if i.blocked_by in (None, "insufficient_points")]
    return Dashboard(
        member=members.get_member(conn=conn, program_id=program.id, member_id=member_id),
        balance=balance,
        within_reach=reward_views(reachable[:REACH_CARDS], program, language, balance.available),
        tier=tier_view(conn, clock, program, member_id, language),
        vip=vip_lines(conn, clock, program, member_id, language),
        recent=_recent(conn, program, member_id, language, clock.now()),
        store_credit=_store_credit(conn, program, member_id, language),
    )


def _store_credit(conn: Connection, program: Program, member_id: str, language: str) -> str | None:
    credit = ledger.balances_of(conn, member_id, "wallet")
    return present.money(credit, program, language) if credit else None


def qr_svg(code: str, label: str) -> Markup:
    """The coupon code as an inline SVG QR code for the till's scanner."""
    svg = segno.make(code, error="m", micro=False).svg_inline(scale=5, border=2, dark="#111827", omitsize=True)
    return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{Markup.escape(label)}" ', 1))


def coupon_views(found: list[Coupon], program: Program, language: str, offered: dict[str, Any]) -> list[CouponView]:
    t = i18n.translator(language)
    views = []
    for c in found:
        reward = offered.get(c.reward_id)
        reward = rewards.coupon_terms(reward, c) if reward is not None else None  # what it gives: its own terms
        shown = present.display_code(c.code)
        views.append(
            CouponView(
                id=c.id,
                code=c.code,
                display_code=shown,
                title=i18n.localized(c.title, language),
                gives=present.coupon_gives(reward, program, language) if reward is not None else "",
                state="credited"
                if reward is not None and reward.kind == "store_credit" and c.state == "used"
                else c.state,
                expires=present.last_day(c.expires_at, program, language) if c.expires_at else None,
                qr_svg=qr_svg(c.code, t("coupons.qr", code=shown)) if c.state == "issued" else None,
                where=present.only_on(c.channels, language),
            )
        )
    return views


PAST_COUPONS = 30  # the latest used, expired or cancelled coupons the portal lists


def coupons(
    conn: Connection, program: Program, member_id: str, language: str, now: datetime | None = None
) -> list[CouponView]:
    """Every coupon still to use, then the latest :data:`PAST_COUPONS` others (one more tells there are older).

    A coupon past its date that the expiry job has not reached yet is shown expired, as the till would refuse
    it (``coupon_expired``), not offered with its QR code."""
    issued = rewards.member_coupons(conn=conn, program_id=program.id, member_id=member_id, states=["issued"])
    overdue = [c for c in issued if now is not None and c.expires_at is not None and c.expires_at <= now]
    found = [c for c in issued if c not in overdue] + [c.model_copy(update={"state": "expired"}) for c in overdue]
    found += rewards.member_coupons(
        conn=conn, program_id=program.id, member_id=member_id, states=CLOSED_STATES, limit=PAST_COUPONS + 1
    )
    ids = {c.reward_id for c in found}
    offered = {r.id: r for r in rewards.list_rewards(conn=conn, program_id=program.id, status=None) if r.id in ids}
    return coupon_views(found, program, language, offered)
