"""A history line in the reader's language: a title from the catalogue and a detail built from the facts the
line's transaction names — the order and where it was placed, the reward, the rule that gave the points.

The ledger keeps each line's reason in English (for the API and the logs) with a ``reason_code`` and
``details``; a page reads those facts back in a handful of batched queries, whatever the page size. Words a
person typed (an adjustment's or a correction's reason) are shown as typed; a line whose facts can no longer
be found keeps its stored reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from palier.activity.tables import events
from palier.ledger.tables import ledger_transactions, lots
from palier.members.models import HistoryLine
from palier.programs.models import Program
from palier.rewards.tables import coupons, rewards
from palier.rules.service import rules_at
from palier.web import i18n

ORDER_CODES = frozenset({"purchase", "purchase_claimed", "return", "paid_with_points", "paid_with_credit"})
COUPON_CODES = frozenset({"coupon_used", "coupon_cancelled", "coupon_expired"})
RULE_CODES = frozenset({"action", "birthday", "anniversary", "enrolment"})
TYPED_CODES = frozenset({"adjustment", "reversal"})  # the reason is a person's own words
SAID_BY_TITLE = frozenset({"merge", "debt_repaid"})  # the title says it all


@dataclass(frozen=True)
class Described:
    title: str
    detail: str


def describe(conn: Connection, program: Program, lines: Sequence[HistoryLine], language: str) -> list[Described]:
    """A title and a detail for each of ``lines``, in ``language``."""
    facts = _Facts.load(conn, program, lines)
    catalog = i18n.catalogs()[i18n.pick(language) or i18n.DEFAULT_LANGUAGE]
    t = i18n.translator(language)
    described = []
    for line in lines:
        code = _title_code(line.reason_code) + _lapsed(facts.details.get(line.id, {}))
        title = catalog.get(f"history.{code}") or catalog.get(f"history.{_title_code(line.reason_code)}")
        title = title or catalog.get(f"history.{line.kind}")
        if title is None:  # a kind of line this page has no words for: its stored reason, whole
            described.append(Described(line.reason, ""))
            continue
        detail = _detail(line, facts, t, language)
        described.append(Described(title, line.reason if detail is None else detail))
    return described


def _lapsed(details: dict[str, Any]) -> str:
    """Points that came back after their lots expired (a coupon cancelled, a payment given back): they expired
    instead, all of them (".lapsed") or some (".partly")."""
    if not details.get("expired"):
        return ""
    return ".partly" if details.get("restored") else ".lapsed"


def _title_code(code: str) -> str:
    return "payment_back" if code.startswith("payment_") else code


def _detail(line: HistoryLine, facts: _Facts, t: Callable[..., str], language: str) -> str | None:
    """The detail in words; None when the facts are missing (the stored reason is shown instead)."""
    code, details = line.reason_code, facts.details.get(line.id, {})
    if code in TYPED_CODES:
        return line.reason
    if code in SAID_BY_TITLE:
        return ""
    if code == "welcome":
        return facts.program.name
    if code in ("matured", "expired"):
        lot = facts.lots.get(str(details.get("lot_id")))
        if lot is None:
            return None
        source, event_id = lot
        event = facts.events.get(event_id or "")
        if event is not None and event["type"] == "purchase":
            return _order(t, str(event["body"].get("order_id")))
        return t(f"history.from.{source}") if f"history.from.{source}" in i18n.catalogs()["en"] else None
    if code == "purchase" or code == "purchase_claimed":
        event = facts.events.get(line.event_id or "")
        if event is None or event["type"] != "purchase":
            return _order(t, details["order_id"]) if "order_id" in details else None
        told = f"{_order(t, str(event['body'].get('order_id')))} {_where(t, event)}"
        return " · ".join([told, *facts.campaign_names(line, language)])
    if code == "return":
        event = facts.events.get(line.event_id or "")
        order = details.get("order_id")
        if order is None:
            return None
        items = sum(int(item.get("quantity", 0)) for item in (event or {}).get("body", {}).get("lines") or [])
        if not items:
            return _order(t, str(order))
        return i18n.translate_count(language, "history.returned_items", items, count=items, order=order)
    if code == "reward_redeemed":
        return facts.reward_title(details.get("reward_id"), language)
    if code in COUPON_CODES:
        title = facts.coupon_title(details.get("coupon_id"), language)
        if title is None:
            return None
        order = details.get("order_id")
        return f"{title} · {_order(t, str(order))}" if order else title
    if code in ORDER_CODES or code.startswith("payment_"):
        return _order(t, str(details["order_id"])) if "order_id" in details else None
    if code in RULE_CODES:
        return facts.rule_name(line, language)
    return None


def _order(t: Callable[..., str], order_id: str) -> str:
    return t("history.order", order=order_id)


def _where(t: Callable[..., str], event: dict[str, Any]) -> str:
    channel, body = event["channel"], event["body"]
    store = body.get("store_name") or body.get("store_id")
    if channel == "store" and store:
        return t("history.where.at", store=store)
    return t(f"history.where.{channel}")


@dataclass
class _Facts:
    program: Program
    conn: Connection
    details: dict[str, dict[str, Any]]
    lots: dict[str, tuple[str, str | None]]  # lot id -> (source, event id)
    events: dict[str, dict[str, Any]]
    titles: dict[str, Any]  # reward id -> its {fr, en} title
    coupon_rewards: dict[str, str]  # coupon id -> reward id

    @classmethod
    def load(cls, conn: Connection, program: Program, lines: Sequence[HistoryLine]) -> _Facts:
        ids = [line.id for line in lines]
        details = {
            txn_id: found or {}
            for txn_id, found in conn.execute(
                select(ledger_transactions.c.id, ledger_transactions.c.details).where(ledger_transactions.c.id.in_(ids))
            )
        }
        lot_ids = _values(details, "lot_id")
        lot_rows = {
            row.id: (row.source, row.event_id)
            for row in conn.execute(select(lots.c.id, lots.c.source, lots.c.event_id).where(lots.c.id.in_(lot_ids)))
        }
        event_ids = {line.event_id for line in lines if line.event_id} | {e for _, e in lot_rows.values() if e}
        event_rows = {
            row.id: dict(row._mapping)
            for row in conn.execute(
                select(events.c.id, events.c.type, events.c.channel, events.c.body, events.c.result).where(
                    events.c.program_id == program.id, events.c.id.in_(event_ids)
                )
            )
        }
        coupon_rewards = {
            row.id: row.reward_id
            for row in conn.execute(
                select(coupons.c.id, coupons.c.reward_id).where(coupons.c.id.in_(_values(details, "coupon_id")))
            )
        }
        reward_ids = _values(details, "reward_id") | set(coupon_rewards.values())
        titles = {
            row.id: row.title
            for row in conn.execute(
                select(rewards.c.id, rewards.c.title).where(
                    rewards.c.program_id == program.id, rewards.c.id.in_(reward_ids)
                )
            )
        }
        return cls(program, conn, details, lot_rows, event_rows, titles, coupon_rewards)

    def reward_title(self, reward_id: object, language: str) -> str | None:
        title = self.titles.get(str(reward_id))
        return None if title is None else i18n.localized(title, language)

    def coupon_title(self, coupon_id: object, language: str) -> str | None:
        return self.reward_title(self.coupon_rewards.get(str(coupon_id)), language)

    def _awards(self, line: HistoryLine) -> list[dict[str, Any]]:
        event = self.events.get(line.event_id or "")
        return list((event or {}).get("result", {}).get("awards") or [])

    def rule_name(self, line: HistoryLine, language: str) -> str | None:
        """The name of the rule (or action) that gave a gift or bonus, in the rules of its time ("Cadeau
        d'anniversaire + Bonus Or" when several did), then the campaigns that added to it ("Avis produit ·
        Week-end gourmand"); None when a rule can no longer be found."""
        awards = self._awards(line)
        rules = rules_at(conn=self.conn, program=self.program, when=line.occurred_at)
        if not awards or rules is None:
            return None
        names = {r.id: r.name.in_language(language) for r in rules.document.rules}
        names |= {f"action:{a.id}": a.name.in_language(language) for a in rules.actions.values()}
        ids = [str(award["rule_id"]) for award in awards]
        if any(rule_id not in names for rule_id in ids):
            return None
        if ids[0].startswith("action:"):  # what adds to an action multiplies it: the campaign says why
            ids = ids[:1]
        told = " + ".join(names[rule_id] for rule_id in ids)
        return " · ".join([told, *(c for c in self.campaign_names(line, language) if c not in told)])

    def campaign_names(self, line: HistoryLine, language: str) -> list[str]:
        """The campaigns whose rules gave some of the line's points, by name, in the rules of its time."""
        awards = self._awards(line)
        rules = rules_at(conn=self.conn, program=self.program, when=line.occurred_at) if awards else None
        if rules is None:
            return []
        by_rule = {r.id: r.campaign for r in rules.document.rules if r.campaign}
        names: list[str] = []
        for award in awards:
            campaign = rules.campaigns.get(by_rule.get(str(award.get("rule_id")), "") or "")
            if campaign is not None and award.get("points") and campaign.name.in_language(language) not in names:
                names.append(campaign.name.in_language(language))
        return names


def _values(details: dict[str, dict[str, Any]], key: str) -> set[str]:
    return {str(d[key]) for d in details.values() if d.get(key) is not None}
