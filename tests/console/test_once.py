"""Console and till forms act once: the same form posted twice (a double click without JavaScript, the
browser's back then send again, a proxy's retry) is answered with what the first post did, and does
nothing more: one adjustment, one key, one audit entry. A refused post uses nothing up."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from palier.clock import FrozenClock
from palier.db import Database
from palier.programs.tables import audit_entries
from palier.sessions import once
from palier.web.render import TEMPLATES_DIR
from tests.api.helpers import ApiProgram, reward_body
from tests.console.conftest import sign_in


def form_of(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the page's form posting to ``action`` (its CSRF and one-time tokens)."""
    found = re.search(rf'<form method="post" action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S)
    assert found, f"no form posting to {action}"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', found.group(1)))


def actions(db: Database, subject_id: str) -> list[str]:
    with db.read() as conn:
        rows = conn.execute(select(audit_entries.c.action).where(audit_entries.c.subject_id == subject_id))
        return [row.action for row in rows]


def test_an_adjustment_posted_twice_gives_the_points_once_and_answers_the_second_with_the_first(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    ann = program.enrol(first_name="Ann")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    action = f"/console/members/{ann['id']}/adjust"
    form = form_of(client.get(f"/console/members/{ann['id']}?lang=en").text, action)
    assert form.get("once"), "the adjustment form carries no one-time token"
    form |= {"points": "50", "reason": "Broken cup"}

    first = client.post(action, data=form, follow_redirects=False)
    second = client.post(action, data=form, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert second.headers["location"] == first.headers["location"]
    assert "Adjustment recorded: +50" in client.get(second.headers["location"]).text  # what the second tap shows
    assert program.balance(ann["id"])["available"] == 50
    assert [line["reason"] for line in program.history(ann["id"]) if line.get("reason")] == ["Broken cup"]
    assert actions(db, ann["id"]).count("member.adjusted") == 1

    again = form_of(client.get(f"/console/members/{ann['id']}").text, action)  # the page shown again: a new form
    assert again["once"] != form["once"]
    done = client.post(action, data=again | {"points": "50", "reason": "Broken cup"}, follow_redirects=False)
    assert done.status_code == 303 and program.balance(ann["id"])["available"] == 100  # a new form acts


def test_a_refused_post_uses_nothing_up_and_the_corrected_form_goes_through(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    action = f"/console/members/{ann['id']}/adjust"
    form = form_of(client.get(f"/console/members/{ann['id']}").text, action)
    refused = client.post(action, data=form | {"points": "-10", "reason": "Oops"}, follow_redirects=False)
    assert refused.status_code == 422 and program.balance(ann["id"])["available"] == 0  # no points to take
    done = client.post(action, data=form | {"points": "10", "reason": "Oops"}, follow_redirects=False)
    assert done.status_code == 303 and program.balance(ann["id"])["available"] == 10


def test_two_posts_of_one_form_at_the_same_moment_act_once(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    ann = program.enrol(first_name="Ann")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    action = f"/console/members/{ann['id']}/adjust"
    form = form_of(client.get(f"/console/members/{ann['id']}").text, action) | {"points": "30", "reason": "Twice"}
    answers: list[int] = []
    start = threading.Barrier(2)

    def post() -> None:
        other = TestClient(client.app, cookies=dict(client.cookies))  # the same browser, another connection
        start.wait()
        answers.append(other.post(action, data=form, follow_redirects=False).status_code)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [303, 303]
    assert program.balance(ann["id"])["available"] == 30
    assert actions(db, ann["id"]).count("member.adjusted") == 1


def test_a_key_form_posted_twice_makes_one_key_and_says_so_without_its_secret(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    form = form_of(client.get("/console/keys?lang=en").text, "/console/keys") | {"name": "Till 7", "scopes": "pos"}
    made = client.post("/console/keys", data=form)
    assert made.status_code == 201 and 'id="new-secret"' in made.text
    again = client.post("/console/keys", data=form)  # followed to the page the second post leads to
    assert again.status_code == 200 and 'id="new-secret"' not in again.text
    assert "This form had already been sent: the key Till 7 was made then, once." in again.text
    keys = [key for key in program.call("GET", "/v1/keys").json() if key["name"] == "Till 7"]
    assert len(keys) == 1 and actions(db, keys[0]["id"]) == ["key.created"]


def test_a_till_sale_posted_twice_earns_once(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    action = f"/till/members/{ann['id']}/sale"
    form = form_of(client.get(f"/till/members/{ann['id']}").text, action) | {"order_total": "25,00"}
    first = client.post(action, data=form, follow_redirects=False)
    second = client.post(action, data=form | {"order_id": "T-OTHER"}, follow_redirects=False)  # resent, retyped
    assert first.status_code == second.status_code == 303
    assert second.headers["location"] == first.headers["location"]
    balance = program.balance(ann["id"])
    assert balance["available"] + balance["pending"] == 25


def test_a_till_payment_in_points_and_a_coupon_use_posted_twice_act_once(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 500)
    reward = program.call("POST", "/v1/rewards", json=reward_body(cost_points=10)).json()
    redeemed = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": reward["id"]})
    code = redeemed.json()["coupon"]["code"]
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    page = client.get(f"/till/members/{ann['id']}").text
    pay, use = f"/till/members/{ann['id']}/pay", f"/till/members/{ann['id']}/coupons/{code}/use"
    for action, form in ((pay, {"kind": "points", "order_total": "20,00", "points": "30"}),
                         (use, {"order_total": "20,00"})):  # fmt: skip
        sent = form_of(page, action) | form
        first = client.post(action, data=sent, follow_redirects=False)
        second = client.post(action, data=sent, follow_redirects=False)  # a double tap on the till's button
        assert first.status_code == second.status_code == 303, second.text
        assert second.headers["location"] == first.headers["location"]
    balance = program.balance(ann["id"])
    assert (balance["available"], balance["held"]) == (460, 0)  # 500 - 10 (coupon, used once) - 30 (paid once)
    coupons = program.call("GET", f"/v1/members/{ann['id']}/coupons").json()
    assert [c["state"] for c in coupons.get("items", coupons)] == ["used"]


# Posted forms that write nothing (searches, signing in and out, a test call to the webhook).
NOT_WRITES = ("/console/sign-in", "/console/sign-out", "/console/members", "/merge/find", "/till",
              "/till/new-member/start", "/console/settings/webhook/test")  # fmt: skip


def test_every_write_form_of_the_console_and_the_till_carries_a_one_time_token() -> None:
    missing = []
    for template in sorted(Path(TEMPLATES_DIR, "console").glob("*.html")):
        html = template.read_text()
        for found in re.finditer(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', html, re.S):
            action, body = found.groups()
            if action.endswith(NOT_WRITES):
                continue
            if "once_field()" not in body:
                missing.append(f"{template.name}: {action}")
    assert missing == [], f"write forms without {{{{ once_field() }}}}: {missing}"


def test_a_form_sent_again_whose_first_answer_cannot_be_shown_again_says_it_was_done(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database, clock: FrozenClock
) -> None:
    ann = program.enrol(first_name="Ann")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    action = f"/console/members/{ann['id']}/adjust"
    form = form_of(client.get(f"/console/members/{ann['id']}?lang=en").text, action)
    with db.write() as conn:  # its first post acted, and answered with a page of its own
        once.claim(conn=conn, clock=clock, token=form["once"], posted_by="stf_x", action=action)
    again = client.post(action, data=form | {"points": "50", "reason": "Broken cup"}, follow_redirects=False)
    assert again.status_code == 409 and "Already done" in again.text and "was not done a second time" in again.text
    assert program.balance(ann["id"])["available"] == 0
