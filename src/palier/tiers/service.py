"""Tiers: reached on the event that crosses a threshold, judged again when their period ends.

A member's status is judged on one metric (points earned on purchases, qualifying spend, or orders;
returns count against it) over a window in the program's time zone: lifetime, the calendar year,
rolling N months, or the member's anniversary year. Each status row carries the period it is judged
on; when that period ends, :func:`requalify` (a job, set-based in batches) keeps, lowers or starts a
grace period as the program's policy says. A tier given by hand holds until its end date.

Every change is written to the member's tier history and to the outbox (tier_upgraded,
tier_downgraded; tier_placed for a new member starting in the first tier), in the transaction that makes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from functools import partial
from threading import Event
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, RowMapping, and_, case, func, insert, or_, select, true, update
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from palier.activity.tables import events, purchases
from palier.clock import Clock, in_zone, utc
from palier.db import Database
from palier.db.bulk import insert_many, update_many
from palier.errors import InvalidInput, Unprocessable
from palier.ids import new_id, new_ids
from palier.jobs.parallel import in_parallel
from palier.ledger.locks import try_lock_members
from palier.members import service as members
from palier.members.tables import members as members_table
from palier.notify.outbox import emit_many
from palier.programs.models import Program
from palier.programs.service import get_program, record_audit
from palier.rewards.tables import rewards
from palier.text import points_word
from palier.tiers.models import ManualTier, TierChange, TierPolicy, TierProgress
from palier.tiers.status import bump
from palier.tiers.tables import member_tiers, tier_history, tier_policies
from palier.timeutil import add_months, last_day, long_date

# --- the policy ---


def set_policy(*, conn: Connection, clock: Clock, program: Program, policy: TierPolicy, actor: str) -> TierPolicy:
    """Replace the program's tiers. Members keep their status until their next event or requalification."""
    now = clock.now()
    current = conn.execute(
        select(tier_policies.c.version).where(tier_policies.c.program_id == program.id).with_for_update()
    ).scalar()
    document = policy.model_dump(mode="json")
    if current is None:
        conn.execute(
            insert(tier_policies).values(
                program_id=program.id, document=document, version=1, updated_at=now, updated_by=actor
            )
        )
    else:
        conn.execute(
            update(tier_policies)
            .where(tier_policies.c.program_id == program.id)
            .values(document=document, version=current + 1, updated_at=now, updated_by=actor)
        )
    known = {t.code for t in policy.tiers}
    orphaned = conn.execute(  # an erased member's row is the merchant's record, judged no more: not a holder
        select(func.count())
        .select_from(member_tiers)
        .where(
            member_tiers.c.program_id == program.id,
            member_tiers.c.tier.is_not(None),
            member_tiers.c.tier.not_in(known),
            _still_active,
        )
    ).scalar_one()
    if orphaned:
        raise InvalidInput(
            "tier_in_use",
            f"{orphaned} members hold a tier this policy removes; keep its code (rename it with name).",
            field="tiers",
        )
    _refuse_removing_named_tiers(conn, program, known)
    _give_periods(conn, program, policy, now)
    bump(conn, program_id=program.id)
    record_audit(
        conn=conn, clock=clock, program_id=program.id, actor=actor, action="tiers.updated", subject_id=program.id,
        details=document,
    )  # fmt: skip
    return policy


def _refuse_removing_named_tiers(conn: Connection, program: Program, known: set[str]) -> None:
    """A tier a reward is reserved to, the rules in force test, or a segment tests, cannot be removed: the reward
    would be offered to nobody, the rule pay nobody, the segment stay empty. They are changed first."""
    from palier.rules.service import current_document
    from palier.segments.service import list_segments

    def refuse(gone: str, where: str, **named: str) -> InvalidInput:
        return InvalidInput(
            "tier_in_use",
            f"{where} names tier {gone!r}, which this policy removes: change it first, or keep the tier's code "
            "(rename it with name).",
            field="tiers",
            **named,
        )

    reserved = conn.execute(
        select(rewards.c.id, rewards.c.eligibility)
        .where(rewards.c.program_id == program.id, rewards.c.eligibility.is_not(None))
        .order_by(rewards.c.id)
    )
    for reward_id, eligibility in reserved:
        for code in (eligibility or {}).get("tiers", []):
            if code not in known:
                raise refuse(code, f"Reward {reward_id}", reward_id=reward_id)
    version, document = current_document(conn=conn, program=program)
    for i, rule in enumerate(document.rules):
        for code in rule.conditions.tiers or []:
            if code not in known:
                raise refuse(code, f"Rule {rule.id} (rules[{i}] of rules version {version})", rule=rule.id)
    for segment in list_segments(conn=conn, program_id=program.id):
        for condition in segment.conditions:
            values = condition.value if isinstance(condition.value, list) else [condition.value]
            if condition.field == "tier" and (code := next((v for v in values if v not in known), None)):
                raise refuse(str(code), f"Segment {segment.code!r}", segment=segment.code)


def _give_periods(conn: Connection, program: Program, policy: TierPolicy, now: datetime) -> None:
    """Tiers that counted a lifetime now count a window: the statuses placed under the lifetime one (no period
    end, so never due) are judged at the end of the current window, like everyone's. Anniversary years differ
    per member: theirs are due now, and the next requalification gives each member their own year."""
    if policy.window == "lifetime":
        return
    start: datetime | None
    end: datetime | None
    if policy.window == "anniversary_year":
        start, end = None, now
    else:
        start, end = window(policy, program, at=now, enrolled_at=now)
    conn.execute(
        update(member_tiers)
        .where(member_tiers.c.program_id == program.id, member_tiers.c.period_end.is_(None))
        .values(period_start=start, period_end=end, updated_at=now)
    )


def get_policy(conn: Connection, *, program_id: str) -> TierPolicy | None:
    row = conn.execute(select(tier_policies.c.document).where(tier_policies.c.program_id == program_id)).first()
    return None if row is None else TierPolicy.model_validate(row.document)


_POLICIES: dict[tuple[str, int], TierPolicy | None] = {}


def policy_for(conn: Connection, program: Program) -> TierPolicy | None:
    """The program's policy as of ``program.status_version``, which every change of it bumps: read and
    validated once per version and process, not on every purchase."""
    key = (program.id, program.status_version)
    if key in _POLICIES:
        return _POLICIES[key]
    policy = get_policy(conn, program_id=program.id)
    if len(_POLICIES) >= 1_000:  # old versions: cleared now and then (another thread may be adding one)
        _POLICIES.clear()
    _POLICIES[key] = policy
    return policy


def member_tier(conn: Connection, *, member_id: str) -> str | None:
    """The member's tier code (for rules, reward eligibility and the portal), or None."""
    return conn.execute(select(member_tiers.c.tier).where(member_tiers.c.member_id == member_id)).scalar()


def tier_at(conn: Connection, *, program_id: str, member_id: str, at: datetime) -> str | None:
    """The member's tier at ``at``: today's, unless it changed since (a purchase sent late earns with the tier
    of its day, read from the tier history), or None before the member had one."""
    row = conn.execute(
        select(member_tiers.c.tier, member_tiers.c.since).where(member_tiers.c.member_id == member_id)
    ).first()
    if row is None or utc(row.since) <= at:
        return row.tier if row is not None else None
    return conn.execute(
        select(tier_history.c.to_tier)
        .where(
            tier_history.c.program_id == program_id,
            tier_history.c.member_id == member_id,
            tier_history.c.created_at <= at,
        )
        .order_by(tier_history.c.created_at.desc(), tier_history.c.id.desc())
        .limit(1)
    ).scalar()


# --- windows ---


def window(
    policy: TierPolicy, program: Program, *, at: datetime, enrolled_at: datetime
) -> tuple[datetime | None, datetime | None]:
    """The window containing ``at``: [start, end), in UTC; (None, None) for lifetime."""
    zone = ZoneInfo(program.timezone)
    local = at.astimezone(zone)
    if policy.window == "lifetime":
        return None, None
    if policy.window == "calendar_year":
        start = local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        return utc(start), utc(start.replace(year=start.year + 1))
    if policy.window == "rolling_months":
        assert policy.rolling_months is not None
        end = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)  # next local midnight
        return utc(add_months(end, -policy.rolling_months)), utc(end)
    # anniversary_year: from the member's last enrolment anniversary
    enrolled = enrolled_at.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    years = local.year - enrolled.year
    if local < add_months(enrolled, 12 * years):  # this year's anniversary (29 February: the 28th) is ahead
        years -= 1
    start = add_months(enrolled, 12 * years)
    return utc(start), utc(add_months(enrolled, 12 * (years + 1)))


def _metric_column(policy: TierPolicy) -> ColumnElement[Any]:
    if policy.metric == "points":
        return purchases.c.points - purchases.c.points_returned
    if policy.metric == "spend":
        return purchases.c.total - purchases.c.refunded
    # orders: a fully refunded order does not count
    return case((purchases.c.refunded < purchases.c.total, 1), else_=0)  # PostgreSQL casts no boolean to a number


def metric_value(
    conn: Connection,
    *,
    program_id: str,
    member_id: str,
    policy: TierPolicy,
    start: datetime | None,
    end: datetime | None,
) -> int:
    conditions = [purchases.c.program_id == program_id, purchases.c.member_id == member_id]
    if start is not None:
        conditions.append(events.c.occurred_at >= start)
    if end is not None:
        conditions.append(events.c.occurred_at < end)
    total = conn.execute(
        select(func.coalesce(func.sum(_metric_column(policy)), 0))
        .select_from(purchases.join(events, events.c.id == purchases.c.event_id))
        .where(*conditions)
    ).scalar()
    return int(total or 0)


# --- on each purchase and return ---


@dataclass
class Status:
    member_id: str
    tier: str | None
    since: datetime
    period_start: datetime | None
    period_end: datetime | None
    grace_until: datetime | None
    manual_until: datetime | None
    manual_reason: str | None = None


STATUS_COLUMNS = tuple(f.name for f in fields(Status))  # as member_tiers names them


def on_activity(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    member_id: str,
    returned: bool = False,
    made_at: datetime | None = None,
) -> None:
    """After a purchase (or a return) of ``member_id``, whose lock the caller holds: upgrade on the crossing.

    ``made_at``: when the purchase was made, if it may be earlier than the period the member's tier is judged on
    now (None: a merge or a card's link, whose orders may be of any date). A purchase of a period the job has
    already judged (a till offline over New Year sending 31 December's sales on the 2nd) counts for that period,
    as it would have on time: if that period's metric now reaches a higher tier, the member has it at once."""
    if program.status_version == 0:  # no tiers, plans or segments: nothing to look up
        return
    policy = policy_for(conn, program)
    if policy is None:
        return
    now = clock.now()
    status, enrolled_at = _status_and_enrolment(conn, member_id)
    start, end = window(policy, program, at=now, enrolled_at=enrolled_at)
    value = metric_value(conn, program_id=program.id, member_id=member_id, policy=policy, start=start, end=end)
    qualified = policy.qualified(value)
    if (
        not returned
        and (judged := _judged_period(policy, program, status, enrolled_at, made_at)) is not None
        and _had_status_in(conn, program.id, status, judged)
    ):
        before = metric_value(
            conn, program_id=program.id, member_id=member_id, policy=policy, start=judged[0], end=judged[1]
        )
        if policy.rank(policy.qualified(before)) > policy.rank(qualified):
            value, qualified = before, policy.qualified(before)
    current = status.tier if status else None
    rank, current_rank = policy.rank(qualified), policy.rank(current)
    changes: list[tuple[str | None, str | None, str, dict[str, Any]]] = []
    if rank > current_rank and not _held_down_by_hand(conn, program.id, policy, status, now):
        # not placed yet (a member from before the tiers, or on anniversary years): this purchase places them
        changes.append((current, qualified, "upgrade" if status is not None else "placed", {"value": value}))
        status = _save(conn, program, status, member_id, qualified, now, start, end, grace_until=None)
    elif status is not None and status.grace_until is not None and rank >= current_rank:
        changes.append((current, current, "requalified", {"value": value}))
        _save(conn, program, status, member_id, current, now, start, end, grace_until=None, since=status.since)
    elif (
        returned
        and policy.returns_downgrade
        and rank < current_rank
        and status is not None
        and (status.manual_until is None or status.manual_until <= now)
        and policy.rank(lowered := _after_return(conn, program.id, policy, member_id, qualified, start)) < current_rank
    ):
        changes.append((current, lowered, "return", {"value": value}))
        _save(conn, program, status, member_id, lowered, now, start, end, grace_until=None)
    _record(conn, program.id, member_id, changes, now, policy)


def _judged_period(
    policy: TierPolicy, program: Program, status: Status | None, enrolled_at: datetime, made_at: datetime | None
) -> tuple[datetime, datetime] | None:
    """The period whose judgement gave the member the tier they hold for their current one, if an activity made
    at ``made_at`` (None: any date) may have added to it after it was judged; else None. A rolling window, judged
    every day on the months that end then, already counts it."""
    if status is None or status.period_start is None or policy.window in ("lifetime", "rolling_months"):
        return None
    if made_at is not None and made_at >= status.period_start:
        return None
    before = status.period_start - timedelta(microseconds=1)
    start, end = window(policy, program, at=made_at or before, enrolled_at=enrolled_at)
    if start is None or end is None or end != status.period_start:  # older than that period: long judged
        return None
    return start, end


def _had_status_in(conn: Connection, program_id: str, status: Status | None, period: tuple[datetime, datetime]) -> bool:
    """Whether the member (or an account merged into them) had a tier status during ``period``, which the job then
    judged: not a year before the tiers were set, nor before the member was placed in them."""
    if status is None:
        return False
    if status.since < period[1]:  # this status, or the tier it holds, dates from then (no tier: no history line)
        return True
    found = conn.execute(
        select(tier_history.c.id)
        .where(
            tier_history.c.program_id == program_id,
            tier_history.c.member_id == status.member_id,
            tier_history.c.created_at < period[1],
        )
        .limit(1)
    ).first()
    return found is not None


def _held_down_by_hand(
    conn: Connection, program_id: str, policy: TierPolicy, status: Status | None, now: datetime
) -> bool:
    """Whether a tier lowered (or taken away) by hand still holds: purchases do not climb back over it until its
    end date. A tier given by hand above what the member earned is a floor: buying can still climb higher."""
    if status is None or status.manual_until is None or status.manual_until <= now:
        return False
    given = conn.execute(
        select(tier_history.c.from_tier, tier_history.c.to_tier)
        .where(
            tier_history.c.program_id == program_id,
            tier_history.c.member_id == status.member_id,
            tier_history.c.reason == "manual",
        )
        .order_by(tier_history.c.created_at.desc(), tier_history.c.id.desc())
        .limit(1)
    ).first()
    known = {None, *(t.code for t in policy.tiers)}
    return (
        given is not None
        and {given.from_tier, given.to_tier} <= known
        and (policy.rank(given.to_tier) < policy.rank(given.from_tier))
    )


def _after_return(
    conn: Connection, program_id: str, policy: TierPolicy, member_id: str, qualified: str | None, start: datetime | None
) -> str | None:
    """The tier a return leaves: what the window's net metric reaches, but never below the tier held when the
    window opened (kept by the last period's judgement, or in its grace): a return undoes only a crossing made
    in this window; the period's end judges the rest."""
    held = tier_at(conn, program_id=program_id, member_id=member_id, at=start) if start is not None else None
    if policy.tier(held) is None or policy.rank(held) <= policy.rank(qualified):
        return qualified
    return held


def on_enrolment(*, conn: Connection, clock: Clock, program: Program, member_id: str) -> None:
    """A new member starts in the tier that asks for nothing (threshold 0), if the program has one."""
    if program.status_version == 0:
        return
    policy = policy_for(conn, program)
    tier = policy.qualified(0) if policy is not None else None
    if policy is None or tier is None:
        return
    now = clock.now()
    start, end = window(policy, program, at=now, enrolled_at=now)
    _save(conn, program, None, member_id, tier, now, start, end, grace_until=None)
    _record(conn, program.id, member_id, [(None, tier, "placed", {"value": 0})], now, policy)


def _save(
    conn: Connection,
    program: Program,
    status: Status | None,
    member_id: str,
    tier: str | None,
    now: datetime,
    start: datetime | None,
    end: datetime | None,
    *,
    grace_until: datetime | None,
    since: datetime | None = None,
) -> Status:
    since = since or now
    values = {
        "tier": tier,
        "since": since,
        "period_start": start,
        "period_end": end,
        "grace_until": grace_until,
        "updated_at": now,
    }
    if status is None:
        conn.execute(insert(member_tiers).values(member_id=member_id, program_id=program.id, **values))
    else:
        conn.execute(update(member_tiers).where(member_tiers.c.member_id == member_id).values(**values))
    return Status(member_id, tier, since, start, end, grace_until, status.manual_until if status else None)


def _record(
    conn: Connection,
    program_id: str,
    member_id: str,
    changes: list[tuple[str | None, str | None, str, dict[str, Any]]],
    now: datetime,
    policy: TierPolicy,
) -> None:
    """History rows and outbox events for ``changes`` (from, to, reason, details) of one member."""
    if not changes:
        return
    conn.execute(
        insert(tier_history),
        [
            {
                "id": new_id("tier_change"),
                "program_id": program_id,
                "member_id": member_id,
                "from_tier": old,
                "to_tier": new,
                "reason": reason,
                "details": details,
                "created_at": now,
            }
            for old, new, reason, details in changes
        ],
    )
    emit_many(
        conn,
        [
            (
                program_id,
                _change_event(policy, old, new, reason),
                member_id,
                {"member_id": member_id, "from": old, "to": new, "reason": reason},
            )
            for old, new, reason, _ in changes
            if old != new
        ],
        now=now,
    )


def _change_event(policy: TierPolicy, old: str | None, new: str | None, reason: str) -> str:
    """The outbox event of a change: a new member starting in the first tier is placed there, not upgraded (a
    mailer congratulating every upgrade would congratulate every sign-up)."""
    if reason == "placed" and policy.rank(new) <= 1:  # placed higher (past spend when tiers are set): an upgrade
        return "tier_placed"
    return "tier_upgraded" if policy.rank(new) > policy.rank(old) else "tier_downgraded"


# --- by hand ---


def assign(
    *, conn: Connection, clock: Clock, program: Program, member_id: str, data: ManualTier, actor: str
) -> TierProgress:
    """Give (or take away) a tier by hand, with a reason, until a date; then the metric judges again."""
    from palier.ledger.locks import lock_members

    lock_members(conn, [member_id])
    members.require_active(conn=conn, program_id=program.id, member_id=member_id)
    policy = _require_policy(conn, program)
    now = clock.now()
    if data.tier is not None and policy.tier(data.tier) is None:
        raise InvalidInput("tier_not_found", f"This program has no tier {data.tier!r}.", field="tier")
    until = in_zone(data.until, program.timezone)
    if until <= now:
        raise InvalidInput("until_in_past", "A manual tier must last until a future date.", field="until")
    status = _status(conn, member_id)
    start, end = window(policy, program, at=now, enrolled_at=_enrolled_at(conn, member_id))
    old = status.tier if status else None
    given: dict[str, Any] = {"reason": data.reason, "actor": actor}
    if status is not None and status.grace_until is not None:  # the tier held was kept by a grace: until then
        given["grace_until"] = status.grace_until.isoformat()
    _save(conn, program, status, member_id, data.tier, now, start, end, grace_until=None)
    conn.execute(
        update(member_tiers)
        .where(member_tiers.c.member_id == member_id)
        .values(manual_until=until, manual_reason=data.reason)
    )
    _record(conn, program.id, member_id, [(old, data.tier, "manual", given)], now, policy)
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program.id,
        actor=actor,
        action="tier.assigned",
        subject_id=member_id,
        details=data.model_dump(mode="json"),
    )
    return progress(conn=conn, clock=clock, program=program, member_id=member_id)


def _require_policy(conn: Connection, program: Program) -> TierPolicy:
    policy = get_policy(conn, program_id=program.id)
    if policy is None:
        raise Unprocessable("no_tiers", "This program has no tiers yet (PUT /v1/tiers).", field="tier")
    return policy


# --- what the member sees ---


def progress(*, conn: Connection, clock: Clock, program: Program, member_id: str) -> TierProgress:
    members.require_known(conn=conn, program_id=program.id, member_id=member_id)
    policy = _require_policy(conn, program)
    now = clock.now()
    language = members.language_of(conn, member_id)
    status = _status(conn, member_id)
    start, end = window(policy, program, at=now, enrolled_at=_enrolled_at(conn, member_id))
    value = metric_value(conn, program_id=program.id, member_id=member_id, policy=policy, start=start, end=end)
    current = policy.tier(status.tier if status else policy.qualified(value))  # not placed yet: what they earn
    above = [t for t in policy.tiers if policy.rank(t.code) > policy.rank(current.code if current else None)]
    following = above[0] if above else None
    needed_next = max(0, following.threshold - value) if following else None
    needed_keep = max(0, current.threshold - value) if current and policy.downgrade != "never" else None
    held = status.manual_until if _held_down_by_hand(conn, program.id, policy, status, now) and status else None
    message = (  # lowered by hand: buying cannot climb before then, so no "€0.00 more to reach Gold"
        _held_message(program, language, current, held)
        if held is not None
        else _message(policy, program, language, following, needed_next, end)
    )
    return TierProgress(
        member_id=member_id,
        metric=policy.metric,
        tier=current.code if current else None,
        tier_name=getattr(current.name, language) if current else None,
        multiplier_percent=current.multiplier_percent if current else 100,
        perks=[getattr(p, language) for p in current.perks] if current else [],
        value=value,
        window_start=start,
        window_end=end,
        next_tier=following.code if following else None,
        next_tier_name=getattr(following.name, language) if following else None,
        needed_for_next=needed_next,
        needed_to_keep=needed_keep,
        grace_until=status.grace_until if status else None,
        manual_until=status.manual_until if status else None,
        message=message,
        history=_history(conn, program.id, member_id),
    )


def held_down_until(*, conn: Connection, clock: Clock, program_id: str, member_id: str) -> datetime | None:
    """Until when the member's tier, lowered or taken away by hand, holds whatever they buy (None when it does
    not: no tier by hand, one given above what they earn, or one whose date has passed)."""
    policy = get_policy(conn, program_id=program_id)
    status = _status(conn, member_id)
    if policy is None or status is None or not _held_down_by_hand(conn, program_id, policy, status, clock.now()):
        return None
    return status.manual_until


def _held_message(program: Program, language: str, current: Any, until: datetime) -> str:
    """'Niveau Argent jusqu'au 1er avril 2026.': what buying cannot change before then, rather than what is
    left to climb."""
    day = last_day(utc(until).astimezone(ZoneInfo(program.timezone)), language)
    if current is None:
        return f"Sans niveau jusqu'au {day}." if language == "fr" else f"No tier until {day}."
    name = getattr(current.name, language)
    return f"Niveau {name} jusqu'au {day}." if language == "fr" else f"{name} tier until {day}."


def _message(
    policy: TierPolicy, program: Program, language: str, following: Any, needed: int | None, end: datetime | None
) -> str:
    if following is None or needed is None:
        return "Vous êtes au niveau le plus haut." if language == "fr" else "You are at the top tier."
    name = getattr(following.name, language)
    if policy.metric == "spend":
        amount = program.money(needed, language)
    elif policy.metric == "points":
        amount = f"{needed} {points_word(needed, program.points_name_in(language), language)}"
    else:
        one = needed <= 1 if language == "fr" else needed == 1  # "1 commande", "0 commande"; "0 orders"
        word = ("commande" if one else "commandes") if language == "fr" else ("order" if one else "orders")
        amount = f"{needed} {word}"
    if end is None or policy.window == "rolling_months":  # a rolling window closes every night: no deadline
        return f"Encore {amount} pour atteindre {name}" if language == "fr" else f"{amount} more to reach {name}"
    day = (end - timedelta(seconds=1)).astimezone(ZoneInfo(program.timezone))
    if language == "fr":
        return f"Encore {amount} avant le {long_date(day, 'fr', year=False)} pour atteindre {name}"
    return f"{amount} more before {day.day} {day.strftime('%B')} to reach {name}"


def _history(conn: Connection, program_id: str, member_id: str) -> list[TierChange]:
    rows = conn.execute(
        select(tier_history)
        .where(tier_history.c.program_id == program_id, tier_history.c.member_id == member_id)
        .order_by(tier_history.c.created_at.desc(), tier_history.c.id.desc())
        .limit(50)
    ).mappings()
    return [
        TierChange(
            from_tier=r["from_tier"],
            to_tier=r["to_tier"],
            reason=r["reason"],
            at=utc(r["created_at"]),
            details=r["details"],
        )
        for r in rows
    ]


def _status(conn: Connection, member_id: str) -> Status | None:
    row = conn.execute(select(member_tiers).where(member_tiers.c.member_id == member_id)).mappings().first()
    return None if row is None else _status_from(member_id, row)


def _status_and_enrolment(conn: Connection, member_id: str) -> tuple[Status | None, datetime]:
    """The member's tier status (None before their first) and when they enrolled, in one statement."""
    row = (
        conn.execute(
            select(member_tiers, members_table.c.enrolled_at)
            .select_from(members_table.outerjoin(member_tiers, member_tiers.c.member_id == members_table.c.id))
            .where(members_table.c.id == member_id)
        )
        .mappings()
        .one()
    )
    return (None if row["member_id"] is None else _status_from(member_id, row)), utc(row["enrolled_at"])


def _status_from(member_id: str, row: Any) -> Status:
    return Status(
        member_id=member_id,
        tier=row["tier"],
        since=utc(row["since"]),
        period_start=_utc_or_none(row["period_start"]),
        period_end=_utc_or_none(row["period_end"]),
        grace_until=_utc_or_none(row["grace_until"]),
        manual_until=_utc_or_none(row["manual_until"]),
        manual_reason=row["manual_reason"],
    )


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def _enrolled_at(conn: Connection, member_id: str) -> datetime:
    return utc(conn.execute(select(members_table.c.enrolled_at).where(members_table.c.id == member_id)).scalar_one())


# --- requalification: a job, set-based in batches ---


@dataclass(frozen=True)
class Decision:
    tier: str | None
    reason: str | None  # None: nothing changes but the period
    grace_until: datetime | None
    period: tuple[datetime | None, datetime | None]
    clear_manual: bool = False


def decide(
    policy: TierPolicy,
    status: Status,
    value: int,
    now: datetime,
    next_period: Any,
    *,
    earned: tuple[str | None, datetime | None] | None = None,
    zone: ZoneInfo = ZoneInfo("UTC"),
) -> Decision:
    """What requalification does to one member whose period, grace or manual tier has ended. Pure.

    ``earned``: for a manual tier that has ended, the tier the metric gave the member for this period apart from
    this window's value (the one held before the tier by hand, or what the last period earned) and the grace
    that kept it, if one did: they go back to the higher of it and what this window's value reaches."""
    qualified = policy.qualified(value)
    rank, current = policy.rank(qualified), policy.rank(status.tier)
    if status.manual_until is not None and status.manual_until <= now:  # back to what the metric says
        tier, grace = earned or (None, None)  # the tier held by the metric, and the grace keeping it (if any)
        if policy.rank(tier) <= rank:
            tier, grace = qualified, None
        return Decision(tier, "manual_ended", grace, (status.period_start, status.period_end), clear_manual=True)
    if status.manual_until is not None:  # a manual tier outlasts its periods
        return Decision(status.tier, None, None, next_period(status.period_end))
    if status.grace_until is not None and status.grace_until <= now:
        if rank >= current:
            return Decision(status.tier, "requalified", None, (status.period_start, status.period_end))
        return Decision(
            _lowered(policy, status.tier, qualified), "downgrade", None, (status.period_start, status.period_end)
        )
    # the period has ended: judge it
    following = next_period(status.period_end)
    if rank > current:
        return Decision(qualified, "upgrade", None, following)
    if rank == current:
        # a rolling window closes every night: keeping the tier is news only when it ends a grace
        kept = "requalified" if policy.window != "rolling_months" or status.grace_until is not None else None
        return Decision(qualified, kept, None, following)
    if policy.downgrade == "never":
        return Decision(status.tier, None, None, following)
    if policy.downgrade == "grace":
        assert policy.grace_months is not None
        if status.grace_until is not None:  # already in grace: it runs its course
            return Decision(status.tier, None, status.grace_until, following)
        assert status.period_end is not None
        # months on the program's calendar (``zone``): a period ending at midnight there, its grace does too
        grace_until = utc(add_months(status.period_end.astimezone(zone), policy.grace_months))
        return Decision(status.tier, "grace_started", grace_until, following)
    return Decision(_lowered(policy, status.tier, qualified), "downgrade", None, following)


def _lowered(policy: TierPolicy, current: str | None, qualified: str | None) -> str | None:
    if policy.downgrade_step == "to_qualified":
        return qualified
    step = max(policy.rank(current) - 1, policy.rank(qualified))
    return None if step == 0 else policy.tiers[step - 1].code


def requalify(
    db: Database, clock: Clock, *, program_id: str | None = None, batch_size: int = 5000, workers: int = 1
) -> int:
    """Place members without a status yet, then judge every member whose period, grace or manual tier has
    ended, then (once after each change of the tiers) move up the members the new tiers put higher. Returns
    how many were placed, judged or moved up.

    ``workers`` batches run at once, each in its own connection (PostgreSQL: a core each). They walk the
    members in id order and never share one: a batch skips the members another batch holds, and the
    worker that holds them judges them."""
    done = 0
    with db.read() as conn:
        query = select(tier_policies.c.program_id)
        if program_id is not None:
            query = query.where(tier_policies.c.program_id == program_id)
        program_ids = list(conn.execute(query).scalars())
    from palier.tiers.upgrades import upgrade_pass

    for pid in program_ids:
        done += place(db, clock, program_id=pid, batch_size=batch_size)
        done += sum(in_parallel(workers, partial(_requalify_program, db, clock, pid, batch_size)))
        done += upgrade_pass(db, clock, program_id=pid, batch_size=batch_size)  # after a change of the tiers
    return done


def _requalify_program(db: Database, clock: Clock, program_id: str, batch_size: int, stop: Event) -> int:
    judged, after = 0, None  # batches walk the members in id order: each starts where the last ended
    while not stop.is_set():
        count, after = _requalify_batch(db, clock, program_id, batch_size, after)
        judged += count
        if after is None:
            break
    return judged


def _requalify_batch(
    db: Database, clock: Clock, program_id: str, batch_size: int, after: str | None
) -> tuple[int, str | None]:
    """Judge up to ``batch_size`` due members with ids above ``after``; how many, and the last id seen
    (None when there are no more). A member another worker holds is left to that worker or the next run."""
    with db.write() as conn:
        now = clock.now()
        program = get_program(conn=conn, program_id=program_id)
        policy = get_policy(conn, program_id=program_id)
        assert policy is not None
        rows = _due_with_values(conn, program, policy, now, batch_size, after)
        if not rows:
            return 0, None
        last = rows[-1]["member_id"] if len(rows) == batch_size else None
        rows = _free_of_commands(conn, rows)
        periods: dict[tuple[datetime | None, datetime | None], tuple[datetime | None, datetime | None]] = {}
        anniversary = policy.window == "anniversary_year"
        zone = ZoneInfo(program.timezone)
        earned = _earned_apart_from_manual(conn, program, policy, [_status_of(r) for r in rows], now)
        updates, changes = [], []
        for row in rows:
            status = _status_of(row)
            value = int(row["value"])
            enrolled_at = utc(row["enrolled_at"]) if anniversary else None  # only then selected

            def following(
                end: datetime | None, enrolled_at: datetime | None = enrolled_at
            ) -> tuple[datetime | None, datetime | None]:
                """The period after ``end`` (the same for every member but on anniversary years: kept)."""
                key = (end, enrolled_at)
                if key not in periods:
                    at = max(end, now) if end is not None else now
                    periods[key] = window(policy, program, at=at, enrolled_at=enrolled_at or now)
                return periods[key]

            decision = decide(policy, status, value, now, following, earned=earned.get(status.member_id), zone=zone)
            updates.append(
                {
                    "member_id": status.member_id,
                    "tier": decision.tier,
                    "since": now if decision.tier != status.tier else status.since,
                    "period_start": decision.period[0],
                    "period_end": decision.period[1],
                    "grace_until": decision.grace_until,
                    "manual_until": None if decision.clear_manual else status.manual_until,
                    "manual_reason": None if decision.clear_manual else status.manual_reason,
                    "updated_at": now,
                }
            )
            if decision.reason is not None:
                changes.append((status.member_id, status.tier, decision.tier, decision.reason, value))
        update_many(conn, member_tiers, "member_id", updates)
        if changes:
            insert_many(
                conn,
                tier_history,
                [
                    {
                        "id": id_,
                        "program_id": program_id,
                        "member_id": m,
                        "from_tier": old,
                        "to_tier": new,
                        "reason": reason,
                        "details": {"value": value},
                        "created_at": now,
                    }
                    for id_, (m, old, new, reason, value) in zip(
                        new_ids("tier_change", len(changes)), changes, strict=True
                    )
                ],
            )
            emit_many(
                conn,
                [
                    (
                        program_id,
                        "tier_upgraded" if policy.rank(new) > policy.rank(old) else "tier_downgraded",
                        m,
                        {"member_id": m, "from": old, "to": new, "reason": reason},
                    )
                    for m, old, new, reason, _ in changes
                    if old != new
                ],
                now=now,
            )
        return len(rows), last


def _earned_apart_from_manual(
    conn: Connection, program: Program, policy: TierPolicy, statuses: list[Status], now: datetime
) -> dict[str, tuple[str | None, datetime | None]]:
    """For the members whose tier given by hand has ended: the tier the metric gave them for their current period
    regardless of this window's value so far. A gift for February to a member who kept Silver for the year by
    last year's spend ends on Silver, not on what January and February alone reach.

    The tier they held when it was given, if it was given in this period (or the tiers are never lowered; with
    ``returns_downgrade``, the tier held when the window opened, since a return may have undone a crossing),
    with the grace that kept it, to that grace's end (none if it is over);
    given in an earlier period, what the period before this one reaches, as its requalification would have
    judged it. A rolling window is judged on its months alone. Few members at a time: one query each."""
    ended = [s for s in statuses if s.manual_until is not None and s.manual_until <= now]
    if not ended or policy.window == "rolling_months":
        return {}
    known = {None, *(t.code for t in policy.tiers)}
    earned: dict[str, tuple[str | None, datetime | None]] = {}
    for status in ended:
        given = conn.execute(
            select(tier_history.c.from_tier, tier_history.c.created_at, tier_history.c.details)
            .where(
                tier_history.c.program_id == program.id,
                tier_history.c.member_id == status.member_id,
                tier_history.c.reason == "manual",
            )
            .order_by(tier_history.c.created_at.desc(), tier_history.c.id.desc())
            .limit(1)
        ).first()
        if given is None or given.from_tier not in known:
            continue
        if policy.downgrade == "never" or status.period_start is None or utc(given.created_at) >= status.period_start:
            # a return may since have undone a crossing of this window: then only the tier held when it opened
            held = (
                tier_at(conn, program_id=program.id, member_id=status.member_id, at=status.period_start)
                if status.period_start
                else None
            )
            kept = held if policy.returns_downgrade and held in known else given.from_tier
            grace = given.details.get("grace_until") if isinstance(given.details, dict) else None
            grace_until = utc(datetime.fromisoformat(grace)) if grace else None
            if grace_until is not None and grace_until <= now:  # its grace is over: the metric alone judges
                continue
            earned[status.member_id] = (kept, grace_until)
            continue
        before = status.period_start - timedelta(microseconds=1)
        start, end = window(policy, program, at=before, enrolled_at=_enrolled_at(conn, status.member_id))
        value = metric_value(
            conn, program_id=program.id, member_id=status.member_id, policy=policy, start=start, end=end
        )
        earned[status.member_id] = (policy.qualified(value), None)
    return earned


# An erased member keeps their tier row (the merchant's records) but is judged no more: no change, no event.
_member = members_table.alias("member")  # apart from the anniversary year's join of members
_still_active = (
    select(_member.c.id).where(_member.c.id == member_tiers.c.member_id, _member.c.status == "active").exists()
)


def _free_of_commands(conn: Connection, rows: Sequence[Any]) -> list[Any]:
    """The statuses of ``rows`` whose member no command holds now (a purchase, a return, a merge: they lock
    the member first), locked in turn so none starts until this batch commits. A member held is left to the
    command, which judges the tier itself, and to the next run: a batch that judged them on what it read before
    the command committed would undo what the command decided."""
    free = try_lock_members(conn, [row["member_id"] for row in rows])
    return [row for row in rows if row["member_id"] in free]


def _due_with_values(
    conn: Connection, program: Program, policy: TierPolicy, now: datetime, batch_size: int, after: str | None
) -> Sequence[RowMapping]:
    """Up to ``batch_size`` due statuses with ids above ``after``, locked (skipping those another worker
    holds), each with its metric ``value`` over the status period [period_start, period_end) and, for
    anniversary years, the member's enrolment date: one statement. A rolling window is judged on the
    months that end today, the same for everyone."""
    joined: FromClause = member_tiers
    enrolment: list[ColumnElement[Any]] = []
    if policy.window == "anniversary_year":
        joined = member_tiers.join(members_table, members_table.c.id == member_tiers.c.member_id)
        enrolment = [members_table.c.enrolled_at]
    due = (
        select(*(member_tiers.c[name] for name in STATUS_COLUMNS), *enrolment)
        .select_from(joined)
        .where(
            member_tiers.c.program_id == program.id,
            or_(
                member_tiers.c.period_end <= now, member_tiers.c.grace_until <= now, member_tiers.c.manual_until <= now
            ),
            member_tiers.c.member_id > after if after is not None else true(),
            _still_active,
        )
        .order_by(member_tiers.c.member_id)
        .limit(batch_size)
        .with_for_update(of=member_tiers, skip_locked=True)
        .cte("due")
    )
    value = metric_per_status(due, program, policy, now=now, shared=policy.window == "rolling_months")
    if conn.dialect.name == "postgresql":  # a few milliseconds of work: compiling it would take longer
        conn.exec_driver_sql("SET LOCAL jit = off")
    return conn.execute(select(due, value.label("value")).order_by(due.c.member_id)).mappings().all()


def metric_per_status(statuses: Any, program: Program, policy: TierPolicy, *, now: datetime, shared: bool) -> Any:
    """The metric of each status of ``statuses`` (a CTE of ``member_tiers`` rows), as a scalar subquery: over
    the window running now when it is everyone's (``shared``), else over the status's own period (none: all)."""
    if shared:
        start, end = window(policy, program, at=now, enrolled_at=now)
        in_window = and_(events.c.occurred_at >= start, events.c.occurred_at < end)
    else:
        in_window = and_(
            or_(statuses.c.period_start.is_(None), events.c.occurred_at >= statuses.c.period_start),
            or_(statuses.c.period_end.is_(None), events.c.occurred_at < statuses.c.period_end),
        )
    return (
        select(func.coalesce(func.sum(_metric_column(policy)), 0))
        .select_from(purchases.join(events, events.c.id == purchases.c.event_id))
        .where(purchases.c.program_id == program.id, purchases.c.member_id == statuses.c.member_id, in_window)
        .scalar_subquery()
    )


def _status_of(row: Any) -> Status:
    return Status(
        member_id=row["member_id"],
        tier=row["tier"],
        since=utc(row["since"]),
        period_start=_utc_or_none(row["period_start"]),
        period_end=_utc_or_none(row["period_end"]),
        grace_until=_utc_or_none(row["grace_until"]),
        manual_until=_utc_or_none(row["manual_until"]),
        manual_reason=row["manual_reason"],
    )


def move_member(conn: Connection, *, program: Program, source_id: str, target_id: str, now: datetime) -> None:
    """A merge: the member that remains keeps the higher of the two statuses; the history follows. Taking the
    merged account's higher tier is a change of its own: a history line and a ``tier_upgraded`` event. A tier
    lowered by hand on either account until a date (a review) is the one kept, until that date.

    On anniversary years the status kept is judged at the end of the year it shows, which runs from the
    remaining member's enrolment (the earlier of the two, set by the caller before)."""
    program_id = program.id
    policy = get_policy(conn, program_id=program_id)
    source, target = _status(conn, source_id), _status(conn, target_id)
    # a tier lowered by hand (a review) holds on the merged member: neither account's tier lifts it before its end
    held_source = policy is not None and _held_down_by_hand(conn, program_id, policy, source, now)
    held_target = policy is not None and _held_down_by_hand(conn, program_id, policy, target, now)
    conn.execute(
        update(tier_history)
        .where(tier_history.c.program_id == program_id, tier_history.c.member_id == source_id)
        .values(member_id=target_id)
    )
    if (
        source is not None
        and policy is not None
        and not held_target
        and (held_source or policy.rank(source.tier) > policy.rank(target.tier if target else None))
    ):
        conn.execute(member_tiers.delete().where(member_tiers.c.member_id == target_id))
        conn.execute(update(member_tiers).where(member_tiers.c.member_id == source_id).values(member_id=target_id))
        before = target.tier if target else None
        _record(conn, program_id, target_id, [(before, source.tier, "merged", {"merged": source_id})], now, policy)
    else:
        conn.execute(member_tiers.delete().where(member_tiers.c.member_id == source_id))
    if policy is not None and policy.window == "anniversary_year":
        start, end = window(policy, program, at=now, enrolled_at=_enrolled_at(conn, target_id))
        conn.execute(
            update(member_tiers)
            .where(member_tiers.c.member_id == target_id, member_tiers.c.period_end.is_not(None))
            .values(period_start=start, period_end=end, updated_at=now)
        )


def place(db: Database, clock: Clock, *, program_id: str, batch_size: int = 5000) -> int:
    """Give members who have no status yet the tier their metric earns in the current window.

    For tiers set on a program that already has members (and after imports): set-based, in batches.
    Anniversary-year windows differ per member and are placed by their next purchase instead.
    """
    placed = 0
    held: set[str] = set()  # by a command while a batch looked: placed by it, or by the next run
    while True:
        with db.write() as conn:
            now = clock.now()
            program = get_program(conn=conn, program_id=program_id)
            policy = get_policy(conn, program_id=program_id)
            if policy is None or policy.window == "anniversary_year":
                return placed
            start, end = window(policy, program, at=now, enrolled_at=now)
            unplaced = (
                select(members_table.c.id)
                .outerjoin(member_tiers, member_tiers.c.member_id == members_table.c.id)
                .where(
                    members_table.c.program_id == program_id,
                    members_table.c.status == "active",
                    member_tiers.c.member_id.is_(None),
                    members_table.c.id.not_in(held) if held else true(),
                )
                .order_by(members_table.c.id)
                .limit(batch_size)
            )
            found = list(conn.execute(unplaced).scalars())
            if not found:
                return placed
            ids = sorted(try_lock_members(conn, found))  # a member a command holds is placed by that command
            held.update(set(found) - set(ids))
            if not ids:
                continue
            conditions = [purchases.c.program_id == program_id, purchases.c.member_id.in_(ids)]
            if start is not None:
                conditions.append(events.c.occurred_at >= start)
            if end is not None:
                conditions.append(events.c.occurred_at < end)
            values = dict(
                conn.execute(
                    select(purchases.c.member_id, func.coalesce(func.sum(_metric_column(policy)), 0))
                    .select_from(purchases.join(events, events.c.id == purchases.c.event_id))
                    .where(*conditions)
                    .group_by(purchases.c.member_id)
                ).all()
            )
            rows: list[dict[str, Any]] = [
                {
                    "member_id": m,
                    "program_id": program_id,
                    "tier": policy.qualified(int(values.get(m, 0))),
                    "since": now,
                    "period_start": start,
                    "period_end": end,
                    "updated_at": now,
                }
                for m in ids
            ]
            insert_many(conn, member_tiers, rows)
            changes = [r for r in rows if r["tier"] is not None]
            if changes:
                insert_many(
                    conn,
                    tier_history,
                    [
                        {
                            "id": new_id("tier_change"),
                            "program_id": program_id,
                            "member_id": r["member_id"],
                            "from_tier": None,
                            "to_tier": r["tier"],
                            "reason": "placed",
                            "details": {"value": int(values.get(r["member_id"], 0))},
                            "created_at": now,
                        }
                        for r in changes
                    ],
                )
                emit_many(
                    conn,
                    [
                        (program_id, _change_event(policy, None, r["tier"], "placed"), r["member_id"],
                         {"member_id": r["member_id"], "from": None,
                                                                       "to": r["tier"], "reason": "placed"})
                        for r in changes
                    ],
                    now=now,
                )  # fmt: skip
            placed += len(changes)
