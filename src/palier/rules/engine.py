"""Rules compiled once into predicates, then evaluated purely: ``evaluate(event, member, now) -> [Award]``.

No I/O here: the service hands in a snapshot of the event and what is known of the member, and gets
back the awards, each naming the rule and version that made it. Rules run in priority order (higher
first, then as written); an *exclusive* rule that applies stops every rule after it. Multipliers are
worked out last, on the points earned per amount by the rules that applied on the same lines.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from palier.rules.models import (
    WEEKDAYS,
    Action,
    Campaign,
    CashbackPercent,
    FixedPoints,
    Multiplier,
    PerItem,
    PointsPerAmount,
    Rule,
    RuleSetDocument,
    SpendStep,
    Text,
)
from palier.units import Rounding, divide, split_proportionally


@dataclass(frozen=True, slots=True)
class LineSnapshot:
    sku: str
    quantity: int
    amount: int  # paid for the line, minor units
    earns: bool = True  # False for a gift card when the program does not earn on them
    category: str | None = None
    brand: str | None = None


@dataclass(frozen=True, slots=True)
class EventSnapshot:
    type: str  # purchase | action | enrolment | birthday | anniversary
    channel: str | None = None
    store_id: str | None = None
    lines: tuple[LineSnapshot, ...] = ()
    extra_eligible: int = 0  # shipping and tax, when the program earns on them
    action: str | None = None


@dataclass(frozen=True, slots=True)
class MemberContext:
    """What rules may know of the member. ``tier`` and ``segments`` are filled by the tiers and segments work."""

    tier: str | None = None
    segments: frozenset[str] = frozenset()
    attributes: Mapping[str, str] = field(default_factory=dict)
    first_purchase: bool = False
    counters: Mapping[str, int] = field(default_factory=dict)  # running spend per spend_step rule


ANONYMOUS = MemberContext()
AwardKind = Literal["points", "coupon", "cashback"]


@dataclass(frozen=True, slots=True)
class Award:
    rule_id: str
    version: int
    name: Text
    kind: AwardKind
    points: int
    line_points: tuple[int, ...] = ()  # the points split over the event's lines (sums to ``points``)
    campaign_id: str | None = None
    detail: str = ""  # "×2", "+5 per item"…
    amount: int = 0  # cashback in minor units, or the spend a spend_step rule counted
    coupons: int = 0
    reward_id: str | None = None
    counter: str | None = None

    def line(self, language: str = "en") -> str:
        """ "Double points weekend ×2: +46" (or the coupons / cashback it gives)."""
        name = self.name.in_language(language)
        head = f"{name} {self.detail}" if self.detail else name
        if self.kind == "coupon":
            word = "bon" if language == "fr" else "reward"
            plural = "s" if self.coupons != 1 else ""
            return f"{head}: {self.coupons} {word}{plural}"
        if self.kind == "cashback":
            return f"{head}: {self.amount}"
        return f"{head}: +{self.points}"


Check = Callable[[EventSnapshot, MemberContext, datetime, datetime], bool]  # event, member, local now, utc now


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    checks: tuple[Check, ...]
    line_filter: Callable[[LineSnapshot], bool] | None

    def applies(self, event: EventSnapshot, member: MemberContext, local: datetime, now: datetime) -> bool:
        return all(check(event, member, local, now) for check in self.checks)

    def matched(self, event: EventSnapshot) -> tuple[int, ...] | None:
        """The indexes of the lines that count, or None when the rule's cart conditions do not hold."""
        lines = event.lines
        keep = self.line_filter
        matched = tuple(i for i, line in enumerate(lines) if line.earns and (keep is None or keep(line)))
        if keep is not None and not matched:
            return None
        c = self.rule.conditions
        if c.min_spend is not None or c.max_spend is not None:
            spend = sum(lines[i].amount for i in matched)
            if (c.min_spend is not None and spend < c.min_spend) or (c.max_spend is not None and spend > c.max_spend):
                return None
        if c.min_quantity is not None and sum(lines[i].quantity for i in matched) < c.min_quantity:
            return None
        return matched


@dataclass(frozen=True)
class CompiledRuleSet:
    version: int
    timezone: ZoneInfo
    rounding: Rounding
    document: RuleSetDocument
    by_event: Mapping[str, tuple[CompiledRule, ...]]
    actions: Mapping[str, Action]
    campaigns: Mapping[str, Campaign]
    needs_first_purchase: bool
    needs_attributes: bool
    counters: frozenset[str]

    def evaluate(self, event: EventSnapshot, member: MemberContext, now: datetime) -> list[Award]:
        """The awards this event earns at ``now`` (when it occurred; a preview may pick a future time)."""
        return _Evaluation(self, event, member, now).run()


def compile_rules(
    document: RuleSetDocument, *, version: int, timezone: str, rounding: Rounding | str
) -> CompiledRuleSet:
    tz = ZoneInfo(timezone)
    campaigns = {c.id: c for c in document.campaigns}
    ordered = sorted(enumerate(document.rules), key=lambda item: (-item[1].priority, item[0]))
    by_event: dict[str, list[CompiledRule]] = {}
    for _, rule in ordered:
        campaign = campaigns.get(rule.campaign) if rule.campaign else None
        by_event.setdefault(rule.event, []).append(_compile(rule, campaign, tz))
    return CompiledRuleSet(
        version=version,
        timezone=tz,
        rounding=Rounding(rounding),
        document=document,
        by_event={on: tuple(rules) for on, rules in by_event.items()},
        actions={a.id: a for a in document.actions},
        campaigns=campaigns,
        needs_first_purchase=any(r.conditions.first_purchase is not None for r in document.rules),
        needs_attributes=any(r.conditions.attributes for r in document.rules),
        counters=frozenset(counter_name(r.id) for r in document.rules if isinstance(r.effect, SpendStep)),
    )


def counter_name(rule_id: str) -> str:
    return f"spend:{rule_id}"


def local_to_utc(value: datetime, tz: ZoneInfo) -> datetime:
    """A campaign bound: naive values are wall-clock time in the program's zone."""
    return (value.replace(tzinfo=tz) if value.tzinfo is None else value).astimezone(UTC)


def _compile(rule: Rule, campaign: Campaign | None, tz: ZoneInfo) -> CompiledRule:
    c = rule.conditions
    checks: list[Check] = []
    if campaign is not None:
        starts, ends = local_to_utc(campaign.starts, tz), local_to_utc(campaign.ends, tz)
        checks.append(lambda e, m, local, now: starts <= now < ends)
    if c.channels is not None:
        channels = frozenset(c.channels)
        checks.append(lambda e, m, local, now: e.channel in channels)
    if c.stores is not None:
        stores = frozenset(c.stores)
        checks.append(lambda e, m, local, now: e.store_id in stores)
    if c.actions is not None:
        actions = frozenset(c.actions)
        checks.append(lambda e, m, local, now: e.action in actions)
    if c.dates is not None:
        first, last = c.dates.start, c.dates.end
        checks.append(lambda e, m, local, now: first <= local.date() <= last)
    if c.weekdays is not None:
        days = frozenset(WEEKDAYS.index(d) for d in c.weekdays)
        checks.append(lambda e, m, local, now: local.weekday() in days)
    if c.hours is not None:
        opens, closes = c.hours.start, c.hours.end
        checks.append(lambda e, m, local, now: opens <= _time_of(local) < closes)
    if c.first_purchase is not None:
        wanted = c.first_purchase
        checks.append(lambda e, m, local, now: m.first_purchase is wanted)
    if c.tiers is not None:
        tiers = frozenset(c.tiers)
        checks.append(lambda e, m, local, now: m.tier in tiers)
    if c.segments is not None:
        segments = frozenset(c.segments)
        checks.append(lambda e, m, local, now: not segments.isdisjoint(m.segments))
    if c.attributes:
        attributes = tuple(c.attributes.items())
        checks.append(lambda e, m, local, now: all(m.attributes.get(k) == v for k, v in attributes))
    return CompiledRule(rule=rule, checks=tuple(checks), line_filter=_line_filter(rule))


def _time_of(local: datetime) -> time:
    return local.time().replace(tzinfo=None)


def _line_filter(rule: Rule) -> Callable[[LineSnapshot], bool] | None:
    c = rule.conditions
    skus = frozenset(c.skus) if c.skus is not None else None
    categories = frozenset(c.categories) if c.categories is not None else None
    brands = frozenset(c.brands) if c.brands is not None else None
    if skus is None and categories is None and brands is None:
        return None

    def keep(line: LineSnapshot) -> bool:
        return (
            (skus is None or line.sku in skus)
            and (categories is None or line.category in categories)
            and (brands is None or line.brand in brands)
        )

    return keep


def _spread(points: int, weights: Sequence[int], fallback: Sequence[int]) -> list[int]:
    """Split ``points`` over lines by ``weights`` (or ``fallback`` when they are all zero), summing exactly."""
    if not weights:
        return []
    if sum(weights) > 0:
        return split_proportionally(points, list(weights))
    if sum(fallback) > 0:
        return split_proportionally(points, list(fallback))
    return split_proportionally(points, [1] * len(weights))


class _Evaluation:
    """One evaluation's working state: base points per line (for multipliers) and the awards so far."""

    def __init__(self, rules: CompiledRuleSet, event: EventSnapshot, member: MemberContext, now: datetime) -> None:
        self.rules, self.event, self.member = rules, event, member
        self.now = now.astimezone(UTC)
        self.local = now.astimezone(rules.timezone)
        self.base = [0] * len(event.lines)  # points per amount earned by each line
        self.base_total = 0  # for events without lines: the action's own points
        self.awards: list[Award] = []

    def run(self) -> list[Award]:
        event = self.event
        action = self.rules.actions.get(event.action or "") if event.type == "action" else None
        if action is not None:
            self.base_total = action.points
            self._add(f"action:{action.id}", action.name, None, "points", action.points, ())
        multipliers: list[tuple[CompiledRule, tuple[int, ...]]] = []
        for compiled in self.rules.by_event.get(event.type, ()):
            if not compiled.applies(event, self.member, self.local, self.now):
                continue
            matched = compiled.matched(event)
            if matched is None:
                continue
            if isinstance(compiled.rule.effect, Multiplier):
                multipliers.append((compiled, matched))
            else:
                self._apply(compiled.rule, matched)
            if compiled.rule.exclusive:
                break
        for compiled, matched in multipliers:
            self._multiply(compiled.rule, matched)
        return self.awards

    def _lines_of(self, matched: tuple[int, ...], values: Sequence[int]) -> tuple[int, ...]:
        """Per-line values on the matched lines, zero elsewhere (as long as the event's lines)."""
        out = [0] * len(self.event.lines)
        for i, value in zip(matched, values, strict=True):
            out[i] = value
        return tuple(out)

    def _add(
        self,
        rule_id: str,
        name: Text,
        campaign: str | None,
        kind: AwardKind,
        points: int,
        line_points: tuple[int, ...],
        **extra: int | str | None,
    ) -> None:
        if points <= 0 and kind == "points":
            return
        self.awards.append(
            Award(
                rule_id=rule_id,
                version=self.rules.version,
                name=name,
                kind=kind,
                points=points,
                line_points=line_points,
                campaign_id=campaign,
                **extra,  # type: ignore[arg-type]
            )
        )

    def _apply(self, rule: Rule, matched: tuple[int, ...]) -> None:
        lines, effect, rounding = self.event.lines, rule.effect, self.rules.rounding
        eligible = [lines[i].amount for i in matched]
        quantities = [lines[i].quantity for i in matched]
        spend = sum(eligible) + (0 if _filters(rule) else self.event.extra_eligible)
        add = self._add
        if isinstance(effect, PointsPerAmount):
            points = divide(spend * effect.points, effect.per_amount, rounding)
            split = _spread(points, eligible, quantities)
            for i, p in zip(matched, split, strict=True):
                self.base[i] += p
            add(rule.id, rule.name, rule.campaign, "points", points, self._lines_of(matched, split))
        elif isinstance(effect, FixedPoints):
            split = _spread(effect.points, eligible, quantities)
            add(rule.id, rule.name, rule.campaign, "points", effect.points, self._lines_of(matched, split))
        elif isinstance(effect, PerItem):
            split = [effect.points * q for q in quantities]
            detail = f"+{effect.points}/item"
            add(rule.id, rule.name, rule.campaign, "points", sum(split), self._lines_of(matched, split), detail=detail)
        elif isinstance(effect, SpendStep):
            counter = counter_name(rule.id)
            before = self.member.counters.get(counter, 0)
            coupons = (before + spend) // effect.step - before // effect.step
            if spend > 0:
                add(
                    rule.id,
                    rule.name,
                    rule.campaign,
                    "coupon",
                    0,
                    (),
                    amount=spend,
                    coupons=coupons,
                    reward_id=effect.reward_id,
                    counter=counter,
                )
        elif isinstance(effect, CashbackPercent):
            numerator, denominator = effect.percent.as_integer_ratio()
            cash = divide(spend * numerator, 100 * denominator, Rounding.FLOOR)
            if cash > 0:
                add(rule.id, rule.name, rule.campaign, "cashback", 0, (), amount=cash, detail=f"{effect.percent}%")

    def _multiply(self, rule: Rule, matched: tuple[int, ...]) -> None:
        assert isinstance(rule.effect, Multiplier)
        numerator, denominator = rule.effect.factor.as_integer_ratio()
        detail = f"×{rule.effect.factor.normalize():f}"
        if not self.event.lines:  # an action: multiplies the action's own points
            base = self.base_total
            extra = divide(base * (numerator - denominator), denominator, self.rules.rounding)
            self._add(rule.id, rule.name, rule.campaign, "points", extra, (), detail=detail)
            return
        weights = [self.base[i] for i in matched]
        extra = divide(sum(weights) * (numerator - denominator), denominator, self.rules.rounding)
        split = _spread(extra, weights, [0] * len(weights)) if sum(weights) else [0] * len(weights)
        self._add(rule.id, rule.name, rule.campaign, "points", extra, self._lines_of(matched, split), detail=detail)


def _filters(rule: Rule) -> bool:
    c = rule.conditions
    return c.skus is not None or c.categories is not None or c.brands is not None


def total_points(awards: Sequence[Award], lines: int) -> tuple[int, list[int]]:
    """The points of all awards and their split over ``lines`` lines (the parts sum to the total)."""
    per_line = [0] * lines
    total = 0
    for award in awards:
        if award.kind != "points":
            continue
        total += award.points
        if award.line_points:
            for i, p in enumerate(award.line_points):
                per_line[i] += p
    rest = total - sum(per_line)  # points with no line (none on purchases today): spread by what lines earned
    if rest and lines:
        for i, p in enumerate(_spread(rest, per_line, [1] * lines)):
            per_line[i] += p
    return total, per_line


def within_limits(awards: Sequence[Award], left: Mapping[str, int]) -> list[Award]:
    """Awards cut to what each campaign may still give (``left``: campaign id -> points; absent: unlimited).

    Awards are served in order; a cut award's line points are re-split so they still sum exactly.
    """
    remaining = dict(left)
    out = []
    for award in awards:
        cid = award.campaign_id
        if award.kind != "points" or cid is None or cid not in remaining:
            out.append(award)
            continue
        granted = min(award.points, max(remaining[cid], 0))
        remaining[cid] -= granted
        if granted == award.points:
            out.append(award)
        elif granted > 0:
            lines = tuple(_spread(granted, award.line_points, [1] * len(award.line_points)))
            out.append(replace(award, points=granted, line_points=lines))
    return out


@dataclass(frozen=True)
class Timeline:
    """Every version of a program's rules with the moment each came into force (ascending)."""

    starts: tuple[datetime, ...]
    versions: tuple[CompiledRuleSet, ...]

    def at(self, when: datetime) -> CompiledRuleSet | None:
        """The version in force at ``when``; None before the first one (the program's base rate applies)."""
        index = bisect_right(self.starts, when.astimezone(UTC)) - 1
        return self.versions[index] if index >= 0 else None

    @property
    def latest(self) -> CompiledRuleSet | None:
        return self.versions[-1] if self.versions else None
