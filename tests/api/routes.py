"""The API's routes as the tests see them: who may call each one, and a valid request for each.

``POLICY`` pins the least scope each route needs. A route the app has but ``POLICY`` lacks fails
``test_every_route_has_a_declared_scope``: a new route must say who may call it before it ships.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.routing import APIRoute

from palier.api.app import create_app
from palier.config import Settings
from palier.db import Database
from palier.notify import outbox
from tests.api.helpers import purchase_body, return_body, reward_body, unique

Route = tuple[str, str]  # (method, path template)

# Least scope a key needs (admin may do everything). "operator" and "public" take no program key.
POLICY: dict[Route, str] = {
    ("POST", "/v1/programs"): "operator",
    ("GET", "/"): "public",
    ("GET", "/health"): "public",
    ("GET", "/v1/program"): "read",
    ("PATCH", "/v1/program"): "admin",
    ("GET", "/v1/audit"): "admin",
    ("GET", "/v1/keys"): "admin",
    ("POST", "/v1/keys"): "admin",
    ("DELETE", "/v1/keys/{key_id}"): "admin",
    ("POST", "/v1/members"): "pos",
    ("POST", "/v1/members/lookup"): "read",
    ("POST", "/v1/members/merge"): "admin",
    ("GET", "/v1/members/{member_id}"): "read",
    ("PATCH", "/v1/members/{member_id}"): "pos",
    ("POST", "/v1/members/{member_id}/identities"): "pos",
    ("DELETE", "/v1/members/{member_id}/identities/{identity_id}"): "admin",
    ("GET", "/v1/members/{member_id}/balance"): "read",
    ("GET", "/v1/members/{member_id}/history"): "read",
    ("POST", "/v1/members/{member_id}/portal-link"): "pos",
    ("POST", "/v1/members/{member_id}/adjustments"): "admin",
    ("POST", "/v1/members/{member_id}/transactions/{transaction_id}/reverse"): "admin",
    ("POST", "/v1/members/{member_id}/erase"): "admin",
    ("GET", "/v1/members/{member_id}/export"): "admin",
    ("POST", "/v1/events/purchases"): "pos",
    ("POST", "/v1/events/returns"): "pos",
    ("POST", "/v1/program/rules"): "admin",
    ("GET", "/v1/program/rules"): "admin",
    ("GET", "/v1/program/rules/versions"): "admin",
    ("POST", "/v1/preview"): "read",
    ("GET", "/v1/how-to-earn"): "read",
    ("POST", "/v1/members/{member_id}/actions"): "pos",
    ("PUT", "/v1/tiers"): "admin",
    ("GET", "/v1/tiers"): "read",
    ("GET", "/v1/members/{member_id}/tier"): "read",
    ("POST", "/v1/members/{member_id}/tier"): "admin",
    ("POST", "/v1/plans"): "admin",
    ("GET", "/v1/plans"): "read",
    ("PATCH", "/v1/plans/{code}"): "admin",
    ("POST", "/v1/memberships/payments"): "pos",
    ("POST", "/v1/memberships/payments/{payment_id}/refund"): "pos",
    ("POST", "/v1/members/{member_id}/memberships"): "pos",
    ("GET", "/v1/members/{member_id}/memberships"): "read",
    ("POST", "/v1/members/{member_id}/memberships/{membership_id}/cancel"): "pos",
    ("POST", "/v1/invitations"): "admin",
    ("POST", "/v1/segments"): "admin",
    ("GET", "/v1/segments"): "read",
    ("POST", "/v1/segments/{code}/refresh"): "admin",
    ("PUT", "/v1/segments/{code}"): "admin",
    ("GET", "/v1/members/{member_id}/segments"): "read",
    ("POST", "/v1/rewards"): "admin",
    ("GET", "/v1/rewards"): "read",
    ("GET", "/v1/rewards/{reward_id}"): "read",
    ("PATCH", "/v1/rewards/{reward_id}"): "admin",
    ("GET", "/v1/members/{member_id}/rewards"): "read",
    ("POST", "/v1/members/{member_id}/redemptions"): "pos",
    ("GET", "/v1/members/{member_id}/coupons"): "read",
    ("GET", "/v1/coupons/{code}"): "read",
    ("POST", "/v1/coupons/{code}/validate"): "pos",
    ("POST", "/v1/coupons/{code}/use"): "pos",
    ("POST", "/v1/coupons/{code}/cancel"): "pos",
    ("POST", "/v1/members/{member_id}/payments"): "pos",
    ("POST", "/v1/members/{member_id}/payments/{payment_id}/cancel"): "pos",
    ("GET", "/v1/members/{member_id}/wallet"): "read",
    ("GET", "/v1/outbox"): "admin",  # sign-in codes are in it
    ("POST", "/v1/outbox/ack"): "admin",
    ("GET", "/v1/webhook"): "admin",  # its signing secret is in it
    ("PUT", "/v1/webhook"): "admin",
    ("DELETE", "/v1/webhook"): "admin",
    ("POST", "/v1/webhook/test"): "admin",
}
RANK = {"read": 0, "pos": 1, "admin": 2}


def _is_page(route: object) -> bool:
    """A web page (palier.web): cookie sessions and CSRF, not API keys; tested under tests/web."""
    endpoint = getattr(getattr(route, "original_route", route), "endpoint", None)
    return str(getattr(endpoint, "__module__", "")).startswith("palier.web")


def app_routes(app: FastAPI | None = None, *, pages: bool = False) -> list[Route]:
    """Every (method, path) the app serves and documents (HEAD/OPTIONS aside), web pages aside (or only them)."""
    app = app or create_app(Settings(database_url="sqlite:///never-opened.db", card_hash_key=b"x"))
    # FastAPI ≥ 0.130 keeps included routers as branches; iter_route_contexts flattens them.
    flatten = getattr(fastapi.routing, "iter_route_contexts", list)
    found = {
        (method, str(route.path))
        for route in flatten(app.routes)
        if isinstance(getattr(route, "original_route", route), APIRoute) and _is_page(route) == pages
        for method in route.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    return sorted(found, key=lambda r: (r[1], r[0]))


ROUTES = app_routes()
KEYED = [r for r in ROUTES if POLICY.get(r) in RANK]
BEYOND_READ = [r for r in KEYED if RANK[POLICY[r]] >= RANK["pos"]]
ADMIN_ONLY = [r for r in KEYED if POLICY[r] == "admin"]
MEMBER_ROUTES = [r for r in ROUTES if "{member_id}" in r[1]]


@dataclass
class World:
    """A program with a member who has an identity, a purchase and a manual credit, and keys of each scope."""

    program: Any  # ApiProgram
    db: Database
    keys: dict[str, str]
    member: dict[str, Any]
    other_member: dict[str, Any]
    order_id: str
    adjustment_transaction_id: str
    spare_key_id: str
    reward_id: str
    coupon_to_use: str
    coupon_to_cancel: str
    payment_id: str
    membership_id: str
    fee_payment_id: str  # the membership's fee, as the merchant's checkout named it
    erasable_id: str  # a member only the erasure route touches

    @property
    def member_id(self) -> str:
        return str(self.member["id"])

    @property
    def identity_id(self) -> str:
        return str(self.member["identities"][0]["id"])


# The world's program has rules with a newsletter action, so that the actions route has something to pay.
WORLD_RULES: dict[str, Any] = {
    "actions": [{"id": "newsletter", "name": {"en": "Newsletter sign-up"}, "points": 20}],
    "rules": [
        {
            "id": "base",
            "name": {"en": "1 point per euro"},
            "event": "purchase",
            "effect": {"type": "points_per_amount", "points": 1, "per_amount": 100},
        }
    ],
}

# What the routes' tests save as the rules: a change to the world's (the very rules in force make no version).
CHANGED_RULES: dict[str, Any] = {
    **WORLD_RULES,
    "actions": [{"id": "newsletter", "name": {"en": "Newsletter sign-up"}, "points": 25}],
}


def make_world(program: Any, db: Database) -> World:
    applied = program.call("POST", "/v1/program/rules", json=WORLD_RULES)
    assert applied.status_code == 201, applied.text
    keys = {scope: program.make_key(scope, name=f"{scope} key") for scope in ("read", "pos")}
    keys["admin"] = program.admin_key
    spare = program.make_key("read", name="spare")
    member = program.enrol(first_name="Alice", email=f"{unique('alice')}@example.com")
    other = program.enrol(first_name="Bob", email=f"{unique('bob')}@example.com")
    order = program.purchase(member["id"])
    program.adjust(member["id"], 100, reason="Points to spend")  # older: rewards and payments take these first
    adjustment = program.adjust(member["id"], 50)
    reward = program.call("POST", "/v1/rewards", json=reward_body(cost_points=10))
    assert reward.status_code == 201, reward.text
    codes = []
    for _ in range(2):
        redeemed = program.call(
            "POST", f"/v1/members/{member['id']}/redemptions", json={"reward_id": reward.json()["id"]}
        )
        assert redeemed.status_code == 201, redeemed.text
        codes.append(redeemed.json()["coupon"]["code"])
    paid = program.call(
        "POST",
        f"/v1/members/{member['id']}/payments",
        json={"kind": "points", "order_id": unique("paid"), "order_total": 1000, "points": 10},
    )
    assert paid.status_code == 201, paid.text
    assert program.call("PUT", "/v1/tiers", json=WORLD_TIERS).status_code == 200
    for plan in (WORLD_PLAN, WORLD_PLAN | {"code": "club-trial", "trial_days": 30}):
        made = program.call("POST", "/v1/plans", json=plan)
        assert made.status_code == 201, made.text
    joined = program.call(
        "POST",
        "/v1/memberships/payments",
        json={"payment_id": unique("fee"), "member_id": member["id"], "plan": "club", "amount": 499,
              "paid_at": "2026-03-01T00:00:00Z"},
    )  # fmt: skip
    assert joined.status_code == 200, joined.text
    # a fee to refund, of a member no other route pays for: never renewed under it
    fee = {"payment_id": unique("fee"), "member_id": program.enrol(first_name="Cleo")["id"], "plan": "club",
           "amount": 499, "paid_at": "2026-03-01T00:00:00Z"}  # fmt: skip
    assert program.call("POST", "/v1/memberships/payments", json=fee).status_code == 200
    made = program.call("POST", "/v1/segments", json=WORLD_SEGMENT)
    assert made.status_code == 201, made.text
    # a webhook nobody listens to (port 9): its test call fails at once, without leaving this machine
    hooked = program.call("PUT", "/v1/webhook", json={"url": "http://127.0.0.1:9/palier-events"})
    assert hooked.status_code == 200, hooked.text
    return World(
        program=program,
        db=db,
        keys=keys,
        member=member,
        other_member=other,
        order_id=order["external_id"],
        adjustment_transaction_id=adjustment["transaction_id"],
        spare_key_id=spare.split(".")[0],
        reward_id=reward.json()["id"],
        coupon_to_use=codes[0],
        coupon_to_cancel=codes[1],
        payment_id=paid.json()["id"],
        membership_id=joined.json()["id"],
        fee_payment_id=fee["payment_id"],
        erasable_id=program.enrol(first_name="Erin", email=f"{unique('erin')}@example.com")["id"],
    )


WORLD_TIERS = {
    "metric": "spend",
    "window": "calendar_year",
    "downgrade": "grace",
    "grace_months": 3,
    "tiers": [
        {"code": "silver", "name": {"fr": "Argent", "en": "Silver"}, "threshold": 100_00},
        {"code": "gold", "name": {"fr": "Or", "en": "Gold"}, "threshold": 500_00, "multiplier_percent": 150},
    ],
}
WORLD_PLAN = {"code": "club", "name": {"fr": "Club", "en": "Club"}, "price": 499, "period": "monthly"}
WORLD_SEGMENT = {"code": "top", "name": {"fr": "Meilleurs clients", "en": "Best customers"}, "kind": "top_revenue"}


BODIES: dict[Route, Callable[[World], dict[str, Any]]] = {
    ("POST", "/v1/programs"): lambda w: {"name": unique("Program")},
    ("PATCH", "/v1/program"): lambda w: {"welcome_points": 100},
    ("POST", "/v1/keys"): lambda w: {"name": "sneaky", "scopes": ["admin"]},
    ("POST", "/v1/members"): lambda w: {"first_name": "Eve"},
    ("POST", "/v1/members/lookup"): lambda w: {"kind": "email", "value": w.member["email"]},
    ("POST", "/v1/members/merge"): lambda w: {
        "source_member_id": w.other_member["id"],
        "target_member_id": w.member_id,
    },
    ("PATCH", "/v1/members/{member_id}"): lambda w: {"first_name": "Mallory"},
    ("POST", "/v1/members/{member_id}/identities"): lambda w: {
        "kind": "email",
        "value": f"{unique('mallory')}@example.com",
    },
    ("POST", "/v1/members/{member_id}/adjustments"): lambda w: {"points": 500, "reason": "Free points"},
    ("POST", "/v1/members/{member_id}/transactions/{transaction_id}/reverse"): lambda w: {"reason": "Undo the credit"},
    ("POST", "/v1/members/{member_id}/erase"): lambda w: {"reason": "Asked to be forgotten"},
    ("POST", "/v1/events/purchases"): lambda w: purchase_body(w.member_id),
    ("POST", "/v1/events/returns"): lambda w: return_body(w.order_id),
    ("POST", "/v1/program/rules"): lambda w: CHANGED_RULES,
    ("POST", "/v1/preview"): lambda w: {"lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": 1000}]},
    ("POST", "/v1/members/{member_id}/actions"): lambda w: {"action": "newsletter", "reference": unique("nl")},
    ("PUT", "/v1/tiers"): lambda w: WORLD_TIERS,
    ("POST", "/v1/members/{member_id}/tier"): lambda w: {
        "tier": "gold",
        "reason": "Store manager's gesture",
        "until": "2099-01-01T00:00:00Z",
    },
    ("POST", "/v1/plans"): lambda w: WORLD_PLAN | {"code": unique("plan").replace("-", "")[:30].lower()},
    ("PATCH", "/v1/plans/{code}"): lambda w: {"benefits": {"perks": [{"fr": "Café offert", "en": "Free coffee"}]}},
    ("POST", "/v1/memberships/payments"): lambda w: {
        "payment_id": unique("pay"),
        "member_id": w.member_id,
        "plan": "club",
        "amount": 499,
        "paid_at": "2026-03-01T00:00:00Z",
    },
    ("POST", "/v1/memberships/payments/{payment_id}/refund"): lambda w: {"note": "Withdrawal within 14 days"},
    ("POST", "/v1/members/{member_id}/memberships"): lambda w: {"plan": "club-trial"},
    ("POST", "/v1/invitations"): lambda w: {"count": 2},
    ("POST", "/v1/segments"): lambda w: WORLD_SEGMENT | {"code": unique("seg").replace("-", "")[:30].lower()},
    ("PUT", "/v1/segments/{code}"): lambda w: WORLD_SEGMENT | {"percent": 10},
    ("POST", "/v1/rewards"): lambda w: reward_body(),
    ("PATCH", "/v1/rewards/{reward_id}"): lambda w: {"cost_points": 12},
    ("POST", "/v1/members/{member_id}/redemptions"): lambda w: {"reward_id": w.reward_id},
    ("POST", "/v1/coupons/{code}/validate"): lambda w: {"channel": "store", "order_total": 2000},
    ("POST", "/v1/coupons/{code}/use"): lambda w: {"channel": "store", "order_id": unique("order")},
    ("POST", "/v1/coupons/{code}/cancel"): lambda w: {},
    ("POST", "/v1/members/{member_id}/payments"): lambda w: {
        "kind": "points",
        "order_id": unique("pay"),
        "order_total": 1000,
        "points": 5,
    },
    ("POST", "/v1/outbox/ack"): lambda w: {"ids": [an_outbox_event(w)]},
    ("PUT", "/v1/webhook"): lambda w: {"url": "http://127.0.0.1:9/palier-events"},
}


def an_outbox_event(world: World) -> str:
    """The id of one of the world's outbox events (its membership started: there is one)."""
    with world.db.read() as conn:
        return str(outbox.recent(conn, program_id=world.program.id, limit=1)[0]["id"])


def request_for(route: Route, world: World) -> tuple[str, str, dict[str, Any]]:
    """(method, concrete url, httpx keyword arguments) for a valid call of ``route`` on ``world``."""
    method, template = route
    url = template.format(
        member_id=world.erasable_id if template.endswith("/erase") else world.member_id,
        identity_id=world.identity_id,
        transaction_id=world.adjustment_transaction_id,
        key_id=world.spare_key_id,
        reward_id=world.reward_id,
        code="top"
        if "/segments/" in template
        else "club"
        if "/plans/" in template
        else world.coupon_to_cancel
        if template.endswith("/cancel")
        else world.coupon_to_use,
        payment_id=world.fee_payment_id if template.startswith("/v1/memberships/") else world.payment_id,
        membership_id=world.membership_id,
    )
    kwargs: dict[str, Any] = {}
    if route in BODIES:
        kwargs["json"] = BODIES[route](world)
    return method, url, kwargs


def route_id(route: Route) -> str:
    return f"{route[0]} {route[1]}"
