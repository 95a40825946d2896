"""Webhooks: a program's events POSTed to a real HTTP receiver, signed, retried with backoff, sent once.

The receiver (``tests/receiver.py``) is a real HTTP server on this machine; the deliveries are those
``palier worker`` makes (``webhooks.deliver``), over real sockets, with the app's frozen clock deciding when
a retry is due.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from palier.clock import FrozenClock
from palier.config import public_webhooks_from_env
from palier.db import Database
from palier.errors import InvalidInput
from palier.notify import webhook_http, webhooks
from palier.notify.tables import webhooks as webhook_rows
from tests.api.helpers import ApiProgram, assert_problem, luhn_card, spaced
from tests.api.test_outbox_api import emit
from tests.receiver import Receiver


def _clock(client: TestClient) -> FrozenClock:
    clock: FrozenClock = client.app.state.clock  # type: ignore[attr-defined]
    return clock


def test_events_are_pushed_signed_oldest_first_and_delivered_once(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    program, clock = new_program(), _clock(client)
    made = program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    assert made.status_code == 200, made.text
    hook = made.json()
    assert hook["url"] == receiver.url and hook["secret"].startswith("whsec_") and hook["waiting"] == 0
    emit(db, clock, program, "segment_entered", "points_expiring", "segment_left")
    assert program.call("GET", "/v1/webhook").json()["waiting"] == 3

    run = webhooks.deliver(db, clock, program_id=program.id)
    assert (run.events, run.requests, run.failures) == (3, 1, 0)
    [(headers, body)] = receiver.received
    assert headers["Content-Type"] == "application/json"
    signature = headers["Palier-Signature"]
    now = clock.now().timestamp()
    assert webhooks.verify(hook["secret"], signature, body, now=now)
    assert not webhooks.verify(hook["secret"], signature, body.replace(b"segment_left", b"segment_lefT"), now=now)
    assert not webhooks.verify("whsec_another", signature, body, now=now)
    assert not webhooks.verify(hook["secret"], signature, body, now=now + 301)  # a replay, later
    assert not webhooks.verify(hook["secret"], signature, body)  # without now: the real time, long after the test clock
    assert webhooks.verify(hook["secret"], webhooks.sign(hook["secret"], int(time.time()), body), body)
    assert [(e["type"], e["payload"]) for e in receiver.events()] == [
        ("segment_entered", {"n": 0}),
        ("points_expiring", {"n": 1}),
        ("segment_left", {"n": 2}),
    ]
    assert program.call("GET", "/v1/outbox").json()["items"] == []  # delivered: not served to pollers
    assert program.call("GET", "/v1/webhook").json()["waiting"] == 0
    assert webhooks.deliver(db, clock, program_id=program.id).requests == 0  # nothing sent twice


def test_a_failing_receiver_is_tried_again_later_and_nothing_is_lost(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, program, "tier_upgraded", "segment_left")
    receiver.statuses = [503, 500]

    assert webhooks.deliver(db, clock, program_id=program.id).failures == 1
    hook = program.call("GET", "/v1/webhook").json()
    assert (hook["waiting"], hook["retrying"], hook["last_error"]) == (2, 2, "HTTP 503")
    assert len(program.call("GET", "/v1/outbox").json()["items"]) == 2  # still there for a poller
    assert webhooks.deliver(db, clock, program_id=program.id).requests == 0  # not due yet
    clock.advance(seconds=30)
    assert webhooks.deliver(db, clock, program_id=program.id).failures == 1  # the second failure: wait 60 s
    clock.advance(seconds=59)
    assert webhooks.deliver(db, clock, program_id=program.id).requests == 0
    clock.advance(seconds=1)
    run = webhooks.deliver(db, clock, program_id=program.id)
    assert (run.events, run.failures) == (2, 0)
    assert len(receiver.received) == 3 and [e["type"] for e in receiver.events()[-2:]] == [
        "tier_upgraded",
        "segment_left",
    ]
    hook = program.call("GET", "/v1/webhook").json()
    assert (hook["waiting"], hook["retrying"], hook["last_error"]) == (0, 0, None)
    assert webhooks.backoff(1).total_seconds() == 30 and webhooks.backoff(30).total_seconds() == 6 * 3600


def test_an_unreachable_receiver_is_recorded_and_a_new_address_is_tried_at_once(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": "http://127.0.0.1:9/nobody-listens"})
    emit(db, clock, program, "segment_entered")
    run = webhooks.deliver(db, clock, program_id=program.id)
    assert run.failures == 1 and "ConnectError" in run.errors[0]
    assert program.call("GET", "/v1/webhook").json()["last_error"].startswith("ConnectError")
    moved = program.call("PUT", "/v1/webhook", json={"url": receiver.url})  # fixed: no need to wait 30 s
    assert moved.json()["last_error"] is None  # the old address's error is not the new one's
    assert webhooks.deliver(db, clock, program_id=program.id).events == 1
    assert [e["type"] for e in receiver.events()] == ["segment_entered"]
    assert moved.json()["secret"] == program.call("GET", "/v1/webhook").json()["secret"]


def test_an_address_the_client_cannot_send_to_is_a_recorded_failure_not_a_crash(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram]
) -> None:
    """An address saved by an earlier version that checked less (https://256.1.1.1/) fails like a dead one."""
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": "https://shop.example/hooks"})
    with db.write() as conn:
        conn.execute(
            update(webhook_rows).where(webhook_rows.c.program_id == program.id).values(url="https://256.1.1.1/hooks")
        )
    emit(db, clock, program, "segment_entered")
    run = webhooks.deliver(db, clock, program_id=program.id)
    assert run.failures == 1 and "InvalidURL" in run.errors[0]
    assert program.call("GET", "/v1/webhook").json()["last_error"].startswith("InvalidURL")
    tested = program.call("POST", "/v1/webhook/test")
    assert tested.status_code == 200 and tested.json()["delivered"] is False


def test_a_receiver_that_answers_ever_so_slowly_is_cut_off_at_the_timeout(
    db: Database,
    client: TestClient,
    new_program: Callable[..., ApiProgram],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A timeout per read never trips on an answer dribbled a byte at a time: it would hold the sender (and every
    other program's deliveries behind it) past the batch's lease, when another worker sends the same events."""
    monkeypatch.setattr(webhook_http, "TIMEOUT", 1.0)
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, program, "segment_entered")
    receiver.trickle = 0.2  # about 50 bytes: 10 s for the whole answer
    began = time.monotonic()
    run = webhooks.deliver(db, clock, program_id=program.id)
    assert time.monotonic() - began < 3
    assert (run.events, run.failures) == (0, 1) and "Timeout" in run.errors[0]
    hook = program.call("GET", "/v1/webhook").json()
    assert (hook["waiting"], hook["retrying"]) == (1, 1)
    tested = program.call("POST", "/v1/webhook/test").json()
    assert (tested["delivered"], tested["status"], tested["failure"]) == (False, None, "timeout")


def test_a_tls_failure_is_told_as_a_certificate_or_network_error_not_as_nobody_answering(
    client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    """Something answers there, but the TLS handshake fails (here: plain HTTP at an https:// address; in life,
    an expired or self-signed certificate): "nothing answers at this address" would send the merchant astray."""
    program = new_program()
    program.call("PUT", "/v1/webhook", json={"url": receiver.url.replace("http://", "https://")})
    tested = program.call("POST", "/v1/webhook/test").json()
    assert (tested["delivered"], tested["failure"]) == (False, "network") and "SSL" in tested["error"]


def test_two_senders_at_once_send_every_event_exactly_once(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, program, *["segment_entered"] * 260)
    runs: list[webhooks.DeliveryRun] = []
    start = threading.Barrier(3)

    def sender() -> None:
        start.wait()
        runs.append(webhooks.deliver(db, clock, program_id=program.id, batch_size=20))

    threads = [threading.Thread(target=sender) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [e["id"] for e in receiver.events()]
    assert len(ids) == 260 and len(set(ids)) == 260
    assert sum(r.events for r in runs) == 260 and all(r.failures == 0 for r in runs)


def test_setting_rotating_and_removing_the_webhook(
    client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    program = new_program()
    assert_problem(program.call("GET", "/v1/webhook"), 404, "webhook_not_set")
    refused = ("http://shop.example/hooks", "ftp://127.0.0.1/hooks", "hooks", "https://", "http://[::1",
               "https://256.1.1.1/hooks", "https://xn--/hooks", "https://shop.example:99999/hooks")  # fmt: skip
    for url in refused:
        assert_problem(program.call("PUT", "/v1/webhook", json={"url": url}), 422, "invalid_webhook_url", "url")
    for url in ("https://256.1.1.1/hooks", "https://shop.example:99999/hooks", "https://"):  # https, as asked
        detail = program.call("PUT", "/v1/webhook", json={"url": url}).json()["detail"]
        assert "https:// address is expected" not in detail and "host name and port" in detail, (url, detail)
    card_in_url = {"url": f"https://shop.example/hooks?card={luhn_card()}"}
    assert_problem(program.call("PUT", "/v1/webhook", json=card_in_url), 422, "card_number_in_text", "url")
    renamed = program.call("PATCH", "/v1/program", json={"name": f"Shop {spaced(luhn_card())}"})
    assert_problem(renamed, 422, "card_number_in_text", "name")
    assert_problem(program.call("GET", "/v1/webhook"), 404, "webhook_not_set")  # nothing written
    first = program.call("PUT", "/v1/webhook", json={"url": "https://shop.example/hooks"}).json()
    again = program.call("PUT", "/v1/webhook", json={"url": receiver.url}).json()
    assert again["secret"] == first["secret"] and again["url"] == receiver.url
    rotated = program.call("PUT", "/v1/webhook", json={"url": receiver.url, "new_secret": True}).json()
    assert rotated["secret"] != first["secret"]
    other = new_program()
    assert_problem(other.call("GET", "/v1/webhook"), 404, "webhook_not_set")  # one program's, not another's
    removed = program.call("DELETE", "/v1/webhook")
    assert removed.status_code == 200 and removed.json()["url"] == receiver.url
    assert_problem(program.call("GET", "/v1/webhook"), 404, "webhook_not_set")
    assert_problem(program.call("DELETE", "/v1/webhook"), 404, "webhook_not_set")
    actions = [entry["action"] for entry in program.call("GET", "/v1/audit").json()["items"]]
    assert actions[:4] == ["webhook.removed", "webhook.set", "webhook.set", "webhook.set"]


def test_a_test_event_shows_how_the_receiver_answers_and_writes_nothing(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    program, clock = new_program(), _clock(client)
    assert_problem(program.call("POST", "/v1/webhook/test"), 404, "webhook_not_set")
    secret = program.call("PUT", "/v1/webhook", json={"url": receiver.url}).json()["secret"]
    before = program.call("GET", "/v1/outbox").json()
    ok = {"delivered": True, "status": 204, "error": None, "failure": None}
    assert program.call("POST", "/v1/webhook/test").json() == ok
    [(headers, body)] = receiver.received
    assert webhooks.verify(secret, headers["Palier-Signature"], body, now=clock.now().timestamp())
    [event] = receiver.events()
    assert event["type"] == "webhook_test" and event["id"].startswith("obx_")
    receiver.statuses = [500]
    refused = {"delivered": False, "status": 500, "error": "HTTP 500", "failure": "status"}
    assert program.call("POST", "/v1/webhook/test").json() == refused
    program.call("PUT", "/v1/webhook", json={"url": "http://127.0.0.1:9/nobody-listens"})
    down = program.call("POST", "/v1/webhook/test").json()
    assert (down["delivered"], down["status"], down["failure"]) == (False, None, "unreachable")
    assert down["error"].startswith("ConnectError")
    assert program.call("GET", "/v1/outbox").json() == before  # the test events are not in the outbox
    assert webhooks.deliver(db, clock, program_id=program.id).requests == 0  # and are not sent again


def _iso(clock: FrozenClock) -> str:
    return clock.now().isoformat().replace("+00:00", "Z")


def test_a_receiver_that_answers_410_gone_is_disabled_at_once_and_a_put_enables_it_again(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, program, "tier_upgraded", "segment_left")
    receiver.statuses = [410]
    run = webhooks.deliver(db, clock, program_id=program.id)
    assert (run.failures, run.disabled) == (1, [program.id])
    gone_at = _iso(clock)
    hook = program.call("GET", "/v1/webhook").json()
    assert (hook["disabled_at"], hook["disabled_reason"], hook["last_error"]) == (gone_at, "gone", "HTTP 410")
    assert hook["waiting"] == 2  # nothing is dropped: the events wait, and GET /v1/outbox still serves them
    [entry] = [e for e in program.call("GET", "/v1/audit").json()["items"] if e["action"] == "webhook.disabled"]
    assert entry["actor"] == "engine" and entry["details"] == {
        "url": receiver.url,
        "reason": "gone",
        "last_error": "HTTP 410",
    }
    clock.advance(hours=7)  # long past any retry
    emit(db, clock, program, "points_expiring")
    assert webhooks.deliver(db, clock, program_id=program.id).requests == 0  # no retry, no new delivery
    assert len(receiver.received) == 1
    assert program.call("POST", "/v1/webhook/test").json()["delivered"]  # a test still goes, to check the address

    enabled = program.call("PUT", "/v1/webhook", json={"url": receiver.url}).json()  # the same address, saved again
    assert (enabled["disabled_at"], enabled["disabled_reason"], enabled["last_error"]) == (None, None, None)
    assert program.call("GET", "/v1/audit").json()["items"][0]["details"]["enabled_again"] is True
    run = webhooks.deliver(db, clock, program_id=program.id)
    assert (run.events, run.failures, run.disabled) == (3, 0, [])
    assert [e["type"] for e in receiver.events()[-3:]] == ["tier_upgraded", "segment_left", "points_expiring"]


def test_a_receiver_without_a_2xx_for_three_days_is_disabled(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, program, "segment_entered")
    receiver.statuses = [503, 500]
    webhooks.deliver(db, clock, program_id=program.id)
    assert program.call("GET", "/v1/webhook").json()["failing_since"] == _iso(clock)
    clock.advance(hours=1)
    assert webhooks.deliver(db, clock, program_id=program.id).failures == 1
    clock.advance(hours=1)
    assert webhooks.deliver(db, clock, program_id=program.id).events == 1  # a 2xx: the failing run is over
    assert program.call("GET", "/v1/webhook").json()["failing_since"] is None

    emit(db, clock, program, "segment_left")
    receiver.statuses = [500] * 20
    started = _iso(clock)
    for _ in range(12):  # every 6 hours, 66 hours in all: still tried
        run = webhooks.deliver(db, clock, program_id=program.id)
        assert (run.failures, run.disabled) == (1, [])
        clock.advance(hours=6)
    hook = program.call("GET", "/v1/webhook").json()
    assert (hook["failing_since"], hook["disabled_at"]) == (started, None)
    run = webhooks.deliver(db, clock, program_id=program.id)  # 72 hours without a 2xx
    assert (run.failures, run.disabled) == (1, [program.id])
    hook = program.call("GET", "/v1/webhook").json()
    assert (hook["disabled_at"], hook["disabled_reason"], hook["last_error"]) == (_iso(clock), "failing", "HTTP 500")
    clock.advance(hours=6)
    assert webhooks.deliver(db, clock, program_id=program.id).requests == 0
    enabled = program.call("PUT", "/v1/webhook", json={"url": receiver.url}).json()
    assert (enabled["disabled_at"], enabled["failing_since"]) == (None, None)  # three more days before the next
    assert webhooks.deliver(db, clock, program_id=program.id).disabled == []


def test_a_410_from_an_address_replaced_meanwhile_does_not_disable_the_new_one(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    """The merchant moves the webhook while a batch is on its way to the old address, which answers 410."""
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, program, "segment_entered")
    receiver.statuses = [410]

    def move() -> None:
        assert program.call("PUT", "/v1/webhook", json={"url": receiver.url + "/v2"}).status_code == 200

    with receiver.holding(move) as moved:  # the answer comes once the webhook has moved, however long that takes
        run = webhooks.deliver(db, clock, program_id=program.id)
    assert moved.is_set() and run.failures == 1 and run.disabled == []
    assert program.call("GET", "/v1/webhook").json()["disabled_at"] is None


def test_a_failure_days_after_the_waiting_events_were_acknowledged_does_not_disable_at_once(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    """The mailer acknowledged the events that failed (no more tries), and a new one fails days later: that
    receiver has not been failing for three days, only this event has been waiting for none."""
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, program, "segment_entered")
    receiver.statuses = [500, 500]
    assert webhooks.deliver(db, clock, program_id=program.id).failures == 1
    ids = [event["id"] for event in program.call("GET", "/v1/outbox").json()["items"]]
    assert program.call("POST", "/v1/outbox/ack", json={"ids": ids}).status_code == 200
    clock.advance(days=4)
    emit(db, clock, program, "segment_left")
    run = webhooks.deliver(db, clock, program_id=program.id)
    assert (run.failures, run.disabled) == (1, [])
    assert program.call("GET", "/v1/webhook").json()["disabled_at"] is None


def _public_only(client: TestClient) -> None:
    """The app as a server started with PALIER_WEBHOOK_NETWORKS=public."""
    state = client.app.state  # type: ignore[attr-defined]
    state.settings = replace(state.settings, public_webhooks_only=True)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.20.30.40", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # the cloud's metadata service
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fd00::1", False),
        ("fe80::1%eth0", False),
        ("::ffff:10.0.0.1", False),  # an IPv4 private address written as IPv6
        ("::ffff:93.184.216.34", True),
    ],
)
def test_which_addresses_are_on_the_public_internet(address: str, public: bool) -> None:
    assert webhook_http.is_public(address) is public


def test_the_networks_setting_is_any_or_public() -> None:
    assert public_webhooks_from_env({}) is False
    assert public_webhooks_from_env({"PALIER_WEBHOOK_NETWORKS": "any"}) is False
    assert public_webhooks_from_env({"PALIER_WEBHOOK_NETWORKS": " Public "}) is True
    with pytest.raises(InvalidInput) as refused:
        public_webhooks_from_env({"PALIER_WEBHOOK_NETWORKS": "internet"})
    assert (refused.value.code, refused.value.field) == ("invalid_setting", "PALIER_WEBHOOK_NETWORKS")


def test_a_request_through_a_proxy_is_left_to_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert not webhook_http.proxied("https://shop.example/hooks")
    monkeypatch.setenv("HTTPS_PROXY", "http://10.0.0.9:3128")
    assert webhook_http.proxied("https://shop.example/hooks")
    assert not webhook_http.proxied("http://shop.example/hooks")  # no proxy for http
    monkeypatch.setenv("NO_PROXY", "shop.example")
    assert not webhook_http.proxied("https://shop.example/hooks")


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/hooks",
        "http://127.0.0.1:8080/hooks",
        "https://10.1.2.3/hooks",
        "https://169.254.169.254/latest",
        "https://[::1]/hooks",
        "https://[fd00::5]/hooks",
        "https://api.localhost/hooks",
    ],
)
def test_a_public_only_server_refuses_to_save_a_private_address(
    client: TestClient, new_program: Callable[..., ApiProgram], url: str
) -> None:
    program = new_program()
    _public_only(client)
    refused = assert_problem(
        program.call("PUT", "/v1/webhook", json={"url": url}), 422, "webhook_url_not_public", "url"
    )
    assert "PALIER_WEBHOOK_NETWORKS=public" in refused["detail"]
    assert program.call("GET", "/v1/webhook").status_code == 404  # nothing saved
    assert program.call("PUT", "/v1/webhook", json={"url": "https://shop.example/hooks"}).status_code == 200


def test_a_public_only_server_sends_nothing_to_a_name_that_leads_to_a_private_address(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    """The address connected to is judged, not the name: the receiver's name led to a public address when
    it was saved (here: saved before the server was made public-only) and leads to a private one now."""
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, program, "segment_entered")
    _public_only(client)

    tested = program.call("POST", "/v1/webhook/test").json()
    assert (tested["delivered"], tested["status"], tested["failure"]) == (False, None, "private")
    assert "127.0.0.1 is not on the public internet" in tested["error"]
    run = webhooks.deliver(db, clock, program_id=program.id, public_only=True)
    assert (run.requests, run.events, run.failures) == (1, 0, 1)
    assert receiver.received == []  # not a byte reached it
    hook = program.call("GET", "/v1/webhook").json()
    assert hook["waiting"] == 1 and hook["last_error"].startswith("PrivateAddress: 127.0.0.1")
    assert len(program.call("GET", "/v1/outbox").json()["items"]) == 1  # kept for a poller

    clock.advance(seconds=31)  # the same server sending anywhere (the default) delivers it
    assert webhooks.deliver(db, clock, program_id=program.id).events == 1
    assert [e["type"] for e in receiver.events()] == ["segment_entered"]


def test_the_readmes_signature_check_accepts_a_delivery_and_refuses_a_forgery_without_crashing() -> None:
    """A receiver copies the README's check: it must say yes to Palier's signature and no (not raise, which a
    web framework turns into a 500) to a request with a missing or garbled header."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    [code] = re.findall(r"```python\n(def from_palier.*?|import hashlib, hmac, time\n.*?)```", readme, re.DOTALL)
    scope: dict[str, Any] = {}
    exec(code, scope)  # the README's own example
    from_palier = scope["from_palier"]
    secret, body = "whsec_readme", b'{"events":[]}'
    header = webhooks.sign(secret, int(time.time()), body)
    assert from_palier(secret, header, body)
    assert not from_palier(secret, header, body + b" ")
    assert not from_palier(secret, webhooks.sign(secret, int(time.time()) - 301, body), body)  # a replay, later
    now = int(time.time())
    garbled = ("", "garbage", "v1=00", "t=soon,v1=00", "t=\u00b2,v1=00")
    for forged in (*garbled, f"t={now},v1", f"t={now},v1=\u00e9t\u00e9", f"t={now}"):
        assert not from_palier(secret, forged, body), forged
        assert not webhooks.verify(secret, forged, body), forged


def test_a_webhook_saved_again_starts_its_retries_afresh(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    """A receiver down for a day, its events retried 6 hours apart by then: the merchant fixes it and saves the
    webhook. A hiccup on the first try after that (the deploy not quite done) is tried again after 30 s, as for
    any new failure, not 6 hours later behind the old address's run of failures."""
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, program, "tier_upgraded")
    receiver.statuses = [503] * 12
    for _ in range(12):
        assert webhooks.deliver(db, clock, program_id=program.id).failures == 1
        clock.advance(hours=6)
    assert len(receiver.received) == 12
    saved = program.call("PUT", "/v1/webhook", json={"url": receiver.url}).json()
    assert (saved["waiting"], saved["retrying"]) == (1, 0)
    receiver.statuses = [502]
    assert webhooks.deliver(db, clock, program_id=program.id).failures == 1
    clock.advance(seconds=31)
    run = webhooks.deliver(db, clock, program_id=program.id)
    assert (run.events, run.failures) == (1, 0)
    assert len(receiver.received) == 14  # 12 tries, the hiccup, the delivery


def test_the_audit_trail_keeps_where_a_webhook_pointed_not_what_authenticated_it(
    new_program: Callable[..., ApiProgram],
) -> None:
    """An address often carries its receiver's credentials (a password, ``?token=``, a secret path): the trail,
    kept for years and read by every admin, says which host and whether the address changed, not the secret."""
    program = new_program()
    secret_url = "https://mailer:s3cret-pw@hooks.shop.example:8443/in/k9Zq7TOKENx?token=t0ken-v4lue"
    for url in (secret_url, secret_url, "https://hooks.shop.example:8443/other"):
        assert program.call("PUT", "/v1/webhook", json={"url": url}).status_code == 200
    assert program.call("DELETE", "/v1/webhook").status_code == 200
    entries = [e for e in program.call("GET", "/v1/audit").json()["items"] if e["action"].startswith("webhook.")]
    trail = str(entries)
    assert "s3cret-pw" not in trail and "t0ken-v4lue" not in trail and "k9Zq7TOKENx" not in trail
    removed, third, second, first = (entry["details"] for entry in entries)
    assert first["url"] == second["url"] == third["url"] == "https://hooks.shop.example:8443/…"
    assert first["address"] == second["address"] != third["address"] == removed["address"]


def test_one_programs_backlog_does_not_hold_back_another_programs_events(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    """A merchant with a large backlog (here: three batches) gets one request per round, in turn with every other
    program: another merchant's single event goes in the first round, not once the whole backlog is through."""
    busy, quiet, clock = new_program(), new_program(), _clock(client)
    for program in (busy, quiet):
        program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, busy, *["segment_entered"] * 6)
    emit(db, clock, quiet, "tier_upgraded")
    busy_ids = {event["id"] for event in busy.call("GET", "/v1/outbox").json()["items"]}
    run = webhooks.deliver(db, clock, program_ids=[busy.id, quiet.id], batch_size=2)
    assert (run.events, run.requests, run.failures) == (7, 4, 0)
    requests = [json.loads(body)["events"] for _, body in receiver.received]
    sent_for = ["busy" if events[0]["id"] in busy_ids else "quiet" for events in requests]
    assert sorted(sent_for) == ["busy", "busy", "busy", "quiet"]
    assert sent_for.index("quiet") <= 1  # in the first round, whichever of the two went first
    busy_order = [event["payload"]["n"] for events in requests for event in events if event["id"] in busy_ids]
    assert busy_order == [0, 1, 2, 3, 4, 5]  # each program's events still oldest first


@pytest.mark.parametrize("retry", [False, True], ids=["first try", "retry"])
def test_a_batch_failing_at_the_old_address_after_the_webhook_moved_goes_to_the_new_one_at_once(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver, retry: bool
) -> None:
    """The merchant replaces a webhook while a batch is on its way to the old address, which then fails: that
    failure says nothing about the new address, so the events go there at the next run (not after the old
    address's backoff, up to 6 hours), and the old address's error is not shown as the new one's."""
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, program, "tier_upgraded", "segment_left")
    tries = 8 if retry else 0  # a retry: the old address has failed for a while, its retries are hours apart
    receiver.statuses = [503] * tries
    for _ in range(tries):
        assert webhooks.deliver(db, clock, program_id=program.id).failures == 1
        clock.advance(hours=6)
    receiver.statuses = [503]

    def move() -> None:
        assert program.call("PUT", "/v1/webhook", json={"url": receiver.url + "/v2"}).status_code == 200

    with receiver.holding(move, request=tries + 1) as moved:  # the old address answers 503 once it has moved
        run = webhooks.deliver(db, clock, program_id=program.id)
    assert moved.is_set() and (run.events, run.failures) == (0, 1)
    hook = program.call("GET", "/v1/webhook").json()
    assert (hook["url"], hook["waiting"], hook["retrying"], hook["last_error"]) == (receiver.url + "/v2", 2, 0, None)
    run = webhooks.deliver(db, clock, program_id=program.id)  # at once, the clock has not moved
    assert (run.events, run.failures) == (2, 0)
    assert [e["type"] for e in receiver.events()[-2:]] == ["tier_upgraded", "segment_left"]


def test_a_failure_after_the_same_address_was_saved_again_waits_30_seconds_not_the_old_backoff(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    """Saving the webhook again starts its retries afresh, a batch then on its way included: if that try fails,
    the next one is 30 s later, not the 6 hours the address's run of failures had reached."""
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, program, "tier_upgraded")
    receiver.statuses = [503] * 9
    for _ in range(8):
        assert webhooks.deliver(db, clock, program_id=program.id).failures == 1
        clock.advance(hours=6)

    def save() -> None:
        assert program.call("PUT", "/v1/webhook", json={"url": receiver.url}).status_code == 200

    with receiver.holding(save, request=9):
        assert webhooks.deliver(db, clock, program_id=program.id).failures == 1
    assert program.call("GET", "/v1/webhook").json()["retrying"] == 1
    clock.advance(seconds=30)
    assert webhooks.deliver(db, clock, program_id=program.id).events == 1


def test_a_stopping_worker_settles_the_request_in_flight_and_leaves_the_backlog_for_later(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    """SIGTERM while a merchant's backlog goes out: the worker stops once the batch in flight is settled (as its
    help promises), not after the whole backlog; what it did not send waits, nothing is lost or sent twice."""
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, program, *["segment_entered"] * 6)
    stop = threading.Event()
    with receiver.holding(stop.set):
        run = webhooks.deliver(db, clock, program_id=program.id, batch_size=2, stop=stop)
    assert (run.events, run.requests, run.failures) == (2, 1, 0)
    assert program.call("GET", "/v1/webhook").json()["waiting"] == 4
    assert webhooks.deliver(db, clock, program_id=program.id, batch_size=2).events == 4
    ids = [event["id"] for event in receiver.events()]
    assert len(ids) == len(set(ids)) == 6


def test_a_batch_refused_for_the_secret_rotated_meanwhile_is_signed_again_at_once(
    db: Database, client: TestClient, new_program: Callable[..., ApiProgram], receiver: Receiver
) -> None:
    """The merchant rotates the secret while a batch signed with the old one is on its way, and the receiver,
    already checking with the new one, answers 401: the events go again at once, signed with the new secret."""
    program, clock = new_program(), _clock(client)
    program.call("PUT", "/v1/webhook", json={"url": receiver.url})
    emit(db, clock, program, "tier_upgraded")
    receiver.statuses = [401]
    secrets: list[str] = []

    def rotate() -> None:
        saved = program.call("PUT", "/v1/webhook", json={"url": receiver.url, "new_secret": True})
        assert saved.status_code == 200, saved.text
        secrets.append(saved.json()["secret"])

    with receiver.holding(rotate):
        assert webhooks.deliver(db, clock, program_id=program.id).failures == 1
    assert program.call("GET", "/v1/webhook").json()["last_error"] is None
    assert webhooks.deliver(db, clock, program_id=program.id).events == 1  # at once, the clock has not moved
    headers, body = receiver.received[-1]
    assert webhooks.verify(secrets[0], headers["Palier-Signature"], body, now=clock.now().timestamp())
