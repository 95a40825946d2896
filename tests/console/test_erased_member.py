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
