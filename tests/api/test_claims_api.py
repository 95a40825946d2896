"""A payment card linked after it paid: its purchases earn what they would have earned had it been linked then.

The member's tier and VIP plan of the purchase's day, the spend-step rules' running spend, campaign budgets and
caps, and later returns: all as for a purchase recorded for the member.
"""

from __future__ import annotations

from typing import Any

from palier.clock import FrozenClock
from tests.api.helpers import ApiProgram, assert_problem, line, luhn_card, purchase_body, return_body, reward_body

GOLD_TIERS = {
    "metric": "spend",
    "window": "calendar_year",
    "tiers": [
        {"code": "silver", "name": {"fr": "Argent", "en": "Silver"}, "threshold": 100_000},
        {"code": "gold", "name": {"fr": "Or", "en": "Gold"}, "threshold": 500_000, "multiplier_percent": 150},
    ],
}
BASE = {"id": "base", "name": {"en": "1 point per euro"}, "event": "purchase"}
BASE["effect"] = {"type": "points_per_amount", "points": 1, "per_amount": 100}


def pay_with_card(program: ApiProgram, card: str, **body: Any) -> dict[str, Any]:
    """A purchase paid with a card nobody has linked yet: kept unclaimed."""
    sent = program.call(
        "POST", "/v1/events/purchases", json=purchase_body({"kind": "payment_card", "value": card}, **body)
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["status"] == "unclaimed", sent.json()
    result: dict[str, Any] = sent.json()
    return result


def link(program: ApiProgram, member_id: str, card: str) -> None:
    linked = program.call("POST", f"/v1/members/{member_id}/identities", json={"kind": "payment_card", "value": card})
    assert linked.status_code == 200, linked.text


def set_tier(program: ApiProgram, member_id: str, tier: str) -> None:
    body = {"tier": tier, "reason": "Store manager's gesture", "until": "2099-01-01T00:00:00Z"}
    assert program.call("POST", f"/v1/members/{member_id}/tier", json=body).status_code == 200


def test_a_claimed_purchase_earns_the_tier_bonus_of_its_day(program: ApiProgram, clock: FrozenClock) -> None:
    assert program.call("PUT", "/v1/tiers", json=GOLD_TIERS).status_code == 200
    member = program.enrol(first_name="Ann")
    set_tier(program, member["id"], "gold")
    clock.advance(hours=1)
    card = luhn_card()
    pay_with_card(program, card, occurred_at="2026-03-02T09:30:00Z", lines=[line(unit_price=2000)])
    clock.advance(hours=1)
    set_tier(program, member["id"], "silver")  # Gold when the card paid, Silver when it is linked
    link(program, member["id"], card)
    assert program.balance(member["id"])["pending"] == 30  # 20 and Gold ×1.5
    [claimed] = [h for h in program.history(member["id"]) if h["reason_code"] == "purchase_claimed"]
    assert claimed["pending"] == 30


def test_a_claimed_purchase_earns_the_vip_plan_bonus(program: ApiProgram) -> None:
    plan = {"code": "club", "name": {"fr": "Club", "en": "Club"}, "price": 499, "period": "monthly"}
    plan["benefits"] = {"multiplier_percent": 200}
    assert program.call("POST", "/v1/plans", json=plan).status_code == 201
    member = program.enrol(first_name="Bo")
    fee = {"payment_id": "fee-1", "member_id": member["id"], "plan": "club", "amount": 499}
    joined = program.call("POST", "/v1/memberships/payments", json=fee | {"paid_at": "2026-03-01T00:00:00Z"})
    assert joined.status_code == 200, joined.text
    card = luhn_card()
    pay_with_card(program, card, lines=[line(unit_price=1500)])
    link(program, member["id"], card)
    assert program.balance(member["id"])["pending"] == 30  # 15 and the Club's ×2


def test_a_claimed_purchase_counts_toward_spend_steps(program: ApiProgram) -> None:
    voucher = program.call("POST", "/v1/rewards", json=reward_body()).json()
    step = {"id": "steps", "name": {"en": "€5 for every €100"}, "event": "purchase"}
    step["effect"] = {"type": "spend_step", "step": 10000, "reward_id": voucher["id"]}
    assert program.call("POST", "/v1/program/rules", json={"rules": [BASE, step]}).status_code == 201
    member = program.enrol(first_name="Cleo")
    program.purchase(member["id"], lines=[line(unit_price=6000)])
    card = luhn_card()
    pay_with_card(program, card, lines=[line(unit_price=5000)])
    link(program, member["id"], card)  # 60 + 50: the €100 step is crossed
    coupons = program.call("GET", f"/v1/members/{member['id']}/coupons").json()["items"]
    assert len(coupons) == 1
    after = program.purchase(member["id"], lines=[line(unit_price=8000)])  # 190: the next step is not reached
    assert [a["points"] for a in after["awards"] if a["kind"] == "coupon"] == [0]


def budget_rules(program: ApiProgram, **limits: int) -> None:
    flash = {"id": "flash", "name": {"en": "Flash"}, "starts": "2026-03-01T00:00:00", "ends": "2026-04-01T00:00:00"}
    bonus = {**BASE, "id": "bonus", "name": {"en": "Flash bonus"}, "campaign": "flash"}
    applied = program.call("POST", "/v1/program/rules", json={"campaigns": [flash | limits], "rules": [BASE, bonus]})
    assert applied.status_code == 201, applied.text


def test_a_card_never_linked_spends_no_campaign_budget(program: ApiProgram) -> None:
    budget_rules(program, budget=10)
    pay_with_card(program, luhn_card(), lines=[line(unit_price=1000)])  # nobody is credited for it
    member = program.enrol(first_name="Dan")
    bought = program.purchase(member["id"], lines=[line(unit_price=1000)])
    assert bought["points"] == 20  # the whole budget is still there for a member


def test_the_claim_spends_the_campaign_budget_the_points_come_from(program: ApiProgram) -> None:
    budget_rules(program, budget=10)
    card = luhn_card()
    pay_with_card(program, card, lines=[line(unit_price=1000)])
    ann, bo = program.enrol(first_name="Ann"), program.enrol(first_name="Bo")
    link(program, ann["id"], card)
    assert program.balance(ann["id"])["pending"] == 20  # the campaign's bonus, in its window when the card paid
    assert program.purchase(bo["id"], lines=[line(unit_price=1000)])["points"] == 10  # the budget is spent


def test_a_claimed_purchase_counts_against_the_member_cap(program: ApiProgram) -> None:
    budget_rules(program, member_cap=15)
    member = program.enrol(first_name="Eve")
    card = luhn_card()
    pay_with_card(program, card, lines=[line(unit_price=1000)])
    link(program, member["id"], card)
    assert program.balance(member["id"])["pending"] == 20
    assert program.purchase(member["id"], lines=[line(unit_price=1000)])["points"] == 15  # 5 left of the cap


def test_a_return_of_a_claimed_purchase_takes_back_what_the_claim_gave(program: ApiProgram) -> None:
    assert program.call("PUT", "/v1/tiers", json=GOLD_TIERS).status_code == 200
    member = program.enrol(first_name="Fay")
    set_tier(program, member["id"], "gold")
    card = luhn_card()
    before = pay_with_card(program, card, lines=[line("A", 3000), line("B", 2000)])
    early = program.call(
        "POST", "/v1/events/returns", json=return_body(before["external_id"], lines=[{"sku": "B", "quantity": 1}])
    )
    assert early.status_code == 201, early.text
    order = pay_with_card(program, card, lines=[line(unit_price=2000)])
    link(program, member["id"], card)
    assert program.balance(member["id"])["pending"] == 45 + 30  # €30 kept of the first, €20 of the second, Gold ×1.5
    whole = program.call("POST", "/v1/events/returns", json=return_body(order["external_id"], amount=2000))
    assert whole.status_code == 201, whole.text
    assert whole.json()["points"] == -30
    rest = program.call(
        "POST", "/v1/events/returns", json=return_body(before["external_id"], lines=[{"sku": "A", "quantity": 1}])
    )
    assert rest.json()["points"] == -45
    assert program.balance(member["id"])["pending"] == 0


def test_linking_the_card_again_credits_nothing_more(program: ApiProgram) -> None:
    assert program.call("PUT", "/v1/tiers", json=GOLD_TIERS).status_code == 200
    member = program.enrol(first_name="Gus")
    set_tier(program, member["id"], "gold")
    card = luhn_card()
    pay_with_card(program, card, lines=[line(unit_price=2000)])
    link(program, member["id"], card)
    link(program, member["id"], card)
    identity_id = next(
        i["id"]
        for i in program.call("GET", f"/v1/members/{member['id']}").json()["identities"]
        if i["kind"] == "payment_card"
    )
    assert program.call("DELETE", f"/v1/members/{member['id']}/identities/{identity_id}").status_code == 200
    link(program, member["id"], card)
    assert program.balance(member["id"])["pending"] == 30


def test_a_card_whose_purchase_would_earn_too_much_for_the_member_is_not_linked(program: ApiProgram) -> None:
    assert program.call("PUT", "/v1/tiers", json=GOLD_TIERS).status_code == 200
    member = program.enrol(first_name="Hal")
    set_tier(program, member["id"], "gold")
    card = luhn_card()
    order = pay_with_card(
        program, card, lines=[line(unit_price=90_000_000_000)]
    )  # 900 million points: the most is 1 billion
    refused = program.call(
        "POST", f"/v1/members/{member['id']}/identities", json={"kind": "payment_card", "value": card}
    )
    problem = assert_problem(refused, 422, "points_too_large", field="value")
    assert order["external_id"] in problem["detail"] and problem["order_id"] == order["external_id"]
    shown = program.call("GET", f"/v1/members/{member['id']}").json()
    assert [i for i in shown["identities"] if i["kind"] == "payment_card"] == []
    assert program.balance(member["id"])["pending"] == 0


def test_a_claimed_purchase_is_told_to_the_mailer_as_points_earned(program: ApiProgram) -> None:
    member = program.enrol(first_name="Ann", email="ann@example.com", language="en")
    card = luhn_card()
    paid = pay_with_card(program, card, lines=[line(unit_price=1500)])
    link(program, member["id"], card)
    told = program.call("GET", "/v1/outbox", params={"type": "points_earned", "limit": 500}).json()["items"]
    [earned] = [e["payload"] for e in told if e["subject_id"] == member["id"]]
    assert (earned["source"], earned["order_id"], earned["points"], earned["total"]) == (
        "purchase",
        paid["external_id"],
        15,
        1500,
    )
    assert (earned["email"], earned["pending_balance"]) == ("ann@example.com", 15)
    assert card not in str(told)  # the card that paid is never in an event
