"""The reward form of the console beyond title, cost, stock and window: description, image, channels, limit per
member, minimum order, coupon life and who may redeem it, read into the API's ``RewardUpdate`` fields.

A field is sent only when the page had it and its value differs from what the page showed: a form saved with
only its title changed leaves every other field (and an audience naming a since-renamed tier) as it was."""

from __future__ import annotations

import re
from typing import Any, get_args

from sqlalchemy import Connection

from palier.members.models import Channel
from palier.memberships import service as memberships
from palier.programs.models import Program
from palier.segments import service as segments
from palier.tiers import service as tiers
from palier.web import i18n
from palier.web.console.forms import parse_money, whole

CHANNELS: tuple[str, ...] = get_args(Channel)
PERIODS = ("day", "week", "month", "year", "ever")
TEXTS = ("description_fr", "description_en", "image_url", "min_order", "limit_per_member_count",
         "limit_per_member_period", "valid_days")  # fmt: skip
LISTS = ("channels", "eligibility_tiers", "eligibility_segments", "eligibility_plans")
AUDIENCE = ("tiers", "segments", "plans")


def _amount(units: int | None, program: Program, language: str) -> str:
    """Minor units as the field shows them: "25,00" on a French page, "25.00" on an English one."""
    if units is None:
        return ""
    exponent = program.currency_exponent
    if exponent == 0:
        return str(units)
    mark = "," if language == "fr" else "."
    return f"{units // 10**exponent}{mark}{units % 10**exponent:0{exponent}d}"


def shown(reward: Any, program: Program, language: str) -> dict[str, Any]:
    """The reward's fields as the form shows them: text fields as strings, checkbox groups as lists."""
    description, limit, audience = reward.description, reward.limit_per_member, reward.eligibility
    return {
        "description_fr": description.fr if description else "",
        "description_en": description.en if description else "",
        "image_url": reward.image_url or "",
        "min_order": _amount(reward.min_order, program, language),
        "limit_per_member_count": str(limit.count) if limit else "",
        "limit_per_member_period": limit.period if limit else "",
        "valid_days": str(reward.valid_days),
        "channels": list(reward.channels or []),
    } | {f"eligibility_{group}": list(getattr(audience, group)) if audience else [] for group in AUDIENCE}


def typed(form: Any) -> dict[str, Any]:
    """What a refused form held, to show it again."""
    listed = form.getlist("listed")
    found: dict[str, Any] = {name: str(form.get(name, "")) for name in TEXTS if name in form}
    return found | {name: [str(v) for v in form.getlist(name)] for name in LISTS if name in listed}


def sent(form: Any, reward: Any, program: Program, language: str) -> dict[str, Any]:
    """The ``RewardUpdate`` fields the form changes (``parse_money`` refuses a malformed minimum order)."""
    before = shown(reward, program, language)
    now = before | typed(form)
    now = {name: value.strip() if isinstance(value, str) else value for name, value in now.items()}
    changed = {
        name for name in before if (set(now[name]) != set(before[name]) if name in LISTS else now[name] != before[name])
    }
    out: dict[str, Any] = {}
    if changed & {"description_fr", "description_en"}:
        words = {"fr": now["description_fr"], "en": now["description_en"]}
        out["description"] = words if any(words.values()) else None
    if "image_url" in changed:
        out["image_url"] = now["image_url"] or None
    if "min_order" in changed:
        amount = now["min_order"]
        out["min_order"] = parse_money(amount, program.currency_exponent, field="min_order") if amount else None
    if changed & {"limit_per_member_count", "limit_per_member_period"}:
        count, period = now["limit_per_member_count"], now["limit_per_member_period"]
        limit = {"count": whole(count)} if count else {}  # a half left empty is refused as required, at its box
        out["limit_per_member"] = limit | ({"period": period} if period else {}) if count or period else None
    if "valid_days" in changed:
        out["valid_days"] = whole(now["valid_days"])
    if "channels" in changed:  # none ticked: every channel, as the API's null
        out["channels"] = [c for c in CHANNELS if c in now["channels"]] + [
            c for c in now["channels"] if c not in CHANNELS
        ] or None
    if changed & {f"eligibility_{group}" for group in AUDIENCE}:
        audience = {group: now[f"eligibility_{group}"] for group in AUDIENCE}
        out["eligibility"] = audience if any(audience.values()) else None
    return out


def field_of(path: str) -> str:
    """A refusal's field as the form names it: ``eligibility.tiers[1]`` → ``eligibility_tiers``."""
    return re.sub(r"\[\d+\]", "", path).replace(".", "_")


def choices(
    conn: Connection, program: Program, language: str, kept: dict[str, Any]
) -> dict[str, list[tuple[str, str]]]:
    """The program's own tiers, segments and VIP plans as ``(code, name)`` to tick; a code the reward (or the
    refused form) names that the program no longer has is offered too, by its code, so it can be unticked."""
    policy = tiers.get_policy(conn, program_id=program.id)
    offered = {
        "tiers": [(t.code, i18n.localized(t.name, language)) for t in (policy.tiers if policy else [])],
        "segments": [(s.code, i18n.localized(s.name, language))
                     for s in segments.list_segments(conn=conn, program_id=program.id)],
        "plans": [(p.code, i18n.localized(p.name, language))
                  for p in memberships.list_plans(conn=conn, program_id=program.id)],
    }  # fmt: skip
    for group, codes in offered.items():
        known = {code for code, _ in codes}
        for code in kept.get(f"eligibility_{group}", []):
            if code not in known:
                codes.append((code, code))
                known.add(code)
    return offered
