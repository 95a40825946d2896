"""What a mailer hears about a member's rewards: every redemption, coupon given, used, cancelled or expired is an
outbox event with what the mail needs (the member's e-mail and language, the reward's title in that language,
the code, points and money as integers, the balance after), written in the change's transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from palier.clock import FrozenClock
from palier.db import Database
from palier.rewards.service import expire_coupons
from tests.api.helpers import ApiProgram, assert_problem, line, reward_body


def events(program: ApiProgram, *types: str) -> list[dict[str, Any]]:
    page = program.call("GET", "/v1/outbox", params=[("type", t) for t in types] + [("limit", "500")])
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


COUPON_EVENTS = ("reward_redeemed", "coupon_granted", "coupon_used", "coupon_cancelled", "coupon_expired")


def test_a_coupons_life_is_told_to_the_mailer_in_the_members_language(
    db: Database, new_program: Callable[..., ApiProgram]
) -> None:
    program = new_program(return_window_days=0)
    clock: FrozenClock = program.client.app.state.clock
    zoe = program.enrol(first_name="Zoé", email="zoe@example.fr", language="fr")
    program.purchase(zoe["id"], lines=[line("COAT", 40_000)])  # 400 points, available at once
    coffee = program.call(
        "POST",
        "/v1/rewards",
        json=reward_body(
            kind="free_product", amount=None, sku="COFFEE", cost_points=100, title={"fr": "Café", "en": "Free coffee"}
        ),
    ).json()
    credit = program.call(
        "POST",
        "/v1/rewards",
        json=reward_body(kind="store_credit", cost_points=50, amount=250, title={"fr": "Avoir", "en": "Credit"}),
    ).json()

    def redeem(reward: dict[str, Any]) -> dict[str, Any]:
        answer = program.call("POST", f"/v1/members/{zoe['id']}/redemptions", json={"reward_id": reward["id"]})
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    used, cancelled, lapsing = (redeem(coffee)["coupon"]["code"] for _ in range(3))
    redeem(credit)
    till = program.make_key("pos", name="till")
    use = {"channel": "store", "order_id": "T-1", "lines": [line("COFFEE", 250)]}
    assert program.call("POST", f"/v1/coupons/{used}/use", key=till, json=use).status_code == 200
    assert program.call("POST", f"/v1/coupons/{used}/use", key=till, json=use).status_code == 200  # same order again
    refused = program.call("POST", f"/v1/coupons/{used}/use", key=till, json=use | {"order_id": "T-2"})
    assert_problem(refused, 409, "coupon_used")
    assert program.call("POST", f"/v1/coupons/{cancelled}/cancel", json={}).status_code == 200
    clock.advance(days=31)
    assert expire_coupons(db, clock, program_id=program.id) == 1

    told = events(program, *COUPON_EVENTS)
    assert [(e["type"], e["subject_id"]) for e in told] == [
        ("reward_redeemed", zoe["id"]),
        ("reward_redeemed", zoe["id"]),
        ("reward_redeemed", zoe["id"]),
        ("reward_redeemed", zoe["id"]),
        ("coupon_used", zoe["id"]),  # once: the same order again and the refused one say nothing
        ("coupon_cancelled", zoe["id"]),
        ("coupon_expired", zoe["id"]),
    ]
    contact = {"member_id": zoe["id"], "email": "zoe@example.fr", "language": "fr"}
    first = told[0]["payload"]
    assert first == contact | {
        "reward_id": coffee["id"],
        "title": "Café",
        "kind": "free_product",
        "points": 100,
        "code": used,
        "expires_at": first["expires_at"],
        "amount": None,
        "currency": "EUR",
        "available": 300,
        "held": 100,
    }
    assert told[3]["payload"] | {"expires_at": None} == contact | {
        "reward_id": credit["id"],
        "title": "Avoir",
        "kind": "store_credit",
        "points": 50,
        "code": told[3]["payload"]["code"],
        "expires_at": None,
        "amount": 250,  # the store credit it gave, in cents
        "currency": "EUR",
        "available": 50,
        "held": 300,
    }
    assert told[4]["payload"] == contact | {
        "code": used,
        "reward_id": coffee["id"],
        "title": "Café",
        "points": 100,
        "order_id": "T-1",
        "channel": "store",
        "discount": 250,
        "currency": "EUR",
        "available": 50,
        "held": 200,
    }
    assert told[5]["payload"] == contact | {
        "code": cancelled,
        "reward_id": coffee["id"],
        "title": "Café",
        "points": 100,
        "points_returned": 100,
        "available": 150,
        "held": 100,
    }
    assert told[6]["payload"] == contact | {
        "code": lapsing,
        "reward_id": coffee["id"],
        "title": "Café",
        "points": 100,
        "points_returned": 100,
        "available": 250,
        "held": 0,
    }


def test_a_refused_redemption_tells_the_mailer_nothing(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program(return_window_days=0)
    ann = program.enrol(first_name="Ann", email="ann@example.com", language="en")
    voucher = program.call("POST", "/v1/rewards", json=reward_body()).json()
    short = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": voucher["id"]})
    assert_problem(short, 422, "insufficient_points")
    assert events(program, *COUPON_EVENTS) == []


def test_an_erased_members_coupon_cancellations_are_not_sent(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program(return_window_days=0)
    ann = program.enrol(first_name="Ann", email="ann@example.com", language="en")
    program.purchase(ann["id"], lines=[line("COAT", 60_000)])
    voucher = program.call("POST", "/v1/rewards", json=reward_body()).json()
    redeemed = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": voucher["id"]})
    assert redeemed.status_code == 201, redeemed.text
    erased = program.call("POST", f"/v1/members/{ann['id']}/erase", json={"reason": "asked by phone"})
    assert erased.status_code == 200, erased.text
    assert [e["type"] for e in events(program)] == ["member_erased"]  # the redemption and cancellation: not sent
