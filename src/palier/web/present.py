"""How numbers, money, dates and rewards read on a page, in French or English."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import get_args
from zoneinfo import ZoneInfo

import phonenumbers

from palier import timeutil
from palier.clock import utc
from palier.members.models import Channel
from palier.programs.models import Program
from palier.rewards import codes
from palier.rewards.models import Reward
from palier.timeutil import long_date
from palier.web.i18n import translator


def number(value: int, language: str) -> str:
    """1234567 → '1 234 567' (fr, narrow no-break spaces) or '1,234,567' (en); -500 → '−500', the minus sign
    every page writes (not a hyphen)."""
    text = f"{value:,}".replace("-", "\u2212")
    return text.replace(",", "\u202f") if language == "fr" else text


def phone(number: str) -> str:
    """A stored E.164 number as people read it: ``+33 6 12 34 56 78``."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(number), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return number


def orders_key(count: int) -> str:
    """The message for a number of orders: "1 commande", "2 commandes"."""
    return "tier.metric.orders_one" if count == 1 else "tier.metric.orders"


def after_colon(sentence: str) -> str:
    """A sentence as it continues after a colon: "Un ajustement…" → "un ajustement…" (a word in capitals, an
    acronym or a code, keeps them)."""
    if len(sentence) > 1 and sentence[0].isupper() and sentence[1].islower():
        return sentence[0].lower() + sentence[1:]
    return sentence


def display_code(code: str) -> str:
    """'ABCDEFGHJKM' → 'ABCD-EFGH-JKM': easier to read aloud and type (dashes are ignored when typed)."""
    return codes.display(code)


def money(amount: int, program: Program, language: str) -> str:
    return program.money(amount, language)


def day(when: datetime, program: Program, language: str) -> str:
    """'31 mars 2026' / '31 March 2026', in the program's time zone."""
    return _written(utc(when).astimezone(ZoneInfo(program.timezone)), language)


def last_day(until: datetime, program: Program, language: str) -> str:
    """The last day something lasts, for "until …", in the program's time zone (``timeutil.last_day``): a
    reward ending 25 December 00:00 is "until 24 December"."""
    return timeutil.last_day(utc(until).astimezone(ZoneInfo(program.timezone)), language)


def _written(local: datetime, language: str) -> str:
    return long_date(local, language)


def moment(when: datetime, program: Program, language: str) -> str:
    """'31 mars 2026, 14:05' in the program's time zone."""
    local = utc(when).astimezone(ZoneInfo(program.timezone))
    return f"{day(when, program, language)}, {local:%H:%M}"


def reward_gives(reward: Reward, program: Program, language: str) -> str:
    """What a reward gives: '5,00 € de remise', '10 % de remise (au plus 3,00 €)', 'Livraison offerte'…"""
    t = translator(language)
    if reward.kind == "amount_off" and reward.amount is not None:
        return t("reward.amount_off", amount=money(reward.amount, program, language))
    if reward.kind == "percent_off":
        text = t("reward.percent_off", percent=reward.percent)
        if reward.max_discount:
            text += " " + t("reward.at_most", amount=money(reward.max_discount, program, language))
        return text
    if reward.kind == "store_credit" and reward.amount is not None:
        return t("reward.store_credit", amount=money(reward.amount, program, language))
    if reward.kind == "free_shipping":
        return t("reward.free_shipping")
    if reward.kind == "free_product":
        return t("reward.free_product")
    return t("reward.gift")


def coupon_gives(terms: Reward, program: Program, language: str) -> str:
    """What a coupon gives, with its minimum order: '5,00 € de remise, dès 20,00 € d'achat'. ``terms``: its reward
    with the terms the coupon was issued with (rewards.service.coupon_terms)."""
    gives = reward_gives(terms, program, language)
    if terms.min_order:
        gives += ", " + translator(language)("reward.min_order", amount=money(terms.min_order, program, language))
    return gives


CHANNELS = get_args(Channel)  # web, store, phone…: the order a list of them is written in


def only_on(channels: Sequence[str] | None, language: str) -> str | None:
    """Where a reward or coupon is limited to, in words: 'uniquement en magasin ou par téléphone', 'online or in
    the app only'; None when it is good everywhere."""
    if not channels:
        return None
    t = translator(language)
    where = [t(f"history.where.{c}") for c in CHANNELS if c in channels]
    listed = f" {t('reward.or')} ".join([", ".join(where[:-1]), where[-1]] if len(where) > 1 else where)
    return t("reward.only", where=listed)
