"""What a mailer hears about a member's points: a purchase credited, a return taking points back, an adjustment,
points or store credit paying for an order and what comes back of them, each an outbox event with the member's
e-mail and language, the points and the balances after, written in the command's transaction (a replay writes
nothing more, a refusal nothing at all)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api.helpers import ApiProgram, assert_problem, line, purchase_body, return_body, reward_body

POINTS_EVENTS = ("points_earned", "points_returned", "points_adjusted")
PAYMENT_EVENTS = ("points_spent", "credit_spent", "payment_refunded")


def events(program: ApiProgram) -> list[dict[str, Any]]:
    page = program.call("GET", "/v1/outbox", params=[("type", t) for t in POINTS_EVENTS])
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


def test_points_earned_returned_and_adjusted_are_told_to_the_mailer(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program(return_window_days=14)
    zoe = program.enrol(first_name="Zoé", email="zoe@example.fr", language="fr")
    body = purchase_body(zoe["id"], order_id="L-1042", lines=[line("COAT", 4_000), line("HAT", 1_000)])
    for _ in range(2):  # sent twice: one credit, one event
        sent = program.call("POST", "/v1/events/purchases", json=body)
        assert sent.status_code in (200, 201), sent.text
    body_reason = sent.json()["reason"]
    returned = program.call(
        "POST", "/v1/events/returns", json=return_body("L-1042", lines=[{"sku": "HAT", "quantity": 1}])
    )
    assert returned.status_code == 201, returned.text
    adjusted = program.call("POST", f"/v1/members/{zoe['id']}/adjustments", json={"points": 15, "reason": "Sorry"})
    assert adjusted.status_code == 201, adjusted.text
    credit = adjusted.json()["transaction_id"]
    path = f"/v1/members/{zoe['id']}/transactions/{credit}/reverse"
    assert program.call("POST", path, json={"reason": "Entered twice"}).status_code in (200, 201)
    too_much = program.call("POST", f"/v1/members/{zoe['id']}/adjustments", json={"points": -500, "reason": "Oops"})
    assert_problem(too_much, 422, "insufficient_points")  # refused: nothing told

    told = events(program)
    assert [e["type"] for e in told] == ["points_earned", "points_returned", "points_adjusted", "points_adjusted"]
    assert all(e["subject_id"] == zoe["id"] for e in told)
    contact = {"member_id": zoe["id"], "email": "zoe@example.fr", "language": "fr"}
    earned = told[0]["payload"]
    assert earned == contact | {
        "source": "purchase",
        "reason": body_reason,
        "order_id": "L-1042",
        "points": 50,
        "pending": True,
        "matures_at": earned["matures_at"],
        "total": 5_000,
        "currency": "EUR",
        "available": 0,
        "pending_balance": 50,
    }
    assert earned["matures_at"].startswith("2026-03-16T09:00:00")
    assert told[1]["payload"] == contact | {
        "order_id": "L-1042",
        "return_id": body_return_id(returned.json()),
        "points": 10,
        "available": 0,
        "pending_balance": 40,
        "debt": 0,
    }
    assert told[2]["payload"] == contact | {
        "points": 15, "reason": "Sorry", "reverses": None, "available": 15, "pending_balance": 40,
    }  # fmt: skip
    assert told[3]["payload"] == contact | {  # a correction: the credit reversed
        "points": -15, "reason": "Entered twice", "reverses": credit, "available": 0, "pending_balance": 40,
    }  # fmt: skip


def body_return_id(result: dict[str, Any]) -> str:
    return str(result["external_id"])


def test_a_purchase_without_a_member_tells_nobody(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program()
    walk_in = purchase_body("x") | {"member": None}
    assert program.call("POST", "/v1/events/purchases", json=walk_in).status_code == 201
    assert events(program) == []


def test_a_merge_tells_the_crm_which_account_was_closed_into_which(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program(return_window_days=0)
    kept = program.enrol(first_name="Zoé", email="zoe@example.fr", language="fr")
    twin = program.enrol(first_name="Zoe", phone="+33612345678", language="en")
    program.adjust(twin["id"], 30)
    merged = program.call(
        "POST", "/v1/members/merge", json={"source_member_id": twin["id"], "target_member_id": kept["id"]}
    )
    assert merged.status_code in (200, 201), merged.text
    [told] = [e for e in program.call("GET", "/v1/outbox", params={"type": "member_merged"}).json()["items"]]
    assert told["subject_id"] == kept["id"]
    assert told["payload"] == {
        "member_id": kept["id"],
        "email": "zoe@example.fr",
        "language": "fr",
        "merged_member_id": twin["id"],
        "points_moved": 30,
        "store_credit_moved": 0,
        "available": 30,
        "pending_balance": 0,
    }


def test_a_command_rolled_back_leaves_no_event(new_program: Callable[..., ApiProgram]) -> None:
    """The same Idempotency-Key again runs the command, fails to keep its answer (the key is kept already) and
    rolls it back: the event it wrote goes with it, and the mailer hears of the purchase once."""
    program = new_program()
    ann = program.enrol(first_name="Ann", email="ann@example.com", language="en")
    body = purchase_body(ann["id"])
    for _ in range(2):
        sent = program.call("POST", "/v1/events/purchases", json=body, idempotency_key="till-7-0001")
        assert sent.status_code == 201, sent.text
    assert [e["type"] for e in events(program)] == ["points_earned"]


def test_a_welcome_and_an_action_are_told_to_the_mailer(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program(welcome_points=20)
    actions = [{"id": "review", "name": {"en": "Product review", "fr": "Avis produit"}, "points": 15}]
    base = {"id": "base", "name": {"en": "1 point per euro", "fr": "1 point par euro"}, "event": "purchase",
            "effect": {"type": "points_per_amount", "points": 1, "per_amount": 100}}  # fmt: skip
    applied = program.call("POST", "/v1/program/rules", json={"actions": actions, "rules": [base]})
    assert applied.status_code == 201, applied.text
    lea = program.enrol(first_name="Léa", email="lea@example.fr", language="fr", channel="store")
    done = program.call("POST", f"/v1/members/{lea['id']}/actions", json={"action": "review", "reference": "R-1"})
    assert done.status_code == 201, done.text
    told = program.call("GET", "/v1/outbox", params=[("type", "member_enrolled"), ("type", "points_earned")])
    contact = {"member_id": lea["id"], "email": "lea@example.fr", "language": "fr"}
    assert [(e["type"], e["payload"]) for e in told.json()["items"]] == [
        ("member_enrolled", contact | {
            "channel": "store", "welcome_points": 20, "available": 20, "pending_balance": 0,
        }),
        ("points_earned", contact | {
            "source": "action", "reason": "Product review", "order_id": None, "points": 15, "pending": False,
            "matures_at": None, "total": None, "currency": "EUR", "available": 35, "pending_balance": 0,
        }),
    ]  # fmt: skip


def test_a_payment_with_points_or_credit_and_what_comes_back_are_told_to_the_mailer(
    new_program: Callable[..., ApiProgram],
) -> None:
    """Points spent at checkout (and store credit) are the member's points leaving as surely as a redemption: the
    mailer hears of the payment, and of what a cancelled checkout or a return gives back; a resend tells nothing
    more, a refused payment nothing at all."""
    program = new_program()
    zoe = program.enrol(first_name="Zoé", email="zoe@example.fr", language="fr")
    program.adjust(zoe["id"], 1_500)
    credit = program.call("POST", "/v1/rewards", json=reward_body(kind="store_credit", cost_points=500, amount=1_000))
    assert credit.status_code == 201, credit.text
    redeemed = program.call("POST", f"/v1/members/{zoe['id']}/redemptions", json={"reward_id": credit.json()["id"]})
    assert redeemed.status_code == 201, redeemed.text  # 1,000 points and €10 of store credit left
    paid_path = f"/v1/members/{zoe['id']}/payments"
    with_points = {"kind": "points", "order_id": "W-7", "order_total": 4_000, "points": 300, "channel": "web"}
    for _ in range(2):  # sent twice: one payment, one event
        paid = program.call("POST", paid_path, json=with_points)
        assert paid.status_code in (200, 201), paid.text
    too_many = program.call("POST", paid_path, json=with_points | {"order_id": "W-8", "points": 5_000})
    assert too_many.status_code == 422  # refused: nothing told
    with_credit = {"kind": "credit", "order_id": "W-7", "order_total": 4_000, "amount": 600, "channel": "web"}
    assert program.call("POST", paid_path, json=with_credit).status_code == 201
    back = program.call("POST", f"{paid_path}/{paid.json()['id']}/cancel", json={})
    assert back.status_code in (200, 201), back.text  # the checkout was abandoned: the 300 points come back

    page = program.call("GET", "/v1/outbox", params=[("type", t) for t in PAYMENT_EVENTS]).json()["items"]
    assert [e["type"] for e in page] == ["points_spent", "credit_spent", "payment_refunded"]
    contact = {"member_id": zoe["id"], "email": "zoe@example.fr", "language": "fr"}
    payment = {"order_id": "W-7", "channel": "web", "currency": "EUR"}
    assert page[0]["payload"] == contact | payment | {
        "payment_id": paid.json()["id"],
        "points": 300,
        "amount": 300,
        "available": 700,
        "pending_balance": 0,
    }
    assert page[1]["payload"] == contact | payment | {
        "payment_id": page[1]["payload"]["payment_id"],
        "amount": 600,
        "wallet": 400,
    }
    assert page[2]["payload"] == contact | {
        "order_id": "W-7",
        "payment_id": paid.json()["id"],
        "kind": "points",
        "why": "cancelled",
        "points": 300,
        "points_expired": 0,
        "amount": 0,
        "available": 1_000,
        "pending_balance": 0,
        "wallet": 400,
    }


def test_a_return_of_an_order_paid_with_points_tells_what_came_back(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program(return_window_days=14)
    zoe = program.enrol(first_name="Zoé", email="zoe@example.fr", language="en")
    program.adjust(zoe["id"], 500)
    paid = program.call(
        "POST",
        f"/v1/members/{zoe['id']}/payments",
        json={"kind": "points", "order_id": "L-9", "order_total": 5_000, "points": 400},
    )
    assert paid.status_code == 201, paid.text
    body = purchase_body(zoe["id"], order_id="L-9", lines=[line("COAT", 4_000), line("HAT", 1_000)])
    assert program.call("POST", "/v1/events/purchases", json=body).status_code == 201
    returned = program.call(
        "POST", "/v1/events/returns", json=return_body("L-9", lines=[{"sku": "HAT", "quantity": 1}])
    )
    assert returned.status_code == 201, returned.text

    page = program.call("GET", "/v1/outbox", params=[("type", "payment_refunded")]).json()["items"]
    assert [e["payload"] for e in page] == [
        {
            "member_id": zoe["id"],
            "email": "zoe@example.fr",
            "language": "en",
            "order_id": "L-9",
            "payment_id": paid.json()["id"],
            "kind": "points",
            "why": "returned",
            "points": 80,  # a fifth of the order came back: a fifth of its points
            "points_expired": 0,
            "amount": 0,
            "available": 180,
            "pending_balance": page[0]["payload"]["pending_balance"],
            "wallet": 0,
        }
    ]
