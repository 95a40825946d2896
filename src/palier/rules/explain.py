""" "How to earn", written from the active rules in French and English, for the how-it-works page."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

from palier.rules.document import MEMBER_ATTRIBUTES
from palier.rules.engine import CompiledRuleSet, local_to_utc
from palier.rules.models import (
    WEEKDAYS,
    CashbackPercent,
    Conditions,
    FixedPoints,
    Multiplier,
    PerItem,
    PointsPerAmount,
    Rule,
    SpendStep,
)
from palier.text import points_word
from palier.timeutil import MONTHS, long_date
from palier.units import NO_BREAK_SPACE, money

_DAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
}
_EVENTS = {
    "en": {
        "enrolment": "when you join",
        "birthday": "on your birthday",
        "anniversary": "on your membership anniversary",
    },
    "fr": {
        "enrolment": "à votre inscription",
        "birthday": "pour votre anniversaire",
        "anniversary": "à chaque anniversaire d'adhésion",
    },
}
_PER = {
    "en": {"ever": "", "day": " a day", "week": " a week", "month": " a month"},
    "fr": {"ever": "", "day": " par jour", "week": " par semaine", "month": " par mois"},
}


def _how_often(count: int, per: str, lang: str) -> str:
    """An action's limit as a number of times: "once a week", "up to 3 times" ("une fois par semaine",
    "jusqu'à 3 fois"), never "(once, 3×)"."""
    if count == 1:
        times = "une fois" if lang == "fr" else "once"
    else:
        times = f"jusqu'à {count} fois" if lang == "fr" else f"up to {count} times"
    return f"{times}{_PER[lang][per]}"


def how_to_earn(
    rules: CompiledRuleSet,
    *,
    now: datetime,
    language: str,
    currency: str,
    exponent: int,
    points_name: str,
    tier_names: Mapping[str, str] | None = None,
    segment_names: Mapping[str, str] | None = None,
    spent: frozenset[str] = frozenset(),
) -> list[str]:
    """One sentence per active rule and action type, in ``language`` (fr or en), with every condition a
    member must meet; tiers and segments by their names in that language (codes -> names). A rule of a campaign
    whose budget is ``spent`` is over for everyone, as one whose campaign has ended: it is left out."""
    lang = "fr" if language == "fr" else "en"
    lines = []
    actions = {action.id: action.name.in_language(lang) for action in rules.document.actions}
    for action in rules.document.actions:
        limit = f" ({_how_often(action.limit.count, action.limit.per, lang)})" if action.limit else ""
        colon = " : " if lang == "fr" else ": "  # French puts a space before the colon
        lines.append(f"{action.name.in_language(lang)}{colon}{counted(action.points, points_name, lang)}{limit}")
    told = [rule for rule in rules.document.rules if not _over(rule, rules, now) and rule.campaign not in spent]
    for rule in told:
        campaign = rules.campaigns.get(rule.campaign or "")
        sentence = _effect(rule, lang, currency, exponent, points_name)
        if isinstance(rule.effect, Multiplier) and rule.event == "purchase":
            # a multiplier multiplies the points per amount spent: a bonus per item or per purchase stays as it is
            kept = [r.name.in_language(lang) for r in told if r.event == "purchase" and _not_multiplied(r)]
            if kept:
                sentence += f" (sauf : {', '.join(kept)})" if lang == "fr" else f" (except: {', '.join(kept)})"
        sentence += _when(rule.conditions, lang, currency, exponent, tier_names or {}, segment_names or {}, actions)
        if campaign is not None:
            # a bound given with an offset, on the program's calendar: members live the days in its zone
            local = [b.astimezone(rules.timezone) if b.tzinfo else b for b in (campaign.starts, campaign.until)]
            starts, ends = _moment(local[0], lang), _moment(local[1], lang, end=True)
            sentence += f", du {starts} au {ends}" if lang == "fr" else f", from {starts} to {ends}"
            if campaign.member_cap is not None:  # what one member can get of it: the engine stops there
                most = counted(campaign.member_cap, points_name, lang)
                sentence += f", jusqu'à {most} par membre" if lang == "fr" else f", up to {most} per member"
        stopped = _stopped_by(rule, told, lang) if rule.exclusive else ""
        if stopped:  # an exclusive rule that applies pays instead of these: they do not add up
            sentence += f" (non cumulable avec : {stopped})" if lang == "fr" else f" (not combined with: {stopped})"
        lines.append(f"{rule.name.in_language(lang)} — {sentence}")
    return lines


def _not_multiplied(rule: Rule) -> bool:
    """Points a multiplier leaves as they are: a bonus per item bought or per purchase."""
    return isinstance(rule.effect, PerItem | FixedPoints)


def _over(rule: Rule, rules: CompiledRuleSet, now: datetime) -> bool:
    """A rule whose campaign has ended, or whose last day has passed: not worth telling."""
    campaign = rules.campaigns.get(rule.campaign or "")
    if campaign is not None and local_to_utc(campaign.until, rules.timezone) <= now:
        return True
    return rule.conditions.dates is not None and rule.conditions.dates.end < now.astimezone(rules.timezone).date()


def _stopped_by(exclusive: Rule, told: list[Rule], lang: str) -> str:
    """The names of the rules told that an ``exclusive`` rule stops when it applies: those of its event that run
    after it (lower priority, or the same priority written after it)."""
    order = {id(rule): (-rule.priority, i) for i, rule in enumerate(told)}
    after = [r for r in told if r.event == exclusive.event and order[id(r)] > order[id(exclusive)]]
    return ", ".join(r.name.in_language(lang) for r in after)


def _moment(when: datetime, lang: str, *, end: bool = False) -> str:
    """A campaign's bound as wall-clock time in the program's zone: "5 décembre 2026 à 18:00",
    "5 December 2026 at 18:00"; the time left out at midnight, where an ``end`` is the day before, the last
    day the campaign runs ("to 6 December" for an end at 7 December 00:00: readers take "to" as included)."""
    if (when.hour, when.minute) == (0, 0):
        return _day(when.date() - timedelta(days=1) if end else when.date(), lang)
    return f"{_day(when.date(), lang)} {'à' if lang == 'fr' else 'at'} {when:%H:%M}"


def _day(when: date, lang: str) -> str:
    return long_date(when, lang)


def counted(n: int, points_name: str, lang: str) -> str:
    """ "1 point", "2 points" ("0 point" in French): a plural points name loses its final s when singular."""
    return f"{n} {points_word(n, points_name, lang)}"


def _effect(rule: Rule, lang: str, currency: str, exponent: int, points_name: str) -> str:
    e = rule.effect
    fr = lang == "fr"
    if isinstance(e, PointsPerAmount):
        amount = money(e.per_amount, currency, exponent, lang)
        per = f"par tranche de {amount}" if fr else f"per {amount}"
        return f"{counted(e.points, points_name, lang)} {per}"
    if isinstance(e, FixedPoints):
        text = counted(e.points, points_name, lang)
        if rule.event in _EVENTS[lang]:
            return f"{text} {_EVENTS[lang][rule.event]}"
        return text + (
            " par achat" if fr and rule.event == "purchase" else " per purchase" if rule.event == "purchase" else ""
        )
    if isinstance(e, Multiplier):
        factor = f"{e.factor.normalize():f}"
        factor = factor.replace(".", ",") if fr else factor
        return f"gains multipliés par {factor}" if fr else f"earnings multiplied by {factor}"
    if isinstance(e, PerItem):
        return f"{counted(e.points, points_name, lang)} {'par article' if fr else 'per item'}"
    if isinstance(e, SpendStep):
        amount = money(e.step, currency, exponent, lang)
        return f"un bon d'achat tous les {amount} dépensés" if fr else f"a reward for every {amount} spent"
    assert isinstance(e, CashbackPercent)
    percent = f"{e.percent.normalize():f}"
    return f"{percent.replace('.', ',')}{NO_BREAK_SPACE}% remboursés" if fr else f"{percent}% back"


# Who a rule's ``attributes`` let in, as a member reads it: a bonus for those who joined in the app is not for all.
_JOINED = {
    "en": {"web": "on the web", "store": "in store", "phone": "by phone", "app": "in the app",
           "partner": "through a partner"},
    "fr": {"web": "sur le site", "store": "en magasin", "phone": "par téléphone", "app": "dans l'appli",
           "partner": "via un partenaire"},
}  # fmt: skip
_SPEAKING = {
    "en": {"fr": "who speak French", "en": "who speak English"},
    "fr": {"fr": "francophones", "en": "anglophones"},
}


def _attribute(name: str, value: str, lang: str) -> str:
    fr = lang == "fr"
    if name == "enrolment_channel":
        return (
            f"pour les membres inscrits {_JOINED[lang][value]}"
            if fr
            else f"for members who joined {_JOINED[lang][value]}"
        )
    if name == "birthday_month":
        month = MONTHS[lang][int(value) - 1]
        return f"pour les membres nés en {month}" if fr else f"for members born in {month}"
    return f"pour les membres {_SPEAKING[lang][value]}" if fr else f"for members {_SPEAKING[lang][value]}"


def _when(
    c: Conditions,
    lang: str,
    currency: str,
    exponent: int,
    tiers: Mapping[str, str],
    segments: Mapping[str, str],
    actions: Mapping[str, str],
) -> str:
    fr = lang == "fr"
    parts = []
    what = [*(c.categories or []), *(c.brands or []), *(c.skus or [])]
    if what:
        parts.append(("sur " if fr else "on ") + ", ".join(what))
    if c.channels:  # where the member buys, in words: "en magasin ou par téléphone", not the codes
        where = [_JOINED[lang][channel] for channel in c.channels]
        parts.append(f" {'ou' if fr else 'or'} ".join([", ".join(where[:-1]), where[-1]] if len(where) > 1 else where))
    if c.stores:
        parts.append(("en magasin : " if fr else "at ") + ", ".join(c.stores))
    if c.min_spend:
        amount = money(c.min_spend, currency, exponent, lang)
        parts.append(f"dès {amount} d'achat" if fr else f"from {amount} spent")
    if c.max_spend is not None:
        amount = money(c.max_spend, currency, exponent, lang)
        parts.append(f"jusqu'à {amount} d'achat" if fr else f"up to {amount} spent")
    if c.min_quantity:
        items = ("article" if fr else "item") + ("s" if c.min_quantity > 1 else "")
        parts.append(f"dès {c.min_quantity} {items}" if fr else f"from {c.min_quantity} {items}")
    if c.weekdays:
        days = [_DAYS[lang][WEEKDAYS.index(d)] for d in c.weekdays]
        parts.append(("le " if fr else "on ") + ", ".join(days))
    if c.hours:
        closes = "24:00" if c.hours.end == time(0) else f"{c.hours.end:%H:%M}"
        parts.append(f"{'de' if fr else 'from'} {c.hours.start:%H:%M} {'à' if fr else 'to'} {closes}")
    if c.dates:
        start, end = _day(c.dates.start, lang), _day(c.dates.end, lang)  # both included
        parts.append(f"{'du' if fr else 'from'} {start} {'au' if fr else 'to'} {end}")
    if c.first_purchase:
        parts.append("pour votre premier achat" if fr else "on your first purchase")
    elif c.first_purchase is False:
        parts.append("à partir de votre deuxième achat" if fr else "from your second purchase")
    if c.tiers:
        parts.append(("au niveau " if fr else "at tier ") + ", ".join(tiers.get(t, t) for t in c.tiers))
    if c.segments:
        in_segments = ", ".join(segments.get(x, x) for x in c.segments)
        parts.append(f"pour les membres : {in_segments}" if fr else f"for members in: {in_segments}")
    # in one order whatever the storage kept (PostgreSQL's JSON sorts keys): language, channel, birthday month
    attributes = sorted((c.attributes or {}).items(), key=lambda item: list(MEMBER_ATTRIBUTES).index(item[0]))
    parts += [_attribute(name, value, lang) for name, value in attributes]
    if c.actions:
        parts.append(("pour : " if fr else "for: ") + ", ".join(actions.get(a, a) for a in c.actions))
    return (" " + ", ".join(parts)) if parts else ""
