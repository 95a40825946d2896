"""The public "how it works" page of a program, written from its live configuration.

Earning comes from the rules in force (``rules.service.how_to_earn_lines``, as ``GET /v1/how-to-earn``),
spending from the rewards on offer and the pay-with-points setting, status from the tiers and VIP plans,
and the fine print from the return window and the points' lifetime. Nothing is written by hand: change
the configuration and the page follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from palier.clock import Clock
from palier.db import Database
from palier.errors import NotFound
from palier.memberships import service as memberships
from palier.programs.models import Program
from palier.programs.service import get_program
from palier.rewards import service as rewards
from palier.rules import service as rules
from palier.text import points_word
from palier.tiers import service as tiers
from palier.tiers.models import TierPolicy
from palier.web import i18n, present
from palier.web.render import PageError, render

from . import page_router

router = page_router()


@dataclass(frozen=True)
class HowItWorks:
    program: Program
    rules_version: int
    earn: list[str]
    rewards: list[dict[str, Any]]
    tiers: list[dict[str, Any]]
    tier_rule: str | None
    plans: list[dict[str, Any]]
    fine_print: list[str]


def load_program(db: Database, program_id: str) -> Program:
    """The program named in a page's URL, or a 404 page."""
    if not program_id.startswith("prg_") or len(program_id) > 40:
        raise PageError(404, "error.program_not_found")
    with db.read() as conn:
        try:
            return get_program(conn=conn, program_id=program_id)
        except NotFound:
            raise PageError(404, "error.program_not_found") from None


def how_it_works(*, db: Database, clock: Clock, program: Program, language: str) -> HowItWorks:
    now = clock.now()
    with db.read() as conn:
        version, earn = rules.how_to_earn_lines(conn=conn, program=program, now=now, language=language)
        offered = rewards.offered_rewards(conn=conn, program_id=program.id, now=now)
        policy = tiers.get_policy(conn, program_id=program.id)
        plans = [p for p in memberships.list_plans(conn=conn, program_id=program.id) if p.status == "active"]
    t = i18n.translator(language)
    if program.welcome_points:
        earn.insert(
            0,
            t(
                "howto.welcome",
                points=present.number(program.welcome_points, language),
                name=points_word(program.welcome_points, program.points_name_in(language), language),
            ),
        )
    return HowItWorks(
        program=program,
        rules_version=version,
        earn=earn,
        rewards=[_reward(r, program, language) for r in offered],
        tiers=_tiers(policy, program, language) if policy else [],
        tier_rule=_tier_rule(policy, language) if policy else None,
        plans=[
            {
                "name": i18n.localized(p.name, language),
                "price": present.money(p.price, program, language),
                "period": t(f"plan.{p.period}"),
                "trial_days": p.trial_days,
                "multiplier": _multiplier(p.benefits.multiplier_percent, language),
                "perks": [i18n.localized(perk, language) for perk in p.benefits.perks],
            }
            for p in plans
        ],
        fine_print=_fine_print(program, language),
    )


def _reward(reward: Any, program: Program, language: str) -> dict[str, Any]:
    t = i18n.translator(language)
    conditions = []
    if reward.min_order:
        conditions.append(t("reward.min_order", amount=present.money(reward.min_order, program, language)))
    e = reward.eligibility
    if e is not None and (e.tiers or e.segments or e.plans):
        conditions.append(t("reward.reserved"))
    if where := present.only_on(reward.channels, language):  # the portal's catalog lists only "web" ones
        conditions.append(where)
    if reward.ends_at is not None:
        conditions.append(t("reward.until", date=present.last_day(reward.ends_at, program, language)))
    return {
        "id": reward.id,
        "title": i18n.localized(reward.title, language),
        "description": i18n.localized(reward.description, language) if reward.description else "",
        "gives": present.reward_gives(reward, program, language),
        "cost": present.number(reward.cost_points, language),
        "cost_points": reward.cost_points,
        "conditions": conditions,
        "kind": reward.kind,
    }


def _multiplier(percent: int, language: str) -> str | None:
    """150 → '1.5' (en) or '1,5' (fr); None when there is no bonus."""
    if percent <= 100:
        return None
    factor = f"{percent / 100:g}"
    return factor.replace(".", ",") if language == "fr" else factor


def _threshold(policy: TierPolicy, value: int, program: Program, language: str) -> str:
    t = i18n.translator(language)
    if value == 0:
        return t("tier.metric.start")
    if policy.metric == "spend":
        return t("tier.metric.spend", amount=present.money(value, program, language))
    if policy.metric == "orders":
        return t(present.orders_key(value), count=present.number(value, language))
    return t(
        "tier.metric.points",
        count=present.number(value, language),
        name=points_word(value, program.points_name_in(language), language),
    )


def _tiers(policy: TierPolicy, program: Program, language: str) -> list[dict[str, Any]]:
    return [
        {
            "code": tier.code,
            "name": i18n.localized(tier.name, language),
            "threshold": _threshold(policy, tier.threshold, program, language),
            "multiplier": _multiplier(tier.multiplier_percent, language),
            "perks": [i18n.localized(perk, language) for perk in tier.perks],
        }
        for tier in policy.tiers
    ]


def _tier_rule(policy: TierPolicy, language: str) -> str:
    rolling, grace = policy.rolling_months or 0, policy.grace_months or 0  # "the last month", "1 more month"
    window = i18n.translate_count(language, f"tier.window.{policy.window}", rolling, months=rolling)
    # reviewed at the end of a year, or every night for a rolling window (a lifetime one has no period_end)
    downgrade = f"period_end.{policy.window}" if policy.downgrade == "period_end" else policy.downgrade
    keep = i18n.translate_count(language, f"tier.downgrade.{downgrade}", grace, months=grace)
    return f"{window} {keep}"


def _fine_print(program: Program, language: str) -> list[str]:
    t = i18n.translator(language)
    lines = []
    if program.return_window_days:
        days = program.return_window_days
        lines.append(
            i18n.translate_count(language, "howto.pending", days, days=days, name=program.points_name_in(language))
        )
    else:
        lines.append(t("howto.pending_none", name=program.points_name_in(language)))
    if months := program.points_lifetime_months:
        lines.append(
            i18n.translate_count(language, "howto.expiry", months, months=months, name=program.points_name_in(language))
        )
    else:
        lines.append(t("howto.no_expiry", name=program.points_name_in(language)))
    if program.pay_with_points_max_percent:
        lines.append(
            i18n.translate_count(  # "1 point vaut 0,01 €" (the verb agrees), "payer en points" all the same
                language,
                "howto.pay_with_points",
                program.redeem_points,
                points=present.number(program.redeem_points, language),
                name=points_word(program.redeem_points, program.points_name_in(language), language),
                names=program.points_name_in(language),
                amount=present.money(program.redeem_amount, program, language),
                percent=program.pay_with_points_max_percent,
            )
        )
    lines.append(t("howto.returns", name=program.points_name_in(language)))
    return lines


@router.get("/how-it-works/{program_id}", response_class=HTMLResponse)
def page(program_id: str, request: Request) -> HTMLResponse:
    db: Database = request.app.state.db
    program = load_program(db, program_id)
    language = i18n.request_language(request)
    info = how_it_works(db=db, clock=request.app.state.clock, program=program, language=language)
    return render(request, "howto.html", info=info, program=program)
