"""The staff page of the console: an admin adds a colleague, changes their role, sets a new password,
deactivates and reactivates them — each applies at the colleague's next request and leaves an audit entry;
the console never locks out its last admin, and another program's staff are out of reach."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from palier.db import Database
from palier.programs.tables import audit_entries
from palier.staff import service as staff
from tests.api.conftest import own_address
from tests.api.helpers import ApiProgram, unique
from tests.console.conftest import PASSWORD, csrf_of, sign_in

TEMPORARY = "chausson aux pommes 42"


def _admin(client: TestClient, program: ApiProgram, add_staff: Callable[..., str]) -> str:
    assert sign_in(client, add_staff(program.id, "admin", name="Camille Admin")).status_code == 303
    return csrf_of(client.get("/console/staff").text)


def _colleague(db: Database, program: ApiProgram, email: str) -> str:
    with db.read() as conn:
        return staff.find(conn=conn, program_id=program.id, email=email).id


def test_an_admin_adds_a_colleague_who_signs_in_then_changes_their_role_and_password(
    app: FastAPI, client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    token = _admin(client, program, add_staff)
    # a new address each run: failed sign-ins are counted per account in databases that outlive a run
    hugo_email = f"{unique('hugo')}@fournil.example"
    form = {"csrf": token, "display_name": "Hugo Caisse", "email": hugo_email.title(), "role": "store_staff"}
    short = client.post("/console/staff", data=form | {"password": "short"})
    assert short.status_code == 422 and 'id="new-password-error"' in short.text and "Hugo Caisse" in short.text
    added = client.post("/console/staff", data=form | {"password": TEMPORARY}, follow_redirects=False)
    assert added.status_code == 303 and added.headers["location"] == "/console/staff?done=added"
    page = client.get(added.headers["location"]).text
    assert "Personne ajoutée" in page and hugo_email in page
    assert 'data-confirm="Désactiver Hugo Caisse ? Ses sessions se terminent tout de suite."' in page  # asks first
    again = client.post("/console/staff", data=form | {"password": TEMPORARY})
    assert again.status_code == 409 and "fait déjà partie de l&#39;équipe" in again.text
    hugo = _colleague(db, program, hugo_email)

    with TestClient(app, client=own_address()) as till:  # the newcomer, on their own browser
        assert sign_in(till, hugo_email, TEMPORARY).headers["location"] == "/till"
        assert till.get("/console/rules", follow_redirects=False).status_code == 403
        to_marketer = {"csrf": token, "role": "marketer"}
        assert client.post(f"/console/staff/{hugo}/role", data=to_marketer, follow_redirects=False).status_code == 303
        assert till.get("/console/rules", follow_redirects=False).status_code == 200  # at their next page
        sent = {"csrf": token, "password": "un nouveau mot de passe"}
        assert client.post(f"/console/staff/{hugo}/password", data=sent, follow_redirects=False).status_code == 303
        signed_out = till.get("/till", follow_redirects=False)  # a new password ends the sessions of the old one
        assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/console/sign-in")
    with TestClient(app, client=own_address()) as later:
        assert sign_in(later, hugo_email, TEMPORARY).status_code == 401
        assert sign_in(later, hugo_email, "un nouveau mot de passe").status_code == 303

    with db.read() as conn:
        audit = conn.execute(
            select(audit_entries.c.action, audit_entries.c.actor)
            .where(audit_entries.c.subject_id == hugo)
            .order_by(audit_entries.c.id)
        ).all()
    assert [action for action, _ in audit] == ["staff.create", "staff.role", "staff.password"]
    assert {actor for _, actor in audit} == {f"staff:{_colleague(db, program, _signed_in_email(client))}"}


def _signed_in_email(client: TestClient) -> str:
    page = client.get("/console/staff").text
    marker = '<tr data-staff="'
    emails = [part.split('"', 1)[0] for part in page.split(marker)[1:]]
    return next(e for e in emails if e.startswith("admin."))


def test_a_deactivated_colleague_is_signed_out_at_once_and_can_be_let_back_in(
    app: FastAPI, client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    token = _admin(client, program, add_staff)
    email = add_staff(program.id, "store_staff")
    colleague = _colleague(db, program, email)
    with TestClient(app, client=own_address()) as till:
        assert sign_in(till, email).status_code == 303
        off = {"csrf": token, "active": "off"}
        done = client.post(f"/console/staff/{colleague}/active", data=off, follow_redirects=False)
        assert done.headers["location"] == "/console/staff?done=deactivated"
        assert till.get("/till", follow_redirects=False).status_code == 303  # back to sign-in
        assert sign_in(till, email).status_code == 401
        on = {"csrf": token, "active": "on"}
        assert client.post(f"/console/staff/{colleague}/active", data=on, follow_redirects=False).status_code == 303
        assert sign_in(till, email, PASSWORD).status_code == 303


def test_the_console_never_locks_out_its_last_admin_nor_lets_an_admin_switch_themselves_off(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    token = _admin(client, program, add_staff)
    me = _colleague(db, program, _signed_in_email(client))
    demoted = client.post(f"/console/staff/{me}/role", data={"csrf": token, "role": "marketer"})
    assert demoted.status_code == 409 and "dernier administrateur actif" in demoted.text
    off = client.post(f"/console/staff/{me}/active", data={"csrf": token, "active": "off"})
    assert off.status_code == 409 and "votre propre compte" in off.text
    assert 'action="/console/staff/' + me + '/active"' not in client.get("/console/staff").text  # no such button
    with db.read() as conn:
        me_now = staff.get(conn=conn, staff_id=me)
    assert (me_now.role, me_now.active) == ("admin", True)


def test_another_programs_staff_are_out_of_reach(
    client: TestClient,
    new_program: Callable[..., ApiProgram],
    program: ApiProgram,
    add_staff: Callable[..., str],
    db: Database,
) -> None:
    other = new_program()
    stranger_email = add_staff(other.id, "admin")
    stranger = _colleague(db, other, stranger_email)
    token = _admin(client, program, add_staff)
    changes = {"role": {"role": "store_staff"}, "active": {"active": "off"}, "password": {"password": TEMPORARY}}
    for action, data in changes.items():
        refused = client.post(f"/console/staff/{stranger}/{action}", data={"csrf": token} | data)
        assert refused.status_code == 404, action
    assert stranger_email not in client.get("/console/staff").text
    with db.read() as conn:
        them = staff.get(conn=conn, staff_id=stranger)
    assert (them.role, them.active) == ("admin", True)


def test_anyone_signed_in_changes_their_own_password(
    app: FastAPI, client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    email = add_staff(program.id, "store_staff")
    assert sign_in(client, email).status_code == 303
    elsewhere = TestClient(app, client=own_address())  # the same person, signed in on another computer
    assert sign_in(elsewhere, email).status_code == 303
    token = csrf_of(client.get("/console/password").text)
    new = {"csrf": token, "new_password": TEMPORARY, "new_password_again": TEMPORARY}
    wrong = client.post("/console/password", data=new | {"current_password": "not it at all"})
    assert wrong.status_code == 422 and "Ce n&#39;est pas votre mot de passe actuel." in wrong.text
    typo = client.post("/console/password", data=new | {"current_password": PASSWORD, "new_password_again": "x"})
    assert typo.status_code == 422 and "Les deux saisies diffèrent." in typo.text
    done = client.post("/console/password", data=new | {"current_password": PASSWORD}, follow_redirects=False)
    assert done.headers["location"] == "/console/password?saved=1"
    assert client.get("/console/password?saved=1", follow_redirects=False).status_code == 200  # still signed in here
    assert elsewhere.get("/till", follow_redirects=False).headers["location"].startswith("/console/sign-in")
    elsewhere.close()
    with TestClient(app, client=own_address()) as later:
        assert sign_in(later, email, PASSWORD).status_code == 401
        assert sign_in(later, email, TEMPORARY).status_code == 303


def test_a_colleagues_e_mail_that_is_not_one_is_refused_in_the_pages_language(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = _admin(client, program, add_staff)
    form = {"csrf": token, "display_name": "Hugo Caisse", "email": "hugo.fournil.example", "role": "store_staff"}
    refused = client.post("/console/staff", data=form | {"password": TEMPORARY})
    assert refused.status_code == 422 and "Cette adresse e-mail n&#39;est pas valide" in refused.text
    assert "@-sign" not in refused.text
    client.get("/console/staff?lang=en")
    in_english = client.post("/console/staff", data=form | {"password": TEMPORARY})
    assert "This e-mail address is not valid: check it, e.g. name@example.com." in in_english.text


def test_each_rows_buttons_name_the_colleague_they_act_on(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """A screen reader listing the page's buttons hears whose role or password each one changes."""
    add_staff(program.id, "marketer", name="Inès Laurent")
    _admin(client, program, add_staff)
    page = client.get("/console/staff").text
    labels = re.findall(r'<button type="submit" class="secondary small" aria-label="([^"]+)">', page)
    assert "Changer le rôle d&#39;Inès Laurent" in labels and "Définir le mot de passe d&#39;Inès Laurent" in labels
    assert "Changer le rôle de Camille Admin" in labels
    assert len(labels) == len(set(labels))  # no two alike
