"""Rule sets with the database: apply a new version, export, and evaluate events with the version in force.

Compiled rule sets are cached per process by (program, latest version, settings that change the
arithmetic): versions are never changed, so a purchase reads no rules from the database once its
program's rules are compiled, and a new version (a new ``programs.rules_version``) is seen at once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from sqlalchemy import Connection, Row, and_, insert, or_, select, update

from palier.activity.earning import Earning
from palier.activity.earning import purchase_earning as base_earning
from palier.activity.models import AwardLine, PurchaseIn, check_points_earned
from palier.activity.tables import events, purchases
from palier.clock import Clock, utc
from palier.errors import Conflict, InvalidInput, NotFound
from palier.programs.models import Program
from palier.programs.service import record_audit
from palier.programs.tables import programs
from palier.rewards import service as rewards
from palier.rules import context, counters, limits
from palier.rules.document import check_document, refuse
from palier.rules.engine import (
    ANONYMOUS,
    Award,
    CompiledRuleSet,
    EventSnapshot,
    LineSnapshot,
    MemberContext,
    Timeline,
    bare_steps_name,
    compile_rules,
    counter_name,
    steps_name,
    total_points,
)
from palier.rules.models import (
    PointsPerAmount,
    Rule,
    RuleSetDocument,
    RuleSetVersion,
    RuleSetVersionPage,
    SpendStep,
    Text,
)
from palier.rules.returned import LinesReturned as LinesReturned
from palier.rules.returned import Returned as Returned
from palier.rules.returned import counts_some_lines, kept_on_lines, share_on_lines, split_on_lines
from palier.rules.tables import awards as award_rows
from palier.rules.tables import counters as counter_rows
from palier.rules.tables import rule_sets
from palier.tiers.status import Standing, standing
from palier.units import Rounding, divide, split_proportionally

# --- versions ---


@dataclass(frozen=True)
class Applied:
    """What saving a rules document did: the version in force after it, and whether the save made it."""

    rules: RuleSetVersion
    new: bool


def _version(row: Row[Any]) -> RuleSetVersion:
    return RuleSetVersion(
        version=int(row.version),
        actor=str(row.actor),
        created_at=utc(row.created_at),
        effective_from=utc(row.effective_from),
        document=RuleSetDocument.model_validate(row.document),
    )


def default_document(program: Program) -> RuleSetDocument:
    """The rules a program has before any are applied: its base rate as a rule."""
    if program.earn_points == 0:
        return RuleSetDocument()
    per = program.earn_per_amount
    base = Rule(
        id="base",
        name=Text(en="Purchases", fr="Achats"),
        event="purchase",
        effect=PointsPerAmount(type="points_per_amount", points=program.earn_points, per_amount=per),
    )
    return RuleSetDocument(rules=[base])


def apply_rules(
    *,
    conn: Connection,
    clock: Clock,
    program_id: str,
    document: RuleSetDocument,
    actor: str,
    based_on: int | None = None,
) -> Applied:
    """Make ``document`` the program's rules from now on, as a new version (the old ones are kept); the very
    document in force already makes none (``Applied.new`` is False: the answer is the version in force).

    ``based_on``: the version the document was edited from. Another version applied since (a colleague's
    save while the editor was open) refuses it with ``rules_changed``, rather than silently dropping theirs."""
    check_document(document)
    _check_rewards(conn, program_id, document)
    _check_tiers_and_segments(conn, program_id, document)
    now = clock.now()
    query = select(programs.c.rules_version).where(programs.c.id == program_id).with_for_update()
    current = int(conn.execute(query).scalar_one())
    if based_on is not None and based_on != current:
        raise Conflict(
            "rules_changed",
            f"The rules were not applied: version {current} was applied since this document was opened "
            f"(version {based_on}). Open the rules again and make the change on them.",
            field="document",
            version=current,
            based_on=based_on,
        )
    stored = document.model_dump(mode="json", exclude_none=True)
    previous = conn.execute(
        select(rule_sets).where(rule_sets.c.program_id == program_id, rule_sets.c.version == current)
    ).first()
    if previous is not None and previous.document == stored:  # saved unchanged: no copy in the versions or audit
        return Applied(rules=_version(previous), new=False)
    # versions never go back in time
    effective_from = max(now, utc(previous.effective_from)) if previous is not None else now
    version = current + 1
    conn.execute(
        insert(rule_sets).values(
            program_id=program_id,
            version=version,
            document=stored,
            actor=actor,
            created_at=now,
            effective_from=effective_from,
        )
    )
    conn.execute(update(programs).where(programs.c.id == program_id).values(rules_version=version, updated_at=now))
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program_id,
        actor=actor,
        action="rules.applied",
        subject_id=program_id,
        details={"version": version, "rules": len(document.rules), "campaigns": len(document.campaigns)},
    )
    limits.count_given_before_limits(conn=conn, program_id=program_id, version=version, document=document)
    made = RuleSetVersion(
        version=version, actor=actor, created_at=now, effective_from=effective_from, document=document
    )
    return Applied(rules=made, new=True)


def _check_rewards(conn: Connection, program_id: str, document: RuleSetDocument) -> None:
    """A spend_step rule must name a reward of the program's catalog, one that can be given (not store credit)."""
    for i, rule in enumerate(document.rules):
        if isinstance(rule.effect, SpendStep):
            try:
                reward = rewards.get_reward(conn=conn, program_id=program_id, reward_id=rule.effect.reward_id)
                rewards.require_grantable(reward, field=f"rules[{i}].effect.reward_id")
            except NotFound:
                raise InvalidInput(
                    "unknown_reward",
                    f"The rules were not applied: rules[{i}].effect.reward_id: no reward "
                    f"{rule.effect.reward_id!r} in this program's catalog.",
                    field=f"rules[{i}].effect.reward_id",
                ) from None


def _check_tiers_and_segments(conn: Connection, program_id: str, document: RuleSetDocument) -> None:
    """A rule's ``tiers`` and ``segments`` must name the program's own codes: "Gold" for gold, or a segment not
    made yet, would pay nobody while how to earn told every member about it. Every such problem at once."""
    from palier.segments.service import list_segments
    from palier.tiers.service import get_policy

    wanted = [r for r in document.rules if r.conditions.tiers or r.conditions.segments]
    if not wanted:
        return
    policy = get_policy(conn, program_id=program_id)
    known = {
        "tiers": [t.code for t in policy.tiers] if policy is not None else [],
        "segments": [s.code for s in list_segments(conn=conn, program_id=program_id)],
    }
    problems = []
    for i, rule in enumerate(document.rules):
        for kind, codes in (("tiers", rule.conditions.tiers), ("segments", rule.conditions.segments)):
            for j, code in enumerate(codes or []):
                if code not in known[kind]:
                    there = ", ".join(known[kind]) or "none yet"
                    problems.append(
                        {
                            "field": f"rules[{i}].conditions.{kind}[{j}]",
                            "code": f"unknown_{kind[:-1]}",
                            "message": f"this program has no {kind[:-1]} {code!r} (its {kind}: {there})",
                        }
                    )
    if problems:
        raise refuse(problems)


def versions(*, conn: Connection, program_id: str, cursor: str | None, limit: int) -> RuleSetVersionPage:
    """The versions of the program's rules, newest first; ``cursor`` is the last version of the page before."""
    query = select(rule_sets).where(rule_sets.c.program_id == program_id)
    if cursor is not None:
        before = int(cursor) if cursor.isdigit() and len(cursor) <= 9 else None
        if before is None or conn.execute(query.where(rule_sets.c.version == before)).first() is None:
            raise InvalidInput("invalid_cursor", "This cursor was not issued by this program's rules.", field="cursor")
        query = query.where(rule_sets.c.version < before)
    rows = conn.execute(query.order_by(rule_sets.c.version.desc()).limit(limit + 1)).all()
    items = [_version(row) for row in rows[:limit]]
    return RuleSetVersionPage(items=items, next_cursor=str(items[-1].version) if len(rows) > limit else None)


def current_document(*, conn: Connection, program: Program) -> tuple[int, RuleSetDocument]:
    """(version, document) in force now; (0, the base rate as a rule) before any version."""
    line = timeline(conn=conn, program=program)
    latest = line.latest if line is not None else None
    if latest is None:
        return 0, default_document(program)
    return latest.version, latest.document


# --- compiled versions, cached per process ---

_CACHE_SIZE = 256
_cache: dict[tuple[object, ...], Timeline] = {}
_cache_lock = threading.Lock()


def timeline(*, conn: Connection, program: Program) -> Timeline | None:
    """All versions of the program's rules, compiled; None when it has none (the base rate applies)."""
    if program.rules_version == 0:
        return None
    key = (program.id, program.rules_version, program.timezone, program.rounding)
    found = _cache.get(key)
    if found is not None:
        return found
    rows = conn.execute(
        select(rule_sets.c.version, rule_sets.c.effective_from, rule_sets.c.document)
        .where(rule_sets.c.program_id == program.id, rule_sets.c.version <= program.rules_version)
        .order_by(rule_sets.c.version)
    ).all()
    line = Timeline(
        starts=tuple(utc(row.effective_from) for row in rows),
        versions=tuple(
            compile_rules(
                RuleSetDocument.model_validate(row.document),
                version=int(row.version),
                timezone=program.timezone,
                rounding=program.rounding,
            )
            for row in rows
        ),
    )
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = line
    return line


def rules_at(*, conn: Connection, program: Program, when: datetime) -> CompiledRuleSet | None:
    line = timeline(conn=conn, program=program)
    return line.at(when) if line is not None else None


def rules_or_default(*, conn: Connection, program: Program, when: datetime) -> CompiledRuleSet:
    """The version in force at ``when``, or the base rate as version 0."""
    found = rules_at(conn=conn, program=program, when=when)
    if found is not None:
        return found
    return compile_rules(default_document(program), version=0, timezone=program.timezone, rounding=program.rounding)


def how_to_earn_lines(*, conn: Connection, program: Program, now: datetime, language: str) -> tuple[int, list[str]]:
    """(rules version, one sentence per way to earn) from the rules in force: the API and how-it-works page."""
    from palier.rules.explain import how_to_earn
    from palier.segments.service import list_segments
    from palier.tiers.service import policy_for

    rules = rules_or_default(conn=conn, program=program, when=now)
    lang = "fr" if language == "fr" else "en"
    policy = policy_for(conn, program) if program.status_version else None
    tier_names = {t.code: getattr(t.name, lang) for t in policy.tiers} if policy is not None else {}
    segment_names = (
        {s.code: getattr(s.name, lang) for s in list_segments(conn=conn, program_id=program.id)}
        if any(r.conditions.segments for r in rules.document.rules)
        else {}
    )
    lines = how_to_earn(
        rules,
        now=now,
        language=language,
        currency=program.currency,
        exponent=program.currency_exponent,
        points_name=program.points_name_in(language),
        tier_names=tier_names,
        segment_names=segment_names,
        spent=_spent_budgets(conn, program, rules),
    )
    return rules.version, lines


def _spent_budgets(conn: Connection, program: Program, rules: CompiledRuleSet) -> frozenset[str]:
    """The campaigns of ``rules`` with a budget that has nothing left to give anyone."""
    budgeted = [c for c in rules.campaigns.values() if c.budget is not None]
    names = [counters.campaign_counter(c.id) for c in budgeted]
    given = counters.read(conn, program_id=program.id, member_id=counters.PROGRAM_WIDE, names=names)
    return frozenset(
        c.id for c in budgeted if c.budget is not None and c.budget - given[counters.campaign_counter(c.id)] <= 0
    )


# --- purchases ---


class LineIn(Protocol):
    """A cart line as these functions read it (``activity.models.Line`` is one)."""

    @property
    def sku(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def category(self) -> str | None: ...
    @property
    def brand(self) -> str | None: ...
    @property
    def amount(self) -> int: ...


@dataclass(frozen=True)
class RuledEarning(Earning):
    """What a purchase earns under the rules, with the awards that make it up.

    ``award_rows`` are the ``awards`` rows still to write: the caller writes them with the event (and the
    ledger transaction) in one statement."""

    awards: tuple[Award, ...] = ()
    version: int = 0
    award_rows: tuple[dict[str, Any], ...] = ()


def purchase_snapshot(
    program: Program, *, lines: Sequence[LineIn], channel: str | None, store_id: str | None, shipping: int, tax: int
) -> EventSnapshot:
    return EventSnapshot(
        type="purchase",
        channel=channel,
        store_id=store_id,
        lines=tuple(
            LineSnapshot(
                sku=line.sku,
                quantity=line.quantity,
                amount=line.amount,
                earns=line.kind != "gift_card" or program.earn_on_gift_cards,
                category=line.category,
                brand=line.brand,
            )
            for line in lines
        ),
        extra_eligible=(shipping if program.earn_on_shipping else 0) + (tax if program.earn_on_tax else 0),
    )


def paid_with_money_only(event: EventSnapshot, *, paid: int, total: int) -> EventSnapshot:
    """The cart as far as it was paid with money: points or store credit earn nothing (each line shrinks)."""
    lines = tuple(replace(line, amount=line.amount * paid // total) for line in event.lines)
    return replace(event, lines=lines, extra_eligible=event.extra_eligible * paid // total)


def purchase_earning(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    purchase: PurchaseIn,
    member_id: str | None,
    event_id: str,
    occurred_at: datetime,
    paid_otherwise: int = 0,
) -> RuledEarning:
    """What ``purchase`` earns: the base rate when the program has no rules in force at ``occurred_at``;
    otherwise what the rules award, within campaign budgets and caps, as awards of ``event_id`` whose rows
    the caller writes (``award_rows``).

    The caller holds the member's lock. Without rules this runs no statement at all.
    """
    base = base_earning(purchase, program, paid_otherwise=paid_otherwise)
    rules = rules_at(conn=conn, program=program, when=occurred_at)
    member_standing = standing(conn, program=program, member_id=member_id, now=occurred_at)
    if rules is None:
        bonus = status_bonus(program, member_standing, check_points_earned(base.points), base.line_points)
        if bonus is None:
            return RuledEarning(**vars(base))
        points, line_points = total_points([bonus], len(purchase.lines))
        return RuledEarning(
            **(
                vars(base)
                | {
                    "points": check_points_earned(base.points + points),
                    "line_points": _add_lines(base.line_points, line_points),
                }
            ),
            awards=(bonus,),
        )
    event = purchase_snapshot(
        program,
        lines=purchase.lines,
        channel=purchase.channel,
        store_id=purchase.store_id,
        shipping=purchase.shipping,
        tax=purchase.tax,
    )
    if paid_otherwise and base.total:
        event = paid_with_money_only(event, paid=max(base.total - paid_otherwise, 0), total=base.total)
    member = member_context(conn=conn, program=program, member_id=member_id, rules=rules, status=member_standing)
    awarded = limits.evaluate_within(
        conn=conn,
        program=program,
        rules=rules,
        event=event,
        member=member,
        at=occurred_at,
        member_id=member_id,
        unknown_buyer=member_id is None,
        lock=member_id is not None,
    )
    found, rows = grant_awards(
        conn=conn, clock=clock, program=program, rules=rules, member_id=member_id, event_id=event_id, awards=awarded
    )
    points, line_points = total_points(found, len(purchase.lines))
    # a tier or plan multiplies what the rules gave: what campaign budgets and caps let through, not more
    bonus = status_bonus(program, member_standing, points, line_points)
    if bonus is not None:
        more, more_rows = grant_awards(
            conn=conn, clock=clock, program=program, rules=rules, member_id=member_id, event_id=event_id, awards=[bonus]
        )
        found, rows = found + more, rows + more_rows
        points, line_points = total_points(found, len(purchase.lines))
    return RuledEarning(
        total=base.total,
        eligible=base.eligible,
        points=check_points_earned(points),
        line_eligible=base.line_eligible,
        line_points=line_points,
        awards=tuple(found),
        version=rules.version,
        award_rows=tuple(rows),
    )


def status_bonus(program: Program, found: Standing, points: int, line_points: Sequence[int]) -> Award | None:
    """The extra points of the member's tier or VIP plan multiplier ("Gold ×1.5: +12"), on what they earned."""
    if found.multiplier_percent <= 100 or points <= 0 or found.multiplier_name is None:
        return None
    extra = divide(points * (found.multiplier_percent - 100), 100, Rounding(program.rounding))
    if extra <= 0:
        return None
    factor = f"×{found.multiplier_percent // 100}" + (
        f".{found.multiplier_percent % 100:02d}".rstrip("0") if found.multiplier_percent % 100 else ""
    )
    name = found.multiplier_name
    on_lines = tuple(split_proportionally(extra, line_points)) if any(line_points) else ()
    return Award(
        rule_id=found.multiplier_source or "status",
        version=program.status_version,
        name=Text(en=name.en, fr=name.fr),
        kind="points",
        points=extra,
        line_points=on_lines,
        lines=tuple(range(len(on_lines))),
        detail=factor,
    )


def _add_lines(a: Sequence[int], b: Sequence[int]) -> list[int]:
    return [x + y for x, y in zip(a, b, strict=True)]


def member_context(
    *, conn: Connection, program: Program, member_id: str | None, rules: CompiledRuleSet, status: Standing
) -> MemberContext:
    """What the rules need to know of the member, read only when some rule asks for it, with the tier and
    segments of ``status`` (the member's standing when the event occurred): on every event, not purchases
    only, so that a rule for Gold members pays their actions and gifts too."""
    if member_id is None:
        return ANONYMOUS
    found = context.load(conn=conn, program_id=program.id, member_id=member_id, rules=rules)
    if status.tier is not None or status.segments:
        found = replace(found, tier=status.tier, segments=status.segments)
    return found


def member_context_at(
    *, conn: Connection, program: Program, member_id: str, rules: CompiledRuleSet, at: datetime
) -> MemberContext:
    """:func:`member_context` with the member's standing at ``at`` (actions and gifts: no status bonus)."""
    status = standing(conn, program=program, member_id=member_id, now=at)
    return member_context(conn=conn, program=program, member_id=member_id, rules=rules, status=status)


def book_awards(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    rules: CompiledRuleSet,
    member_id: str | None,
    event_id: str,
    awards: list[Award],
) -> list[Award]:
    """:func:`grant_awards`, and its rows written at once. Returns the awards as given."""
    granted, rows = grant_awards(
        conn=conn, clock=clock, program=program, rules=rules, member_id=member_id, event_id=event_id, awards=awards
    )
    if rows:
        conn.execute(insert(award_rows), rows)
    return granted


def grant_awards(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    rules: CompiledRuleSet,
    member_id: str | None,
    event_id: str,
    awards: list[Award],
) -> tuple[list[Award], list[dict[str, Any]]]:
    """Cut ``awards`` to campaign budgets and caps (taking what they give), count spend and grant coupons.

    Returns the awards as given and their ``awards`` rows, for the caller to write. The ledger booking is
    the caller's too.

    Without a member (a purchase paid with a card nobody has linked yet) nothing is taken, counted or
    written: no one is credited, so no budget is spent; the claim prices it for the member who links the
    card (``activity.claims``), and only then are budgets, caps and spend counted."""
    if member_id is None:
        unknown = limits.reserve(
            conn=conn, program=program, rules=rules, member_id=None, awards=awards, take=False, unknown_buyer=True
        )
        return unknown, []
    granted = limits.reserve(conn=conn, program=program, rules=rules, member_id=member_id, awards=awards)
    granted = limits.count_spend(
        conn=conn, clock=clock, program=program, member_id=member_id, event_id=event_id, awards=granted
    )
    now = clock.now()
    rows = [
        {
            "program_id": program.id,
            "member_id": member_id,
            "event_id": event_id,
            "rule_id": a.rule_id,
            "rule_version": a.version,
            "campaign_id": a.campaign_id,
            "kind": a.kind,
            "points": a.coupons if a.kind == "coupon" else a.points,
            "amount": a.amount,
            "created_at": now,
        }
        for a in granted
    ]
    return granted, rows


def give_back(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    event_id: str,
    points: Returned,
    money: Returned,
    lines: LinesReturned | None = None,
) -> None:
    """A return of a purchase undoes the same share of what its awards counted.

    - Each campaign that gave some of the purchase's points gets back in its budget, and the member in
      their cap, the share of those points the return takes back (``points``): a budget counts the points
      members keep. With ``lines``, the items returned give back what their lines got of the award, as the
      purchase kept it (``campaign_points``; the croissant returned gives back all of its pastry bonus, the
      bread returned none), a refund by amount its share of the rest. An order kept without them: a rule that
      counts some lines only gives back by its lines' amounts, any other the order's share.
      Only the counters the award was counted in: the campaign's budget and cap in the rules
      version that made the award (or a later one that gave the campaign them), the cap of the member the award
      went to.
    - A spend_step rule's running spend falls by the share of the spend it counted that was refunded
      (``money``). Coupons this order brought that the spend left no longer covers are cancelled while still
      unused, and their steps are to be paid again; a coupon already used stays paid, so that spend must be
      made again before the next step (no second voucher for the same €100).

    The caller holds the member's lock and calls this before its ledger writes: counter rows, then program
    accounts, in the order a purchase takes them (budget rows in name order).
    """
    if program.rules_version == 0 or (points.after <= points.before and money.after <= money.before):
        return  # no rules ever (the base rate awards nothing to undo), or nothing returned
    rows = conn.execute(
        select(
            award_rows.c.campaign_id,
            award_rows.c.rule_id,
            award_rows.c.rule_version,
            award_rows.c.member_id,
            award_rows.c.kind,
            award_rows.c.points,
            award_rows.c.amount,
        )
        .where(
            award_rows.c.program_id == program.id,
            award_rows.c.event_id == event_id,
            or_(
                and_(award_rows.c.kind == "points", award_rows.c.campaign_id.is_not(None)),
                and_(award_rows.c.kind == "coupon", award_rows.c.member_id.is_not(None)),
            ),
        )
        .order_by(award_rows.c.campaign_id, award_rows.c.id)
    ).all()
    line = timeline(conn=conn, program=program) if rows else None
    if line is None:
        return
    by_version = {rules.version: rules for rules in line.versions}
    bought: list[dict[str, Any]] | None = None  # the order's lines as sent (sku, category, brand), read once
    for row in rows:
        if row.kind == "coupon":  # a spend_step award: ``amount`` is the spend it counted
            spent = money.share(int(row.amount))
            if spent > 0:
                name = counter_name(row.rule_id)
                left = counters.add(conn, program_id=program.id, member_id=row.member_id, name=name, delta=-spent)
                step = _step_of(by_version.get(row.rule_version), row.rule_id)
                if step:  # of its steps, at most those its spend crossed beyond the coupons it gave went bare
                    bare = max(int(row.amount) // step - int(row.points), 0)
                    _cancel_uncovered(conn, clock, program, event_id, row.rule_id, row.member_id, left // step, bare)
            continue
        rules = by_version.get(row.rule_version)
        campaign = rules.campaigns.get(row.campaign_id) if rules is not None else None
        rule = _rule_of(rules, row.rule_id)
        split = kept_on_lines(lines.lines, row.rule_id, int(row.points)) if lines is not None else None
        if split is None and lines is not None and rule is not None and counts_some_lines(rule):
            bought = _bought_lines(conn, event_id) if bought is None else bought
            split = split_on_lines(program, rule, int(row.points), bought, len(lines.lines))
        back = points.share(int(row.points)) if split is None or lines is None else share_on_lines(split, lines, points)
        if campaign is None or back == 0:  # below 0: the line items' share counted back what an earlier refund gave
            continue
        name = counters.campaign_counter(row.campaign_id)
        counted = partial(limits.counted_in, line.versions, row.campaign_id, row.rule_version, row.member_id)
        if counted("budget"):
            counters.add(conn, program_id=program.id, member_id=counters.PROGRAM_WIDE, name=name, delta=-back)
        if row.member_id is not None and counted("member_cap"):
            counters.add(conn, program_id=program.id, member_id=row.member_id, name=name, delta=-back)


def _rule_of(rules: CompiledRuleSet | None, rule_id: str) -> Rule | None:
    return next((r for r in rules.document.rules if r.id == rule_id), None) if rules is not None else None


def _bought_lines(conn: Connection, event_id: str) -> list[dict[str, Any]]:
    """The purchase's lines as it was sent (their SKU, category, brand and kind: what line filters read)."""
    body = conn.execute(select(events.c.body).where(events.c.id == event_id)).scalar()
    found = body.get("lines") if isinstance(body, dict) else None
    return list(found) if isinstance(found, list) else []


def _step_of(rules: CompiledRuleSet | None, rule_id: str) -> int:
    rule = next((r for r in rules.document.rules if r.id == rule_id), None) if rules is not None else None
    return rule.effect.step if rule is not None and isinstance(rule.effect, SpendStep) else 0


def _cancel_uncovered(
    conn: Connection,
    clock: Clock,
    program: Program,
    event_id: str,
    rule_id: str,
    member_id: str,
    covered: int,
    bare: int,
) -> None:
    """Take back the steps paid beyond the ``covered`` steps the spend left pays for, and let them be paid
    again: first the order's steps that gave no coupon (out of stock, beyond ``max_per_purchase``; at most
    ``bare``, so another order's cannot keep this one's coupons), then the unused coupons of ``event_id``'s
    step award, newest first."""
    from palier.rewards import service as rewards

    steps, bare_name = steps_name(rule_id), bare_steps_name(rule_id)
    found = counters.read(conn, program_id=program.id, member_id=member_id, names=[steps, bare_name])
    uncovered = found[steps] - covered
    if uncovered <= 0:
        return
    unpaid = min(uncovered, found[bare_name], bare)
    if unpaid:
        counters.add(conn, program_id=program.id, member_id=member_id, name=bare_name, delta=-unpaid)
    cancelled = rewards.cancel_granted(
        conn=conn, clock=clock, program=program, member_id=member_id, source_prefix=f"{event_id}:{rule_id}:",
        limit=uncovered - unpaid,
    ) if uncovered > unpaid else 0  # fmt: skip
    if unpaid + cancelled:
        counters.add(conn, program_id=program.id, member_id=member_id, name=steps, delta=-(unpaid + cancelled))


def move_member(*, conn: Connection, clock: Clock, program: Program, source_id: str, target_id: str) -> dict[str, int]:
    """A merge: the source's campaign caps and spend_step counters add up into the target's, and the awards
    of the source's orders name the target, so that a later return gives back to the target's counters.

    A spend_step rule's running spend and steps paid add up each on its own: 90 € and 90 € make 180 € with no
    step paid, so 1 € more pays the first (the steps the sum crosses are not all paid). So each account's steps
    paid are written down first where its counters, kept before they were recorded, hold the spend alone.

    The caller holds both members' locks and calls this before the orders move to the target. Returns the
    counters moved (name -> value).
    """
    program_id = program.id
    for member_id in (source_id, target_id):
        _record_steps_paid(conn, clock, program, member_id)
    moved = counters.move_member(conn, program_id=program_id, source_id=source_id, target_id=target_id)
    orders = select(purchases.c.event_id).where(
        purchases.c.program_id == program_id, purchases.c.member_id == source_id
    )
    conn.execute(
        update(award_rows)
        .where(
            award_rows.c.program_id == program_id,
            award_rows.c.event_id.in_(orders),
            award_rows.c.member_id == source_id,
        )
        .values(member_id=target_id)
    )
    return moved


def _record_steps_paid(conn: Connection, clock: Clock, program: Program, member_id: str) -> None:
    """Write down the steps paid of each spend_step rule whose running spend the member has without them:
    counters kept before those were recorded, whose crossed steps were all paid (as a purchase reads them:
    :meth:`CompiledRuleSet.evaluate`). The step is the rule's in force now, else in its latest version."""
    line = timeline(conn=conn, program=program)
    if line is None:
        return
    held = {
        str(name): int(value)
        for name, value in conn.execute(
            select(counter_rows.c.name, counter_rows.c.value).where(
                counter_rows.c.program_id == program.id, counter_rows.c.member_id == member_id
            )
        )
    }
    spent = (name.removeprefix(counter_name("")) for name in held if name.startswith(counter_name("")))
    older = sorted(rule_id for rule_id in spent if steps_name(rule_id) not in held)
    now = line.at(clock.now())
    newest_first = [*([now] if now is not None else []), *reversed(line.versions)]
    for rule_id in older:
        step = next((step for step in (_step_of(rules, rule_id) for rules in newest_first) if step), 0)
        if step:
            paid = held[counter_name(rule_id)] // step
            counters.raise_to(conn, program_id=program.id, member_id=member_id, name=steps_name(rule_id), value=paid)


def award_lines(found: Sequence[Award], program: Program, language: str = "en") -> list[AwardLine]:
    def in_currency(amount: int) -> str:
        return program.money(amount, language)

    return [
        AwardLine(
            rule_id=a.rule_id,
            version=a.version,
            kind=a.kind,
            points=a.points if a.kind == "points" else a.coupons if a.kind == "coupon" else a.amount,
            text=a.line(language, in_currency),
        )
        for a in found
    ]


def event_awards(*, conn: Connection, program_id: str, event_id: str) -> list[dict[str, object]]:
    rows = conn.execute(
        select(
            award_rows.c.rule_id, award_rows.c.rule_version, award_rows.c.kind, award_rows.c.points, award_rows.c.amount
        )
        .where(award_rows.c.program_id == program_id, award_rows.c.event_id == event_id)
        .order_by(award_rows.c.id)
    ).mappings()
    return [dict(row) for row in rows]
