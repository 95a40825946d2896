"""The demo program's earning rules (Maison Fournil): what a café-bakery would really run.

Applied as version 1 at the end of the demo's history, so the year of purchases before it earned the base
rate (the rules in force when they happened), and everything from now on earns by these rules.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from palier.rules.document import parse_text
from palier.rules.models import RuleSetDocument

DEMO_RULES = """
actions:
  - id: newsletter
    name: {en: Newsletter sign-up, fr: Inscription à la newsletter}
    points: 20
    limit: {count: 1, per: ever}
  - id: review
    name: {en: Product review, fr: Avis sur un produit}
    points: 10
    limit: {count: 2, per: month}
campaigns:
  - id: weekend-gourmand
    name: {en: Gourmet weekend, fr: Week-end gourmand}
    starts: {starts}
    ends: {ends}
    budget: 20000
    member_cap: 200
rules:
  - id: base
    name: {en: 1 point per euro, fr: 1 point par euro}
    event: purchase
    priority: 100
    effect: {type: points_per_amount, points: 1, per_amount: 100}
  - id: weekday-mornings
    name: {en: Double points on weekday mornings, fr: Points doublés en semaine le matin}
    event: purchase
    conditions:
      weekdays: [mon, tue, wed, thu, fri]
      hours: {start: "07:00", end: "10:00"}
    effect: {type: multiplier, factor: 2}
  - id: weekend-double
    name: {en: Double points weekend, fr: Points doublés ce week-end}
    event: purchase
    campaign: weekend-gourmand
    effect: {type: multiplier, factor: 2}
  - id: pastry-bonus
    name: {en: Pastry bonus, fr: Bonus viennoiseries}
    event: purchase
    conditions: {categories: [viennoiserie]}
    effect: {type: per_item, points: 2}
  - id: ten-for-hundred
    name: {en: €10 for every €100 spent, fr: 10 € offerts tous les 100 € d'achats}
    event: purchase
    effect: {type: spend_step, step: 10000, reward_id: "{reward_id}"}
  - id: free-drink
    name: {en: A free drink for joining, fr: Une boisson offerte à l'inscription}
    event: enrolment
    effect: {type: fixed, points: 30}
  - id: birthday-gift
    name: {en: Birthday gift, fr: Cadeau d'anniversaire}
    event: birthday
    effect: {type: fixed, points: 100}
  - id: anniversary-gift
    name: {en: Membership anniversary, fr: Anniversaire d'adhésion}
    event: anniversary
    effect: {type: fixed, points: 50}
"""


def demo_rules_text(now: datetime, *, reward_id: str) -> str:
    """The rules, with the gourmet weekend on the coming Saturday and Sunday (Paris time) and ``reward_id``
    (the catalog's €10 voucher) as the reward of every €100 spent."""
    today = now.astimezone(ZoneInfo("Europe/Paris")).date()
    saturday = today + timedelta(days=(5 - today.weekday()) % 7)
    starts = f"{saturday.isoformat()}T00:00:00"
    ends = f"{(saturday + timedelta(days=2)).isoformat()}T00:00:00"
    return DEMO_RULES.replace("{starts}", starts).replace("{ends}", ends).replace("{reward_id}", reward_id)


def demo_rules(now: datetime, *, reward_id: str) -> RuleSetDocument:
    return parse_text(demo_rules_text(now, reward_id=reward_id))


# The reward a member gets for every €100 spent (granted, not bought: its points cost is for the catalog).
TEN_EUROS = {
    "kind": "amount_off",
    "cost_points": 1000,
    "amount": 1000,
    "title": {"fr": "Bon de 10 €", "en": "€10 voucher"},
    "description": {
        "fr": "Offert pour chaque tranche de 100 € d'achats, ou contre 1 000 points.",
        "en": "Given for every €100 you spend, or yours for 1,000 points.",
    },
}
