"""Rewards over HTTP: the README's walk-through (earn, redeem, use at the till), refusals and retries."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from palier.api import commands
from palier.clock import FrozenClock
from palier.db import Database
from palier.db.engine import transient
from palier.rewards import payments
from tests.api.helpers import (
    ApiProgram,
    assert_problem,
    footprint,
    line,
    luhn_card,
    purchase_body,
    reward_body,
    spaced,
    unique,
)
from tests.api.routes import WORLD_PLAN, WORLD_SEGMENT, WORLD_TIERS
from tests.waiting import PATIENCE, backend_pid, until_waited_on


def test_earn_redeem_and_use_at_the_till(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program(return_window_days=0)
    ann = program.enrol(first_name="Ann", language="en")
    program.purchase(ann["id"], lines=[line("COAT", 25_000)])  # 250 points, available at once
    coffee = program.call(
        "POST",
        "/v1/rewards",
        json=reward_body(
            kind="free_product", amount=None, sku="COFFEE", cost_points=100, title={"fr": "Café", "en": "Free coffee"}
        ),
    ).json()
    assert program.call("POST", "/v1/rewards", json=reward_body()).status_code == 201

    shown = program.balance(ann["id"])
    assert [(r["title"], r["points_needed"]) for r in shown["next_rewards"]] == [
        ("Free coffee", 0),
        ("€5 voucher", 250),
    ]
    assert shown["next_rewards"][1]["message"] == "250 points to €5 voucher"
    affordable = program.call("GET", f"/v1/members/{ann['id']}/rewards", params={"affordable": "true"}).json()
    assert [item["reward"]["id"] for item in affordable] == [coffee["id"]]

    key = unique("redeem")
    redeemed = program.call(
        "POST", f"/v1/members/{ann['id']}/redemptions", idempotency_key=key, json={"reward_id": coffee["id"]}
    )
    assert redeemed.status_code == 201, redeemed.text
    again = program.call(
        "POST", f"/v1/members/{ann['id']}/redemptions", idempotency_key=key, json={"reward_id": coffee["id"]}
    )
    assert again.json() == redeemed.json() and again.headers["idempotent-replayed"] == "true"
    code = redeemed.json()["coupon"]["code"]
    assert (redeemed.json()["available"], redeemed.json()["held"]) == (150, 100)

    till = program.make_key("pos", name="till 1")
    found = program.call("GET", f"/v1/coupons/{code[:5].lower()}-{code[5:]}", key=till)
    assert found.status_code == 200 and found.json()["member_id"] == ann["id"]
    check = program.call(
        "POST",
        f"/v1/coupons/{code}/validate",
        key=till,
        json={"channel": "store", "member_id": ann["id"], "lines": [line("COFFEE", 250), line("CROISSANT", 120)]},
    )
    assert check.status_code == 200, check.text
    assert (check.json()["discount"], check.json()["describes"]) == (250, "Free: COFFEE")
    used = program.call("POST", f"/v1/coupons/{code}/use", key=till, json={"channel": "store", "order_id": "T-1"})
    assert used.status_code == 200 and used.json()["state"] == "used"
    twice = program.call("POST", f"/v1/coupons/{code}/use", key=till, json={"channel": "store", "order_id": "T-2"})
    assert_problem(twice, 409, "coupon_used", field="code")
    after = program.balance(ann["id"])
    assert (after["available"], after["held"]) == (150, 0)
    coupons = program.call("GET", f"/v1/members/{ann['id']}/coupons", params={"state": "used"}).json()
    assert [c["code"] for c in coupons["items"]] == [code] and coupons["next_cursor"] is None


def test_refusals_are_problems_with_their_own_code_and_write_nothing(
    new_program: Callable[..., ApiProgram], db: Database
) -> None:
    program = new_program()
    bo = program.enrol(first_name="Bo")
    program.adjust(bo["id"], 120)
    voucher = program.call("POST", "/v1/rewards", json=reward_body()).json()
    before = footprint(db, program.id)

    short = program.call("POST", f"/v1/members/{bo['id']}/redemptions", json={"reward_id": voucher["id"]})
    body = assert_problem(short, 422, "insufficient_points", field="reward_id")
    assert (body["needed"], body["available"], body["missing"]) == (500, 120, 380)
    unknown = program.call("POST", f"/v1/members/{bo['id']}/redemptions", json={"reward_id": "rwd_nope"})
    assert_problem(unknown, 404, "reward_not_found", field="reward_id")
    assert_problem(program.call("GET", "/v1/coupons/ABCDE-FGHJK-0"), 422, "coupon_code_mistyped", field="code")
    bad_kind = program.call("POST", "/v1/rewards", json=reward_body(percent=10))
    assert_problem(bad_kind, 422, "percent_not_applicable", field="percent")
    missing = program.call("POST", "/v1/rewards", json=reward_body(kind="percent_off", amount=None))
    assert_problem(missing, 422, "percent_required", field="percent")
    no_amount = program.call("POST", "/v1/rewards", json={k: v for k, v in reward_body().items() if k != "amount"})
    body = assert_problem(no_amount, 422, "amount_required", field="amount")
    assert body["detail"] == "an amount_off reward needs amount", body
    window = {"starts_at": "2026-12-01T00:00:00Z", "ends_at": "2026-11-01T00:00:00Z"}
    backwards = program.call("POST", "/v1/rewards", json=reward_body(**window))
    assert_problem(backwards, 422, "ends_before_start", field="ends_at")
    plan = {"code": "club", "name": {"fr": "Club", "en": "Club"}, "price": 499, "period": "monthly"}
    for sent, code, field in [
        (plan | {"access": "segment"}, "segment_required", "segment"),
        (plan | {"segment": "top"}, "segment_required", "segment"),
    ]:
        assert_problem(program.call("POST", "/v1/plans", json=sent), 422, code, field=field)
    both = {"kind": "points", "order_id": "W-2", "order_total": 1000, "points": 10, "amount": 10}
    assert_problem(
        program.call("POST", f"/v1/members/{bo['id']}/payments", json=both), 422, "amount_not_applicable", "amount"
    )
    neither = {"kind": "credit", "order_id": "W-2", "order_total": 1000}
    assert_problem(
        program.call("POST", f"/v1/members/{bo['id']}/payments", json=neither), 422, "amount_required", "amount"
    )
    card = program.call("POST", "/v1/rewards", json=reward_body(title={"fr": spaced(luhn_card()), "en": "x"}))
    assert_problem(card, 422, "card_number_in_text", field="title.fr")
    too_much = program.call(
        "POST",
        f"/v1/members/{bo['id']}/payments",
        json={"kind": "points", "order_id": "W-1", "order_total": 100, "points": 100},
    )
    assert_problem(too_much, 422, "payment_above_share", field="points")
    assert footprint(db, program.id) == before


def test_a_payment_sent_again_answers_200_with_the_first_payment(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program()
    member = program.enrol(first_name="Ann")
    program.adjust(member["id"], 500)
    body = {"kind": "points", "order_id": "W-7", "order_total": 4000, "points": 300}
    first = program.call("POST", f"/v1/members/{member['id']}/payments", json=body)
    assert first.status_code == 201, first.text
    again = program.call("POST", f"/v1/members/{member['id']}/payments", json=body)
    assert again.status_code == 200 and again.json() == first.json()  # as a resent purchase: nothing new
    assert program.balance(member["id"])["available"] == 200


def test_a_payment_resent_while_the_first_is_being_written_answers_200(
    db: Database, new_program: Callable[..., ApiProgram], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The till's network gives up on the first answer and sends the payment again while the first is still
    being written: one payment, answered 201 once and 200 to the resend, as the README says."""
    program = new_program()
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 500)
    checked, resent = threading.Event(), threading.Event()
    first_pid: list[int] = []
    order_recorded = payments._order_recorded

    def first_payment_pauses(conn: Connection, program_id: str, order: str) -> bool:
        found = order_recorded(conn, program_id, order)
        if not checked.is_set():
            first_pid.extend([backend_pid(conn)] if db.is_postgres else [])
            checked.set()
            resent.wait(timeout=PATIENCE)  # the resend arrives meanwhile
        return found

    monkeypatch.setattr(payments, "_order_recorded", first_payment_pauses)
    body = {"kind": "points", "order_id": unique("order"), "order_total": 4000, "points": 300}
    path = f"/v1/members/{ann['id']}/payments"
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(program.call, "POST", path, json=body)
        assert checked.wait(timeout=PATIENCE)
        again = pool.submit(program.call, "POST", path, json=body)
        try:  # the resend now waits for the first payment (SQLite: for the write lock, which no one sees)
            if db.is_postgres:
                assert until_waited_on(db, first_pid[0], finished=again.done), "the resend did not wait"
            else:
                wait([again], timeout=0.5)
        finally:
            resent.set()
        answers = [first.result(), again.result()]
    assert [a.status_code for a in answers] == [201, 200], [a.text for a in answers]
    assert answers[0].json() == answers[1].json()
    assert program.balance(ann["id"])["available"] == 200


def test_another_program_never_sees_a_coupon(new_program: Callable[..., ApiProgram]) -> None:
    mine, theirs = new_program(), new_program()
    cy = mine.enrol(first_name="Cy")
    mine.adjust(cy["id"], 500)
    voucher = mine.call("POST", "/v1/rewards", json=reward_body()).json()
    code = mine.call("POST", f"/v1/members/{cy['id']}/redemptions", json={"reward_id": voucher["id"]}).json()
    code = code["coupon"]["code"]
    assert_problem(theirs.call("GET", f"/v1/coupons/{code}"), 404, "coupon_not_found")
    assert_problem(
        theirs.call("POST", f"/v1/coupons/{code}/use", json={"channel": "store", "order_id": "X"}),
        404,
        "coupon_not_found",
    )
    assert_problem(theirs.call("GET", f"/v1/rewards/{voucher['id']}"), 404, "reward_not_found")
    assert mine.call("GET", f"/v1/coupons/{code}").json()["state"] == "issued"


def test_a_field_a_reward_always_has_cannot_be_nulled(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program()
    reward = program.call("POST", "/v1/rewards", json=reward_body()).json()
    for field in ("status", "cost_points", "title", "valid_days"):
        nulled = program.call("PATCH", f"/v1/rewards/{reward['id']}", json={field: None})
        assert_problem(nulled, 422, "null_not_allowed", field)
    assert program.call("GET", f"/v1/rewards/{reward['id']}").json() == reward  # nothing changed
    cleared = program.call("PATCH", f"/v1/rewards/{reward['id']}", json={"stock": None})  # null clears a limit
    assert cleared.status_code == 200 and cleared.json()["stock"] is None


def test_a_window_sent_with_an_offset_is_kept_as_that_moment(new_program: Callable[..., ApiProgram]) -> None:
    """SQLite stores a moment's digits without its offset: ``+01:00`` must not turn into an hour later."""
    program = new_program()
    body = reward_body() | {"starts_at": "2026-12-20T00:00:00+01:00"}
    reward = program.call("POST", "/v1/rewards", json=body).json()
    changed = program.call("PATCH", f"/v1/rewards/{reward['id']}", json={"ends_at": "2026-12-25T00:00:00+01:00"})
    assert changed.status_code == 200, changed.text
    shown = program.call("GET", f"/v1/rewards/{reward['id']}").json()
    assert (shown["starts_at"], shown["ends_at"]) == ("2026-12-19T23:00:00Z", "2026-12-24T23:00:00Z")


def test_a_percentage_or_minimum_order_coupon_is_used_on_the_orders_total(
    new_program: Callable[..., ApiProgram],
) -> None:
    program = new_program(return_window_days=0)
    ann = program.enrol(first_name="Ann", language="en")
    program.purchase(ann["id"], lines=[line("COAT", 25_000)])  # 250 points
    ten_percent = reward_body(kind="percent_off", amount=None, percent=10, min_order=2_000, cost_points=100)
    reward = program.call("POST", "/v1/rewards", json=ten_percent).json()
    code = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": reward["id"]}).json()
    code = code["coupon"]["code"]
    blind = program.call("POST", f"/v1/coupons/{code}/use", json={"channel": "store", "order_id": "T-1"})
    assert_problem(blind, 422, "coupon_needs_total", "order_total")
    small = {"channel": "store", "order_id": "T-1", "order_total": 1_500}
    assert_problem(program.call("POST", f"/v1/coupons/{code}/use", json=small), 422, "coupon_min_order")
    used = program.call("POST", f"/v1/coupons/{code}/use", json=small | {"order_total": 3_000})
    assert used.status_code == 200 and used.json()["discount"] == 300, used.text


def test_a_voucher_on_an_order_it_would_take_nothing_off_is_refused_and_kept(
    new_program: Callable[..., ApiProgram],
) -> None:
    program = new_program()
    bo = program.enrol(first_name="Bo")
    program.adjust(bo["id"], 500)
    voucher = program.call("POST", "/v1/rewards", json=reward_body()).json()
    code = program.call("POST", f"/v1/members/{bo['id']}/redemptions", json={"reward_id": voucher["id"]}).json()
    code = code["coupon"]["code"]
    free = {"channel": "store", "order_id": "T-0", "order_total": 0}  # a free coffee day: nothing to take off
    check = {"channel": "store", "order_total": 0}
    assert_problem(
        program.call("POST", f"/v1/coupons/{code}/validate", json=check), 422, "coupon_nothing_off", "order_total"
    )
    assert_problem(program.call("POST", f"/v1/coupons/{code}/use", json=free), 422, "coupon_nothing_off", "order_total")
    assert program.call("GET", f"/v1/coupons/{code}").json()["state"] == "issued"
    paid = program.call("POST", f"/v1/coupons/{code}/use", json=free | {"order_id": "T-1", "order_total": 320})
    assert paid.status_code == 200 and paid.json()["discount"] == 320


def test_a_coupon_cart_whose_lines_add_up_past_any_order_is_refused_and_the_coupon_kept(
    new_program: Callable[..., ApiProgram],
) -> None:
    """A price typed with too many zeros on the till's cart is refused as on a purchase, not turned into a
    discount of billions."""
    program = new_program()
    bo = program.enrol(first_name="Bo")
    program.adjust(bo["id"], 500)
    percent = program.call("POST", "/v1/rewards", json=reward_body(kind="percent_off", amount=None, percent=20)).json()
    code = program.call("POST", f"/v1/members/{bo['id']}/redemptions", json={"reward_id": percent["id"]}).json()
    code = code["coupon"]["code"]
    huge = [{"sku": f"SKU-{i}", "quantity": 1, "unit_price": 10**11} for i in range(3)]
    cart = {"channel": "store", "lines": huge}
    assert_problem(program.call("POST", f"/v1/coupons/{code}/validate", json=cart), 422, "order_too_large", "lines")
    used = program.call("POST", f"/v1/coupons/{code}/use", json=cart | {"order_id": "T-9"})
    assert_problem(used, 422, "order_too_large", "lines")
    assert program.call("GET", f"/v1/coupons/{code}").json()["state"] == "issued"


def test_a_percent_coupon_that_rounds_to_nothing_says_the_total_it_was_given(
    new_program: Callable[..., ApiProgram],
) -> None:
    """10% of €0.05 is nothing: refused and kept, saying the €0.05 it saw, not "its order total is €0.00"."""
    program = new_program()
    bo = program.enrol(first_name="Bo")
    program.adjust(bo["id"], 500)
    tenth = program.call("POST", "/v1/rewards", json=reward_body(kind="percent_off", amount=None, percent=10)).json()
    code = program.call("POST", f"/v1/members/{bo['id']}/redemptions", json={"reward_id": tenth["id"]}).json()
    sent = {"channel": "store", "order_id": "T-0", "order_total": 5}
    refused = program.call("POST", f"/v1/coupons/{code['coupon']['code']}/use", json=sent)
    assert_problem(refused, 422, "coupon_nothing_off", "order_total")
    assert "€0.05" in refused.json()["detail"] and "€0.00" not in refused.json()["detail"]


def test_store_credit_cannot_be_named_as_a_reward_to_give(new_program: Callable[..., ApiProgram]) -> None:
    """A plan whose period reward is store credit would refuse every payment its processor has taken."""
    program = new_program()
    credit = program.call("POST", "/v1/rewards", json=reward_body(kind="store_credit", amount=1000)).json()
    plan = {"code": "club", "name": {"fr": "Club", "en": "Club"}, "price": 499, "period": "monthly",
            "benefits": {"period_rewards": [credit["id"]]}}  # fmt: skip
    refused = program.call("POST", "/v1/plans", json=plan)
    assert_problem(refused, 422, "reward_not_grantable", field="benefits.period_rewards[0]")
    step = {"id": "steps", "name": {"en": "Steps"}, "event": "purchase",
            "effect": {"type": "spend_step", "step": 10000, "reward_id": credit["id"]}}  # fmt: skip
    applied = program.call("POST", "/v1/program/rules", json={"rules": [step]})
    assert_problem(applied, 422, "reward_not_grantable", field="rules[0].effect.reward_id")


def test_a_members_coupons_come_by_pages_newest_first(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program()
    ann, bo = program.enrol(first_name="Ann"), program.enrol(first_name="Bo")
    program.adjust(ann["id"], 50)
    program.adjust(bo["id"], 10)
    coffee = program.call("POST", "/v1/rewards", json=reward_body(cost_points=10)).json()
    made = []
    for _ in range(5):
        redeemed = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": coffee["id"]})
        made.append(redeemed.json()["coupon"]["code"])
    path = f"/v1/members/{ann['id']}/coupons"
    pages, cursor = [], None
    while True:
        page = program.call("GET", path, params={"limit": 2} | ({"cursor": cursor} if cursor else {})).json()
        pages.append([c["code"] for c in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [made[4:2:-1], made[2:0:-1], made[:1]]  # newest first, none twice, none missed
    assert program.call("GET", path).json()["items"][0]["code"] == made[4]  # 50 by default

    theirs = program.call("POST", f"/v1/members/{bo['id']}/redemptions", json={"reward_id": coffee["id"]}).json()
    not_hers = program.call("GET", path, params={"cursor": theirs["coupon"]["id"]})
    assert_problem(not_hers, 422, "invalid_cursor", field="cursor")
    assert_problem(program.call("GET", path, params={"cursor": "cpn_nothing"}), 422, "invalid_cursor", field="cursor")
    assert program.call("GET", path, params={"limit": 201}).status_code == 422


@pytest.mark.parametrize("buyer", ["walk-in", "another member", "unlinked card"])
def test_a_purchase_sent_while_its_order_is_being_paid_with_points_sees_the_payment(
    db: Database, new_program: Callable[..., ApiProgram], monkeypatch: pytest.MonkeyPatch, buyer: str
) -> None:
    """The web shop's payment service and its order service send the same order at once, the purchase
    recorded for someone other than the payer (a walk-in, a partner's account, a card nobody has linked).
    The purchase must see the payment: €50 of points for a €1 order is refused, not both recorded."""
    program = new_program()
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 5000)
    order_id = unique("order")
    checked, recorded = threading.Event(), threading.Event()
    payment_pid: list[int] = []
    order_recorded = payments._order_recorded

    def payment_pauses_after_its_check(conn: Connection, program_id: str, order: str) -> bool:
        found = order_recorded(conn, program_id, order)
        if not checked.is_set():
            payment_pid.extend([backend_pid(conn)] if db.is_postgres else [])
            checked.set()
            recorded.wait(timeout=PATIENCE)  # the purchase is let through here unless it waits for this payment
        return found

    monkeypatch.setattr(payments, "_order_recorded", payment_pauses_after_its_check)
    rolled_back: list[str] = []  # what made the API run a command again, if anything did (said on failure)

    def noted(exc: DBAPIError) -> bool:
        rolled_back.append(repr(exc.orig))
        return transient(exc)

    monkeypatch.setattr(commands, "transient", noted)
    member: dict[str, Any] | None = {
        "walk-in": None,
        "another member": {"member_id": program.enrol(first_name="Bob")["id"]},
        "unlinked card": {"kind": "payment_card", "value": luhn_card()},
    }[buyer]
    payment = {"kind": "points", "order_id": order_id, "order_total": 10_000, "points": 5000}
    body = purchase_body(member, order_id=order_id, lines=[line("PEN", 100)])
    with ThreadPoolExecutor(2) as pool:
        paying = pool.submit(program.call, "POST", f"/v1/members/{ann['id']}/payments", json=payment)
        assert checked.wait(timeout=PATIENCE)
        buying = pool.submit(program.call, "POST", "/v1/events/purchases", json=body)
        try:  # until the purchase waits for the payment (SQLite: for the write lock, which no one sees)
            if db.is_postgres:
                until_waited_on(db, payment_pid[0], finished=buying.done)
            else:
                wait([buying], timeout=2)
        finally:
            recorded.set()
        paid, purchase = paying.result(), buying.result()
    assert paid.status_code == 201, (paid.text, rolled_back)
    refused = assert_problem(purchase, 422, "order_total_below_payment", field="order_id")
    assert (refused["paid_for_total"], refused["total"]) == (10_000, 100)
    assert program.balance(ann["id"])["available"] == 0


def test_a_free_product_coupon_takes_off_no_more_than_the_product_costs_in_the_cart(
    new_program: Callable[..., ApiProgram],
) -> None:
    """A coffee already marked down to €0.20 in the cart: the free-coffee coupon takes €0.20 off, not its
    €3.20 list price (the till would take €3.00 off the croissant too). Of two coffees with €1.00 off the
    pair, one is free at its full price."""
    program = new_program()
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 200)
    coffee = reward_body(kind="free_product", amount=None, sku="COFFEE", cost_points=100)
    reward = program.call("POST", "/v1/rewards", json=coffee).json()
    for coffees, discount in ((line("COFFEE", 320, discount=300), 20), (line("COFFEE", 320, 2, discount=100), 320)):
        redeemed = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": reward["id"]})
        code = redeemed.json()["coupon"]["code"]
        cart = {"channel": "store", "lines": [coffees, line("CROISSANT", 120)]}
        checked = program.call("POST", f"/v1/coupons/{code}/validate", json=cart)
        assert (checked.status_code, checked.json()["discount"]) == (200, discount), checked.text
        used = program.call("POST", f"/v1/coupons/{code}/use", json=cart | {"order_id": unique("T")})
        assert (used.status_code, used.json()["discount"]) == (200, discount), used.text
    assert program.balance(ann["id"])["available"] == 0


def test_a_percentage_that_rounds_to_nothing_says_the_orders_real_total(new_program: Callable[..., ApiProgram]) -> None:
    """10 % of a €0.03 order is nothing: refused and kept, saying €0.03, not that the order is €0.00."""
    program = new_program()
    bo = program.enrol(first_name="Bo", language="en")
    program.adjust(bo["id"], 500)
    ten = program.call("POST", "/v1/rewards", json=reward_body(kind="percent_off", amount=None, percent=10)).json()
    code = program.call("POST", f"/v1/members/{bo['id']}/redemptions", json={"reward_id": ten["id"]}).json()
    cart = {"channel": "store", "order_total": 3}
    for action, body in (("validate", cart), ("use", cart | {"order_id": unique("T")})):
        refused = program.call("POST", f"/v1/coupons/{code['coupon']['code']}/{action}", json=body)
        problem = assert_problem(refused, 422, "coupon_nothing_off", "order_total")
        assert "€0.03" in problem["detail"] and "€0.00" not in problem["detail"], problem


def test_a_refunded_membership_fee_ends_the_month_it_paid_for_once(
    new_program: Callable[..., ApiProgram], clock: FrozenClock
) -> None:
    program = new_program()
    delivery = program.call("POST", "/v1/rewards", json=reward_body(kind="free_shipping", amount=None)).json()
    plan = {"code": "club", "name": {"fr": "Club", "en": "Club"}, "price": 499, "period": "monthly",
            "benefits": {"period_rewards": [delivery["id"]]}}  # fmt: skip
    assert program.call("POST", "/v1/plans", json=plan).status_code == 201
    ann = program.enrol(first_name="Ann")
    fee = {"payment_id": "ch_3PqX", "member_id": ann["id"], "plan": "club", "amount": 499,
           "paid_at": clock.now().isoformat()}  # fmt: skip
    assert program.call("POST", "/v1/memberships/payments", json=fee).status_code == 200
    path = "/v1/memberships/payments/ch_3PqX/refund"
    assert_problem(program.call("POST", path, json={"note": spaced(luhn_card())}), 422, "card_number_in_text", "note")
    assert_problem(program.call("POST", path, json={"amount": 499}), 422, "unknown_field", "amount")  # the whole fee
    unknown = program.call("POST", "/v1/memberships/payments/ch_nobody/refund", json={})
    assert_problem(unknown, 404, "payment_not_found", "payment_id")
    refunded = program.call("POST", path, json={"note": "Withdrawal"}, headers={"Idempotency-Key": "r-1"})
    assert refunded.status_code == 200, refunded.text
    body = refunded.json()
    assert body["time_taken_back"] and body["membership"]["state"] == "lapsed" and len(body["coupons_cancelled"]) == 1
    coupons = program.call("GET", f"/v1/members/{ann['id']}/coupons").json()["items"]
    assert [c["state"] for c in coupons] == ["cancelled"]
    again = program.call("POST", path, json={})  # the processor's webhook, sent again: the first refund
    assert again.status_code == 200 and again.json() == body


def test_a_coupon_keeps_the_terms_it_was_issued_with_when_its_reward_is_edited(
    new_program: Callable[..., ApiProgram],
) -> None:
    """A €5 voucher bought for 500 points gives €5, on any channel, from any order, and keeps its title, after
    the merchant has made the reward a €1 voucher for the web shop from €20; coupons redeemed after the edit get
    the new terms."""
    program = new_program(return_window_days=0)
    ann = program.enrol(first_name="Ann", language="en")
    program.adjust(ann["id"], 1_000)
    reward = program.call("POST", "/v1/rewards", json=reward_body()).json()
    old = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": reward["id"]}).json()
    old_code = old["coupon"]["code"]
    assert (old["coupon"]["amount"], old["coupon"]["min_order"], old["coupon"]["channels"]) == (500, None, None)

    edited = program.call(
        "PATCH",
        f"/v1/rewards/{reward['id']}",
        json={"amount": 100, "min_order": 2_000, "channels": ["web"], "title": {"fr": "Bon de 1 €", "en": "€1 off"}},
    )
    assert edited.status_code == 200, edited.text
    new = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": reward["id"]}).json()
    new_code = new["coupon"]["code"]
    assert (new["coupon"]["amount"], new["coupon"]["min_order"], new["coupon"]["channels"]) == (100, 2_000, ["web"])

    till = program.make_key("pos", name="till 1")
    shown = program.call("GET", f"/v1/coupons/{old_code}", key=till).json()
    assert (shown["amount"], shown["min_order"], shown["channels"]) == (500, None, None)
    assert shown["title"] == old["coupon"]["title"] != new["coupon"]["title"]  # not "€1 off" on a €5 coupon
    cart = {"channel": "store", "member_id": ann["id"], "order_total": 1_000}
    check = program.call("POST", f"/v1/coupons/{old_code}/validate", key=till, json=cart)
    assert check.status_code == 200, check.text
    assert (check.json()["discount"], check.json()["describes"]) == (500, "€5.00 off")
    refused = program.call("POST", f"/v1/coupons/{new_code}/validate", key=till, json=cart)
    assert_problem(refused, 422, "coupon_wrong_channel", field="channel")
    on_web = program.call("POST", f"/v1/coupons/{new_code}/validate", key=till, json=cart | {"channel": "web"})
    assert_problem(on_web, 422, "coupon_min_order", field="order_total")

    used = program.call("POST", f"/v1/coupons/{old_code}/use", key=till, json=cart | {"order_id": "T-1"})
    assert used.status_code == 200, used.text
    assert (used.json()["discount"], used.json()["amount"]) == (500, 500)
    web_order = {"channel": "web", "order_id": "W-1", "order_total": 2_500}
    used = program.call("POST", f"/v1/coupons/{new_code}/use", key=till, json=web_order)
    assert used.status_code == 200, used.text
    assert used.json()["discount"] == 100
    listed = program.call("GET", f"/v1/members/{ann['id']}/coupons").json()["items"]
    assert [(c["code"], c["amount"], c["min_order"], c["title"]["en"]) for c in listed] == [
        (new_code, 100, 2_000, "€1 off"),
        (old_code, 500, None, old["coupon"]["title"]["en"]),
    ]


def test_a_coupon_keeps_its_percentage_and_product_when_its_reward_is_edited(
    new_program: Callable[..., ApiProgram],
) -> None:
    program = new_program(return_window_days=0)
    ann = program.enrol(first_name="Ann", language="en")
    program.adjust(ann["id"], 1_000)
    percent = program.call(
        "POST", "/v1/rewards", json=reward_body(kind="percent_off", amount=None, percent=20, max_discount=1_000)
    ).json()
    coffee = program.call(
        "POST", "/v1/rewards", json=reward_body(kind="free_product", amount=None, sku="COFFEE", cost_points=100)
    ).json()
    codes = [
        program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": r["id"]}).json()["coupon"]
        for r in (percent, coffee)
    ]
    for reward, change in ((percent, {"percent": 5, "max_discount": 100}), (coffee, {"sku": "TEA"})):
        assert program.call("PATCH", f"/v1/rewards/{reward['id']}", json=change).status_code == 200
    off = program.call(
        "POST", f"/v1/coupons/{codes[0]['code']}/validate", json={"channel": "web", "order_total": 10_000}
    ).json()
    assert (off["discount"], off["describes"]) == (1_000, "20% off (at most €10.00)")
    cart = {"channel": "store", "lines": [line("COFFEE", 250)]}
    free = program.call("POST", f"/v1/coupons/{codes[1]['code']}/validate", json=cart).json()
    assert (free["discount"], free["describes"], free["coupon"]["sku"]) == (250, "Free: COFFEE", "COFFEE")


def test_a_reward_reserved_to_a_tier_segment_or_plan_that_does_not_exist_is_refused(
    new_program: Callable[..., ApiProgram],
) -> None:
    """A mistyped code would hide the reward from everyone: it is refused, naming the code's place."""
    program = new_program()
    assert program.call("PUT", "/v1/tiers", json=WORLD_TIERS).status_code == 200
    assert program.call("POST", "/v1/segments", json=WORLD_SEGMENT).status_code == 201
    assert program.call("POST", "/v1/plans", json=WORLD_PLAN).status_code == 201
    for eligibility, code, field in (
        ({"tiers": ["gold", "gld"]}, "unknown_tier", "eligibility.tiers[1]"),
        ({"segments": ["tops"]}, "unknown_segment", "eligibility.segments[0]"),
        ({"plans": ["Club"]}, "unknown_plan", "eligibility.plans[0]"),
    ):
        refused = program.call("POST", "/v1/rewards", json=reward_body(eligibility=eligibility))
        assert_problem(refused, 422, code, field)
    assert "its tiers: silver, gold" in refused_detail(program, {"tiers": ["platinum"]})
    assert program.call("GET", "/v1/rewards").json() == []  # nothing written

    audience = {"tiers": ["gold"], "segments": ["top"], "plans": ["club"]}
    made = program.call("POST", "/v1/rewards", json=reward_body(eligibility=audience))
    assert made.status_code == 201, made.text
    reward_id = made.json()["id"]
    changed = program.call("PATCH", f"/v1/rewards/{reward_id}", json={"eligibility": {"tiers": ["silvr"]}})
    assert_problem(changed, 422, "unknown_tier", "eligibility.tiers[0]")
    assert program.call("GET", f"/v1/rewards/{reward_id}").json()["eligibility"] == audience  # unchanged
    assert program.call("PATCH", f"/v1/rewards/{reward_id}", json={"cost_points": 400}).status_code == 200


def refused_detail(program: ApiProgram, eligibility: dict[str, Any]) -> str:
    detail: str = program.call("POST", "/v1/rewards", json=reward_body(eligibility=eligibility)).json()["detail"]
    return detail


def test_tiers_that_drop_a_tier_a_reward_is_reserved_to_are_refused_until_the_reward_changes(
    new_program: Callable[..., ApiProgram],
) -> None:
    program = new_program()
    assert program.call("PUT", "/v1/tiers", json=WORLD_TIERS).status_code == 200
    made = program.call("POST", "/v1/rewards", json=reward_body(eligibility={"tiers": ["gold"]}))
    reward_id = made.json()["id"]
    without_gold = WORLD_TIERS | {"tiers": WORLD_TIERS["tiers"][:1]}
    refused = assert_problem(program.call("PUT", "/v1/tiers", json=without_gold), 422, "tier_in_use", "tiers")
    assert refused["reward_id"] == reward_id and f"Reward {reward_id} names tier 'gold'" in refused["detail"]
    assert [t["code"] for t in program.call("GET", "/v1/tiers").json()["tiers"]] == ["silver", "gold"]  # unchanged
    renamed = WORLD_TIERS | {
        "tiers": [WORLD_TIERS["tiers"][0], WORLD_TIERS["tiers"][1] | {"name": {"fr": "Or+", "en": "Gold+"}}]
    }
    assert program.call("PUT", "/v1/tiers", json=renamed).status_code == 200  # a new name keeps the code
    moved = program.call("PATCH", f"/v1/rewards/{reward_id}", json={"eligibility": {"tiers": ["silver"]}})
    assert moved.status_code == 200, moved.text
    assert program.call("PUT", "/v1/tiers", json=without_gold).status_code == 200


def test_tiers_that_drop_a_tier_the_rules_or_a_segment_test_are_refused(
    new_program: Callable[..., ApiProgram],
) -> None:
    from tests.api.test_rules_api import RULES

    program = new_program()
    assert program.call("PUT", "/v1/tiers", json=WORLD_TIERS).status_code == 200
    without_gold = WORLD_TIERS | {"tiers": WORLD_TIERS["tiers"][:1]}
    vip = {**RULES["rules"][0], "id": "gold-bonus", "conditions": {"tiers": ["gold"]}}
    applied = program.call("POST", "/v1/program/rules", json={"rules": [RULES["rules"][0], vip]})
    assert applied.status_code in (200, 201), applied.text
    refused = assert_problem(program.call("PUT", "/v1/tiers", json=without_gold), 422, "tier_in_use", "tiers")
    assert refused["rule"] == "gold-bonus" and "Rule gold-bonus (rules[1]" in refused["detail"]
    assert program.call("POST", "/v1/program/rules", json={"rules": [RULES["rules"][0]]}).status_code in (200, 201)

    golden = {"code": "golden", "name": {"fr": "Or", "en": "Gold"},
              "conditions": [{"field": "tier", "op": "in", "value": ["silver", "gold"]}]}  # fmt: skip
    assert program.call("POST", "/v1/segments", json=golden).status_code == 201
    refused = assert_problem(program.call("PUT", "/v1/tiers", json=without_gold), 422, "tier_in_use", "tiers")
    assert refused["segment"] == "golden"
    silver_only = golden | {"conditions": [{"field": "tier", "op": "=", "value": "silver"}]}
    assert program.call("PUT", "/v1/segments/golden", json=silver_only).status_code == 200
    assert program.call("PUT", "/v1/tiers", json=without_gold).status_code == 200


def test_a_coupon_past_its_date_reads_expired_before_the_job_closes_it(new_program: Callable[..., ApiProgram]) -> None:
    """The till and checkout refuse it at once: the lookup and the member's list say so too."""
    program = new_program(return_window_days=0)
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 500)
    reward = program.call("POST", "/v1/rewards", json=reward_body(cost_points=100, valid_days=1)).json()
    coupon = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": reward["id"]}).json()
    code = coupon["coupon"]["code"]
    clock: FrozenClock = program.client.app.state.clock  # type: ignore[attr-defined]
    assert program.call("GET", f"/v1/coupons/{code}").json()["state"] == "issued"
    clock.advance(days=2)  # past its date; the expiry job has not run

    found = program.call("GET", f"/v1/coupons/{code}").json()
    assert (found["state"], found["closed_at"]) == ("expired", found["expires_at"])
    listed = f"/v1/members/{ann['id']}/coupons"
    assert program.call("GET", listed, params={"state": "issued"}).json()["items"] == []
    assert [c["code"] for c in program.call("GET", listed, params={"state": "expired"}).json()["items"]] == [code]
    assert [c["state"] for c in program.call("GET", listed).json()["items"]] == ["expired"]
    assert_problem(
        program.call("POST", f"/v1/coupons/{code}/validate", json={"channel": "store", "member_id": ann["id"]}),
        422,
        "coupon_expired",
    )
