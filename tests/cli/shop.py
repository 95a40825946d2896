"""A small shop for import tests: members on every identity, a CSV of orders, and a snapshot of what
the engine stored, with ids replaced by stable names so two programs can be compared row for row."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from palier.activity.tables import events, purchases
from palier.clock import FrozenClock
from palier.db import Database
from palier.ledger.tables import accounts, ledger_transactions, lots, postings
from palier.members.models import Member
from palier.programs.models import Program
from tests.services import factories as f

COLUMNS = [
    "order_id", "member_id", "member_kind", "member_value", "channel", "store_id", "store_name",
    "occurred_at", "currency", "sku", "name", "category", "brand", "quantity", "unit_price",
    "discount", "line_kind", "shipping", "tax",
]  # fmt: skip
PRODUCTS = [
    ("CRO", "Croissant", "viennoiserie", 130),
    ("PAC", "Pain au chocolat", "viennoiserie", 150),
    ("CAF", "Café crème", "boisson", 320),
    ("TAR", "Tarte aux pommes", "pâtisserie", 1800),
    ("GRA", "Café en grains 250 g", "café", 990),
]


@dataclass
class Shop:
    program: Program
    members: list[Member]
    cards: list[str]  # payment cards of members 0 and 3 (linked), then one nobody has linked
    merged: Member  # a duplicate account merged into member 1
    names: dict[str, str] = field(default_factory=dict)  # member id -> "m0", "m1"…

    def name(self, member_id: str | None) -> str | None:
        return None if member_id is None else self.names.get(member_id, member_id)


def open_shop(db: Database, clock: FrozenClock, *, cards: list[str] | None = None, **settings: Any) -> Shop:
    """Six members found by every kind of identity; member 5 owes 10 points (a return after spending)."""
    program = f.make_program(db, clock, **settings)
    cards = cards or [f.luhn_card() for _ in range(3)]
    ids = [
        [("card", "LC-0000"), ("payment_card", cards[0])],
        [("card", "LC-0001")],
        [("card", "LC-0002")],
        [("payment_card", cards[1])],
        [("card", "LC-0004")],
        [("card", "LC-0005")],
    ]
    profiles: list[dict[str, Any]] = [
        {"email": "m0@example.com", "phone": "+33 6 11 22 33 00"},
        {"email": "m1@example.com"},
        {"phone": "06 11 22 33 02"},
        {"email": "m3@example.com"},
        {},
        {},
    ]
    people = [f.enrol(db, clock, program, identities=i, **p) for i, p in zip(ids, profiles, strict=True)]
    duplicate = f.enrol(db, clock, program, identities=[("card", "LC-DUP1")])
    f.merge(db, clock, program, duplicate, people[1])
    debtor = people[5]
    earlier = clock.now() - timedelta(days=20)
    order = f.purchase(db, clock, program, debtor, amount=1000, occurred_at=earlier, order_id="PREP-DEBT")
    f.adjust(db, clock, program, debtor, -10, reason="Free coffee at the till")
    f.return_(db, clock, program, order.external_id, amount=1000)
    shop = Shop(program, people, cards, duplicate)
    shop.names = {m.id: f"m{i}" for i, m in enumerate(people)} | {duplicate.id: "dup"}
    return shop


def order_rows(shop: Shop, now: datetime, *, orders: int = 50, seed: int = 7) -> list[dict[str, Any]]:
    """CSV rows (one per line) of ``orders`` orders that must all be accepted, over the last 30 days."""
    rng = random.Random(seed)
    m = shop.members
    refs: list[dict[str, str]] = [
        {"member_id": m[0].id},
        {"member_kind": "card", "member_value": "LC-0001"},
        {"member_kind": "email", "member_value": "M1@Example.com"},
        {"member_kind": "phone", "member_value": "+33611223302"},
        {"member_kind": "payment_card", "member_value": f.spaced(shop.cards[0])},
        {"member_kind": "payment_card", "member_value": shop.cards[1]},
        {"member_kind": "payment_card", "member_value": shop.cards[2]},  # nobody's: unclaimed
        {"member_id": m[5].id},  # in debt: older purchases repay it, pending ones do not
        {"member_kind": "card", "member_value": "LC-DUP1"},  # the merged account's card, now member 1's
        {"member_id": m[3].id},
    ]
    rows: list[dict[str, Any]] = []
    for n in range(orders):
        channel = rng.choice(["store", "store", "web", "app", "phone"])
        head = {
            "order_id": f"ORD-{n:04d}",
            **refs[n % len(refs)],
            "channel": channel,
            "store_id": "lyon" if channel == "store" else "",
            "store_name": "Lyon Croix-Rousse" if channel == "store" and n % 3 else "",
            "occurred_at": (now - timedelta(days=rng.uniform(0.1, 30))).isoformat(),
            "currency": "EUR",
            "shipping": 490 if channel == "web" else "",
        }
        for sku, name, category, price in rng.sample(PRODUCTS, rng.randint(1, 3)):
            qty = rng.randint(1, 4)
            rows.append({**head, "sku": sku, "name": name, "category": category, "quantity": qty, "unit_price": price})
            head = {k: head[k] for k in ("order_id", "member_id", "member_kind", "member_value") if k in head}
    rows[-1]["discount"] = 50
    rows.append({**rows[-1], "sku": "CADEAU", "name": "Carte cadeau", "line_kind": "gift_card", "unit_price": 2500})
    rows.append(csv_row("ORD-SMALL", {"member_id": m[2].id}, now, unit_price=40))  # earns 0 points
    return rows


def lapsed_row(shop: Shop, now: datetime) -> dict[str, Any]:
    """An order sent 400 days late, by the member in debt: its points expire as they are recorded."""
    return csv_row("ORD-LAPSED", {"member_id": shop.members[5].id}, now - timedelta(days=400), unit_price=2500)


def problem_rows(shop: Shop, now: datetime) -> list[dict[str, Any]]:
    """Rows the import must refuse, one per reason, each with the code it must report."""
    return [
        csv_row("BAD-FUTURE", {"member_id": shop.members[0].id}, now + timedelta(days=2), code="occurred_in_future"),
        csv_row("BAD-CARD", {"member_kind": "card", "member_value": "LC-9999"}, now, code="member_not_found"),
        csv_row("BAD-MERGED", {"member_id": shop.merged.id}, now, code="member_merged"),
        csv_row("BAD-CURRENCY", {"member_id": shop.members[0].id}, now, currency="USD", code="currency_mismatch"),
        csv_row("BAD-PRICE", {"member_id": shop.members[0].id}, now, unit_price="1.30", code="invalid_type"),
        csv_row("BAD-EMAIL", {"member_kind": "email", "member_value": "not-an-email"}, now, code="invalid_email"),
    ]


def csv_row(order_id: str, ref: dict[str, str], when: datetime, **values: Any) -> dict[str, Any]:
    row = {"order_id": order_id, **ref, "channel": "store", "occurred_at": when.isoformat(), "currency": "EUR"}
    return row | {"sku": "CRO", "quantity": 1, "unit_price": 130} | values


def for_twin(rows: list[dict[str, Any]], shop: Shop, twin: Shop) -> list[dict[str, Any]]:
    """The same rows for a twin shop: member ids replaced by those of the twin's members."""
    mapping = {m.id: t.id for m, t in zip(shop.members, twin.members, strict=True)} | {shop.merged.id: twin.merged.id}
    return [r | {"member_id": mapping[r["member_id"]]} if r.get("member_id") in mapping else r for r in rows]


def to_csv(rows: list[dict[str, Any]], path: Path | None = None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    if path is not None:
        path.write_text(out.getvalue(), encoding="utf-8")
    return out.getvalue()


def snapshot(db: Database, shop: Shop) -> dict[str, Any]:
    """Everything the purchases wrote, ids replaced by member names, keyed by order id."""
    pid = shop.program.id
    with db.read() as conn:
        evts = conn.execute(select(events).where(events.c.program_id == pid, events.c.type == "purchase")).mappings()
        buys = conn.execute(select(purchases).where(purchases.c.program_id == pid)).mappings()
        txns = conn.execute(select(ledger_transactions).where(ledger_transactions.c.program_id == pid)).mappings()
        posts = conn.execute(select(postings).where(postings.c.program_id == pid)).mappings().all()
        all_lots = conn.execute(select(lots).where(lots.c.program_id == pid)).mappings().all()
        balances = conn.execute(
            select(accounts.c.member_id, accounts.c.kind, accounts.c.balance).where(accounts.c.program_id == pid)
        ).all()
        event_order = {}
        snap: dict[str, Any] = {"events": {}, "purchases": {}, "transactions": [], "lots": [], "balances": {}}
        for e in evts:
            event_order[e["id"]] = e["external_id"]
            result = dict(e["result"])
            result["member_id"] = shop.name(result["member_id"])
            result["has_transaction"] = result.pop("transaction_id") is not None
            result.pop("event_id")
            snap["events"][e["external_id"]] = {
                **{k: e[k] for k in ("status", "claim_kind", "claim_value", "channel", "store_id")},
                **{k: str(e[k])[:19] for k in ("occurred_at", "received_at")},
                "member": shop.name(e["member_id"]),
                "body": _named(e["body"], shop),
                "result": result,
            }
        for p in buys:
            keep = ("label", "total", "eligible", "points", "refunded", "points_returned", "lines")
            snap["purchases"][p["order_id"]] = {k: p[k] for k in keep} | {
                "member": shop.name(p["member_id"]),
                "has_lot": p["lot_id"] is not None,
            }
        by_txn: dict[str, list[tuple[str, int]]] = {}
        for p in posts:
            by_txn.setdefault(p["transaction_id"], []).append((_account(p, shop), p["amount"]))
        for t in txns:
            snap["transactions"].append(
                (
                    event_order.get(t["event_id"], t["reason_code"]),
                    t["kind"],
                    t["reason"],
                    t["reason_code"],
                    repr(_without_ids(t["details"])),
                    str(t["effective_at"])[:19],
                    str(t["created_at"])[:19],
                    shop.name(t["member_id"]),
                    sorted(by_txn.get(t["id"], [])),
                )
            )
        snap["transactions"].sort()
        for lot in all_lots:
            keep = ("source", "label", "amount", "remaining", "state")
            dates = ("earned_at", "matures_at", "expires_at")
            snap["lots"].append(
                tuple(lot[k] for k in keep)
                + tuple(str(lot[k])[:19] for k in dates)
                + (shop.name(lot["member_id"]), event_order.get(lot["event_id"]))
            )
        snap["lots"].sort(key=repr)
        for member_id, kind, amount in balances:
            key = f"{shop.name(member_id) or 'program'}:{kind}"
            snap["balances"][key] = snap["balances"].get(key, 0) + amount
    return snap


def _without_ids(details: dict[str, Any] | None) -> dict[str, Any] | None:
    """A transaction's details, the lot it names (a new id in each shop) left out."""
    return None if details is None else {k: v for k, v in details.items() if k != "lot_id"}


def _account(posting: Any, shop: Shop) -> str:
    """``m3:pending`` for a member's account, ``program:issued`` for any slot of a program account."""
    if posting["member_id"]:
        return f"{shop.name(posting['member_id'])}:{posting['account_id'].split(':')[-1]}"
    return f"program:{posting['account_id'].split(':')[1]}"


def _named(body: dict[str, Any], shop: Shop) -> dict[str, Any]:
    member = dict(body["member"])
    if member.get("member_id"):
        member["member_id"] = shop.name(member["member_id"])
    return {**body, "member": member}
