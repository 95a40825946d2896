"""Paid VIP membership: the merchant's checkout takes the fee, Palier records it and keeps the status.

A payment starts a membership (or ends its trial) and each later payment renews it from the end of
the paid period. Cancelling keeps the benefits to the period's end; a membership whose period ended
without a payment lapses (a job). Plans may be open to all, to one segment, or to invitation holders.
Every start, renewal, cancellation and lapse is written to the outbox; period rewards (a free-delivery
coupon each month…) are granted once per period.

Invitations also make a whole program invite-only (program setting ``enrolment: invitation``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from palier.activity.facts import checked_occurred_at
from palier.clock import Clock, in_zone, utc
from palier.db import Database
from palier.errors import Conflict, InvalidInput, NotFound, PalierError, Unprocessable, invalid_input
from palier.ids import new_id
from palier.ledger.locks import lock_members
from palier.members import service as members
from palier.members.tables import members as member_rows
from palier.memberships.models import (
    Invitation,
    InvitationsIn,
    JoinIn,
    Membership,
    MembershipPaymentIn,
    MembershipPaymentLine,
    MembershipRefund,
    MembershipRefundIn,
    Plan,
    PlanIn,
    PlanUpdate,
    RewardNotGiven,
)
from palier.memberships.tables import invitations, membership_payments, memberships, plans
from palier.notify.outbox import emit
from palier.programs.models import Program
from palier.programs.service import record_audit
from palier.rewards import codes
from palier.rewards.models import Localized
from palier.tiers.status import bump
from palier.timeutil import add_months

LIVE = ("trial", "active", "cancelled")
# An active membership's renewal may come this late (a card payment retried by the processor): it then
# renews on the same billing dates. The benefits pause from the period's end until it is paid; the lapse
# job waits this long before lapsing it. A trial or a cancelled membership lapses at its period's end.
LAPSE_GRACE = timedelta(days=3)


# --- plans ---


def create_plan(*, conn: Connection, clock: Clock, program: Program, data: PlanIn, actor: str) -> Plan:
    _check_references(conn, program, data)
    plan_id = new_id("plan")
    try:
        with conn.begin_nested():
            conn.execute(
                insert(plans).values(
                    id=plan_id,
                    program_id=program.id,
                    status="active",
                    created_at=clock.now(),
                    **data.model_dump(mode="json"),
                )
            )
    except IntegrityError:
        raise Conflict("plan_code_taken", f"A plan {data.code!r} already exists.", field="code") from None
    bump(conn, program_id=program.id)
    record_audit(
        conn=conn, clock=clock, program_id=program.id, actor=actor, action="plan.created", subject_id=plan_id,
        details=data.model_dump(mode="json"),
    )  # fmt: skip
    return get_plan(conn=conn, program_id=program.id, code=data.code)


def _check_references(conn: Connection, program: Program, data: PlanIn) -> None:
    """The access segment and the period rewards a plan names exist, and the rewards can be given."""
    if data.access == "segment":
        from palier.segments.service import get_segment

        get_segment(conn=conn, program_id=program.id, code=data.segment or "")
    for i, reward_id in enumerate(data.benefits.period_rewards):
        from palier.rewards.service import get_reward, require_grantable

        try:
            reward = get_reward(conn=conn, program_id=program.id, reward_id=reward_id)
        except NotFound as missing:  # named by its place in the plan, as a reward that cannot be given is
            missing.field = f"benefits.period_rewards[{i}]"
            raise
        require_grantable(reward, field=f"benefits.period_rewards[{i}]")


def update_plan(
    *, conn: Connection, clock: Clock, program: Program, code: str, changes: PlanUpdate, actor: str
) -> Plan:
    """Change what a plan gives or who may join it; benefits apply to running memberships at once (their
    next period's rewards included)."""
    current = get_plan(conn=conn, program_id=program.id, code=code)
    sent = changes.model_dump(mode="json", exclude_unset=True)
    for fixed in ("price", "period"):
        if fixed in sent and sent[fixed] != getattr(current, fixed):
            raise Unprocessable(
                "price_fixed",
                f"A plan's {fixed} cannot change: members are charged it at every renewal. Add a new plan "
                "and archive this one.",
                field=fixed,
            )
    if sent.get("access") not in (None, "segment"):
        sent.setdefault("segment", None)  # leaving segment access leaves its segment
    status = sent.pop("status", current.status)
    merged = current.model_dump(mode="json", exclude={"id", "status", "created_at"}) | sent
    try:
        data = PlanIn.model_validate(merged)
    except ValidationError as exc:  # e.g. access segment without a segment
        raise invalid_input(exc, default_field=next(iter(sent), "body")) from None
    _check_references(conn, program, data)
    values = data.model_dump(mode="json", exclude={"code", "price", "period"})
    conn.execute(update(plans).where(plans.c.id == current.id).values(status=status, **values))
    bump(conn, program_id=program.id)
    record_audit(
        conn=conn, clock=clock, program_id=program.id, actor=actor, action="plan.updated", subject_id=current.id,
        details=changes.model_dump(mode="json", exclude_unset=True),
    )  # fmt: skip
    return get_plan(conn=conn, program_id=program.id, code=code)


def get_plan(*, conn: Connection, program_id: str, code: str) -> Plan:
    row = conn.execute(select(plans).where(plans.c.program_id == program_id, plans.c.code == code)).mappings().first()
    if row is None:
        raise NotFound("plan_not_found", f"No plan {code!r} in this program.", field="plan")
    return _plan(row)


def list_plans(*, conn: Connection, program_id: str) -> list[Plan]:
    rows = conn.execute(select(plans).where(plans.c.program_id == program_id).order_by(plans.c.price, plans.c.code))
    return [_plan(r) for r in rows.mappings()]


def live_counts(*, conn: Connection, program_id: str) -> dict[str, int]:
    """How many memberships of each plan (by plan code) are running: in trial, active or cancelled to their end."""
    rows = conn.execute(
        select(plans.c.code, func.count())
        .join(memberships, memberships.c.plan_id == plans.c.id)
        .where(plans.c.program_id == program_id, memberships.c.state.in_(LIVE))
        .group_by(plans.c.code)
    )
    return {code: int(count) for code, count in rows}


def _plan(row: Any) -> Plan:
    data = {k: row[k] for k in Plan.model_fields}
    data["created_at"] = utc(data["created_at"])
    return Plan.model_validate(data)


# --- joining, paying, cancelling ---


def start_trial(*, conn: Connection, clock: Clock, program: Program, member_id: str, data: JoinIn) -> Membership:
    lock_members(conn, [member_id])
    members.require_active(conn=conn, program_id=program.id, member_id=member_id)
    plan = get_plan(conn=conn, program_id=program.id, code=data.plan)
    if plan.status == "archived":
        raise Unprocessable("plan_archived", f"Plan {plan.code!r} is no longer offered.", field="plan")
    if plan.trial_days == 0:
        raise Unprocessable(
            "no_trial", f"Plan {plan.code!r} has no free trial: it starts with a payment.", field="plan"
        )
    if _live(conn, program.id, member_id, plan.id) is not None:
        raise Conflict("already_member", f"The member already has plan {plan.code!r}.", field="plan")
    if _had_plan(conn, program.id, member_id, plan.id):
        raise Unprocessable("trial_used", "A free trial is for a first membership only.", field="plan")
    now = clock.now()
    _check_access(conn, clock, program, plan, member_id, data.invitation_code)
    trial = timedelta(days=plan.trial_days)
    membership_id = _insert(conn, program, member_id, plan, "trial", now, now + trial)
    emit(
        conn, program_id=program.id, type_="membership_started", subject_id=member_id,
        payload={"member_id": member_id, "plan": plan.code, "trial": True}, now=now,
    )  # fmt: skip
    not_given = _period_rewards(conn, clock, program, plan, member_id, membership_id, now, now + trial, paid=False)
    found = get_membership(conn=conn, program_id=program.id, membership_id=membership_id)
    found.period_rewards_not_given = not_given
    return found


def _recorded_payment(conn: Connection, program: Program, data: MembershipPaymentIn) -> Membership | None:
    """The answer kept for this payment id, or None; the id kept for another member, plan or amount: 409."""
    kept = conn.execute(
        select(membership_payments.c.result, membership_payments.c.amount).where(
            membership_payments.c.program_id == program.id, membership_payments.c.payment_id == data.payment_id
        )
    ).first()
    if kept is None:
        return None
    found = Membership.model_validate(kept.result)
    if found.member_id != data.member_id or found.plan != data.plan or kept.amount != data.amount:
        raise Conflict(
            "payment_conflict",
            "This payment was already recorded for another member, plan or amount.",
            field="payment_id",
        )
    return found


def record_payment(
    *, conn: Connection, clock: Clock, program: Program, data: MembershipPaymentIn
) -> tuple[Membership, bool]:
    """Start or renew for a payment; the same payment again returns the first answer (True: a replay)."""
    if (found := _recorded_payment(conn, program, data)) is not None:
        return found, True
    lock_members(conn, [data.member_id])
    # the same payment sent again at once (a checkout retrying) waited on the lock while the first renewed
    # the membership: it gets the first's answer, not paid_ahead for the period that first one paid
    if (found := _recorded_payment(conn, program, data)) is not None:
        return found, True
    members.require_active(conn=conn, program_id=program.id, member_id=data.member_id)
    plan = get_plan(conn=conn, program_id=program.id, code=data.plan)
    if data.amount != plan.price:
        raise Unprocessable(
            "payment_amount_mismatch",
            f"Plan {plan.code!r} costs {program.money(plan.price)} per period; the payment was "
            f"{program.money(data.amount)}.",
            field="amount",
            price=plan.price,
        )
    now = clock.now()
    paid_at = checked_occurred_at(data.paid_at, now, timezone=program.timezone, field="paid_at")
    paid_at = min(paid_at, now)  # a till a little fast: now
    earliest = _earliest_start(conn, program, plan, data.member_id, paid_at)
    live = _live(conn, program.id, data.member_id, plan.id) or _lapsed_in_grace(
        conn, program.id, data.member_id, plan.id, paid_at
    )
    if live is None:
        _check_access(conn, clock, program, plan, data.member_id, data.invitation_code)
        start = max(paid_at, earliest)  # never before the member or the plan; billing dates from paid_at
        end = period_end(plan.period, anchor=paid_at, after=start, timezone=program.timezone)
        membership_id = _insert(conn, program, data.member_id, plan, "active", start, end, anchor=paid_at)
        event = "membership_started"
    else:
        membership_id = live["id"]
        ended = utc(live["period_end"])
        if live["state"] != "trial" and paid_at <= ended + LAPSE_GRACE:  # on the same billing dates
            start, anchor = ended, utc(live["billing_anchor"] or live["period_start"])
            if ended > period_end(plan.period, anchor=anchor, after=paid_at, timezone=program.timezone):
                # the next period is paid already: this one's perks would be handed out now, periods ahead
                raise Conflict(
                    "paid_ahead",
                    f"The membership is already paid until {ended.isoformat()}: a payment renews it at most one "
                    "period ahead. Record it when that period is about to end.",
                    field="paid_at",
                    paid_until=ended.isoformat(),
                )
        else:  # a trial converts (never before it began), or a payment long after the period ended starts anew
            start = anchor = max(paid_at, utc(live["period_start"]))
        end = period_end(plan.period, anchor=anchor, after=start, timezone=program.timezone)
        conn.execute(
            update(memberships)
            .where(memberships.c.id == membership_id)
            .values(
                state="active",
                period_start=start,
                period_end=end,
                billing_anchor=anchor,
                cancelled_at=None,
                ended_at=None,
                updated_at=now,
            )
        )
        event = "membership_started" if live["state"] == "trial" else "membership_renewed"
    emit(
        conn, program_id=program.id, type_=event, subject_id=data.member_id,
        payload={"member_id": data.member_id, "plan": plan.code, "period_end": end.isoformat()}, now=now,
    )  # fmt: skip
    not_given = _period_rewards(conn, clock, program, plan, data.member_id, membership_id, start, end)
    result = get_membership(conn=conn, program_id=program.id, membership_id=membership_id)
    result.period_rewards_not_given = not_given
    conn.execute(
        insert(membership_payments).values(
            id=new_id("payment"),
            program_id=program.id,
            membership_id=membership_id,
            payment_id=data.payment_id,
            amount=data.amount,
            paid_at=paid_at,
            period_start=start,
            period_end=end,
            result=result.model_dump(mode="json"),
        )
    )
    return result, False


def refund_payment(
    *, conn: Connection, clock: Clock, program: Program, payment_id: str, data: MembershipRefundIn, actor: str
) -> MembershipRefund:
    """The merchant gave a fee back: take back what it paid for that is not used yet.

    A period still running ends now; one still to come is no longer paid for (the membership ends where the
    period before it did); one already over changes nothing, since the member had it. Either way the coupons
    that period gave and that are still unused are cancelled; those used stay used. The points the plan's
    multiplier gave on purchases stay: they were earned while the member had the plan. A refund sent again
    answers the first refund. Only the latest paid period can be taken back while a later one is paid."""
    from palier.rewards.service import take_back_granted  # rewards read plans: imported when used

    paid = _payment_row(conn, program.id, payment_id)
    owner = conn.execute(select(memberships.c.member_id).where(memberships.c.id == paid["membership_id"])).scalar_one()
    lock_members(conn, [owner])
    paid = _payment_row(conn, program.id, payment_id)  # under the lock: a refund sent twice at once counts once
    if paid["refund"] is not None:
        return MembershipRefund.model_validate(paid["refund"])
    now = clock.now()
    start, end = utc(paid["period_start"]), utc(paid["period_end"])
    current = get_membership(conn=conn, program_id=program.id, membership_id=paid["membership_id"])
    taken_back = end > now and current.state != "lapsed"
    if taken_back:
        later = conn.execute(
            select(membership_payments.c.payment_id).where(
                membership_payments.c.membership_id == paid["membership_id"],
                membership_payments.c.period_start >= end,
                membership_payments.c.refunded_at.is_(None),
            )
        ).scalar()
        if later is not None:
            raise Conflict(
                "payment_not_latest",
                f"Payment {later!r} pays the period after this one: refund it first.",
                field="payment_id",
                later_payment_id=later,
            )
        values: dict[str, Any] = {"period_end": start, "updated_at": now}
        if start <= now:  # the period runs: the membership ends now
            values |= {"state": "lapsed", "period_end": now, "ended_at": now}
        conn.execute(update(memberships).where(memberships.c.id == current.id).values(**values))
    given = Membership.model_validate(paid["result"]).benefits.period_rewards
    refs = [f"plan:{current.id}:{reward_id}:{start.date().isoformat()}:paid" for reward_id in given]
    cancelled, used = take_back_granted(conn=conn, clock=clock, program=program, source_refs=refs, actor=actor)
    refund = MembershipRefund(
        payment_id=payment_id,
        amount=int(paid["amount"]),
        refunded_at=now,
        time_taken_back=taken_back,
        coupons_cancelled=cancelled,
        coupons_used=used,
        membership=get_membership(conn=conn, program_id=program.id, membership_id=current.id),
    )
    conn.execute(
        update(membership_payments)
        .where(membership_payments.c.id == paid["id"])
        .values(refunded_at=now, refund=refund.model_dump(mode="json"))
    )
    emit(
        conn, program_id=program.id, type_="membership_refunded", subject_id=owner,
        payload={"member_id": owner, "plan": current.plan, "payment_id": payment_id,
                 "state": refund.membership.state, "period_end": refund.membership.period_end.isoformat()},
        now=now,
    )  # fmt: skip
    record_audit(
        conn=conn, clock=clock, program_id=program.id, actor=actor, action="membership_payment.refunded",
        subject_id=owner, details={"payment_id": payment_id, "amount": refund.amount, "note": data.note,
                                   "time_taken_back": taken_back, "coupons_cancelled": cancelled},
    )  # fmt: skip
    return refund


def _payment_row(conn: Connection, program_id: str, payment_id: str) -> Any:
    found = (
        conn.execute(
            select(membership_payments).where(
                membership_payments.c.program_id == program_id, membership_payments.c.payment_id == payment_id
            )
        )
        .mappings()
        .first()
    )
    if found is None:
        raise NotFound("payment_not_found", "No membership payment has this payment_id.", field="payment_id")
    return found


def cancel(*, conn: Connection, clock: Clock, program: Program, member_id: str, membership_id: str) -> Membership:
    """No more renewals: the benefits last to the end of the paid period (a trial ends at once)."""
    lock_members(conn, [member_id])
    members.require_known(conn=conn, program_id=program.id, member_id=member_id)
    found = get_membership(conn=conn, program_id=program.id, membership_id=membership_id)
    if found.member_id != member_id:
        raise NotFound("membership_not_found", f"No membership {membership_id} for this member.", field="membership_id")
    if found.state in ("cancelled", "lapsed"):
        return found
    now = clock.now()
    values: dict[str, Any] = {"state": "cancelled", "cancelled_at": now, "updated_at": now}
    if found.state == "trial":
        values |= {"state": "lapsed", "period_end": now, "ended_at": now}
    conn.execute(update(memberships).where(memberships.c.id == membership_id).values(**values))
    until = values.get("period_end", found.period_end)  # the benefits last until then
    emit(
        conn, program_id=program.id, type_="membership_cancelled", subject_id=member_id,
        payload={"member_id": member_id, "plan": found.plan, "period_end": utc(until).isoformat()}, now=now,
    )  # fmt: skip
    return get_membership(conn=conn, program_id=program.id, membership_id=membership_id)


def lapse(db: Database, clock: Clock, *, program_id: str | None = None, batch_size: int = 1000) -> int:
    """Memberships whose period ended without a payment lapse (the job). Safe to run twice."""
    done = 0
    while True:
        with db.write() as conn:
            now = clock.now()
            query = select(
                memberships.c.id,
                memberships.c.program_id,
                memberships.c.member_id,
                memberships.c.period_end,
                plans.c.code,
            ).join(plans, plans.c.id == memberships.c.plan_id)
            ended = or_(
                and_(memberships.c.state.in_(("trial", "cancelled")), memberships.c.period_end <= now),
                and_(memberships.c.state == "active", memberships.c.period_end <= now - LAPSE_GRACE),
            )
            query = query.where(ended)
            if program_id is not None:
                query = query.where(memberships.c.program_id == program_id)
            due = conn.execute(
                query.order_by(memberships.c.period_end)
                .limit(batch_size)
                .with_for_update(of=memberships, skip_locked=True)
            ).all()
            if not due:
                return done
            conn.execute(
                update(memberships)
                .where(memberships.c.id.in_([d.id for d in due]))
                .values(state="lapsed", ended_at=now, updated_at=now)
            )
            for d in due:
                emit(
                    conn, program_id=d.program_id, type_="membership_lapsed", subject_id=d.member_id,
                    payload={"member_id": d.member_id, "plan": d.code, "period_end": utc(d.period_end).isoformat()},
                    now=now,
                )  # fmt: skip
            done += len(due)


def member_memberships(*, conn: Connection, program_id: str, member_id: str) -> list[Membership]:
    members.require_known(conn=conn, program_id=program_id, member_id=member_id)
    rows = conn.execute(
        _query().where(memberships.c.program_id == program_id, memberships.c.member_id == member_id)
        .order_by(memberships.c.started_at.desc())
    ).mappings()  # fmt: skip
    return [_membership(r) for r in rows]


def member_payments(
    *, conn: Connection, program_id: str, member_id: str, limit: int | None = 50
) -> list[MembershipPaymentLine]:
    """The fees the member paid for plans, newest first (the latest ``limit``; None: all), with those refunded."""
    rows = conn.execute(
        select(
            membership_payments.c.payment_id, membership_payments.c.amount, membership_payments.c.paid_at,
            membership_payments.c.period_start, membership_payments.c.period_end, membership_payments.c.refunded_at,
            membership_payments.c.refund, plans.c.code.label("plan"), plans.c.name.label("plan_name"),
        )
        .join(memberships, memberships.c.id == membership_payments.c.membership_id)
        .join(plans, plans.c.id == memberships.c.plan_id)
        .where(membership_payments.c.program_id == program_id, memberships.c.member_id == member_id)
        .order_by(membership_payments.c.paid_at.desc(), membership_payments.c.id.desc())
        .limit(limit)
    ).mappings()  # fmt: skip
    lines = []
    for row in rows:
        refund = row["refund"] or {}
        moments = {name: utc(row[name]) for name in ("paid_at", "period_start", "period_end")}
        refunded = {"refunded_at": utc(row["refunded_at"]) if row["refunded_at"] is not None else None}
        told = {
            "time_taken_back": refund.get("time_taken_back"),
            "coupons_cancelled": refund.get("coupons_cancelled", []),
        }
        fields = {k: v for k, v in row.items() if k != "refund"}
        lines.append(MembershipPaymentLine.model_validate(fields | moments | refunded | told))
    return lines


def payment_member(*, conn: Connection, program_id: str, payment_id: str) -> str:
    """The member whose membership fee ``payment_id`` paid (``payment_not_found`` if none of the program)."""
    paid = _payment_row(conn, program_id, payment_id)
    owner: str = conn.execute(
        select(memberships.c.member_id).where(memberships.c.id == paid["membership_id"])
    ).scalar_one()
    return owner


def get_membership(*, conn: Connection, program_id: str, membership_id: str) -> Membership:
    row = conn.execute(
        _query().where(memberships.c.id == membership_id, memberships.c.program_id == program_id)
    ).mappings().first()  # fmt: skip
    if row is None:
        raise NotFound("membership_not_found", f"No membership {membership_id}.", field="membership_id")
    return _membership(row)


def live_plans(conn: Connection, *, program_id: str, member_id: str, now: datetime) -> frozenset[str]:
    """Codes of the plans whose benefits the member has right now (reward eligibility, rules)."""
    return frozenset(live_plan_benefits(conn, program_id=program_id, member_id=member_id, now=now))


def live_plan_benefits(
    conn: Connection, *, program_id: str, member_id: str, now: datetime
) -> dict[str, tuple[Localized, int]]:
    """The member's plans live at ``now``: code -> (name, earn multiplier percent). ``now`` may be in the past
    (a purchase sent late earns with the plans of its day): begun by then, its period not over, not ended."""
    rows = conn.execute(
        select(plans.c.code, plans.c.name, plans.c.benefits)
        .join(memberships, memberships.c.plan_id == plans.c.id)
        .where(
            memberships.c.program_id == program_id,  # by the (program, member) index: on every purchase
            memberships.c.member_id == member_id,
            memberships.c.started_at <= now,
            memberships.c.period_end > now,
            or_(memberships.c.ended_at.is_(None), memberships.c.ended_at > now),
        )
    )
    return {
        code: (Localized.model_validate(name), int(benefits.get("multiplier_percent", 100)))
        for code, name, benefits in rows
    }


def _query() -> Any:
    return select(memberships, plans.c.code.label("plan"), plans.c.name.label("plan_name"), plans.c.benefits).join(
        plans, plans.c.id == memberships.c.plan_id
    )


def _membership(row: Any) -> Membership:
    data = {k: row[k] for k in Membership.model_fields if k != "period_rewards_not_given"}
    for name in ("started_at", "period_start", "period_end", "cancelled_at", "ended_at"):
        if data[name] is not None:
            data[name] = utc(data[name])
    return Membership.model_validate(data)


def _live(conn: Connection, program_id: str, member_id: str, plan_id: str) -> Any:
    return (
        conn.execute(
            select(memberships).where(
                memberships.c.program_id == program_id,
                memberships.c.member_id == member_id,
                memberships.c.plan_id == plan_id,
                memberships.c.state.in_(LIVE),
            )
        )
        .mappings()
        .first()
    )


def _lapsed_in_grace(conn: Connection, program_id: str, member_id: str, plan_id: str, paid_at: datetime) -> Any:
    """A paid membership the lapse job ended although this payment is dated within its grace (recorded late,
    after the job ran): the payment renews it on its billing dates, as it would have before the job. One that a
    refund ended is over: a fee paid after it starts a membership of its own, a whole period from its date."""
    return (
        conn.execute(
            select(memberships)
            .where(
                memberships.c.program_id == program_id,
                memberships.c.member_id == member_id,
                memberships.c.plan_id == plan_id,
                memberships.c.state == "lapsed",
                memberships.c.period_end >= paid_at - LAPSE_GRACE,
                select(membership_payments.c.id)  # it was paid for, not a trial that ended
                .where(membership_payments.c.membership_id == memberships.c.id)
                .exists(),
                ~select(membership_payments.c.id)  # nor ended by a refund: a new fee buys a period of its own
                .where(
                    membership_payments.c.membership_id == memberships.c.id,
                    membership_payments.c.refunded_at >= membership_payments.c.period_start,
                    membership_payments.c.refunded_at < membership_payments.c.period_end,
                )
                .exists(),
            )
            .order_by(memberships.c.period_end.desc())
        )
        .mappings()
        .first()
    )


def _had_plan(conn: Connection, program_id: str, member_id: str, plan_id: str) -> bool:
    return (
        conn.execute(
            select(memberships.c.id).where(
                memberships.c.program_id == program_id,
                memberships.c.member_id == member_id,
                memberships.c.plan_id == plan_id,
            )
        ).first()
        is not None
    )


def _insert(
    conn: Connection,
    program: Program,
    member_id: str,
    plan: Plan,
    state: str,
    start: datetime,
    end: datetime,
    *,
    anchor: datetime | None = None,
) -> str:
    membership_id = new_id("membership")
    conn.execute(
        insert(memberships).values(
            id=membership_id,
            program_id=program.id,
            member_id=member_id,
            plan_id=plan.id,
            state=state,
            started_at=start,
            period_start=start,
            period_end=end,
            billing_anchor=anchor,
            updated_at=start,
        )
    )
    return membership_id


def period_end(period: str, *, anchor: datetime, after: datetime, timezone: str) -> datetime:
    """The first billing date after ``after`` of a membership whose paid periods count from ``anchor``.

    Months are counted from the anchor on the program's calendar (``timezone``), each clamped to its month's
    end, so one paid on 31 January renews on 28 February, then 31 March: never drifting to the 28th.
    """
    zone = ZoneInfo(timezone)
    local = utc(anchor).astimezone(zone).replace(tzinfo=None)  # wall-clock time: months are added to it

    def nth(n: int) -> datetime:
        return utc(add_months(local, n).replace(tzinfo=zone))

    step = 1 if period == "monthly" else 12
    months = (after.year - anchor.year) * 12 + after.month - anchor.month
    n = max(step, (months - 1) // step * step)
    while nth(n) <= after:
        n += step
    return nth(n)


def _earliest_start(conn: Connection, program: Program, plan: Plan, member_id: str, paid_at: datetime) -> datetime:
    """When a membership paid at ``paid_at`` may begin at the earliest: once the member enrolled and the plan
    was created (a processor replaying old payments must not make someone a member before either existed).

    A payment whose whole period was over by then paid for no time the member could have had the plan:
    refused (422 on ``paid_at``) rather than stretched over a period it did not pay for.
    """
    enrolled = utc(conn.execute(select(member_rows.c.enrolled_at).where(member_rows.c.id == member_id)).scalar_one())
    paid_until = period_end(plan.period, anchor=paid_at, after=paid_at, timezone=program.timezone)
    for since, code, what in (
        (enrolled, "paid_before_enrolment", "the member enrolled"),
        (plan.created_at, "paid_before_plan", f"plan {plan.code!r} was created"),
    ):
        if paid_until <= since:
            raise Unprocessable(
                code,
                f"This payment paid for a period that ended on {paid_until.isoformat()}, before {what} "
                f"({since.isoformat()}): it gives no membership.",
                field="paid_at",
                period_end=paid_until.isoformat(),
            )
    return max(enrolled, plan.created_at)


def _period_rewards(
    conn: Connection,
    clock: Clock,
    program: Program,
    plan: Plan,
    member_id: str,
    membership_id: str,
    start: datetime,
    end: datetime,
    *,
    paid: bool = True,
) -> list[RewardNotGiven]:
    """A coupon of each period reward for the period ``start``-``end``; the rewards not given, and why.

    A paid period's coupon is told apart from the free trial's (``paid``): a trial converted the day it began
    starts a paid period on that same date, and it gives its coupon too.

    A period already over when its payment is recorded (a backdated payment, a processor's replay) gives
    nothing: a year of old payments must not hand out a year of coupons today. A reward out of stock, archived
    or outside its window gives nothing either, but never refuses the payment: the processor has taken the
    money."""
    from palier.rewards.service import grant_coupon

    if end <= clock.now():
        return [RewardNotGiven(reward_id=r, reason="period_ended") for r in plan.benefits.period_rewards]
    not_given = []
    for reward_id in plan.benefits.period_rewards:
        try:  # refused before anything is written (grant_coupon): the payment goes on without it
            grant_coupon(
                conn=conn,
                clock=clock,
                program=program,
                member_id=member_id,
                reward_id=reward_id,
                reason=f"{plan.name.en}: this period's benefit",
                source_ref=f"plan:{membership_id}:{reward_id}:{start.date().isoformat()}" + (":paid" if paid else ""),
            )
        except PalierError as exc:
            if exc.code not in ("out_of_stock", "reward_ended", "reward_not_started"):
                raise
            not_given.append(RewardNotGiven(reward_id=reward_id, reason=exc.code))  # type: ignore[arg-type]
    return not_given


def _check_access(
    conn: Connection, clock: Clock, program: Program, plan: Plan, member_id: str, invitation_code: str | None
) -> None:
    if plan.access == "segment":
        from palier.segments.service import member_segments

        if plan.segment not in member_segments(conn, member_id=member_id):
            raise Unprocessable(
                "not_in_segment", f"Plan {plan.code!r} is open to the {plan.segment!r} segment only.", field="plan"
            )
    elif plan.access == "invitation":
        use_invitation(
            conn=conn, clock=clock, program=program, code=invitation_code, member_id=member_id, purpose="plan",
            plan_id=plan.id,
        )  # fmt: skip


# --- invitations ---


def create_invitations(
    *, conn: Connection, clock: Clock, program: Program, data: InvitationsIn, actor: str
) -> list[Invitation]:
    plan_id = get_plan(conn=conn, program_id=program.id, code=data.plan).id if data.plan else None
    now = clock.now()
    expires_at = in_zone(data.expires_at, program.timezone) if data.expires_at is not None else None
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("expires_in_past", "An invitation must expire in the future.", field="expires_at")
    rows = [
        {
            "id": new_id("invitation"),
            "program_id": program.id,
            "code": codes.new_code(),
            "purpose": data.purpose,
            "plan_id": plan_id,
            "note": data.note,
            "expires_at": expires_at,
            "created_at": now,
        }
        for _ in range(data.count)
    ]
    conn.execute(insert(invitations), rows)
    record_audit(
        conn=conn, clock=clock, program_id=program.id, actor=actor, action="invitations.created",
        subject_id=program.id, details={"count": data.count, "purpose": data.purpose, "plan": data.plan},
    )  # fmt: skip
    return [Invitation(code=str(r["code"]), purpose=data.purpose, plan=data.plan, expires_at=expires_at) for r in rows]


def use_invitation(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    code: str | None,
    member_id: str,
    purpose: str,
    plan_id: str | None = None,
) -> None:
    """Spend an invitation code (once) for ``purpose``; each problem has its own code, nothing is written."""
    field = "invitation_code"
    if not code:
        raise Unprocessable("invitation_required", "Joining needs an invitation code.", field=field)
    typed = codes.normalise(code)
    if not codes.is_well_formed(typed):
        raise InvalidInput("invitation_code_mistyped", "This invitation code is mistyped.", field=field)
    row = conn.execute(
        select(invitations).where(invitations.c.code == typed, invitations.c.program_id == program.id).with_for_update()
    ).mappings().first()  # fmt: skip
    if row is None or row["purpose"] != purpose or (plan_id is not None and row["plan_id"] != plan_id):
        raise NotFound("invitation_not_found", "No such invitation for this.", field=field)
    now = clock.now()
    if row["used_at"] is not None:
        raise Conflict("invitation_used", "This invitation was already used.", field=field)
    if row["expires_at"] is not None and utc(row["expires_at"]) <= now:
        raise Unprocessable("invitation_expired", "This invitation has expired.", field=field)
    conn.execute(
        update(invitations)
        .where(invitations.c.id == row["id"], invitations.c.used_at.is_(None))
        .values(used_at=now, used_by=member_id)
    )


def move_member(conn: Connection, *, source_id: str, target_id: str, now: datetime) -> None:
    """A merge: the source's memberships move over. Where both accounts have a plan live, the better one stays
    (a paid one before a free trial, then the one paid furthest ahead) and the other lapses, so the payments
    that come next renew the months already paid for instead of starting afresh."""
    lapsed = {"state": "lapsed", "ended_at": now, "updated_at": now}
    for row in conn.execute(select(memberships).where(memberships.c.member_id == source_id)).mappings().all():
        values: dict[str, Any] = {"member_id": target_id, "updated_at": now}
        kept = _live(conn, row["program_id"], target_id, row["plan_id"]) if row["state"] in LIVE else None
        if kept is not None and _worth(row) > _worth(kept):
            # the target's lapses first: one live membership of a plan per member (ix_memberships_live)
            conn.execute(update(memberships).where(memberships.c.id == kept["id"]).values(**lapsed))
            _lapsed_by_merge(conn, kept, target_id, now)
        elif kept is not None:
            values |= lapsed
        conn.execute(update(memberships).where(memberships.c.id == row["id"]).values(**values))
        if kept is not None and "state" in values:
            _lapsed_by_merge(conn, row, target_id, now)


def _lapsed_by_merge(conn: Connection, row: Any, member_id: str, now: datetime) -> None:
    """The merchant's systems learn that this membership ended; ``reason: merged`` tells a mailer the person
    keeps the plan (the other account's membership of it goes on)."""
    code = conn.execute(select(plans.c.code).where(plans.c.id == row["plan_id"])).scalar_one()
    emit(
        conn, program_id=row["program_id"], type_="membership_lapsed", subject_id=member_id,
        payload={"member_id": member_id, "plan": code, "period_end": utc(row["period_end"]).isoformat(),
                 "reason": "merged"},
        now=now,
    )  # fmt: skip


def _worth(row: Any) -> tuple[bool, datetime]:
    """How a live membership ranks in a merge: paid for (not a trial), then paid furthest ahead."""
    return row["state"] != "trial", utc(row["period_end"])
