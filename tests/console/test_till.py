"""The till over HTTP: a coupon scanned that can no longer be used says why and since when."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from palier.clock import FrozenClock
from palier.db import Database
from palier.rewards import service as rewards
from palier.web.present import display_code
from tests.api.helpers import ApiProgram, reward_body
from tests.console.conftest import csrf_of, sign_in


def _coupon(program: ApiProgram, member_id: str, **reward: Any) -> str:
    made = program.call("POST", "/v1/rewards", json=reward_body(cost_points=10, **reward)).json()
    redeemed = program.call("POST", f"/v1/members/{member_id}/redemptions", json={"reward_id": made["id"]})
    return str(redeemed.json()["coupon"]["code"])


def test_a_coupon_scanned_that_cannot_be_used_says_which_way_and_when(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], clock: FrozenClock, db: Database
) -> None:
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 100)
    used, cancelled = _coupon(program, ann["id"]), _coupon(program, ann["id"])
    web_only = _coupon(program, ann["id"], channels=["web"])
    expiring = _coupon(program, ann["id"], valid_days=1)
    staff = add_staff(program.id, "store_staff")
    assert sign_in(client, staff).status_code == 303
    token = csrf_of(client.get(f"/till/members/{ann['id']}").text)
    use = {"csrf": token, "order_id": "T1000-ABCDE", "order_total": "20,00"}
    assert client.post(f"/till/members/{ann['id']}/coupons/{used}/use", data=use).status_code == 200
    assert program.call("POST", f"/v1/coupons/{cancelled}/cancel", json={}).status_code == 200
    clock.advance(days=2)
    assert sign_in(client, staff).status_code == 303  # the session has run out meanwhile
    unswept = client.get(f"/till/members/{ann['id']}?ok=scanned&code={expiring}").text  # the job has not run yet
    assert "a expiré le 3 mars 2026, 10:00." in unswept and f'data-code="{expiring}"' not in unswept
    assert rewards.expire_coupons(db, clock, program_id=program.id) == 1  # the worker's sweep

    def scanned(code: str, language: str = "fr") -> str:
        return client.get(f"/till/members/{ann['id']}?ok=scanned&code={code}&lang={language}").text

    assert (
        f"Le bon {display_code(used)} de ce client a déjà servi le 2 mars 2026, 10:00, sur le ticket T1000-ABCDE."
        in scanned(used)
    )
    assert f"coupon {display_code(used)} was already used on 2 March 2026, 10:00, on ticket T1000-ABCDE" in scanned(
        used, "en"
    )
    assert f"Le bon {display_code(cancelled)} de ce client a été annulé le 2 mars 2026, 10:00." in scanned(cancelled)
    assert f"Le bon {display_code(expiring)} de ce client a expiré le 3 mars 2026, 10:00." in scanned(expiring)
    assert f"coupon {display_code(expiring)} expired on 3 March 2026, 10:00." in scanned(expiring, "en")
    assert "ne sert pas en magasin, seulement ici : En ligne." in scanned(web_only)


def test_the_ticket_number_suggested_gives_the_time_in_the_programs_time_zone(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], clock: FrozenClock
) -> None:
    ann = program.enrol(first_name="Ann")
    clock.set(datetime(2026, 3, 2, 23, 30, tzinfo=UTC))  # 00:30 on 3 March in Paris
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    page = client.get(f"/till/members/{ann['id']}").text
    assert re.search(r'name="order_id" type="text" value="T0030-[A-Z]{5}"', page), "not the time in Paris"


def test_a_coupon_kept_for_months_is_offered_at_the_till_however_many_came_after_it(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], clock: FrozenClock
) -> None:
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 1000)
    kept = _coupon(program, ann["id"])
    clock.advance(days=1)
    coffee = program.call("POST", "/v1/rewards", json=reward_body(cost_points=10)).json()
    for _ in range(55):  # a regular who redeems and cancels (or uses) a coffee every visit
        clock.advance(seconds=3)  # within the redemption rate limit
        code = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": coffee["id"]})
        assert program.call("POST", f"/v1/coupons/{code.json()['coupon']['code']}/cancel", json={}).status_code == 200
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    till = client.get(f"/till/members/{ann['id']}").text
    assert f'data-code="{kept}"' in till  # its Use button, although 55 newer coupons came after it


def test_each_use_button_names_its_coupon(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 100)
    codes = [_coupon(program, ann["id"]) for _ in range(2)]
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    page = client.get(f"/till/members/{ann['id']}").text
    for code in codes:
        assert re.search(rf'data-code="{code}" aria-label="Utiliser le coupon {display_code(code)}">Utiliser<', page)


def test_a_phone_number_is_kept_on_one_line(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann", phone="+33612345678")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    for path in (f"/till/members/{ann['id']}", f"/console/members/{ann['id']}"):
        assert '<span class="nowrap">+33 6 12 34 56 78</span>' in client.get(path).text, path


def test_a_coupon_shows_and_gives_the_terms_it_was_issued_with_after_its_reward_is_edited(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 100)
    made = program.call("POST", "/v1/rewards", json=reward_body(cost_points=10)).json()
    kept = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": made["id"]}).json()
    kept = kept["coupon"]["code"]
    edit = {"amount": 100, "min_order": 2_000, "channels": ["web"]}  # €1 from €20, on the web shop only
    assert program.call("PATCH", f"/v1/rewards/{made['id']}", json=edit).status_code == 200
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    till = client.get(f"/till/members/{ann['id']}").text
    assert f'data-code="{kept}"' in till and "5,00\u00a0€ de remise" in till  # still for the store, still €5
    looked_up = client.get(f"/console/coupons?code={kept}").text
    assert "5,00\u00a0€ de remise" in looked_up and "1,00\u00a0€" not in looked_up
    token = csrf_of(till)
    use = {"csrf": token, "order_id": "T1000-ABCDE", "order_total": "10,00"}
    assert client.post(f"/till/members/{ann['id']}/coupons/{kept}/use", data=use).status_code == 200
    assert program.call("GET", f"/v1/coupons/{kept}").json()["discount"] == 500
    new = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": made["id"]}).json()
    looked_up = client.get(f"/console/coupons?code={new['coupon']['code']}").text
    assert "1,00\u00a0€ de remise, dès 20,00\u00a0€ d&#39;achat" in looked_up


def test_store_staff_redeem_a_reward_for_the_customer_at_the_counter_and_use_its_coupon_at_once(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    from tests.console.test_once import form_of

    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 100)
    croissant = program.call(
        "POST", "/v1/rewards", json=reward_body(kind="free_product", sku="CROISSANT", cost_points=60, amount=None,
                                                 title={"fr": "Croissant offert", "en": "Free croissant"}),
    ).json()  # fmt: skip
    far = program.call("POST", "/v1/rewards", json=reward_body(cost_points=500)).json()
    web = program.call("POST", "/v1/rewards", json=reward_body(cost_points=10, channels=["web"])).json()
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    page = client.get(f"/till/members/{ann['id']}").text
    redeem = f"/till/members/{ann['id']}/rewards/{croissant['id']}/redeem"
    assert "Échanger une récompense" in page and "Croissant offert" in page
    assert f'action="/till/members/{ann["id"]}/rewards/{far["id"]}/redeem"' not in page  # not enough points: no button
    assert re.search(r"Bon de 5 €</strong>.*?Plus que 400 points<", page, re.S)
    assert web["id"] not in page  # a web-only reward is not redeemed at the counter

    form = form_of(page, redeem)
    done = client.post(redeem, data=form, follow_redirects=False)
    assert done.status_code == 303, done.text
    again = client.post(redeem, data=form, follow_redirects=False)  # a double tap: one coupon, the points taken once
    assert again.headers["location"] == done.headers["location"]
    coupons = program.call("GET", f"/v1/members/{ann['id']}/coupons").json()["items"]
    assert [c["reward_id"] for c in coupons] == [croissant["id"]]
    shown = client.get(done.headers["location"]).text
    code = display_code(coupons[0]["code"])
    assert f"Récompense échangée contre 60 points : Croissant offert. Coupon {code}, à utiliser ci-dessous." in shown
    assert f'data-code="{coupons[0]["code"]}"' in shown  # its Use button, ready for this ticket
    balance = program.call("GET", f"/v1/members/{ann['id']}/balance").json()
    assert (balance["available"], balance["held"]) == (40, 60)

    assert f'action="{redeem}"' not in shown  # 40 points left: no button now, and the form sent from a stale page
    fresh = form_of(shown, f"/till/members/{ann['id']}/pay")  # tokens a page gives
    refused = client.post(redeem, data=fresh)
    assert refused.status_code == 422 and "Il faut 60 points ; le membre en a 40." in refused.text


def test_a_marketer_redeems_nothing_at_the_till(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 100)
    made = program.call("POST", "/v1/rewards", json=reward_body(cost_points=10)).json()
    assert sign_in(client, add_staff(program.id, "marketer")).status_code == 303
    token = csrf_of(client.get("/console/members").text)
    refused = client.post(f"/till/members/{ann['id']}/rewards/{made['id']}/redeem", data={"csrf": token})
    assert refused.status_code == 403
    assert program.call("GET", f"/v1/members/{ann['id']}/coupons").json()["items"] == []


def test_store_credit_redeemed_at_the_till_says_what_landed_in_the_wallet(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    from tests.console.test_once import form_of

    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 100)
    title = {"fr": "Avoir de 5 €", "en": "€5 credit"}
    credit = program.call("POST", "/v1/rewards", json=reward_body(kind="store_credit", cost_points=80, title=title))
    credit = credit.json()
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    redeem = f"/till/members/{ann['id']}/rewards/{credit['id']}/redeem"
    done = client.post(redeem, data=form_of(client.get(f"/till/members/{ann['id']}").text, redeem))
    assert done.status_code == 200, done.text
    assert "Récompense échangée contre 80 points : Avoir de 5 €. 5,00\u00a0€ ajoutés à son avoir." in done.text
    assert program.call("GET", f"/v1/members/{ann['id']}/wallet").json()["balance"] == 500


def test_the_till_shows_the_customer_a_qr_code_that_signs_them_in_to_their_portal_on_their_phone(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    from tests.console.test_once import form_of

    ann = program.enrol(first_name="Ann", email="ann@example.com")
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    action = f"/till/members/{ann['id']}/portal-link"
    form = form_of(client.get(f"/till/members/{ann['id']}").text, action)
    shown = client.post(action, data=form, follow_redirects=False)
    assert shown.status_code == 201, shown.text
    assert "elle scanne ce code avec son téléphone" in shown.text and '<svg role="img"' in shown.text
    link = re.search(rf'href="(http://testserver/p/{program.id}/enter\?token=[^"]+)"', shown.text)
    assert link, shown.text
    assert shown.headers["cache-control"] == "no-store"
    again = client.post(action, data=form, follow_redirects=False)  # a double tap: the link is not shown twice
    assert again.status_code == 303 and "token" not in again.headers["location"]
    client.post("/console/sign-out", data={"csrf": csrf_of(client.get(f"/till/members/{ann['id']}").text)})
    opened = client.get(link.group(1).replace("&amp;", "&"))
    assert "Continuer en tant que Ann (a•••@example.com)" in opened.text


def test_the_till_page_of_a_merged_or_erased_member_says_so_and_offers_nothing_to_record(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    kept, duplicate = program.enrol(first_name="Ann"), program.enrol(first_name="Anne")
    gone = program.enrol(first_name="Dan")
    merged = {"source_member_id": duplicate["id"], "target_member_id": kept["id"]}
    assert program.call("POST", "/v1/members/merge", json=merged).status_code == 200
    assert program.call("POST", f"/v1/members/{gone['id']}/erase", json={"reason": "asked"}).status_code == 200
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303  # a page left open meanwhile

    page = client.get(f"/till/members/{duplicate['id']}").text
    assert "Ce compte a été fusionné dans un autre" in page and f'href="/till/members/{kept["id"]}"' in page
    assert f'action="/till/members/{duplicate["id"]}/' not in page  # nothing to record on the closed account
    english = client.get(f"/till/members/{duplicate['id']}?lang=en").text
    assert "This account was merged into another" in english

    page = client.get(f"/till/members/{gone['id']}?lang=fr").text
    assert "Ce client a été effacé à sa demande : plus rien ne peut être enregistré pour lui." in page
    assert f'action="/till/members/{gone["id"]}/' not in page  # neither a sale, a payment nor a refund to send


def test_the_till_finds_a_customer_by_a_phone_number_written_the_french_way(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann", phone="+33612345678")
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    token = csrf_of(client.get("/till").text)
    for typed in ("06 12 34 56 78", "06.12.34.56.78", "06-12-34-56-78", "+33 (0)6 12 34 56 78"):
        found = client.post("/till", data={"csrf": token, "q": typed}, follow_redirects=False)
        assert found.headers.get("location") == f"/till/members/{ann['id']}", typed


def test_a_coupon_refused_at_the_till_names_the_box_at_fault_and_keeps_what_was_typed(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 100)
    code = _coupon(program, ann["id"], min_order=2000)
    other = _coupon(program, ann["id"])
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    token = csrf_of(client.get(f"/till/members/{ann['id']}").text)
    use = f"/till/members/{ann['id']}/coupons/{code}/use"

    mistyped = client.post(use, data={"csrf": token, "order_id": "T1000-ABCDE", "order_total": "1O,00"})
    assert mistyped.status_code == 422
    assert "Total du ticket : Saisissez un montant, par exemple 12,50." in mistyped.text
    form = mistyped.text.split(f'action="{use}"', 1)[1].split("</form>", 1)[0]  # the form of that coupon
    assert 'value="T1000-ABCDE"' in form and 'value="1O,00"' in form  # to correct, not to type again
    assert re.search(r'name="order_total"[^>]*aria-invalid="true"', form), form
    assert 'id="till-field-error">Total du ticket : Saisissez un montant' in form  # said there too, under the boxes
    another = mistyped.text.split(f'coupons/{other}/use"', 1)[1].split("</form>", 1)[0]
    assert "aria-invalid" not in another and "1O,00" not in another  # the other coupon's form is left alone

    below = client.post(use, data={"csrf": token, "order_id": "T1000-ABCDE", "order_total": "10,00"})
    assert below.status_code == 422
    assert "Total du ticket : Ce coupon demande un achat d'au moins 20,00\u00a0€." in html.unescape(below.text)
    assert program.balance(ann["id"])["held"] == 20  # both coupons still there to use


def test_store_staff_checking_a_coupon_go_from_its_holder_to_their_till_page(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann", last_name="Lee")
    program.adjust(ann["id"], 100)
    code = _coupon(program, ann["id"])
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    checked = client.get("/console/coupons", params={"code": display_code(code).lower()})
    assert checked.status_code == 200 and "Ann Lee" in checked.text
    holder = re.search(r'<a href="([^"]+)">Ann Lee</a>', checked.text)
    assert holder is not None and holder.group(1) == f"/till/members/{ann['id']}"  # not a page they may not open
    assert client.get(holder.group(1)).status_code == 200
