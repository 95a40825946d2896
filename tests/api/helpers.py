"""What API tests share: problem+json assertions, request bodies, and card numbers made up at run time."""

from __future__ import annotations

import itertools
import random
from typing import Any

import httpx
from sqlalchemy import func, select

from palier.activity.tables import events, idempotency_keys, purchases
from palier.db import Database
from palier.errors import title_of
from palier.ledger.tables import allocations, holds, ledger_transactions, lots, postings
from palier.members.tables import identities, members, merges
from palier.programs.tables import api_keys, audit_entries, programs
from palier.rewards.tables import coupons, order_payments, rewards
from palier.rules.tables import awards, counters, rule_sets

PROBLEM = "application/problem+json"
ANY = object()  # "the field may be anything" for assert_problem
_serial = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_serial)}-{random.randrange(10**6)}"


def assert_problem(response: httpx.Response, status: int, code: str, field: Any = ANY) -> dict[str, Any]:
    """An RFC 9457 refusal with this status, stable ``code`` and (unless ANY) offending ``field``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM, response.headers["content-type"]
    body: dict[str, Any] = response.json()
    assert body["status"] == status, body
    assert body["type"].endswith(f"/{body['code']}"), body
    assert body["title"] == title_of(body["code"]), body  # the same for every problem of a code
    if code is not ANY:
        assert body["code"] == code, body
    if field is not ANY:
        assert body.get("field") == field, body
    return body


_WRITTEN = (
    members,
    identities,
    merges,
    api_keys,
    audit_entries,
    events,
    purchases,
    idempotency_keys,
    ledger_transactions,
    postings,
    lots,
    allocations,
    holds,
    rule_sets,
    awards,
    counters,
    rewards,
    coupons,
    order_payments,
)


def footprint(db: Database, program_id: str) -> dict[str, Any]:
    """How many rows of each kind a program has, and when its settings last changed.

    Equal before and after a request means the request wrote nothing at all.
    """
    counts = [
        select(func.count()).select_from(t).where(t.c.program_id == program_id).scalar_subquery().label(t.name)
        for t in _WRITTEN
    ]
    revoked = (
        select(func.count())
        .select_from(api_keys)
        .where(api_keys.c.program_id == program_id, api_keys.c.revoked_at.is_not(None))
        .scalar_subquery()
        .label("keys_revoked")
    )
    query = select(programs.c.updated_at, revoked, *counts).where(programs.c.id == program_id)
    with db.read() as conn:
        found: dict[str, Any] = dict(conn.execute(query).mappings().one())
    return found


def luhn_card(prefix: str = "4970") -> str:
    """A fresh Luhn-valid 16-digit card number (random: no real card number in any fixture)."""
    body = prefix + "".join(random.choice("0123456789") for _ in range(15 - len(prefix)))
    for check in "0123456789":
        digits = body + check
        total = sum((d * 2 - 9 if d > 4 else d * 2) if i % 2 else d for i, d in enumerate(map(int, reversed(digits))))
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def spaced(card: str) -> str:
    """``4970123412341234`` -> ``4970 1234 1234 1234``, as printed on the card."""
    return " ".join(card[i : i + 4] for i in range(0, len(card), 4))


def line(sku: str = "SKU-1", unit_price: int = 1000, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "unit_price": unit_price, **extra}


def purchase_body(
    member: dict[str, Any] | str,
    *,
    occurred_at: str = "2026-03-02T09:00:00Z",
    lines: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A purchase of 10.00 EUR (10 points at the default rate) by a member id or an identity."""
    return {
        "order_id": unique("order"),
        "member": {"member_id": member} if isinstance(member, str) else member,
        "channel": "store",
        "occurred_at": occurred_at,
        "currency": "EUR",
        "lines": lines if lines is not None else [line()],
        **extra,
    }


def return_body(order_id: str, *, occurred_at: str = "2026-03-02T09:00:00Z", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"return_id": unique("return"), "order_id": order_id, "occurred_at": occurred_at}
    body.update(extra)
    if "lines" not in body and "amount" not in body:
        body["lines"] = [{"sku": "SKU-1", "quantity": 1}]
    return body


def reward_body(**overrides: Any) -> dict[str, Any]:
    """A €5 voucher for 500 points, unless told otherwise."""
    return {
        "kind": "amount_off",
        "cost_points": 500,
        "amount": 500,
        "title": {"fr": "Bon de 5 €", "en": "€5 voucher"},
    } | overrides


class ApiProgram:
    """A program made through the API, and the calls tests make on it (with its admin key by default)."""

    def __init__(self, client: Any, program: dict[str, Any], admin_key: str) -> None:
        self.client = client
        self.id: str = program["id"]
        self.program = program
        self.admin_key = admin_key

    def headers(self, key: str | None = None, *, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = self.headers(key, idempotency_key=idempotency_key) | kwargs.pop("headers", {})
        response: httpx.Response = self.client.request(method, path, headers=headers, **kwargs)
        return response

    def make_key(self, *scopes: str, name: str = "test key") -> str:
        response = self.call("POST", "/v1/keys", json={"name": name, "scopes": list(scopes)})
        assert response.status_code == 201, response.text
        secret: str = response.json()["secret"]
        return secret

    def enrol(self, **body: Any) -> dict[str, Any]:
        response = self.call("POST", "/v1/members", json=body)
        assert response.status_code == 201, response.text
        member: dict[str, Any] = response.json()
        return member

    def purchase(self, member: dict[str, Any] | str, **kwargs: Any) -> dict[str, Any]:
        response = self.call("POST", "/v1/events/purchases", json=purchase_body(member, **kwargs))
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def adjust(self, member_id: str, points: int, reason: str = "Goodwill gesture") -> dict[str, Any]:
        response = self.call("POST", f"/v1/members/{member_id}/adjustments", json={"points": points, "reason": reason})
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def balance(self, member_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/v1/members/{member_id}/balance")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def history(self, member_id: str) -> list[dict[str, Any]]:
        """Every history line of the member, newest first (all pages)."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": 200} | ({"cursor": cursor} if cursor else {})
            response = self.call("GET", f"/v1/members/{member_id}/history", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    def snapshot(self, member_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Balance and history: what must not move when a request is refused."""
        return self.balance(member_id), self.history(member_id)
