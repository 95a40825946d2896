"""No payment card number anywhere: not in the database, not in the logs, not in the repository.

A day at a shop, over real HTTP against ``palier serve`` and with ``palier worker`` run once, on both engines:
members enrol with a payment card, a customer pays with a card nobody has linked yet and links it later, the
phone desk looks a member up by card, a cashier scans a card at the till, and people get it wrong — a card
number pasted into a name, into an order id, into a URL. Then ``palier scan-cards`` reads every value of every
table and both log files, as an operator would run it, and finds nothing; the URL typed by hand is in the
access log, masked. A card number slipped into a row by hand is found (the scan can fail), and shown masked.
"""

from __future__ import annotations

import gzip
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update
from uvicorn.logging import AccessFormatter

from palier.db import make_database
from palier.logs import MaskCardNumbers
from palier.members.tables import members
from palier.privacy import Scan, scan_database, scan_files
from palier.text import contains_card_number, digits_of, find_card_numbers, mask_card_numbers
from tests.reliability.crash_helpers import (
    OPERATOR_TOKEN,
    assert_cli_verify,
    palier_command,
    palier_env,
    run_palier,
    serving,
)
from tests.services.factories import luhn_card, spaced, unique

REPOSITORY = Path(__file__).resolve().parents[2]
STAFF_PASSWORD = "a long staff password"


def test_the_scan_knows_a_card_number_from_what_only_looks_like_one() -> None:
    card, amex = luhn_card("4970"), luhn_card("3782", length=15)
    as_written = [spaced(card, separator) for separator in (" ", "-", "+", "%20")]
    as_written += [card, f"{amex[:4]} {amex[4:10]} {amex[10:]}", f'{{"value": "{card}"}}', f"/v1/members/{card}?x=1"]
    full_width = card.translate(str.maketrans("0123456789", "０１２３４５６７８９"))  # a Japanese keyboard's digits
    as_written += [full_width, spaced(full_width, " "), f"phone {full_width}"]
    for written in as_written:
        assert find_card_numbers(written), written
        assert card[-4:] in mask_card_numbers(written) or amex[-4:] in mask_card_numbers(written)
        assert not find_card_numbers(mask_card_numbers(written)), written
    not_cards = [
        card[:-1] + str((int(card[-1]) + 1) % 10),  # the check digit is wrong
        "1" + card[1:],  # no payment network starts with 1 (and the Luhn sum is off anyway)
        "a3f" + card + "9c",  # inside a hex digest
        "+" + card[:13],  # an E.164 phone number
        "0." + card,  # a decimal fraction
        "LYO-2026-11-23-0042",  # a date-stamped order id
        card[:11],  # too short
    ]
    assert [text for text in not_cards if find_card_numbers(text)] == []


def test_free_text_refuses_a_card_however_it_is_pasted_and_references_keep_date_stamps() -> None:
    card = luhn_card()
    for separator in (" ", "-", ".", "/", "_", "+", "%20"):
        assert contains_card_number(f"note {spaced(card, separator)} end"), separator
    stamped = [f"20261123-{n:07d}" for n in range(200)]
    luhn_valid_stamps = [order for order in stamped if contains_card_number(order)]
    assert len(luhn_valid_stamps) == 20  # one in ten passes a Luhn check: free text would refuse them ...
    assert [order for order in luhn_valid_stamps if find_card_numbers(order)] == []  # ... an order id must not
    for written in (card, f"CUST-{card}", f"{card}@example.com", f"https://hooks.example.com/x?card={card}"):
        assert find_card_numbers(written), written


def test_log_lines_are_masked_including_uvicorn_access_lines() -> None:
    card = luhn_card()
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/v1/members/{card}", "1.1", 404), None,
    )  # fmt: skip
    assert MaskCardNumbers().filter(record) is True  # masks, never drops a line
    line = AccessFormatter("%(client_addr)s - %(request_line)s %(status_code)s", use_colors=False).format(record)
    assert line == f"127.0.0.1:5000 - GET /v1/members/****{card[-4:]} HTTP/1.1 404 Not Found", line
    link = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/p/prg_1/enter?token=Zx81kQ-secret&lang=fr", "1.1", 500), None,
    )  # fmt: skip
    MaskCardNumbers().filter(link)  # a sign-in link whose request failed: its token still opens the account
    line = AccessFormatter("%(request_line)s", use_colors=False).format(link)
    assert line == "GET /p/prg_1/enter?token=…&lang=fr HTTP/1.1", line
    try:
        raise ValueError(f"declined: {spaced(card)}")
    except ValueError:
        failed = logging.LogRecord("palier.api", logging.ERROR, __file__, 1, "card %s", (card,), sys.exc_info())
    MaskCardNumbers().filter(failed)
    text = logging.Formatter().format(failed)
    assert card not in text.replace(" ", "") and text.count(f"****{card[-4:]}") == 2, text


def test_the_scan_reads_rotated_and_utf16_logs_and_says_what_it_could_not_read(tmp_path: Path) -> None:
    card = luhn_card()
    (tmp_path / "api.log.1.gz").write_bytes(gzip.compress(f"ok\ndeclined {card}\n".encode()))
    (tmp_path / "export.csv").write_text(f"name;card\nAnn;{spaced(card, ' ')}\n", encoding="utf-16")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\0\0" + card.encode())
    scan = scan_files([tmp_path, tmp_path / "gone.log"])
    assert sorted(f.where for f in scan.findings) == [f"{tmp_path / 'api.log.1.gz'}:2", f"{tmp_path / 'export.csv'}:2"]
    assert (scan.files, scan.binary) == (2, 1)
    assert scan.unreadable == [f"{tmp_path / 'gone.log'}: No such file or directory"]

    (tmp_path / "api.log.1.gz").write_bytes(b"\x1f\x8b not really gzip")
    (tmp_path / "export.csv").unlink()
    incomplete = run_palier("sqlite:///unused.db", "scan-cards", "--no-database", str(tmp_path))
    assert incomplete.returncode == 2, incomplete.stdout + incomplete.stderr
    assert "Not read:" in incomplete.stdout and "api.log.1.gz" in incomplete.stdout, incomplete.stdout


def test_no_card_number_is_written_in_the_repository() -> None:
    """Fixtures, demo data, docs and examples: test card numbers are made at run time (``luhn_card``)."""
    places = [REPOSITORY / name for name in ("src", "tests", "bench", "docs", "README.md", "Makefile", ".ci")]
    public_test_card = "4242" * 4  # the README's example: a number every payment provider documents as a test
    scan = scan_files([p for p in places if p.exists()], Scan(findings=[], own={public_test_card}))
    assert scan.files > 100
    assert scan.findings == [], "card numbers written in the repository:\n" + "\n".join(
        f"{f.where} {f.card}" for f in scan.findings
    )


def _shop_day(base: str, url: str, cards: dict[str, str]) -> dict[str, Any]:
    """A day of card-carrying traffic; returns what the checks after it need."""
    with httpx.Client(base_url=base, timeout=30) as client:
        made = client.post(
            "/v1/programs", json={"name": "Card day"}, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        )
        assert made.status_code == 201, made.text
        program_id, token = made.json()["program"]["id"], made.json()["admin_key"]["secret"]
        client.headers["Authorization"] = f"Bearer {token}"

        def post(path: str, body: dict[str, Any], expect: int) -> dict[str, Any]:
            response = client.post(path, json=body, headers={"Idempotency-Key": unique("key")})
            assert response.status_code == expect, f"POST {path}: {response.status_code} {response.text}"
            leaked = [n for n in find_card_numbers(response.text) if digits_of(n) != cards["loyalty"]]
            assert not leaked, f"POST {path} answered with a card number: {response.text}"
            return dict(response.json())

        def purchase(identity: dict[str, str], expect: int = 201, order_id: str | None = None) -> dict[str, Any]:
            body = {"order_id": order_id or unique("order"), "member": identity, "channel": "store",
                    "currency": "EUR", "occurred_at": "2026-03-02T09:00:00Z",
                    "lines": [{"sku": "PAIN", "quantity": 2, "unit_price": 1250}]}  # fmt: skip
            return post("/v1/events/purchases", body, expect)

        wallet = [{"kind": "payment_card", "value": spaced(cards["ann"])}, {"kind": "card", "value": cards["loyalty"]}]
        ann = post("/v1/members", {"first_name": "Ann", "email": "ann@example.com", "identities": wallet}, 201)
        shown = [i["value"] for i in ann["identities"] if i["kind"] == "payment_card"]
        assert shown == [f"visa •••• {cards['ann'][-4:]}"], shown
        purchase({"kind": "payment_card", "value": cards["ann"]})
        purchase({"kind": "card", "value": cards["loyalty"]})
        unclaimed = purchase({"kind": "payment_card", "value": spaced(cards["second"], "-")})
        assert unclaimed["status"] == "unclaimed", unclaimed
        post(f"/v1/members/{ann['id']}/identities", {"kind": "payment_card", "value": cards["second"]}, 200)
        found = post("/v1/members/lookup", {"kind": "payment_card", "value": cards["second"]}, 200)
        assert found["id"] == ann["id"]
        # What people get wrong: each refused, and the refusal does not repeat the number.
        refused = post("/v1/members", {"first_name": spaced(cards["pasted"])}, 422)
        assert refused["code"] == "card_number_in_text", refused
        assert post("/v1/members/lookup", {"kind": "payment_card", "value": cards["unknown"]}, 404)["code"]
        purchase({"member_id": ann["id"]}, expect=422, order_id=cards["pasted"])
        action = {"action": "newsletter", "reference": cards["pasted"]}
        assert post(f"/v1/members/{ann['id']}/actions", action, 422)["code"] == "card_number_in_text"
        fee = {"payment_id": cards["pasted"], "member_id": ann["id"], "plan": "club", "amount": 499}
        assert post("/v1/memberships/payments", fee, 422)["code"] == "card_number_in_text"
        keyed = client.post("/v1/members", json={"first_name": "Bo"}, headers={"Idempotency-Key": cards["pasted"]})
        again = client.post("/v1/members", json={"first_name": "Bo"}, headers={"Idempotency-Key": cards["pasted"]})
        assert keyed.status_code == 201 and again.json()["id"] == keyed.json()["id"]  # kept as its HMAC, still a key
        extra = client.post("/v1/members", json={"first_name": "Bo", f"extra_{cards['pasted']}": 1})
        assert extra.status_code == 422 and cards["pasted"] not in extra.text, extra.text  # an unknown key, not echoed
        for path in (  # typed into a URL: refused, logged masked, and the answer does not repeat it
            f"/v1/members/{cards['in_url']}",
            f"/v1/members/{spaced(cards['in_url'])}",
            f"/v1/coupons/{cards['in_url']}",
        ):
            missed = client.get(path)
            assert missed.status_code in (404, 422) and not find_card_numbers(missed.text), missed.text
        reversed_ = client.post(f"/v1/members/{ann['id']}/transactions/{cards['in_url']}/reverse", json={})
        assert reversed_.status_code >= 400 and not find_card_numbers(reversed_.text), reversed_.text
        assert client.get(f"/v1/members/{ann['id']}/history").status_code == 200

    # The till: a cashier signs in and scans the customer's payment card into the search box.
    email = f"{unique('till')}@staff.example"
    added = subprocess.run(
        palier_command("staff", "add", email, "--program", program_id, "--name", "Till", "--role", "store_staff",
                       "--password-stdin"),
        env=palier_env(url), input=STAFF_PASSWORD, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    with httpx.Client(base_url=base, timeout=30) as till:
        page = till.get("/console/sign-in").text
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        signed = till.post("/console/sign-in", data={"csrf": csrf, "email": email, "password": STAFF_PASSWORD})
        assert signed.status_code == 303, signed.text
        scanned = till.post("/till", data={"csrf": csrf, "q": cards["ann"]})
        assert scanned.status_code == 303 and scanned.headers["location"] == f"/till/members/{ann['id']}"
        shown = till.get(scanned.headers["location"]).text
        assert [n for n in find_card_numbers(shown) if digits_of(n) != cards["loyalty"]] == []
    return {"program_id": program_id, "member_id": ann["id"]}


def test_a_day_of_card_traffic_leaves_no_card_number_in_the_database_or_the_logs(
    empty_database_url: str, tmp_path: Path
) -> None:
    cards = {name: luhn_card() for name in ("ann", "second", "pasted", "unknown", "in_url")}
    cards["loyalty"] = luhn_card("2900", length=13)  # the program's own card numbers may pass the Luhn check
    url = empty_database_url
    upgraded = run_palier(url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    served, worked = tmp_path / "serve.log", tmp_path / "worker.log"
    with serving(url, served) as server:
        day = _shop_day(server.base, url, cards)
    worker = run_palier(url, "worker", "--once")
    assert worker.returncode == 0, worker.stderr
    worked.write_text(worker.stdout + worker.stderr)
    assert_cli_verify(url, day["program_id"], seed=0)

    log = served.read_text()
    assert f"GET /v1/members/****{cards['in_url'][-4:]} HTTP/1.1" in log, log  # the request was logged, masked
    db = make_database(url)
    try:
        with db.read() as conn:
            scan = scan_database(conn, Scan(findings=[]))
        scan_files([served, worked], scan)
        assert scan.values > 50 and scan.files == 2
        assert scan.findings == [], scan.findings
        # As an operator runs it: exit 0 and the green line.
        clean = run_palier(url, "scan-cards", str(served), str(worked))
        assert clean.returncode == 0 and "No payment card number in" in clean.stdout, clean.stdout + clean.stderr

        # A card number slipped into a row behind the engine's back is found, and shown masked.
        with db.write() as conn:
            conn.execute(update(members).where(members.c.id == day["member_id"]).values(last_name=cards["pasted"]))
        caught = run_palier(url, "scan-cards", "--no-database", str(served))
        assert caught.returncode == 0
        caught = run_palier(url, "scan-cards")
        assert caught.returncode == 1, caught.stdout
        assert (
            f"members.last_name ({day['member_id']})" in caught.stdout
            and f"****{cards['pasted'][-4:]}" in caught.stdout
        )
        assert cards["pasted"] not in caught.stdout + caught.stderr
    finally:
        db.dispose()
