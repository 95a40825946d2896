"""The API keys page of the console: an admin makes a key for a till, copies its secret from the one page
that shows it, and revokes it, after which the API refuses it; the same audit trail as the API's; nobody
else may open the page, and another program's keys are out of reach."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from palier.db import Database
from palier.programs.tables import audit_entries
from tests.api.helpers import ApiProgram
from tests.console.conftest import csrf_of, sign_in


def _secret(html: str) -> str:
    found = re.search(r'id="new-secret" type="text" readonly value="([^"]+)"', html)
    assert found, "no new key on the page"
    return found.group(1)


def test_an_admin_makes_a_till_key_that_works_then_revokes_it_and_the_api_refuses_it(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    page = client.get("/console/keys")
    assert page.status_code == 200 and "Clés d&#39;API" in page.text and 'href="/console/keys"' in page.text
    token = csrf_of(page.text)

    made = client.post("/console/keys", data={"csrf": token, "name": "Caisse Lyon 2", "scopes": ["pos"]})
    assert made.status_code == 201 and "Clé Caisse Lyon 2 créée" in made.text
    assert made.headers["cache-control"] == "no-store"  # the secret is on this page only: never kept by a cache
    secret = _secret(made.text)
    key_id = secret.split(".", 1)[0]
    assert secret not in client.get("/console/keys").text  # shown once
    assert f'data-key="{key_id}"' in client.get("/console/keys").text

    till = {"Authorization": f"Bearer {secret}"}
    enrolled = client.post("/v1/members", json={"first_name": "Inès"}, headers=till)
    assert enrolled.status_code == 201  # a pos key enrols
    assert client.get("/v1/keys", headers=till).status_code == 403  # and no more than pos

    revoked = client.post(f"/console/keys/{key_id}/revoke", data={"csrf": token}, follow_redirects=False)
    assert revoked.status_code == 303
    after = client.get(revoked.headers["location"]).text
    assert "Clé Caisse Lyon 2 révoquée" in after and "Révoquée" in after
    assert client.post("/v1/members", json={"first_name": "Hugo"}, headers=till).status_code == 401
    again = client.post(f"/console/keys/{key_id}/revoke", data={"csrf": token}, follow_redirects=False)
    assert again.status_code == 303  # a second tap changes nothing

    with db.read() as conn:
        actions = conn.execute(
            select(audit_entries.c.action, audit_entries.c.actor)
            .where(audit_entries.c.subject_id == key_id)
            .order_by(audit_entries.c.id)
        ).all()
    assert [action for action, _ in actions] == ["key.created", "key.revoked"]
    assert all(actor.startswith("staff:") for _, actor in actions)


def test_a_key_without_a_name_or_a_scope_is_refused_at_its_field_and_nothing_is_made(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    token = csrf_of(client.get("/console/keys", headers={"Accept-Language": "en"}).text)
    before = program.call("GET", "/v1/keys").json()
    no_scope = client.post("/console/keys", data={"csrf": token, "name": "Web shop"})
    assert no_scope.status_code == 422 and 'id="new-scopes-error"' in no_scope.text
    assert 'value="Web shop"' in no_scope.text  # what was typed comes back
    no_name = client.post("/console/keys", data={"csrf": token, "name": " ", "scopes": ["read"]})
    assert no_name.status_code == 422 and 'id="new-name-error"' in no_name.text
    made_up = client.post("/console/keys", data={"csrf": token, "name": "Web shop", "scopes": ["root"]})
    assert made_up.status_code == 422 and 'id="new-scopes-error"' in made_up.text
    assert program.call("GET", "/v1/keys").json() == before


def test_only_admins_see_the_keys_and_another_programs_key_cannot_be_revoked(
    app: object,
    client: TestClient,
    program: ApiProgram,
    new_program: Callable[..., ApiProgram],
    add_staff: Callable[..., str],
) -> None:
    other = new_program()
    other_key = other.make_key("pos", name="their till").split(".", 1)[0]
    assert sign_in(client, add_staff(program.id, "marketer")).status_code == 303
    assert client.get("/console/keys", follow_redirects=False).status_code == 403
    assert 'href="/console/keys"' not in client.get("/console/rules").text

    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    token = csrf_of(client.get("/console/keys").text)
    assert other_key not in client.get("/console/keys").text
    refused = client.post(f"/console/keys/{other_key}/revoke", data={"csrf": token}, follow_redirects=False)
    assert refused.status_code == 404
    assert all(k["revoked_at"] is None for k in other.call("GET", "/v1/keys").json())
