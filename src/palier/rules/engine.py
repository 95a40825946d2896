"""Rules compiled once into predicates, then evaluated purely: ``evaluate(event, member, now) -> [Award]``.

No I/O here: the service hands in a snapshot of the event and what is known of the member, and gets
back the awards, each naming the rule and version that made it. Rules run in priority order (higher
first, then as written); an *exclusive* rule that applies stops every rule after it. Multipliers are
worked out last, on the points earned per amount by the rules that applied on the same lines; when campaign
budgets or caps cut those points, :func:`within_limits` works the multipliers out again on what is granted.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from operator import add
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
from palier.units import NO_BREAK_SPACE, Rounding, Shares, divide, divider, split_proportionally


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
    # running spend and steps paid per spend_step rule, as stored: an absent one is left out, not 0
    counters: Mapping[str, int] = field(default_factory=dict)


ANONYMOUS = MemberContext()
AwardKind = Literal["points", "coupon", "cashback"]


@dataclass(slots=True)  # not frozen: an evaluation makes many, and frozen dataclasses are four times slower to build
class Award:
    """One rule's award on one event. Treat it as a value: build a changed copy with ``replace``."""

    rule_id: str
    version: int
    name: Text
    kind: AwardKind
    points: int
    line_points: tuple[int, ...] = ()  # the points on each of ``lines`` (they sum to ``points``)
    lines: tuple[int, ...] = ()  # the event's lines (their positions) the points fall on
    campaign_id: str | None = None
    detail: str = ""  # "×2", "+5 per item"…
    amount: int = 0  # cashback in minor units, or the spend a spend_step rule counted
    coupons: int = 0
    reward_id: str | None = None
    counter: str | None = None
    steps: int = 0  # spend_step: the steps of its spend rewarded once this award is granted
    bare: int = 0  # spend_step: steps it crossed beyond ``max_per_purchase``, counted as paid with no coupon
    to_next: int = 0  # spend_step: what is still to spend, in minor units, before its next reward
    by_amount: bool = False  # points per amount: what multipliers multiply
    factor: tuple[int, int] | None = None  # a multiplier's (numerator, denominator)

    def line(self, language: str = "en", money: Callable[[int], str] = str) -> str:
        """ "Double points weekend ×2: +46" (or the coupons / cashback it gives); ``money`` writes an amount
        in minor units in the program's currency ("€62.80")."""
        name = self.name.in_language(language)
        fr = language == "fr"
        detail = self.detail  # "+5/item", "×1.5", "2.5%"
        if fr:  # in French words and figures, as how-to-earn writes them: "+5/article", "×1,5", "2,5 %"
            detail = detail.replace("/item", "/article").replace(".", ",").replace("%", f"{NO_BREAK_SPACE}%")
        # French puts a space before the colon, as how-to-earn writes it
        head = (f"{name} {detail}" if detail else name) + (" :" if fr else ":")
        if self.kind == "coupon":
            to_next = money(self.to_next)
            if not self.coupons:
                progress = f"encore {to_next} avant le prochain bon" if fr else f"{to_next} to the next reward"
                return f"{head} {progress}"
            word = "bon" if fr else "reward"
            plural = "s" if self.coupons != 1 else ""
            then = f"encore {to_next} avant le suivant" if fr else f"{to_next} to the next"
            return f"{head} {self.coupons} {word}{plural} ({then})"
        if self.kind == "cashback":
            return f"{head} {money(self.amount)}"
        return f"{head} +{self.points}"


Check = Callable[[EventSnapshot, MemberContext, datetime, datetime], bool]  # event, member, local now, utc now


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with its campaign, dates, hours, first-purchase and attribute conditions as checks; channels,
    stores, actions, weekdays, tiers, segments and line filters are answered for all rules at once by the
    :class:`RuleIndex` of its event."""

    rule: Rule
    checks: tuple[Check, ...]
    filtered: bool  # only some lines count (skus, categories or brands)
    cart: bool  # has spend or quantity conditions
    multiplier: bool  # a multiplier: worked out after the other rules
    by_amount: bool  # points per amount (else fixed points, when ``simple``)
    per_item: bool  # points per item bought
    simple: bool  # points per amount or fixed points: on a single line, no split is needed
    exclusive: bool  # when it applies, no rule after it applies
    points: int  # of a points-per-amount, fixed or per-item effect (else 0)
    per_amount: int  # of a points-per-amount effect (else 1)
    detail: str  # of a per-item effect: "+5/item"

    def applies(self, event: EventSnapshot, member: MemberContext, local: datetime, now: datetime) -> bool:
        for check in self.checks:  # noqa: SIM110 - a plain loop is faster than all(generator) here
            if not check(event, member, local, now):
                return False
        return True

    def cart_holds(self, spend: int, quantity: int) -> bool:
        """The rule's spend and quantity conditions, given what the lines that count add up to."""
        c = self.rule.conditions
        if (c.min_spend is not None and spend < c.min_spend) or (c.max_spend is not None and spend > c.max_spend):
            return False
        return c.min_quantity is None or quantity >= c.min_quantity


def name_key(value: str | None) -> str | None:
    """A category or brand as line filters compare it: names people type, so "Pâtisserie", "PATISSERIE" and a
    "pâtisserie" whose accent came as a combining mark (files written on a Mac) are one name (accents, case and
    runs of spaces aside). SKUs and store ids are codes, compared as they are."""
    if value is None:
        return None
    bare = "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


class _Masks:
    """For one condition over rules numbered 0..n-1: the bit set of rules a value lets through.

    A rule without the condition lets every value through; a rule with it, only its listed values.
    """

    def __init__(
        self,
        rules: Sequence[CompiledRule],
        values_of: Callable[[Rule], Sequence[str] | None],
        key: Callable[[str], str | None] = str,
    ) -> None:
        self.free = 0  # rules without this condition
        self.by_value: dict[str | None, int] = {}
        for bit, compiled in enumerate(rules):
            values = values_of(compiled.rule)
            if values is None:
                self.free |= 1 << bit
                continue
            for value in map(key, values):
                self.by_value[value] = self.by_value.get(value, 0) | 1 << bit

    def allowed(self, value: str | None) -> int:
        return self.free | self.by_value.get(value, 0)

    def any_of(self, values: Iterable[str]) -> int:
        """The rules that let through at least one of ``values`` (a member in several segments)."""
        allowed = self.free
        for value in values:
            allowed |= self.by_value.get(value, 0)
        return allowed


class RuleIndex:
    """One event type's rules in the order they run, with bit masks so that an evaluation looks only at the
    rules whose channel, store, action, weekday, tier, segment and line filters can hold (rule ``i`` is bit
    ``i``).

    The filtered rules a line counts for depend only on its SKU, category and brand, so they are remembered
    per distinct line kind (as the rules' bits), up to :attr:`REMEMBERED` of them.
    """

    REMEMBERED = 100_000

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = tuple(rules)
        self.unfiltered = sum(1 << i for i, r in enumerate(rules) if not r.filtered)
        self.filtered_mask = ((1 << len(rules)) - 1) ^ self.unfiltered
        self._skus = _Masks(rules, lambda rule: rule.conditions.skus)
        self._categories = _Masks(rules, lambda rule: rule.conditions.categories, name_key)
        self._brands = _Masks(rules, lambda rule: rule.conditions.brands, name_key)
        self._channels = _Masks(rules, lambda rule: rule.conditions.channels)
        self._stores = _Masks(rules, lambda rule: rule.conditions.stores)
        self._actions = _Masks(rules, lambda rule: rule.conditions.actions)
        self._weekdays = _Masks(rules, lambda rule: rule.conditions.weekdays)
        self._tiers = _Masks(rules, lambda rule: rule.conditions.tiers)
        self._segments = _Masks(rules, lambda rule: rule.conditions.segments)
        self.remembered: dict[tuple[str, str | None, str | None], tuple[int, ...]] = {}  # line kind -> rule bits

    def event_mask(self, event: EventSnapshot, member: MemberContext, local: datetime) -> int:
        """The rules whose channel, store, action, weekday, tier and segment conditions hold."""
        return (
            self._channels.allowed(event.channel)
            & self._stores.allowed(event.store_id)
            & self._actions.allowed(event.action)
            & self._weekdays.allowed(WEEKDAYS[local.weekday()])
            & self._tiers.allowed(member.tier)
            & self._segments.any_of(member.segments)
        )

    def line_bits(self, line: LineSnapshot) -> tuple[int, ...]:
        """The filtered rules ``line`` counts for, one bit each (none when it earns nothing)."""
        if not line.earns:
            return ()
        key = (line.sku, line.category, line.brand)
        bits = self.remembered.get(key)
        if bits is None:
            mask = (
                self.filtered_mask
                & self._skus.allowed(line.sku)
                & self._categories.allowed(name_key(line.category))
                & self._brands.allowed(name_key(line.brand))
            )
            found = []
            while mask:  # one step per rule the line counts for
                low = mask & -mask
                found.append(low)
                mask ^= low
            bits = tuple(found)
            if len(self.remembered) >= self.REMEMBERED:
                self.remembered.clear()
            self.remembered[key] = bits
        return bits


@dataclass(frozen=True)
class CompiledRuleSet:
    version: int
    timezone: ZoneInfo
    rounding: Rounding
    document: RuleSetDocument
    by_event: Mapping[str, RuleIndex]
    actions: Mapping[str, Action]
    campaigns: Mapping[str, Campaign]
    needs_first_purchase: bool
    needs_attributes: bool
    counters: frozenset[str]
    # campaigns with a budget or a member cap that an exclusive rule belongs to: when one has nothing left to
    # give, its exclusive rule must not stop the rules after it (see ``evaluate``'s ``closed``)
    exclusive_limited: frozenset[str] = frozenset()

    def evaluate(
        self, event: EventSnapshot, member: MemberContext, now: datetime, closed: frozenset[str] = frozenset()
    ) -> list[Award]:
        """The awards this event earns at ``now`` (when it occurred; a preview may pick a future time).

        ``closed``: campaigns with nothing left to give this member (budget spent, cap reached): their rules do
        not apply, so an exclusive one stops nothing (the base rate pays once a launch's budget is spent)."""
        return _Evaluation(self, event, member, now, closed).run()


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
        by_event={on: RuleIndex(rules) for on, rules in by_event.items()},
        actions={a.id: a for a in document.actions},
        campaigns=campaigns,
        needs_first_purchase=any(r.conditions.first_purchase is not None for r in document.rules),
        needs_attributes=any(r.conditions.attributes for r in document.rules),
        exclusive_limited=frozenset(
            r.campaign
            for r in document.rules
            if r.exclusive
            and r.campaign in campaigns
            and (campaigns[r.campaign].budget is not None or campaigns[r.campaign].member_cap is not None)
        ),
        counters=frozenset(
            name(r.id) for r in document.rules if isinstance(r.effect, SpendStep) for name in (counter_name, steps_name)
        ),
    )


def counter_name(rule_id: str) -> str:
    """The member's running spend counted by a spend_step rule (returns lower it)."""
    return f"spend:{rule_id}"


def steps_name(rule_id: str) -> str:
    """The steps of a spend_step rule already rewarded to the member (returns do not lower it: spend returned
    must be spent again before the next step pays)."""
    return f"steps:{rule_id}"


def bare_steps_name(rule_id: str) -> str:
    """Of the steps rewarded (:func:`steps_name`), those that gave no coupon (beyond ``max_per_purchase``, the
    reward out of stock or withdrawn): a return takes these back before it cancels a coupon the spend kept."""
    return f"bare:{rule_id}"


def local_to_utc(value: datetime, tz: ZoneInfo) -> datetime:
    """A campaign bound: naive values are wall-clock time in the program's zone."""
    return (value.replace(tzinfo=tz) if value.tzinfo is None else value).astimezone(UTC)


def _compile(rule: Rule, campaign: Campaign | None, tz: ZoneInfo) -> CompiledRule:
    c, effect = rule.conditions, rule.effect
    checks: list[Check] = []
    if campaign is not None:
        starts, ends = local_to_utc(campaign.starts, tz), local_to_utc(campaign.until, tz)
        checks.append(lambda e, m, local, now: starts <= now < ends)
    if c.dates is not None:
        first, last = c.dates.start, c.dates.end
        checks.append(lambda e, m, local, now: first <= local.date() <= last)
    if c.hours is not None:
        window = c.hours
        checks.append(lambda e, m, local, now: window.holds(local.time()))  # wall-clock, no zone
    if c.first_purchase is not None:
        wanted = c.first_purchase
        checks.append(lambda e, m, local, now: m.first_purchase is wanted)
    if c.attributes:
        attributes = tuple(c.attributes.items())
        checks.append(lambda e, m, local, now: all(m.attributes.get(k) == v for k, v in attributes))
    return CompiledRule(
        rule=rule,
        checks=tuple(checks),
        filtered=_filters(rule),
        cart=c.min_spend is not None or c.max_spend is not None or c.min_quantity is not None,
        multiplier=isinstance(effect, Multiplier),
        by_amount=isinstance(effect, PointsPerAmount),
        per_item=isinstance(effect, PerItem),
        simple=isinstance(effect, PointsPerAmount | FixedPoints),
        exclusive=rule.exclusive,
        points=effect.points if isinstance(effect, PointsPerAmount | FixedPoints | PerItem) else 0,
        per_amount=effect.per_amount if isinstance(effect, PointsPerAmount) else 1,
        detail=f"+{effect.points}/item" if isinstance(effect, PerItem) else "",
    )


def _spread(points: int, weights: Sequence[int], fallback: Sequence[int]) -> list[int]:
    """Split ``points`` over lines by ``weights`` (or ``fallback`` when they are all zero), summing exactly."""
    if len(weights) <= 1:
        return [points] * len(weights)
    if sum(weights) > 0:
        return split_proportionally(points, weights)
    if sum(fallback) > 0:
        return split_proportionally(points, fallback)
    return split_proportionally(points, [1] * len(weights))


class _Evaluation:
    """One evaluation's working state: base points per line (for multipliers) and the awards so far."""

    __slots__ = (
        "awards", "base", "base_total", "bought_quantity", "closed", "divide", "earning", "earning_amounts",
        "earning_quantities", "earning_quantity", "earning_shares", "earning_spend", "earning_weights", "event",
        "local", "member", "now", "rules", "version",
    )  # fmt: skip

    def __init__(
        self,
        rules: CompiledRuleSet,
        event: EventSnapshot,
        member: MemberContext,
        now: datetime,
        closed: frozenset[str] = frozenset(),
    ) -> None:
        self.rules, self.event, self.member, self.version = rules, event, member, rules.version
        self.closed = closed
        self.divide = divider(rules.rounding)
        self.now = now.astimezone(UTC)
        self.local = now.astimezone(rules.timezone)
        lines = event.lines
        self.base = [0] * len(lines)  # points per amount earned by each line
        self.base_total = 0  # for events without lines: the action's own points
        self.awards: list[Award] = []
        earns = [line.earns for line in lines]
        if all(earns):
            self.earning = tuple(range(len(lines)))  # what rules without filters count
            self.earning_amounts = [line.amount for line in lines]
            self.earning_quantities = [line.quantity for line in lines]
        else:
            self.earning = tuple(i for i, line_earns in enumerate(earns) if line_earns)
            self.earning_amounts = [lines[i].amount for i in self.earning]
            self.earning_quantities = [lines[i].quantity for i in self.earning]
        self.earning_spend, self.earning_quantity = sum(self.earning_amounts), sum(self.earning_quantities)
        # items given free (a line discounted to nothing, a cart paid with points) were not bought: they count for
        # no minimum quantity and earn no per-item bonus
        amounts = self.earning_amounts
        self.bought_quantity = sum(q for q, paid in zip(self.earning_quantities, amounts, strict=True) if paid > 0)
        # how rules without filters split their points over the lines: by amount, else by quantity, else evenly
        if self.earning_spend > 0:
            self.earning_weights = self.earning_amounts
        elif self.earning_quantity > 0:
            self.earning_weights = self.earning_quantities
        else:
            self.earning_weights = [1] * len(self.earning)
        self.earning_shares: Shares | None = None  # the weights' running sums, once a rule splits over them

    def run(self) -> list[Award]:
        event = self.event
        action = self.rules.actions.get(event.action or "") if event.type == "action" else None
        if action is not None:
            self.base_total = action.points
            self._add(f"action:{action.id}", action.name, None, "points", action.points)
        index = self.rules.by_event.get(event.type)
        if index is None:
            return self.awards
        lines = event.lines
        counted = 0  # the filtered rules some line counts for
        lines_of: dict[int, list[int]] = {}  # rule bit -> the lines that count for that filtered rule
        remembered = index.remembered
        for i, line in enumerate(lines):
            if not line.earns:
                continue
            bits = remembered.get((line.sku, line.category, line.brand))
            if bits is None:
                bits = index.line_bits(line)
            for bit in bits:  # most lines count for no filtered rule, or one
                counted |= bit
                found = lines_of.get(bit)
                if found is None:
                    lines_of[bit] = [i]
                else:
                    found.append(i)
        earning = self.earning
        member, local, now = self.member, self.local, self.now
        candidates = (index.unfiltered | counted) & index.event_mask(event, member, local)
        multipliers: list[tuple[CompiledRule, Sequence[int]]] = []
        while candidates:
            bit = candidates & -candidates
            candidates ^= bit
            compiled = index.rules[bit.bit_length() - 1]
            if self.closed and compiled.rule.campaign in self.closed:
                continue
            if compiled.checks and not compiled.applies(event, member, local, now):
                continue
            matched: Sequence[int] = lines_of[bit] if compiled.filtered else earning
            if compiled.cart:
                if matched is earning:  # every line that earns: summed once for all such rules
                    spend, quantity = self.earning_spend, self.bought_quantity
                else:
                    spend = sum(lines[i].amount for i in matched)
                    quantity = sum(lines[i].quantity for i in matched if lines[i].amount > 0)
                if not compiled.cart_holds(spend, quantity):
                    continue
            if compiled.multiplier:
                multipliers.append((compiled, matched))
            elif compiled.simple and len(matched) == 1 and compiled.filtered:
                self._apply_to_line(compiled, matched[0])
            elif compiled.per_item:
                self._apply_per_item(compiled, matched)
            else:
                self._apply(compiled, matched)
            if compiled.exclusive:
                break
        for compiled, matched in multipliers:
            self._multiply(compiled.rule, matched)
        return self.awards

    def _add(
        self,
        rule_id: str,
        name: Text,
        campaign: str | None,
        kind: AwardKind,
        points: int,
        **extra: int | str | tuple[int, ...] | None,
    ) -> None:
        if points <= 0 and kind == "points":
            return
        self.awards.append(
            Award(
                rule_id=rule_id,
                version=self.version,
                name=name,
                kind=kind,
                points=points,
                campaign_id=campaign,
                **extra,  # type: ignore[arg-type]
            )
        )

    def _apply_per_item(self, compiled: CompiledRule, matched: Sequence[int]) -> None:
        each, lines = compiled.points, self.event.lines
        split = [each * lines[i].quantity if lines[i].amount > 0 else 0 for i in matched]  # bought, not given
        points = sum(split)
        if points > 0:
            rule = compiled.rule
            award = Award(rule.id, self.version, rule.name, "points", points, tuple(split), tuple(matched))
            award.campaign_id, award.detail = rule.campaign, compiled.detail
            self.awards.append(award)

    def _apply(self, compiled: CompiledRule, matched: Sequence[int]) -> None:
        rule, lines = compiled.rule, self.event.lines
        effect = rule.effect
        if matched is self.earning:
            eligible, spend = self.earning_amounts, self.earning_spend + self.event.extra_eligible
        else:
            eligible = [lines[i].amount for i in matched]
            spend = sum(eligible)
        if compiled.simple:
            points = compiled.points
            if compiled.by_amount:
                points = self.divide(spend * points, compiled.per_amount)
            if points <= 0:
                return
            if matched is self.earning and len(matched) > 1:  # the weights were chosen once for all such rules
                shares = self.earning_shares
                if shares is None:
                    shares = self.earning_shares = Shares(self.earning_weights)
                split: Sequence[int] = shares.split(points)
            else:
                split = _spread(points, eligible, [lines[i].quantity for i in matched])
            if compiled.by_amount:
                base = self.base
                if len(matched) == len(base):  # every line: ``matched`` is 0..n-1
                    self.base = list(map(add, base, split))
                else:
                    for i, p in zip(matched, split, strict=True):
                        base[i] += p
            award = Award(rule.id, self.version, rule.name, "points", points, tuple(split), tuple(matched))
            award.campaign_id, award.by_amount = rule.campaign, compiled.by_amount
            self.awards.append(award)
        elif isinstance(effect, SpendStep):
            counter, counters = counter_name(rule.id), self.member.counters
            before, recorded = counters.get(counter, 0), counters.get(steps_name(rule.id))
            # the steps paid say what was paid (after a merge, 90 € + 90 € paid none of the 180 €); counters kept
            # before they were recorded hold the running spend alone, whose steps crossed were all paid
            rewarded = before // effect.step if recorded is None else recorded
            reached = (before + spend) // effect.step
            # at most max_per_purchase coupons: a €1M order does not mint ten thousand vouchers
            crossed = max(reached - rewarded, 0)
            coupons = min(crossed, effect.max_per_purchase)
            paid = max(reached, rewarded)  # steps rewarded once this award is granted
            if spend > 0:
                self._add(
                    rule.id,
                    rule.name,
                    rule.campaign,
                    "coupon",
                    0,
                    amount=spend,
                    coupons=coupons,
                    reward_id=effect.reward_id,
                    counter=counter,
                    steps=paid,
                    bare=crossed - coupons,
                    to_next=(paid + 1) * effect.step - before - spend,
                )
        elif isinstance(effect, CashbackPercent):
            numerator, denominator = effect.percent.as_integer_ratio()
            cash = divide(spend * numerator, 100 * denominator, Rounding.FLOOR)
            if cash > 0:
                detail = f"{effect.percent}%"
                self._add(rule.id, rule.name, rule.campaign, "cashback", 0, amount=cash, detail=detail)

    def _apply_to_line(self, compiled: CompiledRule, i: int) -> None:
        """``_apply`` when one line counts (a promotion on a SKU, category or brand that is in the cart once):
        the same points, without splitting them over lines."""
        rule, points = compiled.rule, compiled.points
        if compiled.by_amount:
            points = self.divide(self.event.lines[i].amount * points, compiled.per_amount)
            if points <= 0:
                return
            self.base[i] += points
        award = Award(rule.id, self.version, rule.name, "points", points, (points,), (i,), rule.campaign)
        award.by_amount = compiled.by_amount
        self.awards.append(award)

    def _multiply(self, rule: Rule, matched: Sequence[int]) -> None:
        assert isinstance(rule.effect, Multiplier)
        factor = rule.effect.factor.as_integer_ratio()
        detail = f"×{rule.effect.factor.normalize():f}"
        if not self.event.lines:  # an action: multiplies the action's own points
            extra = _extra(self.base_total, factor, self.rules.rounding)
            self._add(rule.id, rule.name, rule.campaign, "points", extra, detail=detail, factor=factor)
            return
        extra, split = _multiplied([self.base[i] for i in matched], factor, self.rules.rounding)
        lines = tuple(matched)
        self._add(
            rule.id,
            rule.name,
            rule.campaign,
            "points",
            extra,
            line_points=split,
            lines=lines,
            detail=detail,
            factor=factor,
        )


def _extra(points: int, factor: tuple[int, int], rounding: Rounding) -> int:
    """The points a multiplier adds to ``points`` (×2 adds as many again), with the program's rounding."""
    numerator, denominator = factor
    return divide(points * (numerator - denominator), denominator, rounding)


def _multiplied(weights: Sequence[int], factor: tuple[int, int], rounding: Rounding) -> tuple[int, tuple[int, ...]]:
    """A multiplier's extra points on its lines, given the points per amount of each (``weights``), and their
    split over those lines."""
    total = sum(weights)
    extra = _extra(total, factor, rounding)
    split = _spread(extra, weights, [0] * len(weights)) if total else [0] * len(weights)
    return extra, tuple(split)


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
        for i, p in zip(award.lines, award.line_points, strict=True):
            per_line[i] += p
    rest = total - sum(per_line)  # points with no line (none on purchases today): spread by what lines earned
    if rest and lines:
        for i, p in enumerate(_spread(rest, per_line, [1] * lines)):
            per_line[i] += p
    return total, per_line


def campaign_points_on_lines(awards: Sequence[Award], lines: int) -> list[dict[str, int]]:
    """Per line, the points each campaign rule's award put on it (rule id -> points): what an item returned
    gives back to the campaign's budget and cap, exactly what its line got of them."""
    found: list[dict[str, int]] = [{} for _ in range(lines)]
    for award in awards:
        if award.kind != "points" or award.campaign_id is None:
            continue
        for i, p in zip(award.lines, award.line_points, strict=True):
            if p and i < lines:
                found[i][award.rule_id] = found[i].get(award.rule_id, 0) + p
    return found


def within_limits(awards: Sequence[Award], left: Mapping[str, int], rounding: Rounding) -> list[Award]:
    """Awards cut to what each campaign may still give (``left``: campaign id -> points; absent: unlimited).

    Awards are served in order; a cut award's line points are re-split so they still sum exactly. A
    multiplier (they come after the rules they multiply) multiplies the points per amount actually granted:
    once a budget or cap has cut some, it is worked out again on what is left, with ``rounding``, and then
    cut by its own campaign's limits like any award.
    """
    remaining = dict(left)
    out = []
    granted_base: dict[int, int] = {}  # line -> points per amount granted on it
    base_cut = False  # some points per amount were cut: multipliers must be worked out again
    for award in awards:
        if award.kind != "points":
            out.append(award)
            continue
        if award.factor is not None and base_cut and award.lines:
            award = _remultiplied(award, granted_base, rounding)
            if award.points <= 0:
                continue
        cid = award.campaign_id
        points = award.points
        if cid is not None and cid in remaining:
            points = min(points, max(remaining[cid], 0))
            remaining[cid] -= points
        if points < award.points:
            base_cut = base_cut or award.by_amount
            if points <= 0:
                continue
            split = tuple(_spread(points, award.line_points, [1] * len(award.line_points)))
            award = replace(award, points=points, line_points=split)
        if award.by_amount:
            for i, p in zip(award.lines, award.line_points, strict=True):
                granted_base[i] = granted_base.get(i, 0) + p
        out.append(award)
    return out


def _remultiplied(award: Award, granted_base: Mapping[int, int], rounding: Rounding) -> Award:
    """A multiplier's award on the points per amount granted on its lines."""
    assert award.factor is not None
    extra, split = _multiplied([granted_base.get(i, 0) for i in award.lines], award.factor, rounding)
    return replace(award, points=extra, line_points=split)


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
