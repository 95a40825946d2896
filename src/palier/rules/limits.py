"""Campaign budgets and per-member caps, and the running spend behind "a €10 reward for every €100".

A campaign's budget is a program-wide counter locked before it is read (see ``counters``), so racing
purchases are served one after the other: the sum of what a campaign gave never exceeds its budget.
A member's cap and spend counters need no lock of their own: the caller holds the member's lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection, String, func, literal, select

from palier.clock import Clock
from palier.db.bulk import upsert
from palier.errors import PalierError
from palier.programs.models import Program
from palier.rewards import service as rewards
from palier.rules import counters
from palier.rules.counters import PROGRAM_WIDE, campaign_counter
from palier.rules.engine import (
    Award,
    CompiledRuleSet,
    EventSnapshot,
    MemberContext,
    bare_steps_name,
    steps_name,
    within_limits,
)
from palier.rules.models import RuleSetDocument
from palier.rules.tables import awards as award_rows
from palier.rules.tables import counters as counter_rows
from palier.rules.tables import rule_sets


def closed_campaigns(
    *, conn: Connection, program: Program, rules: CompiledRuleSet, member_id: str | None, unknown_buyer: bool = False
) -> frozenset[str]:
    """Of the campaigns an exclusive rule belongs to, those with nothing left for this buyer: the budget spent,
    or the member's cap reached (a buyer nobody knows: any cap). Their rules are left out of the evaluation, so
    that an exclusive launch rule does not stop the base rate once its campaign can give nothing.

    Read without a lock: a first look, which :func:`evaluate_within` checks under the budgets' lock when an
    exclusive rule still applies."""
    if not rules.exclusive_limited:
        return frozenset()
    wanted = sorted(rules.exclusive_limited)
    given = counters.read(conn, program_id=program.id, member_id=PROGRAM_WIDE, names=map(campaign_counter, wanted))
    mine = (
        counters.read(conn, program_id=program.id, member_id=member_id, names=map(campaign_counter, wanted))
        if member_id is not None
        else {}
    )
    closed = set()
    for campaign_id in wanted:
        campaign, name = rules.campaigns[campaign_id], campaign_counter(campaign_id)
        if campaign.budget is not None and campaign.budget - given[name] <= 0:
            closed.add(campaign_id)
        cap = campaign.member_cap
        if cap is not None and (cap - mine[name] <= 0 if member_id is not None else unknown_buyer):
            closed.add(campaign_id)
    return frozenset(closed)


def evaluate_within(
    *,
    conn: Connection,
    program: Program,
    rules: CompiledRuleSet,
    event: EventSnapshot,
    member: MemberContext,
    at: datetime,
    member_id: str | None,
    unknown_buyer: bool = False,
    lock: bool = False,
) -> list[Award]:
    """``rules.evaluate`` with the campaigns that have nothing left for this buyer closed
    (:func:`closed_campaigns`); and when an exclusive rule of a budgeted or capped campaign applies that its
    limits would cut below what the rules after it pay (the last 5 points of a launch on a 20-point purchase),
    those rules instead: an exclusive offer never leaves a buyer with less than they would earn without it.

    ``lock`` (a purchase, action or gift being booked): the budgets both choices draw on are locked before they
    are compared, in name order, so purchases racing for a launch's last points each choose on what is really
    left (and those that find none earn the base rate, not nothing)."""
    closed = closed_campaigns(conn=conn, program=program, rules=rules, member_id=member_id, unknown_buyer=unknown_buyer)
    awards = rules.evaluate(event, member, at, closed)
    exclusive = {
        a.campaign_id
        for a in awards
        if a.campaign_id in rules.exclusive_limited
        and any(r.exclusive and r.id == a.rule_id for r in rules.document.rules)
    }
    if not exclusive:
        return awards
    without = rules.evaluate(event, member, at, closed | {c for c in exclusive if c is not None})
    if lock:
        drawn = {a.campaign_id for a in (*awards, *without) if a.campaign_id and a.kind == "points"}
        budgets = [campaign_counter(c) for c in drawn if rules.campaigns[c].budget is not None]
        counters.read(conn, program_id=program.id, member_id=PROGRAM_WIDE, names=budgets, lock=True)

    def kept(found: list[Award]) -> int:
        granted = reserve(
            conn=conn,
            program=program,
            rules=rules,
            member_id=member_id,
            awards=found,
            take=False,
            unknown_buyer=unknown_buyer,
        )
        return sum(a.points for a in granted if a.kind == "points")

    return without if kept(without) > kept(awards) else awards


def reserve(
    *,
    conn: Connection,
    program: Program,
    rules: CompiledRuleSet,
    member_id: str | None,
    awards: list[Award],
    take: bool = True,
    unknown_buyer: bool = False,
) -> list[Award]:
    """``awards`` cut to what their campaigns may still give; with ``take``, count what they give.

    Without ``take`` (a preview, or a purchase nobody is credited for yet) nothing is locked or written.
    ``unknown_buyer``: a purchase with a card nobody has linked gets none of a capped campaign's points (no cap
    can be kept for a buyer nobody knows); the claim prices them for the member who links the card.
    """
    wanted = sorted({a.campaign_id for a in awards if a.campaign_id and a.kind == "points" and a.points > 0})
    limited = [
        rules.campaigns[c]
        for c in wanted
        if rules.campaigns[c].budget is not None or rules.campaigns[c].member_cap is not None
    ]
    if not limited:
        return awards
    budget_names = [campaign_counter(c.id) for c in limited if c.budget is not None]
    cap_names = [campaign_counter(c.id) for c in limited if c.member_cap is not None]
    given = counters.read(conn, program_id=program.id, member_id=PROGRAM_WIDE, names=budget_names, lock=take)
    mine = counters.read(conn, program_id=program.id, member_id=member_id, names=cap_names) if member_id else {}
    left: dict[str, int] = {}
    for campaign in limited:
        name = campaign_counter(campaign.id)
        bounds = []
        if campaign.budget is not None:
            bounds.append(campaign.budget - given[name])
        if campaign.member_cap is not None and member_id is not None:
            bounds.append(campaign.member_cap - mine[name])
        elif campaign.member_cap is not None and unknown_buyer:
            bounds.append(0)
        if bounds:
            left[campaign.id] = min(bounds)
    granted = within_limits(awards, left, rules.rounding)
    if take:
        for campaign in limited:
            points = sum(a.points for a in granted if a.campaign_id == campaign.id and a.kind == "points")
            if not points:
                continue
            name = campaign_counter(campaign.id)
            if campaign.budget is not None:
                counters.add(conn, program_id=program.id, member_id=PROGRAM_WIDE, name=name, delta=points)
            if campaign.member_cap is not None and member_id is not None:
                counters.add(conn, program_id=program.id, member_id=member_id, name=name, delta=points)
    return granted


def count_spend(
    *, conn: Connection, clock: Clock, program: Program, member_id: str, event_id: str, awards: list[Award]
) -> list[Award]:
    """Add each spend_step award's spend to the member's counter and grant a coupon per step crossed (and
    remember the steps rewarded: spend a return took back does not pay the same step twice).

    The crossings were counted from the counter read under the member's lock, so they are exact. A
    reward withdrawn from the catalog (archived, out of its window) or out of stock since the rules were
    applied gives no coupon rather than refusing the purchase: the award still records the crossing and
    says how many coupons were given.
    """
    given_awards = []
    for award in awards:
        if award.kind != "coupon" or award.counter is None or award.reward_id is None:
            given_awards.append(award)
            continue
        counters.add(conn, program_id=program.id, member_id=member_id, name=award.counter, delta=award.amount)
        if award.coupons:
            steps = steps_name(award.rule_id)
            counters.raise_to(conn, program_id=program.id, member_id=member_id, name=steps, value=award.steps)
        given = 0
        for n in range(award.coupons):
            try:  # refused before anything is written (grant_coupon): the purchase goes on without it
                rewards.grant_coupon(
                    conn=conn,
                    clock=clock,
                    program=program,
                    member_id=member_id,
                    reward_id=award.reward_id,
                    reason=award.name.en,
                    source_ref=f"{event_id}:{award.rule_id}:{n + 1}",
                )
            except PalierError:
                break
            given += 1
        if award.bare + award.coupons - given:  # paid with no coupon: what a return takes back first
            bare = bare_steps_name(award.rule_id)
            counters.add(
                conn, program_id=program.id, member_id=member_id, name=bare, delta=award.bare + award.coupons - given
            )
        given_awards.append(award if given == award.coupons else replace(award, coupons=given, points=given))
    return given_awards


def count_given_before_limits(*, conn: Connection, program_id: str, version: int, document: RuleSetDocument) -> None:
    """A campaign given a budget or a member cap it did not have counts in it what it gave without one: a launch
    that ran without limits and is given a budget of 20,000 has 20,000 in all, less what it gave, not 20,000 more.

    Only the versions since the campaign last had that limit count (before, the counter kept it); in one
    statement per limit (``INSERT … SELECT … ON CONFLICT``), every member's cap at once. What returns took back
    before the limit came is not taken off: the campaign errs towards giving less, never more."""
    wanted = {
        (campaign.id, limit)
        for campaign in document.campaigns
        for limit in ("budget", "member_cap")
        if getattr(campaign, limit) is not None
    }
    uncounted: dict[tuple[str, str], list[int]] = {key: [] for key in wanted}
    below, page = version, 1  # the version before first: it keeps these limits already, almost always
    while wanted and below > 1:
        rows = conn.execute(
            select(rule_sets.c.version, rule_sets.c.document)
            .where(rule_sets.c.program_id == program_id, rule_sets.c.version < below)
            .order_by(rule_sets.c.version.desc())
            .limit(page)
        ).all()
        for row in rows:  # newest first, back to the last version that kept each limit
            theirs = {c.get("id"): c for c in row.document.get("campaigns", [])}
            for key in sorted(wanted):
                if theirs.get(key[0], {}).get(key[1]) is not None:
                    wanted.discard(key)
                else:
                    uncounted[key].append(int(row.version))
        below, page = (int(rows[-1].version), 50) if rows else (1, page)
    for (campaign_id, limit), versions in sorted(uncounted.items()):
        if versions:
            _add_awards_to_counters(conn, program_id, campaign_id, versions, per_member=limit == "member_cap")


def _add_awards_to_counters(
    conn: Connection, program_id: str, campaign_id: str, versions: list[int], *, per_member: bool
) -> None:
    """Add to the campaign's counter (the program's, or each member's) the points its awards of ``versions``
    gave members (an unclaimed card purchase's gave no one anything)."""
    a = award_rows.c
    who = a.member_id if per_member else literal(PROGRAM_WIDE, String)
    given = (
        select(a.program_id, who, literal(campaign_counter(campaign_id), String), func.sum(a.points))
        .where(
            a.program_id == program_id,
            a.campaign_id == campaign_id,
            a.kind == "points",
            a.rule_version.in_(versions),
            a.member_id.is_not(None),
        )
        .group_by(a.program_id, *([a.member_id] if per_member else []))
    )
    c = counter_rows.c
    statement = upsert(conn, counter_rows).from_select([c.program_id, c.member_id, c.name, c.value], given)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[c.program_id, c.member_id, c.name], set_={"value": c.value + statement.excluded.value}
        )
    )


def counted_in(
    versions: Sequence[CompiledRuleSet], campaign_id: str, made_by: int, member_id: str | None, limit: str
) -> bool:
    """Whether a campaign's award counts in its ``limit`` (budget or member cap): the version that made it had the
    limit, or a later one gave it one and counted what the campaign had given (:func:`count_given_before_limits`;
    a member's award only: an unclaimed card purchase's was never counted)."""
    later = [v for v in versions if v.version > made_by] if member_id is not None else []
    for rules in (*(v for v in versions if v.version == made_by), *later):
        campaign = rules.campaigns.get(campaign_id)
        if campaign is not None and getattr(campaign, limit) is not None:
            return True
    return False
