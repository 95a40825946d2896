"""No payment card number through any write route: each text a route takes, replaced by a card number, is
refused or never stored, and never sent back.

Generated from the routes (``tests/api/routes.py``): every write route with a body (``BODIES``) is sent once
per text in its body, that text being a fresh card number (a cashier pasting the card into the wrong field,
a script mixing up its columns). The answer must not show the number (a refusal names it ``****1234``), and
``palier scan-cards``' database scan must find none of them afterwards. The end-to-end day with real
processes and logs is ``tests/reliability/test_no_card_numbers.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from palier.db import Database
from palier.privacy import Scan, scan_database
from palier.text import find_card_numbers, masked
from tests.api.helpers import ApiProgram, luhn_card
from tests.api.routes import BODIES, KEYED, make_world, request_for, route_id

WRITES = ("POST", "PATCH", "PUT", "DELETE")


def texts(body: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every text in a JSON body."""
    if isinstance(body, dict):
        for name, value in body.items():
            yield from texts(value, (*at, name))
    elif isinstance(body, list):
        for i, value in enumerate(body):
            yield from texts(value, (*at, i))
    elif isinstance(body, str):
        yield at


def with_text(body: Any, at: tuple[Any, ...], text: str) -> Any:
    changed = copy.deepcopy(body)
    place = changed
    for part in at[:-1]:
        place = place[part]
    place[at[-1]] = text
    return changed


def test_a_card_number_in_any_text_of_any_write_is_never_stored_nor_sent_back(
    new_program: Callable[..., ApiProgram], db: Database
) -> None:
    world = make_world(new_program(), db)
    sent: dict[str, str] = {}  # the masked card -> the route and text it was typed into
    shown = []
    writes = [r for r in KEYED if r[0] in WRITES and r in BODIES]
    assert len(writes) >= 30, writes
    for route in writes:
        method, url, kwargs = request_for(route, world)
        for at in texts(kwargs["json"]):
            card = luhn_card()
            while masked(card) in sent:  # each card told apart by its last four digits
                card = luhn_card()
            sent[masked(card)] = f"{route_id(route)} {'.'.join(map(str, at))}"
            answer = world.program.call(method, url, json=with_text(kwargs["json"], at, card))
            assert answer.status_code < 500, f"{sent[masked(card)]}: {answer.text}"
            if find_card_numbers(answer.text):
                shown.append(f"{sent[masked(card)]}: {answer.status_code} {answer.text[:300]}")
    assert len(sent) >= 50
    assert shown == [], "answers that repeat the card number sent:\n" + "\n".join(shown)
    with db.read() as conn:
        scan = scan_database(conn, Scan(findings=[]))
    stored = [f"{sent.get(f.card, 'another test')} -> {f.where}" for f in scan.findings if f.card in sent]
    assert stored == [], "card numbers stored:\n" + "\n".join(stored)
