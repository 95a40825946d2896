"""The catalog, redemption and coupons.

Redeeming a reward holds its points (``available -> held``) and issues a coupon; using the coupon at
checkout or the till captures the hold (``held -> redeemed``); cancelling it, or letting it expire,
voids the hold and the points go back to their lots (ledger/holds.py). Store credit is the one reward
used at once: the points are spent and the credit lands in the member's wallet.

Every refusal has its own code and writes nothing: the whole command is one database transaction.
Lock order: the member, then lots, then accounts, then the reward's stock row last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Connection, and_, bindparam, func, insert, not_, or_, select, update

from palier.clock import Clock, utc
from palier.db import Database
from palier.errors import Conflict, InvalidInput, NotFound, PalierError, Unprocessable, invalid_input
from palier.ids import new_id
from palier.ledger import holds
from palier.ledger import operations as ledger
from palier.ledger.accounts import member_account, money_asset, open_wallet
from palier.ledger.locks import lock_members, try_lock_members
from palier.ledger.post import Posting, write, write_with
from palier.members import service as members
from palier.members.models import NextReward
from palier.memberships import service as memberships
from palier.notify import outbox
from palier.notify.tables import outbox_events
from palier.programs.models import Program
from palier.programs.service import record_audit
from palier.rewards import codes
from palier.rewards.models import (
    CatalogItem,
    Coupon,
    CouponCheck,
    CouponPage,
    CouponUse,
    CouponValidity,
    Eligibility,
    RedeemIn,
    Redemption,
    Reward,
    RewardIn,
    RewardUpdate,
)
from palier.rewards.tables import coupons, rewards
from palier.segments import service as segments
from palier.text import points_word
from palier.tiers import service as tiers
from palier.units import Rounding, divide

# --- the catalog (admin) ---


def create_reward(*, conn: Connection, clock: Clock, program: Program, data: RewardIn, actor: str) -> Reward:
    _check_audience(conn, program, data.eligibility)
    now = clock.now()
    reward_id = new_id("reward")
    conn.execute(
        insert(rewards).values(id=reward_id, program_id=program.id, status="active", created_at=now, **_row(data, now))
    )
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program.id,
        actor=actor,
        action="reward.created",
        subject_id=reward_id,
        details=data.model_dump(mode="json"),
    )
    return get_reward(conn=conn, program_id=program.id, reward_id=reward_id)


def update_reward(
    *, conn: Connection, clock: Clock, program: Program, reward_id: str, changes: RewardUpdate, actor: str
) -> Reward:
    # the row locked before its stock count is read: a unit taken meanwhile (stock_used + 1, committed) would
    # otherwise be written back over with the count read before it, and the unit let out a second time
    conn.execute(
        select(rewards.c.id).where(rewards.c.id == reward_id, rewards.c.program_id == program.id).with_for_update()
    )
    current = get_reward(conn=conn, program_id=program.id, reward_id=reward_id)
    sent = changes.changes()
    status = sent.pop("status", current.status)
    merged = current.model_dump(exclude={"id", "status", "stock_left", "created_at", "updated_at"}) | sent
    try:
        data = RewardIn.model_validate(merged)
    except ValidationError as exc:  # the change leaves the reward inconsistent (a percent on an amount_off…)
        raise invalid_input(exc, default_field=next(iter(sent), "body")) from None
    if "eligibility" in sent:  # an audience set before a tier or segment was renamed is left as it is
        _check_audience(conn, program, data.eligibility)
    stock_used = conn.execute(select(rewards.c.stock_used).where(rewards.c.id == reward_id)).scalar_one()
    if current.stock is None and data.stock is not None:
        # coupons issued while the reward was unlimited took no stock: count those out now, or the new
        # stock would let that many more out (and cancelling one would give back stock it never took)
        stock_used = conn.execute(
            select(func.count()).where(coupons.c.reward_id == reward_id, coupons.c.state.in_(("issued", "used")))
        ).scalar_one()
    if data.stock is not None and data.stock < stock_used:
        raise InvalidInput(
            "stock_below_issued",
            f"{stock_used} coupons of this reward are out already; stock cannot be set below that.",
            field="stock",
        )
    conn.execute(
        update(rewards)
        .where(rewards.c.id == reward_id)
        .values(status=status, stock_used=stock_used, **_row(data, clock.now()))
    )
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program.id,
        actor=actor,
        action="reward.updated",
        subject_id=reward_id,
        details=changes.model_dump(mode="json", exclude_unset=True),
    )
    return get_reward(conn=conn, program_id=program.id, reward_id=reward_id)


def _check_audience(conn: Connection, program: Program, eligibility: Eligibility | None) -> None:
    """The tiers, segments and VIP plans a reward is reserved to must exist: a mistyped code would hide the
    reward from everyone (``unknown_tier``, ``unknown_segment``, ``unknown_plan``, naming the code's place)."""
    if eligibility is None:
        return
    policy = tiers.get_policy(conn, program_id=program.id)
    wanted = (
        ("tiers", "tier", eligibility.tiers, [t.code for t in policy.tiers] if policy is not None else []),
        (
            "segments",
            "segment",
            eligibility.segments,
            [s.code for s in segments.list_segments(conn=conn, program_id=program.id)],
        ),
        (
            "plans",
            "plan",
            eligibility.plans,
            [p.code for p in memberships.list_plans(conn=conn, program_id=program.id)],
        ),
    )
    for field, kind, codes_sent, known in wanted:
        for i, code in enumerate(codes_sent):
            if code not in known:
                raise InvalidInput(
                    f"unknown_{kind}",
                    f"No {kind} {code!r} in this program (its {field}: {', '.join(known) or 'none yet'}).",
                    field=f"eligibility.{field}[{i}]",
                )


def _row(data: RewardIn, now: datetime) -> dict[str, Any]:
    row = data.model_dump(mode="json", exclude={"limit_per_member", "starts_at", "ends_at"})
    limit = data.limit_per_member
    return row | {
        "starts_at": data.starts_at,
        "ends_at": data.ends_at,
        "member_limit": limit.count if limit else None,
        "limit_period": limit.period if limit else None,
        "updated_at": now,
    }


def get_reward(*, conn: Connection, program_id: str, reward_id: str) -> Reward:
    row = conn.execute(_select_reward, {"reward_id": reward_id, "program_id": program_id}).mappings().first()
    if row is None:
        raise NotFound("reward_not_found", f"No reward {reward_id} in this program.", field="reward_id")
    return _reward(row)


def list_rewards(*, conn: Connection, program_id: str, status: str | None = "active") -> list[Reward]:
    query = _catalog if status is None else _catalog_in_status
    found = conn.execute(query, {"program_id": program_id, "status": status}).mappings()
    return [_reward(r) for r in found]


def offered_rewards(*, conn: Connection, program_id: str, now: datetime) -> list[Reward]:
    """The catalog on offer at ``now`` (active, started, not ended), cheapest first: what any member may see."""
    return [r for r in list_rewards(conn=conn, program_id=program_id) if _on_offer(r, now)]


def _reward(row: Any) -> Reward:
    data = dict(row)
    data.pop("program_id")
    count, period = data.pop("member_limit"), data.pop("limit_period")
    data["limit_per_member"] = {"count": count, "period": period} if count else None
    stock_used = data.pop("stock_used")
    data["stock_left"] = None if data["stock"] is None else data["stock"] - stock_used
    for name in ("starts_at", "ends_at", "created_at", "updated_at"):
        data[name] = utc(data[name]) if data[name] is not None else None
    return Reward.model_validate(data)


# --- what a member can have ---


def catalog(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    member_id: str,
    affordable_only: bool = False,
    channel: str | None = None,
) -> list[CatalogItem]:
    """Every reward on offer now that the member is eligible for, with what stands in the way, if anything."""
    now = clock.now()
    shown = members.balance(conn=conn, clock=clock, program=program, member_id=member_id)  # none past expiry
    # points earned go to a debt first: a member who owes 420 needs 520 more for a 100-point reward
    spendable = shown.available - shown.debt
    language = members.language_of(conn, member_id)
    counts = _redeemed_counts(conn, program, member_id, now)
    who = audience(conn, program, member_id, now)
    items = []
    for reward in list_rewards(conn=conn, program_id=program.id):
        if not _on_offer(reward, now) or not _eligible(reward, who) or (channel and not _on_channel(reward, channel)):
            continue
        needed = max(0, reward.cost_points - spendable)
        blocked = (
            "out_of_stock"
            if reward.stock_left == 0
            else "limit_reached"
            if _over_limit(reward, counts)
            else "insufficient_points"
            if needed
            else None
        )
        if affordable_only and blocked is not None:
            continue
        title = getattr(reward.title, language)
        items.append(
            CatalogItem(
                reward=reward,
                title=title,
                points_needed=needed,
                redeemable=blocked is None,
                blocked_by=blocked,
                message=_needed_message(needed, title, program.points_name_in(language), language, blocked),
            )
        )
    items.sort(key=lambda i: (i.points_needed, i.reward.cost_points, i.reward.id))
    return items


def next_rewards(*, conn: Connection, clock: Clock, program: Program, member_id: str) -> list[NextReward]:
    """For every reward the member is eligible for: the points still needed, nearest first."""
    return [
        NextReward(
            reward_id=item.reward.id,
            title=item.title,
            cost_points=item.reward.cost_points,
            points_needed=item.points_needed,
            message=item.message,
        )
        for item in catalog(conn=conn, clock=clock, program=program, member_id=member_id)
        if item.blocked_by in (None, "insufficient_points")
    ]


_BLOCKED = {
    "out_of_stock": {"fr": "{title} : épuisé", "en": "{title}: out of stock"},
    "limit_reached": {"fr": "{title} : limite atteinte", "en": "{title}: limit reached"},
}


def _needed_message(needed: int, title: str, points_name: str, language: str, blocked: str | None = None) -> str:
    """ "Plus que 40 points pour : …", or, with the points there, whether it is theirs now (or out of stock, or
    over its limit: never "yours now" for a reward that cannot be redeemed)."""
    if needed == 0 and blocked in _BLOCKED:
        return _BLOCKED[blocked]["fr" if language == "fr" else "en"].format(title=title)
    if needed == 0:
        return f"{title} : disponible maintenant" if language == "fr" else f"{title}: yours now"
    name = points_word(needed, points_name, language)
    if language == "fr":
        figure = f"{needed:,}".replace(",", "\u202f")  # the title keeps its commas (« Bon de 7,50 € »)
        return f"Plus que {figure} {name} pour : {title}"
    return f"{needed:,} {name} to {title}"


def _on_offer(reward: Reward, now: datetime) -> bool:
    return (
        reward.status == "active"
        and (reward.starts_at is None or reward.starts_at <= now)
        and (reward.ends_at is None or now < reward.ends_at)
    )


def _on_channel(reward: Reward, channel: str) -> bool:
    return reward.channels is None or channel in reward.channels


@dataclass(frozen=True)
class Audience:
    """What a reward's eligibility looks at: the member's tier, segments and VIP plans."""

    tier: str | None = None
    segments: frozenset[str] = frozenset()
    plans: frozenset[str] = frozenset()


def audience(conn: Connection, program: Program, member_id: str, now: datetime) -> Audience:
    from palier.tiers.status import standing

    found = standing(conn, program=program, member_id=member_id, now=now)
    return Audience(tier=found.tier, segments=found.segments, plans=found.plans)


def _eligible(reward: Reward, who: Audience) -> bool:
    """A reward reserved to tiers, segments or VIP plans is offered to members of any of them."""
    e = reward.eligibility
    if e is None or not (e.tiers or e.segments or e.plans):
        return True
    return who.tier in e.tiers or bool(who.segments & set(e.segments)) or bool(who.plans & set(e.plans))


# --- redeeming ---


def redeem(*, conn: Connection, clock: Clock, program: Program, member_id: str, data: RedeemIn) -> Redemption:
    lock_members(conn, [member_id])
    member = members.require_active(conn=conn, program_id=program.id, member_id=member_id)  # and their address
    now = clock.now()
    reward = get_reward(conn=conn, program_id=program.id, reward_id=data.reward_id)
    _check_redeemable(conn, program, member_id, reward, now)
    title = reward.title.en
    booking = ledger.Booking(
        program_id=program.id,
        member_id=member_id,
        kind="redeem",
        reason=f"Redeemed: {title}",
        reason_code="reward_redeemed",
        now=now,
        effective_at=now,
        details={"reward_id": reward.id},
    )
    try:
        if reward.kind == "store_credit":
            return _redeem_for_credit(conn, program, member, reward, booking, now)
        return _redeem_for_coupon(conn, program, member, reward, booking, now)
    except ledger.InsufficientPoints as short:
        raise _insufficient(short.needed, short.available) from None


def _redeem_for_credit(
    conn: Connection, program: Program, member: Any, reward: Reward, booking: ledger.Booking, now: datetime
) -> Redemption:
    """Points spent at once for store credit in the member's wallet; the coupon is born used. ``member``: the
    member's row read under its lock (``members.require_active``)."""
    member_id = booking.member_id
    assert reward.amount is not None
    money = money_asset(program.currency, program.currency_exponent)
    wallet_id = open_wallet(conn, program_id=program.id, member_id=member_id, money=money)
    ledger.spend(
        conn,
        booking,
        amount=reward.cost_points,
        sink="redeemed",
        also=[
            Posting(wallet_id, reward.amount, member_id=member_id, asset=money),
            ledger.program_posting(program.id, "credit_issued", -reward.amount, member_id=member_id, asset=money),
        ],
    )
    row = _coupon_row(
        program=program,
        member_id=member_id,
        reward=reward,
        points=reward.cost_points,
        hold_id=None,
        state="used",
        source="redeem",
        source_ref=None,
        now=now,
    )
    coupon = _issue(conn, reward, row)
    _take_stock(conn, reward)
    amounts = ledger.balances(conn, member_id=member_id)
    wallet = ledger.balances_of(conn, member_id, "wallet")
    outbox.emit_many(
        conn,
        [_redeemed_event(conn, program, coupon, member, available=amounts["available"], held=amounts["held"])],
        now=now,
    )
    return Redemption(coupon=coupon, available=amounts["available"], held=amounts["held"], wallet=wallet)


def _redeem_for_coupon(
    conn: Connection, program: Program, member: Any, reward: Reward, booking: ledger.Booking, now: datetime
) -> Redemption:
    """Points held for a coupon: captured when it is used, given back if it is cancelled or expires."""
    member_id = booking.member_id
    planned = holds.prepare_hold(conn, booking, amount=reward.cost_points)
    _take_stock(conn, reward)
    row = _coupon_row(
        program=program,
        member_id=member_id,
        reward=reward,
        points=reward.cost_points,
        hold_id=planned.hold.id,
        state="issued",
        source="redeem",
        source_ref=None,
        now=now,
    )
    before = planned.balances_before  # read under the member's lock: after = before ± the points held
    redemption = Redemption(
        coupon=_issued(reward, row),
        available=before["available"] - reward.cost_points,
        held=before["held"] + reward.cost_points,
    )
    told = _redeemed_event(
        conn, program, redemption.coupon, member, available=redemption.available, held=redemption.held
    )
    # The hold, its allocations, the points taken from the lots, the coupon and the outbox's event: one statement
    # on PostgreSQL.
    write_with(
        conn,
        planned.entries,
        rows=[*planned.rows, (coupons, [row]), (outbox_events, outbox.event_rows([told], now=now))],
        lots_taken=planned.lots_taken,
    )
    return redemption


# --- what the merchant's mailer hears (the outbox, in the change's transaction) ---


def _about(conn: Connection, coupon: Coupon, member: Any = None) -> dict[str, Any]:
    """What every coupon event says: the member and how to write to them, the coupon and its title in their
    language (``member``: their row read already, see ``outbox.contact``)."""
    who = outbox.contact(conn, coupon.member_id, member)
    title = getattr(coupon.title, who["language"], coupon.title.en)
    return who | {"code": coupon.code, "reward_id": coupon.reward_id, "title": title}


def _tell(
    conn: Connection, program: Program, type_: str, coupon: Coupon, payload: dict[str, Any], now: datetime
) -> None:
    outbox.emit(
        conn,
        program_id=program.id,
        type_=type_,
        subject_id=coupon.member_id,
        payload=_about(conn, coupon) | payload,
        now=now,
    )


def _redeemed_event(
    conn: Connection, program: Program, coupon: Coupon, member: Any, *, available: int, held: int
) -> tuple[str, str, str | None, dict[str, Any]]:
    """The reward_redeemed event (for ``outbox.emit_many`` or ``outbox.event_rows``)."""
    expires = None if coupon.expires_at is None else utc(coupon.expires_at).isoformat(timespec="seconds")
    terms = {"kind": coupon.kind, "points": coupon.points, "expires_at": expires, "amount": coupon.amount}
    balances = {"currency": program.currency, "available": available, "held": held}
    return program.id, "reward_redeemed", coupon.member_id, _about(conn, coupon, member) | terms | balances


def _tell_closed(conn: Connection, program: Program, coupon: Coupon, state: str, returned: int, now: datetime) -> None:
    amounts = ledger.balances(conn, member_id=coupon.member_id)
    payload = {
        "points": coupon.points,
        "points_returned": returned,
        "available": amounts["available"],
        "held": amounts["held"],
    }
    _tell(conn, program, f"coupon_{state}", coupon, payload, now)


def _insufficient(needed: int, available: int) -> Unprocessable:
    return Unprocessable(
        "insufficient_points",
        f"This reward costs {needed} points; {available} are available ({needed - available} more needed).",
        field="reward_id",
        needed=needed,
        available=available,
        missing=needed - available,
    )


def _check_on_offer(reward: Reward, now: datetime) -> None:
    """Refuse a reward archived, or outside the window it is on offer: neither redeemed nor granted."""
    if reward.status != "active" or (reward.ends_at is not None and now >= reward.ends_at):
        raise Unprocessable("reward_ended", "This reward is no longer on offer.", field="reward_id")
    if reward.starts_at is not None and now < reward.starts_at:
        raise Unprocessable(
            "reward_not_started",
            f"This reward is on offer from {reward.starts_at.isoformat()}.",
            field="reward_id",
            starts_at=reward.starts_at.isoformat(),
        )


def _check_redeemable(conn: Connection, program: Program, member_id: str, reward: Reward, now: datetime) -> None:
    """A reward's channels are where its coupon is used, not where it is asked for: a member redeems a coffee
    served only in the shops from the portal, and shows the coupon at the till (``_check_usable`` refuses it
    elsewhere)."""
    _check_on_offer(reward, now)
    if not _eligible(reward, audience(conn, program, member_id, now)):
        raise Unprocessable("reward_not_eligible", "This reward is reserved to other members.", field="reward_id")
    limit = reward.limit_per_member
    if limit is not None and _over_limit(reward, _redeemed_counts(conn, program, member_id, now, reward_id=reward.id)):
        raise Unprocessable(
            "reward_limit_reached",
            f"This reward can be redeemed {limit.count} time(s) "
            + ("in all." if limit.period == "ever" else f"per {limit.period}."),
            field="reward_id",
            limit=limit.count,
            period=limit.period,
        )
    if reward.stock_left == 0:
        raise Unprocessable("out_of_stock", "This reward is out of stock.", field="reward_id")
    # The balance is checked next, once, by the hold (or the spend) that takes the points: it reads the
    # available balance under the member's lock and raises InsufficientPoints, which redeem() maps.


def period_start(period: str, now: datetime, timezone: str) -> datetime | None:
    """When the member-limit period containing ``now`` began, in the program's time zone."""
    if period == "ever":
        return None
    local = now.astimezone(ZoneInfo(timezone)).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        local -= timedelta(days=local.weekday())
    elif period == "month":
        local = local.replace(day=1)
    elif period == "year":
        local = local.replace(month=1, day=1)
    return utc(local.replace(tzinfo=ZoneInfo(timezone)))


def _redeemed_counts(
    conn: Connection, program: Program, member_id: str, now: datetime, *, reward_id: str | None = None
) -> dict[str, Any]:
    """Issue times of the member's redeemed coupons still counting against limits, by reward."""
    query = _redeemed if reward_id is None else _redeemed_of_reward
    params = {"program_id": program.id, "member_id": member_id, "reward_id": reward_id}
    found: dict[str, list[datetime]] = {}
    for rid, issued_at in conn.execute(query, params):
        found.setdefault(rid, []).append(utc(issued_at))
    return {"by_reward": found, "now": now, "timezone": program.timezone}


def _over_limit(reward: Reward, counts: dict[str, Any]) -> bool:
    limit = reward.limit_per_member
    if limit is None:
        return False
    since = period_start(limit.period, counts["now"], counts["timezone"])
    times = counts["by_reward"].get(reward.id, [])
    return sum(1 for t in times if since is None or t >= since) >= limit.count


def _take_stock(conn: Connection, reward: Reward) -> None:
    """One unit of a stocked reward, taken atomically: 20 members racing for the last 5 get exactly 5."""
    if reward.stock is None:
        return
    taken = conn.execute(
        update(rewards)
        .where(rewards.c.id == reward.id, rewards.c.stock_used < rewards.c.stock)
        .values(stock_used=rewards.c.stock_used + 1)
    ).rowcount
    if taken != 1:
        raise Unprocessable("out_of_stock", "This reward is out of stock.", field="reward_id")


def _give_back_stock(conn: Connection, reward_id: str) -> None:
    conn.execute(
        update(rewards)
        .where(rewards.c.id == reward_id, rewards.c.stock.is_not(None), rewards.c.stock_used > 0)
        .values(stock_used=rewards.c.stock_used - 1)
    )


def _issue(conn: Connection, reward: Reward, row: dict[str, Any]) -> Coupon:
    """Write the coupon ``row`` (:func:`_coupon_row`) of ``reward``."""
    conn.execute(_insert_coupon, row)
    return _issued(reward, row)


def _issued(reward: Reward, row: dict[str, Any]) -> Coupon:
    return _coupon(row | {"kind": reward.kind})


def _coupon_row(
    *,
    program: Program,
    member_id: str,
    reward: Reward,
    points: int,
    hold_id: str | None,
    state: str,
    source: str,
    source_ref: str | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": new_id("coupon"),
        "program_id": program.id,
        "member_id": member_id,
        "reward_id": reward.id,
        "code": codes.new_code(),
        "state": state,
        "points": points,
        "hold_id": hold_id,
        "source": source,
        "source_ref": source_ref,
        "issued_at": now,
        "expires_at": now + timedelta(days=reward.valid_days) if state == "issued" else None,
        "used_at": now if state == "used" else None,
        "channel": "wallet" if state == "used" else None,
        "closed_at": now if state == "used" else None,
        **{name: getattr(reward, name) for name in COUPON_TERMS},
        "title": reward.title.model_dump(),
    }


COUPON_TERMS = ("amount", "percent", "max_discount", "min_order", "sku", "channels")  # kept by each coupon


def coupon_terms(reward: Reward, coupon: Coupon) -> Reward:
    """``reward`` with the terms ``coupon`` was issued with: what the coupon gives and where, whatever the reward
    says now (a reward edited since gives its new terms to new coupons only)."""
    return reward.model_copy(update={name: getattr(coupon, name) for name in (*COUPON_TERMS, "title")})


def reward_of(*, conn: Connection, program_id: str, coupon: Coupon) -> Reward:
    """The coupon's reward, with the coupon's own terms (:func:`coupon_terms`)."""
    return coupon_terms(get_reward(conn=conn, program_id=program_id, reward_id=coupon.reward_id), coupon)


def require_grantable(reward: Reward, *, field: str) -> None:
    """Refuse naming ``reward`` as one to give away (a spend-step rule's, a VIP plan's period reward): store
    credit lands in the wallet when it is redeemed, it is never a coupon to give."""
    if reward.kind == "store_credit":
        raise InvalidInput(
            "reward_not_grantable",
            f"Reward {reward.id} is store credit, which is redeemed, not given: pick a coupon reward.",
            field=field,
        )


def coupons_grantable(*, conn: Connection, program_id: str, reward_id: str, now: datetime, wanted: int) -> int:
    """How many of ``wanted`` coupons of the reward :func:`grant_coupon` would give at ``now`` (archived, outside
    its window or out of stock: fewer, or none), writing nothing: what a preview tells."""
    try:
        reward = get_reward(conn=conn, program_id=program_id, reward_id=reward_id)
        require_grantable(reward, field="reward_id")
        _check_on_offer(reward, now)
    except PalierError:
        return 0
    return wanted if reward.stock_left is None else max(min(wanted, reward.stock_left), 0)


def grant_coupon(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    member_id: str,
    reward_id: str,
    reason: str,
    source_ref: str,
) -> Coupon:
    """A coupon given, not bought (a rule's award, a birthday gift): no points held. Once per ``source_ref``.

    A reward archived, outside its window or out of stock is refused (``reward_ended``, ``reward_not_started``,
    ``out_of_stock``) before anything is written, so a caller may go on without the coupon.
    """
    existing = (
        conn.execute(_coupon_query().where(coupons.c.program_id == program.id, coupons.c.source_ref == source_ref))
        .mappings()
        .first()
    )
    if existing is not None:
        return _coupon(existing)
    reward = get_reward(conn=conn, program_id=program.id, reward_id=reward_id)
    require_grantable(reward, field="reward_id")
    now = clock.now()
    _check_on_offer(reward, now)
    _take_stock(conn, reward)  # the unit first: a coupon is never issued without it
    row = _coupon_row(
        program=program,
        member_id=member_id,
        reward=reward,
        points=0,
        hold_id=None,
        state="issued",
        source="grant",
        source_ref=source_ref,
        now=now,
    )
    coupon = _issue(conn, reward, row)
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program.id,
        actor="engine",
        action="coupon.granted",
        subject_id=coupon.id,
        details={"member_id": member_id, "reward_id": reward_id, "reason": reason, "source_ref": source_ref},
    )
    expires = None if coupon.expires_at is None else utc(coupon.expires_at).isoformat(timespec="seconds")
    terms = {"kind": coupon.kind, "expires_at": expires, "amount": coupon.amount, "currency": program.currency}
    _tell(conn, program, "coupon_granted", coupon, terms | {"reason": reason}, now)
    return coupon


# --- coupons at checkout and the till ---


def find_coupon(*, conn: Connection, program_id: str, code: str, field: str = "code") -> Coupon:
    """A coupon by the code the member shows; a mistyped code is caught by its check character first."""
    typed = codes.normalise(code)
    if not codes.is_well_formed(typed):
        raise InvalidInput(
            "coupon_code_mistyped",
            f"{code!r} is not a valid coupon code: check it character by character "
            f"({codes.LENGTH} characters, the last one is a check).",
            field=field,
        )
    found = conn.execute(_coupon_by_code, {"code": typed, "program_id": program_id}).mappings().first()
    if found is None:
        raise NotFound("coupon_not_found", "No coupon with this code in this program.", field=field)
    return _coupon(found)


def member_coupons(
    *,
    conn: Connection,
    program_id: str,
    member_id: str,
    states: Sequence[str] | None = None,
    cursor: str | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> list[Coupon]:
    """The member's coupons, newest first: up to ``limit`` of them, older than the coupon ``cursor``. With
    ``now``, as a reader sees them then (:func:`as_of`), ``states`` included."""
    members.require_known(conn=conn, program_id=program_id, member_id=member_id)
    query = _coupon_query().where(coupons.c.program_id == program_id, coupons.c.member_id == member_id)
    if states:
        query = query.where(_in_states(list(states), now))
    if cursor is not None:
        after = conn.execute(
            select(coupons.c.issued_at).where(
                coupons.c.id == cursor, coupons.c.program_id == program_id, coupons.c.member_id == member_id
            )
        ).scalar()
        if after is None:
            raise InvalidInput("invalid_cursor", "This cursor is not one of this member's coupons.", field="cursor")
        query = query.where((coupons.c.issued_at < after) | ((coupons.c.issued_at == after) & (coupons.c.id < cursor)))
    query = query.order_by(coupons.c.issued_at.desc(), coupons.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    found = [_coupon(r) for r in conn.execute(query).mappings()]
    return found if now is None else [as_of(coupon, now) for coupon in found]


def as_of(coupon: Coupon, now: datetime) -> Coupon:
    """The coupon as a reader sees it at ``now``: one past its date is expired, though the expiry job has not
    reached it yet (no till and no checkout takes it any more)."""
    if coupon.state == "issued" and coupon.expires_at is not None and coupon.expires_at <= now:
        return coupon.model_copy(update={"state": "expired", "closed_at": coupon.expires_at})
    return coupon


def _in_states(states: list[str], now: datetime | None) -> ColumnElement[bool]:
    """Coupons in any of ``states``; with ``now``, as :func:`as_of` shows them."""
    if now is None:
        return coupons.c.state.in_(states)
    past = and_(coupons.c.expires_at.is_not(None), coupons.c.expires_at <= now)
    wanted: list[ColumnElement[bool]] = [
        coupons.c.state.in_([state for state in states if state not in ("issued", "expired")])
    ]
    if "issued" in states:
        wanted.append(and_(coupons.c.state == "issued", not_(past)))
    if "expired" in states:
        wanted.append(or_(coupons.c.state == "expired", and_(coupons.c.state == "issued", past)))
    return or_(*wanted)


def coupon_page(
    *,
    conn: Connection,
    program_id: str,
    member_id: str,
    states: Sequence[str] | None,
    cursor: str | None,
    limit: int,
    now: datetime | None = None,
) -> CouponPage:
    """A page of the member's coupons, newest first; ``next_cursor`` leads to the older ones."""
    found = member_coupons(
        conn=conn, program_id=program_id, member_id=member_id, states=states, cursor=cursor, limit=limit + 1, now=now
    )
    return CouponPage(items=found[:limit], next_cursor=found[limit - 1].id if len(found) > limit else None)


def validate_coupon(
    *, conn: Connection, clock: Clock, program: Program, code: str, check: CouponCheck
) -> CouponValidity:
    """Can this coupon be used here, by this member, on this cart? And what does it take off? Writes nothing."""
    coupon = find_coupon(conn=conn, program_id=program.id, code=code)
    reward = reward_of(conn=conn, program_id=program.id, coupon=coupon)  # its terms as issued
    _check_usable(coupon, reward, check, clock.now(), program)
    discount = _discount(reward, check)
    _refuse_nothing_off(reward, discount, check, program)
    return CouponValidity(coupon=coupon, discount=discount, describes=describe_reward(reward, program))


def use_coupon(*, conn: Connection, clock: Clock, program: Program, code: str, use: CouponUse) -> tuple[Coupon, bool]:
    """Capture the coupon's points for this order. Using it again for the same order returns the same answer."""
    coupon = _locked_coupon(conn, program, code)
    if coupon.state == "used" and coupon.order_id == use.order_id:
        return coupon, True
    reward = reward_of(conn=conn, program_id=program.id, coupon=coupon)  # its terms as issued
    now = clock.now()
    _check_usable(coupon, reward, use, now, program)
    if _cart_total(use) is None and (reward.min_order is not None or reward.kind == "percent_off"):
        raise Unprocessable(
            "coupon_needs_total",
            "This coupon's minimum order or percentage is worked out on the order: send order_total (or lines).",
            field="order_total",
        )
    discount = _discount(reward, use)
    _refuse_nothing_off(reward, discount, use, program)
    if coupon.hold_id is not None:
        booking = ledger.Booking(
            program_id=program.id,
            member_id=coupon.member_id,
            kind="redeem",
            reason=f"Coupon used: {reward.title.en} (order #{use.order_id})",
            reason_code="coupon_used",
            now=now,
            effective_at=now,
            details={"coupon_id": coupon.id, "order_id": use.order_id},
        )
        holds.capture(conn, booking, hold_id=coupon.hold_id)
    conn.execute(
        update(coupons)
        .where(coupons.c.id == coupon.id, coupons.c.state == "issued")
        .values(
            state="used",
            used_at=now,
            closed_at=now,
            order_id=use.order_id,
            channel=use.channel,
            store_id=use.store_id,
            discount=discount,
        )
    )
    amounts = ledger.balances(conn, member_id=coupon.member_id)
    told = {"points": coupon.points, "order_id": use.order_id, "channel": use.channel, "discount": discount}
    balances = {"currency": program.currency, "available": amounts["available"], "held": amounts["held"]}
    _tell(conn, program, "coupon_used", coupon, told | balances, now)
    return find_coupon(conn=conn, program_id=program.id, code=code), False


def _locked_coupon(conn: Connection, program: Program, code: str) -> Coupon:
    """The coupon as it is under its member's lock. A merge may have moved it to another member while we waited:
    then that member is locked too, or a use and a cancellation under the two locks would both close its hold."""
    coupon = find_coupon(conn=conn, program_id=program.id, code=code)
    locked: set[str] = set()
    while coupon.member_id not in locked:
        lock_members(conn, [coupon.member_id])
        locked.add(coupon.member_id)
        coupon = find_coupon(conn=conn, program_id=program.id, code=code)  # as it is now that we hold the lock
    return coupon


def cancel_coupon(*, conn: Connection, clock: Clock, program: Program, code: str, actor: str) -> Coupon:
    """The member changed their mind: the points go back (those of lots expired since expire)."""
    coupon = _locked_coupon(conn, program, code)
    if coupon.state == "cancelled":
        return coupon
    _refuse_closed(coupon)
    _close(conn, clock, program, coupon, state="cancelled", actor=actor)
    return find_coupon(conn=conn, program_id=program.id, code=code)


def _close(conn: Connection, clock: Clock, program: Program, coupon: Coupon, *, state: str, actor: str) -> None:
    """Cancel or expire an issued coupon: void its hold, give its stock back."""
    now = clock.now()
    title = coupon.title.en
    returned = 0
    if coupon.hold_id is not None:
        booking = ledger.Booking(
            program_id=program.id,
            member_id=coupon.member_id,
            kind="release",
            reason=f"Coupon {'cancelled' if state == 'cancelled' else 'expired unused'}: {title}",  # + what came back
            reason_code="coupon_cancelled" if state == "cancelled" else "coupon_expired",
            now=now,
            effective_at=now,
            details={"coupon_id": coupon.id, "actor": actor},
        )
        returned = holds.void(conn, booking, hold_id=coupon.hold_id).restored
    conn.execute(
        update(coupons).where(coupons.c.id == coupon.id, coupons.c.state == "issued").values(state=state, closed_at=now)
    )
    _give_back_stock(conn, coupon.reward_id)
    if actor != "erasure":  # an erasure's one event is member_erased: there is no one left to write to
        _tell_closed(conn, program, coupon, state, returned, now)


def cancel_granted(
    *, conn: Connection, clock: Clock, program: Program, member_id: str, source_prefix: str, limit: int
) -> int:
    """Cancel up to ``limit`` of the member's unused coupons granted under ``source_prefix`` (a rule's award
    on one order), newest first; returns how many. The caller holds the member's lock."""
    found = conn.execute(
        _coupon_query()
        .where(
            coupons.c.program_id == program.id,
            coupons.c.member_id == member_id,
            coupons.c.state == "issued",
            coupons.c.source_ref.like(source_prefix.replace("%", r"\%").replace("_", r"\_") + "%", escape="\\"),
        )
        .order_by(coupons.c.issued_at.desc(), coupons.c.id.desc())
        .limit(limit)
    ).mappings()
    taken = [_coupon(row) for row in found]
    for coupon in taken:
        _close(conn, clock, program, coupon, state="cancelled", actor="engine")
    return len(taken)


def cancel_issued(*, conn: Connection, clock: Clock, program: Program, member_id: str, actor: str) -> int:
    """Cancel every unused coupon of the member (an erasure): their held points come back. Returns how many.
    The caller holds the member's lock."""
    found = conn.execute(
        _coupon_query()
        .where(coupons.c.program_id == program.id, coupons.c.member_id == member_id, coupons.c.state == "issued")
        .order_by(coupons.c.issued_at, coupons.c.id)
    ).mappings()
    taken = [_coupon(row) for row in found]
    for coupon in taken:
        _close(conn, clock, program, coupon, state="cancelled", actor=actor)
    return len(taken)


def take_back_granted(
    *, conn: Connection, clock: Clock, program: Program, source_refs: Sequence[str], actor: str
) -> tuple[list[str], list[str]]:
    """Cancel the unused coupons granted under ``source_refs`` (what a refunded period gave); returns the codes
    cancelled and those already used, which stay used. The caller holds the member's lock."""
    if not source_refs:
        return [], []
    found = [
        _coupon(row)
        for row in conn.execute(
            _coupon_query()
            .where(coupons.c.program_id == program.id, coupons.c.source_ref.in_(list(source_refs)))
            .order_by(coupons.c.issued_at, coupons.c.id)
        ).mappings()
    ]
    for coupon in found:
        if coupon.state == "issued":
            _close(conn, clock, program, coupon, state="cancelled", actor=actor)
    return [c.code for c in found if c.state == "issued"], [c.code for c in found if c.state == "used"]


def expire_coupons(db: Database, clock: Clock, *, batch_size: int = 500, program_id: str | None = None) -> int:
    """Issued coupons past their date expire and their points go back: batches, safe with several workers."""
    done = 0
    while True:
        # run again if chosen as a deadlock's victim (points coming back repay a debt from lots a sweep holds)
        expired, more = db.run(lambda conn: _expire_coupon_batch(conn, clock, batch_size, program_id))
        done += expired
        if not more:
            return done


def _expire_coupon_batch(conn: Connection, clock: Clock, batch_size: int, program_id: str | None) -> tuple[int, bool]:
    """One batch of due coupons: how many expired, and whether to look for more."""
    now = clock.now()
    query = select(coupons.c.id, coupons.c.member_id, coupons.c.program_id).where(
        coupons.c.state == "issued", coupons.c.expires_at <= now
    )
    if program_id is not None:
        query = query.where(coupons.c.program_id == program_id)
    due = conn.execute(
        query.order_by(coupons.c.expires_at, coupons.c.id).limit(batch_size).with_for_update(skip_locked=True)
    ).all()
    if not due:
        return 0, False
    free = try_lock_members(conn, {d.member_id for d in due})
    programs: dict[str, Program] = {}
    expired = 0
    for d in due:
        if d.member_id not in free:
            continue
        program = programs.get(d.program_id) or _program(conn, d.program_id)
        programs[d.program_id] = program
        coupon = _coupon(conn.execute(_coupon_query().where(coupons.c.id == d.id)).mappings().one())
        _close(conn, clock, program, coupon, state="expired", actor="engine")
        expired += 1
    return expired, bool(free)


def _program(conn: Connection, program_id: str) -> Program:
    from palier.programs.service import get_program

    return get_program(conn=conn, program_id=program_id)


def _refuse_closed(coupon: Coupon) -> None:
    if coupon.state == "used":
        # store credit is used when redeemed, on no order
        where = f"order #{coupon.order_id}" if coupon.order_id else "its store credit is in the member's wallet"
        raise Conflict(
            "coupon_used",
            f"This coupon was already used ({where}).",
            field="code",
            order_id=coupon.order_id,
        )
    if coupon.state == "expired":
        raise Unprocessable("coupon_expired", "This coupon has expired.", field="code")
    if coupon.state == "cancelled":
        raise Unprocessable("coupon_cancelled", "This coupon was cancelled.", field="code")


def _check_usable(coupon: Coupon, reward: Reward, check: CouponCheck, now: datetime, program: Program) -> None:
    _refuse_closed(coupon)
    if coupon.expires_at is not None and coupon.expires_at <= now:
        raise Unprocessable("coupon_expired", "This coupon has expired.", field="code")
    if check.member_id is not None and check.member_id != coupon.member_id:
        raise Unprocessable("coupon_other_member", "This coupon belongs to another member.", field="member_id")
    if not _on_channel(reward, check.channel):
        raise Unprocessable(
            "coupon_wrong_channel",
            f"This coupon cannot be used on the {check.channel} channel; it is for {', '.join(reward.channels or [])}.",
            field="channel",
        )
    total = _cart_total(check)
    if reward.min_order is not None and total is not None and total < reward.min_order:
        raise Unprocessable(
            "coupon_min_order",
            f"This coupon needs an order of at least {program.money(reward.min_order)}; "
            f"the cart is {program.money(total)}.",
            field="order_total",
            min_order=reward.min_order,
        )
    if (
        reward.kind == "free_product"
        and check.lines is not None
        and not any(line.sku == reward.sku for line in check.lines)
    ):
        raise Unprocessable(
            "coupon_product_missing",
            f"This coupon gives {reward.sku}: add it to the cart first.",
            field="lines",
            sku=reward.sku,
        )


def _refuse_nothing_off(reward: Reward, discount: int | None, cart: CouponCheck, program: Program) -> None:
    """A discount coupon that would take nothing off this order (a €0 total, no shipping, a percentage of a few
    cents, a free product the cart already gives away) is kept for another."""
    if discount == 0 and reward.kind == "free_product":
        raise Unprocessable(
            "coupon_nothing_off",
            f"This coupon would take nothing off this order ({reward.sku} costs nothing in the cart): keep it for "
            "another one.",
            field="lines",
            sku=reward.sku,
        )
    if discount == 0 and reward.kind in ("amount_off", "percent_off", "free_shipping"):
        what = "shipping" if reward.kind == "free_shipping" else "order_total"
        seen = (cart.shipping if what == "shipping" else _cart_total(cart)) or 0
        raise Unprocessable(
            "coupon_nothing_off",
            f"This coupon would take nothing off this order (its {what.replace('_', ' ')} is "
            f"{program.money(seen)}): keep it for another one.",
            field=what,
        )


def _cart_total(cart: CouponCheck) -> int | None:
    if cart.order_total is not None:
        return cart.order_total
    if cart.lines is not None:
        return sum(line.amount for line in cart.lines) + (cart.shipping or 0)
    return None


def _discount(reward: Reward, cart: CouponCheck) -> int | None:
    """Minor units the coupon takes off this cart (None when the cart does not say enough)."""
    total = _cart_total(cart)
    if reward.kind == "amount_off":
        assert reward.amount is not None
        return reward.amount if total is None else min(reward.amount, total)
    if reward.kind == "percent_off":
        if total is None:
            return None
        assert reward.percent is not None
        off = divide(total * reward.percent, 100, Rounding.FLOOR)
        return min(off, reward.max_discount) if reward.max_discount is not None else off
    if reward.kind == "free_shipping":  # a cart of lines that names no shipping has none to take off
        return cart.shipping if cart.shipping is not None or cart.lines is None else 0
    if reward.kind == "free_product":
        line = next((item for item in cart.lines or [] if item.sku == reward.sku), None)
        # its unit price, but never more than the line costs after the cart's own discount
        return None if line is None else min(line.unit_price, line.amount)
    return 0


def describe_reward(reward: Reward, program: Program) -> str:
    """What the reward gives, as the till shows it: ``€5.00 off``, ``Free: SKU``, ``Free shipping``…"""
    money = program.money
    if reward.kind == "amount_off":
        assert reward.amount is not None
        return f"{money(reward.amount)} off"
    if reward.kind == "percent_off":
        cap = f" (at most {money(reward.max_discount)})" if reward.max_discount else ""
        return f"{reward.percent}% off{cap}"
    if reward.kind == "free_product":
        return f"Free: {reward.sku}"
    if reward.kind == "free_shipping":
        return "Free shipping"
    if reward.kind == "store_credit":
        assert reward.amount is not None
        return f"{money(reward.amount)} store credit"
    return f"Hand over: {reward.title.en}"


def move_member(conn: Connection, *, booking: ledger.Booking, program: Program, source_id: str) -> int:
    """A merge into ``booking.member_id``: the source's coupons, payments and store credit move over.

    Returns the store credit moved (minor units). The caller holds both members' locks."""
    from palier.rewards.tables import order_payments

    target_id = booking.member_id
    conn.execute(update(coupons).where(coupons.c.member_id == source_id).values(member_id=target_id))
    conn.execute(update(order_payments).where(order_payments.c.member_id == source_id).values(member_id=target_id))
    credit = ledger.balances_of(conn, source_id, "wallet")
    if credit:
        money = money_asset(program.currency, program.currency_exponent)
        target_wallet = open_wallet(conn, program_id=program.id, member_id=target_id, money=money)
        write(
            conn,
            [
                replace(booking, reason="Store credit from a merged duplicate account").entry(
                    [
                        Posting(target_wallet, credit, member_id=target_id, asset=money),
                        Posting(member_account(source_id, "wallet"), -credit, member_id=source_id, asset=money),
                    ],
                    extra={"source_member_id": source_id},
                )
            ],
        )
    return credit


def _coupon_query() -> Any:
    return select(coupons, rewards.c.kind).join(rewards, rewards.c.id == coupons.c.reward_id)


# Built once: on the hot paths (the balance, the catalog, redeem, validate, use) building a statement per
# call costs more Python than executing it.
_catalog = (
    select(rewards).where(rewards.c.program_id == bindparam("program_id")).order_by(rewards.c.cost_points, rewards.c.id)
)
_catalog_in_status = _catalog.where(rewards.c.status == bindparam("status"))
_redeemed = select(coupons.c.reward_id, coupons.c.issued_at).where(
    coupons.c.program_id == bindparam("program_id"),
    coupons.c.member_id == bindparam("member_id"),
    coupons.c.source == "redeem",
    coupons.c.state.in_(("issued", "used")),
)
_redeemed_of_reward = _redeemed.where(coupons.c.reward_id == bindparam("reward_id"))
_select_reward = select(rewards).where(
    rewards.c.id == bindparam("reward_id"), rewards.c.program_id == bindparam("program_id")
)
_insert_coupon = insert(coupons)
_coupon_by_code = _coupon_query().where(
    coupons.c.code == bindparam("code"), coupons.c.program_id == bindparam("program_id")
)


def _coupon(row: Any) -> Coupon:
    data = {k: row[k] for k in Coupon.model_fields if k in row}
    for name in ("issued_at", "expires_at", "used_at", "closed_at"):
        if data.get(name) is not None:
            data[name] = utc(data[name])
    return Coupon.model_validate(data)
