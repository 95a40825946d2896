"""A member erased at their request, as the console shows them: no name, no identities, no more writes."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.api.helpers import ApiProgram
from tests.console.conftest import csrf_of, sign_in


def test_the_console_shows_an_erased_member_without_their_data_and_refuses_an_adjustment(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Annabelle", email="annabelle.console@example.org")
    program.adjust(ann["id"], 40)
    erased = program.call("POST", f"/v1/members/{ann['id']}/erase", json={"reason": "Asked to be forgotten"})
    assert erased.status_code == 200, erased.text
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303

    page = client.get(f"/console/members/{ann['id']}?lang=en")
    assert page.status_code == 200, page.text
    assert "Annabelle" not in page.text and "annabelle.console" not in page.text
    sent = {"csrf": csrf_of(page.text), "points": "50", "reason": "Goodwill gesture"}
    refused = client.post(f"/console/members/{ann['id']}/adjust?lang=en", data=sent, follow_redirects=False)
    assert refused.status_code == 422, refused.status_code  # the form again, with the refusal
    assert "was erased at their request" in refused.text
    assert program.balance(ann["id"])["available"] == 0


def test_an_admin_exports_then_erases_a_member_from_the_console(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Annabelle", email="annabelle.export@example.org")
    program.adjust(ann["id"], 40)
    marketer = add_staff(program.id, "marketer")
    assert sign_in(client, marketer).status_code == 303
    page = client.get(f"/console/members/{ann['id']}")
    assert "Données personnelles (RGPD)" not in page.text  # admins only
    assert client.get(f"/console/members/{ann['id']}/export").status_code == 403
    client.cookies.clear()

    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    page = client.get(f"/console/members/{ann['id']}")
    assert "Exporter ses données (JSON)" in page.text and "Effacer ses données" in page.text
    exported = client.get(f"/console/members/{ann['id']}/export")
    assert exported.status_code == 200 and exported.headers["cache-control"] == "no-store"
    assert exported.headers["content-disposition"] == f'attachment; filename="{ann["id"]}.json"'
    assert exported.json()["profile"]["email"] == "annabelle.export@example.org"
    recorded = program.call("GET", "/v1/audit", params={"limit": 1}).json()["items"][0]
    assert (recorded["action"], recorded["subject_id"]) == ("member.exported", ann["id"])
    assert recorded["actor"].startswith("staff:")

    too_short = client.post(f"/console/members/{ann['id']}/erase", data={"csrf": csrf_of(page.text), "reason": "x"})
    assert too_short.status_code == 422 and "Effacement refusé" in too_short.text
    assert program.call("GET", f"/v1/members/{ann['id']}").json()["status"] == "active"  # nothing written
    done = client.post(
        f"/console/members/{ann['id']}/erase",
        data={"csrf": csrf_of(page.text), "reason": "Demande par e-mail du 3 mars"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == f"/console/members/{ann['id']}?erased=1"
    after = client.get(done.headers["location"]).text
    assert "ont été effacées à sa demande" in after and "Annabelle" not in after and "Effacer ses données" not in after
    assert program.balance(ann["id"])["available"] == 0
    audit = program.call("GET", "/v1/audit", params={"limit": 1}).json()["items"][0]
    assert audit["action"] == "member.erased" and audit["actor"].startswith("staff:")
