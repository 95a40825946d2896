"""Console and till forms over HTTP: what is saved, what is refused (and shown), and the audit trail."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import select

from palier.db import Database
from palier.notify import outbox, webhooks
from palier.programs.tables import audit_entries
from palier.web import i18n
from tests.api.helpers import ApiProgram, luhn_card
from tests.console.conftest import csrf_of, sign_in
from tests.receiver import Receiver

TIERS_BAD = (
    "metric: spend\nwindow: rolling_months\ntiers:\n- code: silver\n  name: {fr: Argent, en: Silver}\n  threshold: -5\n"
)


def admin(client: TestClient, program: ApiProgram, add_staff: Callable[..., str]) -> str:
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    return csrf_of(client.get("/console/settings").text)


def test_settings_are_saved_audited_and_bad_values_shown_next_to_their_field(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    token = admin(client, program, add_staff)
    form = client.get("/console/settings").text
    assert 'value="Europe/Paris"' in form
    sent = {"csrf": token, "name": "Maison Réglée", "points_name": "grains", "timezone": "Europe/Paris",
            "default_country": "FR", "rounding": "floor", "return_shortfall": "debt", "enrolment": "open",
            "earn_points": "3", "earn_per_amount": "100", "return_window_days": "14", "welcome_points": "50",
            "redeem_points": "100", "redeem_amount": "100", "pay_with_points_max_percent": "50",
            "points_lifetime_months": "", "expiry_warning_days": "21", "earn_on_tax": "on"}  # fmt: skip
    saved = client.post("/console/settings", data=sent, follow_redirects=False)
    assert saved.status_code == 303
    now = program.call("GET", "/v1/program").json()
    assert (now["name"], now["earn_points"], now["welcome_points"], now["expiry_warning_days"]) == (
        "Maison Réglée",
        3,
        50,
        21,
    )
    assert now["points_lifetime_months"] is None and now["earn_on_tax"] is True and now["earn_on_shipping"] is False
    with db.read() as conn:
        actors = conn.execute(
            select(audit_entries.c.actor).where(
                audit_entries.c.program_id == program.id, audit_entries.c.action == "program.updated"
            )
        ).scalars()
        assert any(actor.startswith("staff:stf_") for actor in actors)
    refused = client.post("/console/settings", data=sent | {"timezone": "Mars/Olympus", "earn_points": "-1"})
    assert refused.status_code == 422
    assert "Rien n&#39;a été enregistré" in refused.text and "Fuseau horaire inconnu" in refused.text
    assert 'value="Mars/Olympus"' in refused.text  # what was typed is kept
    assert program.call("GET", "/v1/program").json()["timezone"] == "Europe/Paris"


def test_once_rules_are_applied_the_settings_show_the_base_rate_as_set_by_them(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = admin(client, program, add_staff)
    rules = program.call("GET", "/v1/program/rules").json()["document"]
    assert program.call("POST", "/v1/program/rules", json=rules).status_code == 201
    form = client.get("/console/settings").text
    assert "Les achats gagnent selon les règles de gain (version 1)" in form and 'href="/console/rules"' in form
    assert re.search(r'<input id="earn_points"[^>]*\bdisabled\b', form)
    values = dict(re.findall(r'<input id="(\w+)" name="\w+" type="(?:text|number)" value="([^"]*)"', form))
    sent = {k: v for k, v in values.items() if k not in ("earn_points", "earn_per_amount")}  # disabled: not sent
    sent |= {"csrf": token, "rounding": "floor", "return_shortfall": "debt", "enrolment": "open"}
    saved = client.post("/console/settings", data=sent | {"welcome_points": "25"}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    now = program.call("GET", "/v1/program").json()
    assert (now["welcome_points"], now["earn_points"], now["earn_per_amount"]) == (25, 1, 100)


def test_an_admin_sets_the_webhook_sees_what_waits_and_removes_it(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database, receiver: Receiver
) -> None:
    token = admin(client, program, add_staff)
    assert "Enregistrer le webhook" in client.get("/console/settings").text
    refused = client.post("/console/settings/webhook", data={"csrf": token, "url": "http://shop.example/hook"})
    assert refused.status_code == 422 and "Une adresse https:// est attendue" in refused.text
    assert 'value="http://shop.example/hook"' in refused.text  # what was typed is kept
    unusable = client.post("/console/settings/webhook", data={"csrf": token, "url": "https://256.1.1.1/hook"})
    assert unusable.status_code == 422 and "Une adresse https:// est attendue" not in unusable.text  # it is one
    assert "vérifiez son nom d'hôte et son port" in html.unescape(unusable.text)
    assert program.call("GET", "/v1/webhook").status_code == 404  # nothing saved
    saved = client.post("/console/settings/webhook", data={"csrf": token, "url": receiver.url})
    assert saved.status_code == 200 and "Webhook enregistré" in saved.text
    secret = program.call("GET", "/v1/webhook").json()["secret"]
    assert f"<code>{secret}</code>" in saved.text and "Réglages enregistrés" not in saved.text
    clock = client.app.state.clock  # type: ignore[attr-defined]
    with db.write() as conn:
        outbox.emit(conn, program_id=program.id, type_="segment_left", subject_id=None, payload={}, now=clock.now())
    receiver.statuses = [502]
    webhooks.deliver(db, clock, program_id=program.id)
    page = client.get("/console/settings").text
    assert "1 en échec, réessayé plus tard" in page and "HTTP 502" in page  # one event: singular
    tested = client.post("/console/settings/webhook/test", data={"csrf": token})
    assert "Événement de test reçu : l&#39;adresse a répondu HTTP 204." in tested.text
    assert receiver.events()[-1]["type"] == "webhook_test"
    receiver.statuses = [503]
    failed = client.post("/console/settings/webhook/test", data={"csrf": token})
    assert "L&#39;événement de test n&#39;est pas passé : l&#39;adresse a répondu HTTP 503, une erreur." in failed.text
    rotated = client.post("/console/settings/webhook", data={"csrf": token, "url": receiver.url, "new_secret": "on"})
    assert secret not in rotated.text and program.call("GET", "/v1/webhook").json()["secret"] in rotated.text
    removed = client.post("/console/settings/webhook/remove", data={"csrf": token})
    assert removed.status_code == 200 and "Webhook supprimé" in removed.text
    assert program.call("GET", "/v1/webhook").status_code == 404
    with db.read() as conn:
        actions = conn.execute(
            select(audit_entries.c.action).where(
                audit_entries.c.program_id == program.id,
                audit_entries.c.action.like("webhook.%"),
                audit_entries.c.actor.like("staff:%"),
            )
        ).scalars()
        assert sorted(actions) == ["webhook.removed", "webhook.set", "webhook.set"]


def test_a_public_only_server_refuses_a_private_address_and_its_test_says_why(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], receiver: Receiver
) -> None:
    token = admin(client, program, add_staff)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})  # saved while the server sent anywhere
    state = client.app.state  # type: ignore[attr-defined]
    state.settings = replace(state.settings, public_webhooks_only=True)  # PALIER_WEBHOOK_NETWORKS=public
    refused = client.post("/console/settings/webhook", data={"csrf": token, "url": "https://192.168.1.20/hooks"})
    assert refused.status_code == 422
    assert "n&#39;est pas sur Internet (localhost, réseau privé)" in refused.text
    assert 'value="https://192.168.1.20/hooks"' in refused.text  # what was typed is kept
    assert program.call("GET", "/v1/webhook").json()["url"] == receiver.url  # nothing saved
    tested = html.unescape(client.post("/console/settings/webhook/test", data={"csrf": token}).text)
    assert "l'adresse mène à un réseau privé, et ce serveur n'envoie qu'aux adresses publiques d'Internet." in tested
    assert receiver.received == []


def test_a_webhook_disabled_by_a_gone_receiver_says_when_and_why_and_is_enabled_again_with_a_press(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database, receiver: Receiver
) -> None:
    token = admin(client, program, add_staff)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    clock = client.app.state.clock  # type: ignore[attr-defined]
    with db.write() as conn:
        outbox.emit(conn, program_id=program.id, type_="segment_left", subject_id=None, payload={}, now=clock.now())
    receiver.statuses = [410]
    assert webhooks.deliver(db, clock, program_id=program.id).disabled == [program.id]
    page = html.unescape(client.get("/console/settings").text)
    assert "Webhook désactivé le 2 mars 2026, 10:00 : l'adresse a répondu HTTP 410 (Gone), elle n'existe plus." in page
    assert "Plus rien ne lui est envoyé" in page and "En échec depuis" in page
    english = html.unescape(client.get("/console/settings?lang=en").text)
    assert "Webhook disabled on " in english and "the address answered HTTP 410 (Gone): it no longer exists." in english
    enabled = client.post("/console/settings/webhook", data={"csrf": token, "url": receiver.url})  # the button
    assert enabled.status_code == 200 and "Webhook désactivé" not in enabled.text
    assert program.call("GET", "/v1/webhook").json()["disabled_at"] is None
    assert webhooks.deliver(db, clock, program_id=program.id).events == 1


def test_a_webhook_address_with_a_card_number_says_so_and_never_shows_the_number_back(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = admin(client, program, add_staff)
    card = luhn_card()
    refused = client.post("/console/settings/webhook", data={"csrf": token, "url": f"https://shop.example/h?c={card}"})
    assert refused.status_code == 422
    assert "contient un numéro de carte bancaire" in html.unescape(refused.text)
    assert "Une adresse https:// est attendue" not in refused.text  # it is one
    assert card not in refused.text and f"https://shop.example/h?c=****{card[-4:]}" in refused.text
    assert program.call("GET", "/v1/webhook").status_code == 404


def test_a_webhook_test_answered_by_a_redirect_says_to_save_the_final_address(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], receiver: Receiver
) -> None:
    token = admin(client, program, add_staff)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    receiver.statuses = [308]
    french = html.unescape(client.post("/console/settings/webhook/test", data={"csrf": token}).text)
    assert "l'adresse a répondu HTTP 308 : elle renvoie ailleurs" in french and "une erreur" not in french
    receiver.statuses = [301]
    english = html.unescape(client.post("/console/settings/webhook/test?lang=en", data={"csrf": token}).text)
    assert "Palier does not follow redirects: save the final address." in english


def test_the_tiers_editor_refuses_a_bad_policy_at_its_line_and_saves_a_good_one(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = admin(client, program, add_staff)
    refused = client.post("/console/tiers", data={"csrf": token, "document": TIERS_BAD})
    assert refused.status_code == 422
    assert 'class="bad">6</li>' in refused.text  # threshold: -5
    good = TIERS_BAD.replace("-5", "20000").replace("rolling_months", "calendar_year")
    saved = client.post("/console/tiers", data={"csrf": token, "document": good}, follow_redirects=False)
    assert saved.status_code == 303
    page = client.get("/console/tiers").text
    assert "Argent" in page and "200,00\u00a0€" in page  # a spend threshold is shown as money, not centimes
    assert program.call("GET", "/v1/tiers").json()["tiers"][0]["threshold"] == 20000


def test_a_date_that_does_not_exist_is_shown_at_its_line_in_the_rules_and_tiers_editors(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = admin(client, program, add_staff)
    rules = "campaigns:\n  - id: sale\n    name: {en: Sale}\n    starts: 2026-02-30\n    ends: 2026-03-05\n"
    refused = client.post("/console/rules", data={"csrf": token, "document": rules})
    assert refused.status_code == 422 and 'class="bad">4</li>' in refused.text
    tiers = TIERS_BAD.replace("threshold: -5", "threshold: 5\n  since: 2026-13-01")
    refused = client.post("/console/tiers", data={"csrf": token, "document": tiers})
    assert refused.status_code == 422 and 'class="bad">7</li>' in refused.text
    deep = client.post("/console/tiers", data={"csrf": token, "document": "tiers: " + "[" * 5000 + "]" * 5000})
    assert deep.status_code == 422 and "invalid_yaml" in deep.text
    assert program.call("GET", "/v1/program/rules").json()["version"] == 0


def test_a_field_written_twice_in_the_rules_editor_is_shown_at_its_line_and_nothing_is_saved(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = admin(client, program, add_staff)
    rules = (
        "rules:\n  - id: pastry\n    name: {en: Pastry bonus}\n    event: purchase\n"
        "    conditions: {categories: [viennoiserie]}\n    effect: {type: per_item, points: 2}\n"
        "    conditions: {channels: [store]}\n"
    )
    refused = client.post("/console/rules", data={"csrf": token, "document": rules})
    assert refused.status_code == 422 and 'class="bad">5</li>' in refused.text, refused.text
    assert "<code>rules[0].conditions</code> — Ce champ est écrit deux fois au même endroit" in refused.text
    assert program.call("GET", "/v1/program/rules").json()["version"] == 0


def test_the_rules_editor_names_the_attributes_to_choose_from_and_why_a_multiplier_is_refused_in_french(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = admin(client, program, add_staff)
    base = (
        "  - id: base\n    name: {en: Base}\n    event: purchase\n"
        "    effect: {type: points_per_amount, points: 1, per_amount: 100}\n"
    )
    typo = base + "    conditions: {attributes: {langauge: fr}}\n"
    refused = client.post("/console/rules", data={"csrf": token, "document": "rules:\n" + typo})
    assert refused.status_code == 422
    assert "choix possibles : language, enrolment_channel, birthday_month" in html.unescape(refused.text)
    double = "  - id: x2\n    name: {en: X2}\n    event: purchase\n    exclusive: true\n    priority: 5\n" \
        "    effect: {type: multiplier, factor: 2}\n"  # fmt: skip
    refused = client.post("/console/rules", data={"csrf": token, "document": "rules:\n" + base + double})
    assert refused.status_code == 422 and "ne multiplierait rien" in html.unescape(refused.text)


def test_rules_saved_by_a_colleague_while_the_editor_was_open_are_not_overwritten_by_its_save(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """Two marketers prepare a launch: one adds the campaign while the other, editor open on the version before,
    changes the base rate. The second save is refused, its text kept, and the campaign is still there."""
    token = admin(client, program, add_staff)
    base = (
        "  - id: base\n    name: {en: Base}\n    event: purchase\n"
        "    effect: {type: points_per_amount, points: 1, per_amount: 100}\n"
    )
    assert client.post("/console/rules", data={"csrf": token, "document": "rules:\n" + base}).status_code == 200
    opened = client.get("/console/rules").text
    based_on = re.search(r'name="based_on" value="(\d+)"', opened)
    assert based_on is not None and based_on.group(1) == "1"
    launch = {"campaigns": [{"id": "launch", "name": {"en": "Launch"}, "starts": "2026-12-01T00:00:00",
                             "ends": "2026-12-08T00:00:00", "budget": 50000}],
              "rules": [{"id": "base", "name": {"en": "Base"}, "event": "purchase",
                         "effect": {"type": "points_per_amount", "points": 1, "per_amount": 100}},
                        {"id": "launch-x2", "name": {"en": "Launch"}, "event": "purchase", "campaign": "launch",
                         "effect": {"type": "multiplier", "factor": 2}}]}  # fmt: skip
    assert program.call("POST", "/v1/program/rules", json=launch).status_code == 201  # the colleague's version 2
    mine = "rules:\n" + base.replace("points: 1,", "points: 2,")
    refused = client.post("/console/rules", data={"csrf": token, "document": mine, "based_on": based_on.group(1)})
    assert refused.status_code == 422
    said = html.unescape(refused.text)
    assert "Une autre version des règles a été enregistrée depuis que vous les avez ouvertes" in said
    assert "points: 2," in said and 'name="based_on" value="1"' in said  # the text kept, still on version 1
    again = client.post("/console/rules", data={"csrf": token, "document": mine, "based_on": "1"})
    assert again.status_code == 422  # saving the kept text again is refused the same
    current = program.call("GET", "/v1/program/rules").json()
    assert current["version"] == 2 and [c["id"] for c in current["document"]["campaigns"]] == ["launch"]
    fresh = client.post("/console/rules", data={"csrf": token, "document": mine, "based_on": "2"})
    assert fresh.status_code == 200 and program.call("GET", "/v1/program/rules").json()["version"] == 3


def test_saving_the_rules_without_a_change_says_so_and_adds_no_version(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """A marketer opens the rules, reads them and presses save: the page says nothing changed, and the versions
    and audit trail hold no copy."""
    token = admin(client, program, add_staff)
    base = (
        "rules:\n  - id: base\n    name: {en: Base}\n    event: purchase\n"
        "    effect: {type: points_per_amount, points: 1, per_amount: 100}\n"
    )
    assert client.post("/console/rules", data={"csrf": token, "document": base}).status_code == 200
    opened = client.get("/console/rules").text
    shown = re.search(r'<textarea[^>]*name="document"[^>]*>(.*?)</textarea>', opened, re.S)
    assert shown is not None
    again = {"csrf": token, "document": html.unescape(shown.group(1)), "based_on": "1"}
    saved = client.post("/console/rules", data=again)
    said = html.unescape(saved.text)
    assert saved.status_code == 200 and "Aucun changement : la version 1 reste en vigueur" in said
    assert [v["version"] for v in program.call("GET", "/v1/program/rules/versions").json()["items"]] == [1]
    actions = [e["action"] for e in program.call("GET", "/v1/audit?limit=100").json()["items"]]
    assert actions.count("rules.applied") == 1


def test_tiers_out_of_order_are_shown_at_the_threshold_at_fault_and_a_lifetime_grace_at_its_downgrade(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = admin(client, program, add_staff)
    gold = "- code: gold\n  name: {fr: Or, en: Gold}\n  threshold: 500\n"
    silver = "- code: silver\n  name: {fr: Argent, en: Silver}\n  threshold: 100\n"
    out_of_order = "metric: spend\nwindow: calendar_year\ntiers:\n" + gold + silver
    refused = client.post("/console/tiers", data={"csrf": token, "document": out_of_order})
    assert refused.status_code == 422 and "Chaque niveau doit demander plus que le précédent" in refused.text
    assert 'data-line="9">Ligne 9</a>' in refused.text and "<code>tiers[1].threshold</code>" in refused.text
    assert "<code>body</code>" not in refused.text
    forever = "metric: spend\nwindow: lifetime\ndowngrade: grace\ngrace_months: 3\ntiers:\n" + gold
    whole = client.post("/console/tiers", data={"csrf": token, "document": forever})
    assert whole.status_code == 422 and "window_has_no_period" in whole.text
    assert 'data-line="3">Ligne 3</a>' in whole.text and "<code>downgrade</code>" in whole.text


def test_a_reward_is_edited_and_archived(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    reward = program.call(
        "POST",
        "/v1/rewards",
        json={"kind": "free_product", "sku": "CAFE", "cost_points": 100, "title": {"fr": "Café", "en": "Coffee"}},
    ).json()
    token = admin(client, program, add_staff)
    listed = client.get("/console/rewards").text
    assert "Café" in listed and "Un produit offert" in listed
    form = {"csrf": token, "title_fr": "Grand café", "title_en": "Large coffee", "cost_points": "120", "stock": "",
            "status": "archived"}  # fmt: skip
    assert client.post(f"/console/rewards/{reward['id']}", data=form, follow_redirects=False).status_code == 303
    now = program.call("GET", f"/v1/rewards/{reward['id']}").json()
    assert (now["title"]["fr"], now["cost_points"], now["status"]) == ("Grand café", 120, "archived")
    typed = form | {"cost_points": "0", "title_fr": "Très grand café", "title_en": ""}
    bad = client.post(f"/console/rewards/{reward['id']}", data=typed)
    assert bad.status_code == 422
    assert 'value="Très grand café"' in bad.text and 'name="cost_points" type="number" value="0"' in bad.text
    shown = html.unescape(bad.text)  # every mistake at its field, in words, not the model's path
    assert '<p class="field-error" id="cost_points-error">Donnez au moins 1.</p>' in shown
    assert '<p class="field-error" id="title_en-error">Ce champ est obligatoire.</p>' in shown
    assert "title.en" not in shown
    window = form | {"status": "active", "starts_at": "2026-12-20T00:00", "ends_at": "2026-12-25T00:00"}
    assert client.post(f"/console/rewards/{reward['id']}", data=window, follow_redirects=False).status_code == 303
    now = program.call("GET", f"/v1/rewards/{reward['id']}").json()  # the program's wall-clock time: Paris
    assert (now["starts_at"], now["ends_at"]) == ("2026-12-19T23:00:00Z", "2026-12-24T23:00:00Z")
    assert 'value="2026-12-20T00:00"' in client.get(f"/console/rewards/{reward['id']}").text
    backwards = client.post(f"/console/rewards/{reward['id']}", data=window | {"ends_at": "2026-12-01T00:00"})
    assert backwards.status_code == 422 and 'id="ends_at-error"' in backwards.text
    stocked = program.call(
        "POST", "/v1/rewards",
        json={"kind": "gift", "cost_points": 10, "stock": 50, "title": {"fr": "Sac", "en": "Bag"}},
    ).json()  # fmt: skip
    member = program.enrol(first_name="Ann")
    program.adjust(member["id"], 20)
    for _ in range(2):
        program.call("POST", f"/v1/members/{member['id']}/redemptions", json={"reward_id": stocked["id"]})
    page = client.get(f"/console/rewards/{stocked['id']}").text
    assert "Stock total (coupons déjà émis compris)" in page and "48 encore disponibles, 2 coupons déjà émis" in page
    missing = client.get("/console/rewards/rwd_nope")
    assert missing.status_code == 404
    assert 'class="button secondary" href="/console">' in missing.text  # back into the console, not to the API


def test_member_search_by_identity_or_name_and_a_refused_adjustment(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    ann = program.enrol(first_name="Annabelle", last_name="Roux", email="annabelle@example.com", phone="06 12 34 56 78")
    program.enrol(first_name="Anne", last_name="Vidal")
    admin(client, program, add_staff)
    search = client.get("/console/members")
    assert 'method="post" action="/console/members"' in search.text  # what is typed stays out of the URL
    token = csrf_of(search.text)
    for typed in ("annabelle@example.com", "+33 6 12 34 56 78", "0612345678", ann["id"]):
        found = client.post("/console/members", data={"csrf": token, "q": typed}, follow_redirects=False)
        assert found.headers.get("location") == f"/console/members/{ann['id']}", typed
    both = client.post("/console/members", data={"csrf": token, "q": "ann"})
    assert "2 membres trouvés" in both.text and "Annabelle Roux" in both.text and "Anne Vidal" in both.text
    assert "+33 6 12 34 56 78" in both.text  # a phone number as people read it, not +33612345678
    for typed in ("ROUX Annabelle", "annab rou", "rou ann"):  # the French order, or the start of each name
        found = client.post("/console/members", data={"csrf": token, "q": typed}, follow_redirects=False)
        assert found.headers.get("location") == f"/console/members/{ann['id']}", typed
    nobody = client.post("/console/members", data={"csrf": token, "q": "zoé"})
    assert "Aucun membre ne correspond" in nobody.text
    page = client.get(f"/console/members/{ann['id']}")
    token = csrf_of(page.text)
    too_much = client.post(
        f"/console/members/{ann['id']}/adjust", data={"csrf": token, "points": "-10", "reason": "Oops"}
    )
    assert too_much.status_code == 422 and "Points : il faut 10 points ; le membre en a 0." in too_much.text
    for typed in ("1.5", "abc"):
        not_a_number = client.post(
            f"/console/members/{ann['id']}/adjust", data={"csrf": token, "points": typed, "reason": "Geste"}
        )
        assert not_a_number.status_code == 422 and "un nombre entier de points, par exemple 50" in not_a_number.text
    no_reason = client.post(f"/console/members/{ann['id']}/adjust", data={"csrf": token, "points": "10", "reason": ""})
    assert no_reason.status_code == 422
    assert program.balance(ann["id"])["available"] == 0
    done = client.post(f"/console/members/{ann['id']}/adjust", data={"csrf": token, "points": "10", "reason": "Sorry"})
    assert done.status_code == 200 and "Ajustement enregistré : +10 points." in done.text  # after the redirect
    with db.read() as conn:
        entry = conn.execute(
            select(audit_entries.c.actor, audit_entries.c.details).where(
                audit_entries.c.subject_id == ann["id"], audit_entries.c.action == "member.adjusted"
            )
        ).one()
    assert entry.actor.startswith("staff:stf_") and entry.details["reason"] == "Sorry"


def test_the_till_refuses_paying_more_points_than_held_and_a_coupon_of_someone_else(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann, bob = program.enrol(first_name="Ann"), program.enrol(first_name="Bob")
    program.adjust(ann["id"], 300)
    program.adjust(bob["id"], 300)
    reward = program.call(
        "POST",
        "/v1/rewards",
        json={"kind": "amount_off", "amount": 200, "cost_points": 100, "title": {"fr": "Bon", "en": "V"}},
    ).json()
    bobs: Any = program.call("POST", f"/v1/members/{bob['id']}/redemptions", json={"reward_id": reward["id"]}).json()
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    token = csrf_of(client.get(f"/till/members/{ann['id']}").text)
    pay = {"csrf": token, "order_id": "T-1", "order_total": "10,00", "points": "400"}
    refused = client.post(f"/till/members/{ann['id']}/pay", data=pay)
    assert refused.status_code == 422 and "notice error" in refused.text
    assert "Il faut 400 points ; le membre en a 300." in refused.text  # in French, with the figures
    malformed = client.post(f"/till/members/{ann['id']}/pay", data=pay | {"order_total": "dix euros"})
    assert malformed.status_code == 422 and str(escape(refusals("fr")["invalid_amount"])) in malformed.text
    assert program.balance(ann["id"])["available"] == 300
    code = bobs["coupon"]["code"]
    use = {"csrf": token, "order_id": "T-2", "order_total": "10,00"}
    theirs = client.post(f"/till/members/{ann['id']}/coupons/{code}/use", data=use)
    assert theirs.status_code == 422 and str(escape(refusals("fr")["coupon_other_member"])) in theirs.text
    no_total = client.post(f"/till/members/{bob['id']}/coupons/{code}/use", data=use | {"order_total": ""})
    assert no_total.status_code == 422 and str(escape(refusals("fr")["invalid_amount"])) in no_total.text
    assert program.call("GET", f"/v1/coupons/{code}").json()["state"] == "issued"
    paid = client.post(f"/till/members/{ann['id']}/pay", data=pay | {"points": "100"}, follow_redirects=False)
    assert paid.status_code == 303 and program.balance(ann["id"])["available"] == 200
    client.get(f"/till/members/{ann['id']}?lang=en")  # an English page keeps the engine's own words
    in_english = client.post(f"/till/members/{ann['id']}/pay", data=pay | {"order_total": "dix euros"})
    assert "Type an amount such as 12.50." in in_english.text


def test_the_till_asks_before_taking_the_same_points_payment_again_under_a_new_ticket(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """Back after paying shows a page with a new ticket number: sent again, it would charge the customer twice."""
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 500)
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    token = csrf_of(client.get(f"/till/members/{ann['id']}").text)
    pay = {"csrf": token, "order_id": "T1012-ABCDE", "order_total": "10,00", "points": "100"}
    first = client.post(f"/till/members/{ann['id']}/pay", data=pay, follow_redirects=False)
    assert first.status_code == 303 and "points=" not in first.headers["location"]  # the figures are read back
    assert "Payé avec 100 points : 1,00\u00a0€ en moins sur le ticket." in client.get(first.headers["location"]).text
    made_up = client.get(f"/till/members/{ann['id']}?ok=paid&points=5000&amount=50000&payment=pay_nope").text
    assert "Payé avec" not in made_up  # a link cannot claim a payment that was never made
    again = client.post(f"/till/members/{ann['id']}/pay", data=pay | {"order_id": "T1013-FGHJK"})
    assert again.status_code == 409 and program.balance(ann["id"])["available"] == 400  # nothing taken yet
    assert "Ce client a déjà payé 100 points sur un ticket de 10,00\u00a0€" in again.text
    assert "(ticket T1012-ABCDE). Est-ce une autre vente ?" in again.text
    question = again.text[again.text.index('class="notice error big-notice repeat-payment"') :]
    assert '<input type="hidden" name="order_id" value="T1013-FGHJK">' in question
    assert '<input type="hidden" name="repeat" value="yes">' in question
    confirmed = {"csrf": token, "order_id": "T1013-FGHJK", "order_total": "10,00", "points": "100", "repeat": "yes"}
    paid = client.post(f"/till/members/{ann['id']}/pay", data=confirmed, follow_redirects=False)
    assert paid.status_code == 303 and program.balance(ann["id"])["available"] == 300  # another sale, paid
    other = pay | {"order_id": "T1014-LMNPQ", "points": "200", "order_total": "20,00"}  # other figures: no question
    assert client.post(f"/till/members/{ann['id']}/pay", data=other, follow_redirects=False).status_code == 303
    assert program.balance(ann["id"])["available"] == 100
    resent = client.post(f"/till/members/{ann['id']}/pay", data=other, follow_redirects=False)  # the same ticket
    assert resent.status_code == 303 and program.balance(ann["id"])["available"] == 100


def test_an_admin_merges_a_duplicate_account_found_by_its_e_mail_into_the_member_shown(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    kept = program.enrol(first_name="Léa", last_name="Moreau", email="lea@example.fr")
    twin = program.enrol(first_name="Léa", last_name="M.", email="lea.moreau@example.fr")
    program.adjust(kept["id"], 120)
    program.adjust(twin["id"], 80)
    token = admin(client, program, add_staff)
    page = client.get(f"/console/members/{kept['id']}").text
    assert f'action="/console/members/{kept["id"]}/merge/find"' in page
    nobody = client.post(f"/console/members/{kept['id']}/merge/find", data={"csrf": token, "q": "personne@example.fr"})
    assert "Aucun autre compte actif pour « personne@example.fr »." in nobody.text
    itself = client.post(f"/console/members/{kept['id']}/merge/find", data={"csrf": token, "q": "lea@example.fr"})
    assert "Aucun autre compte actif" in itself.text  # the member shown is not offered as its own duplicate
    found = client.post(f"/console/members/{kept['id']}/merge/find", data={"csrf": token, "q": "LEA.MOREAU@example.fr"})
    assert found.status_code == 200 and f'data-member="{twin["id"]}"' in found.text
    assert "80 points disponibles, 0 en attente, 0 réservés" in found.text
    assert "Fusionner Léa M. dans Léa Moreau" in found.text
    merged = client.post(
        f"/console/members/{kept['id']}/merge", data={"csrf": token, "source_id": twin["id"]}, follow_redirects=False
    )
    assert merged.status_code == 303 and merged.headers["location"].endswith(f"?merged={twin['id']}")
    assert program.balance(kept["id"])["available"] == 200
    done = client.get(merged.headers["location"]).text
    assert "Doublon fusionné : ses points, coupons, commandes et identifiants" in done
    again = client.post(
        f"/console/members/{kept['id']}/merge", data={"csrf": token, "source_id": twin["id"]}, follow_redirects=False
    )
    assert again.status_code == 303 and program.balance(kept["id"])["available"] == 200  # the second tap: no more
    closed = client.get(f"/console/members/{twin['id']}").text
    assert f'Compte fusionné dans <a href="/console/members/{kept["id"]}">' in closed
    assert "merge/find" not in closed  # a closed account offers no merge
    backwards = client.post(f"/console/members/{twin['id']}/merge", data={"csrf": token, "source_id": kept["id"]})
    assert backwards.status_code == 422 and "Ce membre a été fusionné avec un autre" in backwards.text
    with db.read() as conn:
        entry = conn.execute(
            select(audit_entries.c.actor).where(
                audit_entries.c.subject_id == kept["id"], audit_entries.c.action == "member.merged"
            )
        ).one()
    assert entry.actor.startswith("staff:stf_")


def test_only_an_admin_may_merge_members_in_the_console(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    one, two = program.enrol(first_name="Un"), program.enrol(first_name="Deux")
    assert sign_in(client, add_staff(program.id, "marketer")).status_code == 303
    token = csrf_of(client.get(f"/console/members/{one['id']}").text)
    assert "merge/find" not in client.get(f"/console/members/{one['id']}").text
    refused = client.post(
        f"/console/members/{one['id']}/merge", data={"csrf": token, "source_id": two["id"]}, follow_redirects=False
    )
    assert refused.status_code == 403
    assert program.call("GET", f"/v1/members/{two['id']}").json()["status"] == "active"


def test_the_dashboard_takes_chosen_dates_and_falls_back_to_twelve_weeks(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    program.purchase(ann["id"], occurred_at="2026-03-02T08:00:00Z")  # 10 points
    program.purchase(ann["id"], occurred_at="2026-02-10T08:00:00Z")  # 10 points, in an earlier week
    admin(client, program, add_staff)
    chosen = client.get("/console/dashboard", params={"first": "2026-03-01", "last": "2026-03-02"}).text
    assert "Du 1er mars 2026 au 2 mars 2026" in chosen
    assert 'data-kpi="issued" style="--chars: 2">10</p>' in chosen
    assert 'value="2026-03-01"' in chosen and '<option value="" selected>Dates choisies</option>' in chosen
    default = client.get("/console/dashboard", params={"first": "2026-03-05", "last": "2026-03-01"}).text
    assert "Du 15 décembre 2025 au 2 mars 2026" in default  # an impossible range: the last 12 weeks
    assert 'data-kpi="issued" style="--chars: 2">20</p>' in default
    assert "La date de début est après la date de fin" in default and 'value="2026-03-05"' in default  # kept
    for first, said in (("2026-13-01", "ne sont pas valides"), ("2020-01-01", "au plus 3 ans")):
        last = "2026-03-01"
        refused = client.get("/console/dashboard", params={"first": first, "last": last}).text
        assert said in refused and f'value="{first}"' in refused, first
    assert 'class="notice error"' not in chosen
    english = client.get("/console/dashboard", params={"weeks": "4", "channel": "web", "lang": "en"}).text
    assert "Dashboard" in english and "Online" in english and "Last 4 weeks" in english


def test_the_examples_a_new_document_starts_from_are_commented_in_the_pages_language(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = admin(client, program, add_staff)
    french = {path: client.get(path).text for path in ("/console/new-reward", "/console/new-segment")}
    assert "# Une récompense du catalogue." in french["/console/new-reward"] and "minor units" not in str(french)
    assert "# Une audience, recalculée par" in french["/console/new-segment"]
    assert "# Pas encore de niveaux. Par exemple :" in client.get("/console/tiers").text
    assert "# A reward of the catalog." in client.get("/console/new-reward?lang=en").text
    for path, page in french.items():  # the French example is as good a document as the English one
        example = html.unescape(page.split('name="document"')[1].split(">", 1)[1].split("</textarea>")[0])
        assert client.post(path, data={"csrf": token, "document": example}, follow_redirects=False).status_code == 303


def test_a_new_reward_and_a_new_segment_are_written_in_yaml_with_problems_at_their_line(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = admin(client, program, add_staff)
    assert "amount_off" in client.get("/console/new-reward").text  # a worked example to start from
    reward = 'kind: amount_off\ncost_points: 300\ntitle: {fr: "Bon de 3 €", en: "€3 voucher"}\namount: -3\n'
    refused = client.post("/console/new-reward", data={"csrf": token, "document": reward})
    assert refused.status_code == 422 and 'class="bad">4</li>' in refused.text  # amount: -3
    assert program.call("GET", "/v1/rewards").json() == []  # nothing written
    made = client.post(
        "/console/new-reward", data={"csrf": token, "document": reward.replace("-3", "300")}, follow_redirects=False
    )
    assert made.status_code == 303
    [created] = program.call("GET", "/v1/rewards").json()
    assert made.headers["location"] == f"/console/rewards/{created['id']}?saved=1"
    assert (created["title"]["fr"], created["cost_points"], created["amount"]) == ("Bon de 3 €", 300, 300)

    segment = "code: big\nname: {fr: Gros paniers, en: Big spenders}\nconditions:\n"
    segment += "  - {field: total_spend, op: '>>', value: 1}\n"
    refused = client.post("/console/new-segment", data={"csrf": token, "document": segment})
    assert refused.status_code == 422 and 'class="bad">4</li>' in refused.text
    made = client.post(
        "/console/new-segment", data={"csrf": token, "document": segment.replace(">>", ">=")}, follow_redirects=False
    )
    assert made.status_code == 303
    page = client.get(made.headers["location"]).text
    assert "Gros paniers" in page and "big" in page
    assert [s["code"] for s in program.call("GET", "/v1/segments").json()] == ["big"]


def test_a_segment_is_edited_in_yaml_under_its_code(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    made = program.call(
        "POST", "/v1/segments",
        json={"code": "big", "name": {"fr": "Gros paniers", "en": "Big spenders"},
              "conditions": [{"field": "total_spend", "op": ">=", "value": 50_000}]},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    token = admin(client, program, add_staff)
    assert 'href="/console/segments/big"' in client.get("/console/segments").text
    shown = client.get("/console/segments/big").text
    assert "code: big" in shown and "value: 50000" in shown  # the definition as YAML, ready to change
    text = html.unescape(shown.split('name="document"')[1].split(">", 1)[1].split("</textarea>")[0])
    renamed = {"csrf": token, "document": text.replace("code: big", "code: huge")}
    refused = client.post("/console/segments/big", data=renamed)
    assert refused.status_code == 422 and "segment_code_fixed" in refused.text
    changed = {"csrf": token, "document": text.replace("50000", "80000")}
    saved = client.post("/console/segments/big", data=changed, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/console/segments?updated=big"
    assert "Segment « big » enregistré" in client.get(saved.headers["location"]).text
    [segment] = program.call("GET", "/v1/segments").json()
    assert segment["conditions"] == [{"field": "total_spend", "op": ">=", "value": 80_000}]
    assert client.get("/console/segments/nobody").status_code == 404


def test_tier_and_segment_names_are_shown_in_the_page_language(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    from tests.api.routes import WORLD_SEGMENT, WORLD_TIERS

    assert program.call("PUT", "/v1/tiers", json=WORLD_TIERS).status_code == 200
    assert program.call("POST", "/v1/segments", json=WORLD_SEGMENT).status_code == 201
    member = program.call("POST", "/v1/members", json={"email": "ines@example.fr"}).json()["id"]
    given = {"tier": "gold", "reason": "Ambassadrice", "until": "2099-01-01T00:00:00Z"}
    assert program.call("POST", f"/v1/members/{member}/tier", json=given).status_code == 200
    admin(client, program, add_staff)
    console, till = f"/console/members/{member}", f"/till/members/{member}"
    assert 'tier-pill">Niveau Or</span>' in client.get(console + "?lang=fr").text
    assert 'tier-pill">Or</span>' in client.get(till + "?lang=fr").text
    assert 'tier-pill">Tier Gold</span>' in client.get(console + "?lang=en").text
    assert 'tier-pill">Gold</span>' in client.get(till + "?lang=en").text
    segments_fr = client.get("/console/segments?lang=fr").text
    assert "Meilleurs clients</a>" in segments_fr and "fr=" not in segments_fr
    assert "Best customers</a>" in client.get("/console/segments?lang=en").text


def test_a_name_is_found_whatever_its_accents_and_case_or_typed_in_full(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    elodie = program.enrol(first_name="Élodie", last_name="Gérard")["id"]
    program.enrol(first_name="Romain", last_name="Roy")
    token = admin(client, program, add_staff)
    for typed in ("Élodie", "élodie", "ELODIE", "elo", "Gerard", "gÉr", "élodie gérard", "Elodie  Gerard"):
        found = client.post("/console/members", data={"csrf": token, "q": typed}, follow_redirects=False)
        assert found.headers.get("location") == f"/console/members/{elodie}", typed
    both = client.post("/console/members", data={"csrf": token, "q": "Romain Roy"}, follow_redirects=False)
    assert both.status_code == 303 and "/console/members/mem_" in both.headers["location"]
    nobody = client.post("/console/members", data={"csrf": token, "q": "Élodie Roy"})
    assert "Aucun membre ne correspond" in nobody.text


def refusals(language: str) -> dict[str, str]:
    """The words a page in ``language`` gives for each refusal code."""
    return {k.removeprefix("refusal."): v for k, v in i18n.catalogs()[language].items() if k.startswith("refusal.")}


def test_the_points_name_agrees_with_the_count_on_how_it_works_and_at_the_till(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    assert program.call("PATCH", "/v1/program", json={"points_name": "étoiles"}).status_code == 200
    ann = program.enrol(first_name="Ann")
    program.call("POST", f"/v1/members/{ann['id']}/adjustments", json={"points": 1, "reason": "Bienvenue"})
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    till = client.get(f"/till/members/{ann['id']}").text
    assert "Solde : 1 étoile, soit" in till
    assert "<h2>Payer avec des étoiles</h2>" in till and ">Étoiles à utiliser</label>" in till  # not "points"
    assert ">Payer avec les étoiles</button>" in till
    pay = {"csrf": csrf_of(till), "order_id": "T1000-ETOIL", "order_total": "10,00", "points": "0"}
    refused = client.post(f"/till/members/{ann['id']}/pay", data=pay).text
    assert "Étoiles à utiliser : " in refused
    for cost in (1, 2):
        body = {"kind": "gift", "cost_points": cost, "title": {"fr": f"Cadeau {cost}", "en": f"Gift {cost}"}}
        assert program.call("POST", "/v1/rewards", json=body).status_code == 201
    page = client.get(f"/how-it-works/{program.id}").text
    assert '<span class="cost-value">1</span> étoile</div>' in page
    assert '<span class="cost-value">2</span> étoiles</div>' in page


def test_the_points_have_their_name_in_each_language_on_pages_in_that_language(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    named = {"points_name": "étoiles", "points_name_by_language": {"en": "stars"}}
    assert program.call("PATCH", "/v1/program", json=named).json()["points_name_by_language"] == {"en": "stars"}
    german = program.call("PATCH", "/v1/program", json={"points_name_by_language": {"de": "Sterne"}})
    assert german.status_code == 422 and german.json()["errors"][0]["field"].startswith("points_name_by_language.de")
    ann = program.enrol(first_name="Ann")
    program.call("POST", f"/v1/members/{ann['id']}/adjustments", json={"points": 1, "reason": "Welcome"})
    body = {"kind": "gift", "cost_points": 2, "title": {"fr": "Cadeau", "en": "Gift"}}
    assert program.call("POST", "/v1/rewards", json=body).status_code == 201
    assert '<span class="cost-value">2</span> stars</div>' in client.get(f"/how-it-works/{program.id}?lang=en").text
    assert '<span class="cost-value">2</span> étoiles</div>' in client.get(f"/how-it-works/{program.id}?lang=fr").text
    email = add_staff(program.id, "admin")
    assert sign_in(client, email).status_code == 303
    assert "Balance: 1 star, worth" in client.get(f"/till/members/{ann['id']}?lang=en").text
    assert "Solde : 1 étoile, soit" in client.get(f"/till/members/{ann['id']}?lang=fr").text
    form = client.get("/console/settings").text
    assert 'name="points_name_en" type="text" value="stars"' in form
    assert 'name="points_name_fr" type="text" value=""' in form
    sent = {
        name: value
        for name, value in re.findall(r'<input id="[^"]+" name="([^"]+)" type="[^"]+" value="([^"]*)"', form)
    }
    sent |= {"csrf": csrf_of(form), "rounding": "floor", "return_shortfall": "debt", "enrolment": "open"}
    card = client.post("/console/settings", data=sent | {"points_name_en": luhn_card()})
    assert card.status_code == 422 and 'id="points_name_en-error"' in card.text  # a card number is no name
    cleared = client.post("/console/settings", data=sent | {"points_name_en": ""}, follow_redirects=False)
    assert cleared.status_code == 303
    assert program.call("GET", "/v1/program").json()["points_name_by_language"] == {}
    assert "Balance: 1 étoile, worth" in client.get(f"/till/members/{ann['id']}?lang=en").text


def test_a_store_credit_coupon_is_shown_as_credited_to_the_wallet(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    program.call("POST", f"/v1/members/{ann['id']}/adjustments", json={"points": 600, "reason": "Bienvenue"})
    credit = {"kind": "store_credit", "amount": 500, "cost_points": 500, "title": {"fr": "Avoir", "en": "Credit"}}
    reward = program.call("POST", "/v1/rewards", json=credit).json()
    redeemed = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": reward["id"]}).json()
    admin(client, program, add_staff)
    page = client.get(f"/console/coupons?code={redeemed['coupon']['code']}").text
    assert "Crédité sur l&#39;avoir du membre" in page and "None" not in page and "console.channel" not in page


def test_a_members_vip_membership_is_shown_on_their_page_and_at_the_till(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    plan = {"code": "club", "name": {"fr": "Club Fournil", "en": "Bakery Club"}, "price": 499, "period": "monthly"}
    assert program.call("POST", "/v1/plans", json=plan).status_code == 201
    now = client.app.state.clock.now().isoformat()  # type: ignore[attr-defined]
    fee = {"payment_id": f"fee-{ann['id']}", "member_id": ann["id"], "plan": "club", "amount": 499, "paid_at": now}
    paid = program.call("POST", "/v1/memberships/payments", json=fee)
    assert paid.status_code in (200, 201), paid.text
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    page = client.get(f"/console/members/{ann['id']}").text
    assert "Club Fournil : adhésion payée jusqu&#39;au" in page, page
    assert "VIP Club Fournil" in client.get(f"/till/members/{ann['id']}").text


def test_a_search_finding_more_members_than_it_lists_says_so_and_asks_for_more(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """22 Martins: the console and the till list 20 and say there are more, never "20 members found"."""
    for n in range(22):
        program.enrol(first_name=f"Lou{n:02d}", last_name="Martin", email=f"lou{n}.martin@example.com")
    token = admin(client, program, add_staff)
    for path, link in (("/console/members", "/console/members/mem_"), ("/till", "/till/members/mem_")):
        for language, words in (("fr", "Plus de 20 membres trouvés"), ("en", "More than 20 members found")):
            page = client.post(f"{path}?lang={language}", data={"csrf": token, "q": "martin"})
            assert page.status_code == 200
            assert words in page.text and "22" not in re.findall(r"<h2>(.*?)</h2>", page.text)[0], page.text
            assert page.text.count(f'href="{link}') == 20
    for first in ("Ada", "Bea", "Cy"):
        program.enrol(first_name=first, last_name="Dupont")
    few = client.post("/console/members?lang=en", data={"csrf": token, "q": "dupont"})
    assert "3 members found" in few.text and "More than" not in few.text


def test_a_one_letter_search_asks_for_two_not_no_member(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    program.enrol(first_name="Éa", last_name="Martin")
    token = admin(client, program, add_staff)
    for path in ("/console/members", "/till"):
        page = html.unescape(client.post(f"{path}?lang=fr", data={"csrf": token, "q": "M"}).text)
        assert "« M » : tapez au moins 2 lettres d'un nom, ou une carte, un téléphone, un e-mail." in page
        assert "Aucun membre" not in page
        english = html.unescape(client.post(f"{path}?lang=en", data={"csrf": token, "q": "zz"}).text)
        assert "No member" in english and "at least 2 letters" not in english  # two letters: searched
