"""VIP plans in the console: a marketer lists them with their running memberships, creates one from the YAML
editor, changes its benefits (members have them at once) and archives it; the price stays as it is."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.api.helpers import ApiProgram, unique
from tests.console.conftest import csrf_of, sign_in

PLAN = """code: {code}
name: {{fr: "Club Gourmet", en: "Gourmet Club"}}
price: 499
period: monthly
trial_days: 14
benefits: {{multiplier_percent: 200}}
"""


def test_a_marketer_creates_a_plan_then_changes_its_benefits_and_archives_it(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    assert sign_in(client, add_staff(program.id, "marketer")).status_code == 303
    page = client.get("/console/plans")
    assert page.status_code == 200 and "Aucune formule pour l&#39;instant." in page.text
    token = csrf_of(client.get("/console/new-plan").text)
    code = unique("club").replace("-", "")[:30].lower()
    made = client.post(
        "/console/new-plan", data={"csrf": token, "document": PLAN.format(code=code)}, follow_redirects=False
    )
    assert made.status_code == 303 and made.headers["location"] == f"/console/plans?created={code}"
    listed = client.get(made.headers["location"]).text
    assert f"Formule {code} créée." in listed and "4,99\u00a0€ par mois" in listed and "14 jours" in listed

    ann = program.enrol(first_name="Ann")
    joined = program.call("POST", f"/v1/members/{ann['id']}/memberships", json={"plan": code})
    assert joined.status_code == 201, joined.text
    row = client.get("/console/plans").text.split(f'data-plan="{code}"')[1].split("</tr>")[0]
    assert '<td class="num">1</td>' in row  # Ann's trial

    editor = client.get(f"/console/plans/{code}").text
    assert "multiplier_percent: 200" in editor and "price: 499" in editor
    richer = PLAN.format(code=code).replace("multiplier_percent: 200", "multiplier_percent: 300")
    saved = client.post(f"/console/plans/{code}", data={"csrf": token, "document": richer}, follow_redirects=False)
    assert saved.status_code == 303
    bought = program.purchase(ann["id"], lines=[{"sku": "CAKE", "quantity": 1, "unit_price": 1000}])
    assert bought["points"] == 30  # ×3 at once, mid-trial

    dearer = richer.replace("price: 499", "price: 599")
    refused = client.post(f"/console/plans/{code}", data={"csrf": token, "document": dearer})
    assert refused.status_code == 422 and "Le prix et la période d&#39;une formule ne changent pas" in refused.text
    renamed = richer.replace(f"code: {code}", "code: another")
    assert client.post(f"/console/plans/{code}", data={"csrf": token, "document": renamed}).status_code == 422
    archived = richer + "status: archived\n"
    done = client.post(f"/console/plans/{code}", data={"csrf": token, "document": archived}, follow_redirects=False)
    assert done.status_code == 303
    assert "archivée" in client.get("/console/plans").text
    assert program.call("GET", "/v1/plans").json()[0]["price"] == 499
    bo = program.enrol(first_name="Bo")
    late = program.call("POST", f"/v1/members/{bo['id']}/memberships", json={"plan": code})
    assert late.status_code == 422 and late.json()["code"] == "plan_archived"


def test_store_staff_cannot_open_the_plans(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    assert client.get("/console/plans", follow_redirects=False).status_code == 403
    assert client.get("/console/plans/club", follow_redirects=False).status_code == 403


def test_a_plan_edited_into_a_document_that_is_not_a_mapping_is_refused_at_the_editor(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """A plan's editor that holds a word, a number or a list (a paste gone wrong) says what is wrong, not a 500,
    and the plan stays as it was."""
    assert sign_in(client, add_staff(program.id, "marketer")).status_code == 303
    code = unique("club").replace("-", "")[:30].lower()
    token = csrf_of(client.get("/console/new-plan").text)
    made = client.post("/console/new-plan", data={"csrf": token, "document": PLAN.format(code=code)})
    assert made.status_code == 200, made.text
    for document in ("Club 🎉", "-5", "- multiplier_percent: 300\n"):
        refused = client.post(f"/console/plans/{code}", data={"csrf": token, "document": document})
        assert refused.status_code == 422, (document, refused.text)
        assert 'aria-invalid="true"' in refused.text or 'role="alert"' in refused.text
    assert program.call("GET", "/v1/plans").json()[0]["benefits"]["multiplier_percent"] == 200
