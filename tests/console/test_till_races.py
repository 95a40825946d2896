"""Two tills sending the same sale, refund or payment for one customer within milliseconds (two cashiers, or a
form sent from two screens): the second is asked "already recorded?", exactly as a sequential repeat is, and
only one goes through. The first till's command is held open while the second arrives, on both engines."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from palier.activity import service as activity
from palier.rewards import payments
from tests.api.conftest import own_address
from tests.api.helpers import ApiProgram
from tests.console.conftest import csrf_of, sign_in

CASES = {
    "sale": ("record_purchase", activity, "Une vente de 8,40\u00a0€ a déjà été enregistrée pour ce client le"),
    "refund": ("record_return", activity, "8,40\u00a0€ ont déjà été remboursés sur le ticket T2000-AAAAA le"),
    "payment": ("pay", payments, "Ce client a déjà payé 100 points sur un ticket de 8,40\u00a0€, le"),
}


def _form(case: str, csrf: str, ticket: str) -> tuple[str, dict[str, str]]:
    if case == "sale":
        return "sale", {"csrf": csrf, "order_id": ticket, "order_total": "8,40"}
    if case == "refund":
        return "refund", {"csrf": csrf, "return_id": f"R{ticket}", "order_id": "T2000-AAAAA", "amount": "8,40"}
    return "pay", {"csrf": csrf, "order_id": ticket, "order_total": "8,40", "points": "100"}


@pytest.mark.parametrize("case", CASES)
def test_two_tills_sending_the_same_thing_at_once_record_it_once_and_the_second_is_asked(
    app: FastAPI,
    client: TestClient,
    program: ApiProgram,
    add_staff: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 300)
    till = f"/till/members/{ann['id']}"
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    first_csrf = csrf_of(client.get(till).text)
    if case == "refund":  # the ticket both refund
        sold = {"csrf": first_csrf, "order_id": "T2000-AAAAA", "order_total": "16,80"}
        assert client.post(f"{till}/sale", data=sold, follow_redirects=False).status_code == 303
    name, module, asked = CASES[case]
    original = getattr(module, name)
    answers: list[Any] = []

    with TestClient(app, client=own_address()) as other:  # the second till, its own connection and cashier
        assert sign_in(other, add_staff(program.id, "store_staff")).status_code == 303
        other_csrf = csrf_of(other.get(till).text)
        path, second = _form(case, other_csrf, "T2002-CCCCC")
        racer = threading.Thread(target=lambda: answers.append(other.post(f"{till}/{path}", data=second)))

        def first_holds_its_command_open(**kwargs: Any) -> Any:
            done = original(**kwargs)
            if not racer.is_alive() and not answers:  # the first till: the second arrives before it commits
                racer.start()
                time.sleep(0.5)
            return done

        monkeypatch.setattr(module, name, first_holds_its_command_open)
        path, first = _form(case, first_csrf, "T2001-BBBBB")
        assert client.post(f"{till}/{path}", data=first, follow_redirects=False).status_code == 303
        racer.join(timeout=30)
    assert len(answers) == 1
    assert answers[0].status_code == 409, answers[0].text[:500]
    assert asked in answers[0].text
    balance = program.balance(ann["id"])
    if case == "sale":
        assert balance["pending"] == 8  # one sale of €8.40, not two
    elif case == "refund":
        assert balance["pending"] == 8  # €16.80 sold, €8.40 refunded once
    else:
        assert balance["available"] == 200  # 100 points paid once
