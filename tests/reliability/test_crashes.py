"""Crashes: ``kill -9`` of the API server, the bulk importer and the worker at seeded random moments.

Each test runs the real command as its own process on SQLite and on PostgreSQL, kills it several times
(SIGKILL: no handler runs, a transaction may be cut anywhere), restarts it, and checks what a merchant
would check: the ledger passes ``palier verify``, every write that was acknowledged (2xx) is there,
retrying the unacknowledged ones with the same Idempotency-Key has exactly one effect, an import run
again after a crash neither loses nor doubles an order, and a sweep run again matures or expires every
lot exactly once.

A fourth test kills the worker while it pushes events to a webhook: every event still reaches the
receiver (at least once: a batch in flight at the kill comes again) and ends up marked delivered.

Default: 6 + 7 + 7 + 5 crashes per engine (small workloads). ``PALIER_SLOW=1``: 20 + 12 + 12 + 12.
A failure names its seed; ``PALIER_CRASH_SEED=<seed>`` replays the same kill points.
"""

from __future__ import annotations

import csv
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from palier.activity.bulk import import_batches
from palier.activity.models import MemberRef, PurchaseIn
from palier.activity.tables import events, purchases
from palier.clock import FrozenClock, SystemClock
from palier.db import Database
from palier.ledger.tables import accounts, ledger_transactions, lots
from palier.members.models import IdentityIn, MemberCreate
from palier.members.service import enrol
from palier.notify import outbox, webhooks
from palier.notify.tables import outbox_events
from palier.programs.models import ProgramSettings
from palier.programs.service import create_program, get_program
from palier.rewards.tables import coupons
from tests.receiver import Receiver
from tests.reliability.crash_helpers import (
    CARD_KEY,
    OPERATOR_TOKEN,
    SLOW,
    Server,
    Write,
    Writes,
    assert_cli_verify,
    assert_verified,
    drive,
    kill_when,
    retry,
    run_palier,
    seed_for,
    start_palier,
    url_of,
)

SERVER_CRASHES = 20 if SLOW else 6
IMPORT_CRASHES = 12 if SLOW else 7
WORKER_CRASHES = 12 if SLOW else 7
WEBHOOK_CRASHES = 12 if SLOW else 5


# --- the API server ----------------------------------------------------------------------------------------


def _setup_over_http(base: str, members: int) -> tuple[str, str, str, list[str]]:
    """A program, a 100-point reward and ``members`` members holding 1,000,000 points each, made over HTTP."""
    with httpx.Client(base_url=base, timeout=30) as client:
        made = client.post(
            "/v1/programs",
            json={"name": "Crash test"},
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        )
        assert made.status_code == 201, made.text
        program_id, token = made.json()["program"]["id"], made.json()["admin_key"]["secret"]
        auth = {"Authorization": f"Bearer {token}"}
        reward = client.post(
            "/v1/rewards",
            json={"kind": "amount_off", "cost_points": 100, "amount": 100, "title": {"fr": "Bon", "en": "Voucher"}},
            headers=auth,
        )
        assert reward.status_code == 201, reward.text
        ids = []
        for _ in range(members):
            member = client.post("/v1/members", json={}, headers=auth)
            assert member.status_code == 201, member.text
            ids.append(member.json()["id"])
            credit = client.post(
                f"/v1/members/{ids[-1]}/adjustments", json={"points": 1_000_000, "reason": "Opening"}, headers=auth
            )
            assert credit.status_code == 201, credit.text
    return program_id, token, reward.json()["id"], ids


def _workload(seed: int, member_ids: list[str], reward_id: str) -> Writes:
    """Purchases (half), redemptions and adjustments, each under its own Idempotency-Key.

    Redemptions and adjustments carry no external id: only the key stands between a retry and a second effect."""
    rng = random.Random(seed)
    lock = threading.Lock()
    when = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    def make(n: int) -> Write:
        with lock:
            member, roll = rng.choice(member_ids), rng.random()
            points = rng.choice([-1, 1]) * rng.randint(1, 50)
            price = rng.randint(100, 20_000)
        key = f"crash-{seed}-{n}"
        if roll < 0.5:
            body = {
                "order_id": f"ORD{seed}K{n}",
                "member": {"member_id": member},
                "channel": "store",
                "occurred_at": when,
                "currency": "EUR",
                "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": price}],
            }
            return Write("purchase", "/v1/events/purchases", key, body)
        if roll < 0.75:
            return Write("redemption", f"/v1/members/{member}/redemptions", key, {"reward_id": reward_id})
        return Write(
            "adjustment", f"/v1/members/{member}/adjustments", key, {"points": points, "reason": f"Gesture {n}"}
        )

    return Writes(make)


def _present(db: Database, program_id: str) -> dict[str, Counter[str]]:
    """What the database holds for the program: order ids, coupon codes, adjustment transactions (with counts)."""
    with db.read() as conn:
        orders = conn.execute(select(purchases.c.order_id).where(purchases.c.program_id == program_id)).scalars()
        codes = conn.execute(select(coupons.c.code).where(coupons.c.program_id == program_id)).scalars()
        adjusted = conn.execute(
            select(ledger_transactions.c.id).where(
                ledger_transactions.c.program_id == program_id, ledger_transactions.c.reason_code == "adjustment"
            )
        ).scalars()
        return {"purchase": Counter(orders), "redemption": Counter(codes), "adjustment": Counter(adjusted)}


def _identity(write: Write) -> str:
    """How a write's effect is found in the database: its order id, its coupon code, its transaction."""
    assert write.response is not None
    if write.kind == "purchase":
        return str(write.body["order_id"])
    if write.kind == "redemption":
        return str(write.response["coupon"]["code"])
    return str(write.response["transaction_id"])


def _check_acknowledged(db: Database, program_id: str, writes: Writes, seed: int, when: str) -> None:
    present = _present(db, program_id)
    for write in writes.sent:
        if write.acknowledged:
            found = present[write.kind][_identity(write)]
            assert found == 1, f"seed {seed}: acknowledged {write.kind} {write.key} found {found} times {when}"


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_server_killed_loses_no_acknowledged_write_and_retries_have_one_effect(db: Database, tmp_path: Path) -> None:
    seed = seed_for("server")
    rng = random.Random(seed)
    url, log = url_of(db), tmp_path / "serve.log"
    server = Server(url=url, log=log)
    server.start()
    try:
        program_id, token, reward_id, member_ids = _setup_over_http(server.base, members=6)
        writes = _workload(seed, member_ids, reward_id)
        kills = retried = 0
        for crash in range(SERVER_CRASHES):
            stop = threading.Event()
            acknowledged = sum(w.acknowledged for w in writes.sent)
            clients = drive(server.base, token, writes, stop, threads=2)
            # The kill point: after a seeded number of answers in this round, then a seeded pause (a few ms
            # to a few requests' worth): however slow the machine, each round has writes to lose.
            target = acknowledged + rng.randint(2, 12)
            _wait_for(lambda: sum(w.acknowledged for w in writes.sent) >= target, seed)  # noqa: B023
            time.sleep(rng.uniform(0, 0.05))
            server.kill()
            kills += 1
            stop.set()
            for client in clients:
                client.join(timeout=30)
            # a client still sending would reach the restarted server with writes the checks below do not count
            assert not any(client.is_alive() for client in clients), f"seed {seed}: a client did not stop"
            when = f"after crash {crash + 1} ({len(writes.sent)} writes sent)"
            refused = [w for w in writes.sent if w.status is not None and not w.acknowledged]
            assert not refused, f"seed {seed}: refused {when}: {[(w.kind, w.status, w.response) for w in refused]}"
            # The database as the crash left it: sound, and every acknowledged write in it exactly once.
            assert_verified(db, program_id, seed, when)
            _check_acknowledged(db, program_id, writes, seed, when)
            server.start()
            pending = writes.unacknowledged()
            retried += len(pending)
            retry(server.base, token, pending, seed)
            # Everything ever sent is now acknowledged, and each has had exactly one effect.
            present = _present(db, program_id)
            sent = Counter(w.kind for w in writes.sent)
            assert sum(present["purchase"].values()) == sent["purchase"], f"seed {seed}: purchases {when}"
            assert sum(present["redemption"].values()) == sent["redemption"], f"seed {seed}: redemptions {when}"
            assert sum(present["adjustment"].values()) == sent["adjustment"] + len(member_ids), f"seed {seed}: {when}"
            _check_acknowledged(db, program_id, writes, seed, when)
        assert kills == SERVER_CRASHES
        assert retried > 0, f"seed {seed}: no write was ever cut off by a kill"
        assert len(writes.sent) > 3 * SERVER_CRASHES, f"seed {seed}: too few writes to mean anything"
        _check_balances(db, program_id, writes, member_ids, seed)
    except AssertionError as failure:
        raise AssertionError(f"[seed {seed}] {failure}\n--- serve log ---\n{log.read_text()[-3000:]}") from failure
    finally:
        server.stop()
    assert_cli_verify(url, program_id, seed)


def _wait_for(condition: Callable[[], bool], seed: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"seed {seed}: the server answered too few writes in {timeout} s"
        time.sleep(0.005)


def _check_balances(db: Database, program_id: str, writes: Writes, member_ids: list[str], seed: int) -> None:
    """Each member's points add up to what the acknowledged answers said: 1,000,000 + adjustments
    - 100 per redemption available; purchase points pending."""
    expected_available = dict.fromkeys(member_ids, 1_000_000)
    expected_pending = dict.fromkeys(member_ids, 0)
    for write in writes.sent:
        assert write.response is not None
        if write.kind == "purchase":
            expected_pending[write.response["member_id"]] += write.response["points"]
        elif write.kind == "redemption":
            expected_available[write.response["coupon"]["member_id"]] -= 100
        else:
            member = write.path.split("/")[3]
            expected_available[member] += write.body["points"]
    with db.read() as conn:
        rows = conn.execute(
            select(accounts.c.member_id, accounts.c.kind, accounts.c.balance).where(
                accounts.c.program_id == program_id, accounts.c.kind.in_(("available", "pending"))
            )
        ).all()
    got = {(r.member_id, r.kind): r.balance for r in rows}
    for member in member_ids:
        assert got[(member, "available")] == expected_available[member], f"seed {seed}: available of {member}"
        assert got[(member, "pending")] == expected_pending[member], f"seed {seed}: pending of {member}"


# --- the bulk importer -------------------------------------------------------------------------------------


def _program_with_cards(db: Database, name: str, members: int, **settings: Any) -> tuple[str, list[str]]:
    clock = SystemClock()
    with db.write() as conn:
        program = create_program(conn=conn, clock=clock, settings=ProgramSettings(name=name, **settings))
        cards = [f"CRASH{n:05d}" for n in range(members)]
        for card in cards:
            enrol(
                conn=conn,
                clock=clock,
                program=program,
                data=MemberCreate(identities=[IdentityIn(kind="card", value=card)]),
                card_key=CARD_KEY.encode(),
                actor="test",
            )
    return program.id, cards


def _orders(
    seed: int, cards: list[str], count: int, days_ago: tuple[int, int], prefix: str = "IMP"
) -> list[PurchaseIn]:
    """Orders placed at least ``days_ago[0]`` days ago and less than ``days_ago[1] + 1``: never on a day's edge,
    so an order never matures at the very instant a test imports it."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    return [
        PurchaseIn.model_validate(
            {
                "order_id": f"{prefix}{seed}K{n}",  # letters between digits: never card-like
                "member": {"kind": "card", "value": rng.choice(cards)},
                "channel": rng.choice(["web", "store", "phone"]),
                "occurred_at": now - timedelta(days=rng.randint(*days_ago), minutes=rng.randint(0, 1439)),
                "currency": "EUR",
                "lines": [
                    {
                        "sku": f"SKU-{rng.randint(1, 40)}",
                        "quantity": rng.randint(1, 3),
                        "unit_price": rng.randint(50, 9000),
                    }
                    for _ in range(rng.randint(1, 3))
                ],
            }
        )
        for n in range(count)
    ]


def _write_csv(path: Path, orders: list[PurchaseIn]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "order_id",
                "member_kind",
                "member_value",
                "channel",
                "occurred_at",
                "currency",
                "sku",
                "quantity",
                "unit_price",
            ]
        )
        for order in orders:
            assert isinstance(order.member, MemberRef)
            for line in order.lines:
                writer.writerow(
                    [order.order_id, order.member.kind, order.member.value, order.channel,
                     order.occurred_at.isoformat(), order.currency, line.sku, line.quantity, line.unit_price]
                )  # fmt: skip


def _count(db: Database, query: Any) -> int:
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def _member_points(db: Database, program_id: str) -> dict[tuple[str, str], int]:
    """Each member's pending balance and lot count, keyed by their card (comparable across programs)."""
    from palier.members.tables import identities

    with db.read() as conn:
        rows = conn.execute(
            select(identities.c.value, accounts.c.balance, func.count(lots.c.id))
            .join(accounts, accounts.c.id == identities.c.member_id + ":pending")
            .outerjoin(lots, lots.c.member_id == identities.c.member_id)
            .where(identities.c.program_id == program_id, identities.c.kind == "card")
            .group_by(identities.c.value, accounts.c.balance)
        ).all()
    return {(value, "pending"): int(balance) for value, balance, _ in rows} | {
        (value, "lots"): int(count) for value, _, count in rows
    }


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_import_killed_then_run_again_loses_and_doubles_nothing(db: Database, tmp_path: Path) -> None:
    seed = seed_for("import")
    rng = random.Random(seed)
    url = url_of(db)
    total = 1200 if not SLOW else 3000
    program_id, cards = _program_with_cards(db, "Import crash", 30)
    reference_id, _ = _program_with_cards(db, "Import reference", 30)
    orders = _orders(seed, cards, total, (1, 200))
    path = tmp_path / "orders.csv"
    _write_csv(path, orders)
    # The reference: the same file imported in one go, without a crash.
    import_batches(
        db=db, clock=SystemClock(), program_id=reference_id, batches=[(orders, list(range(len(orders))))],
        card_key=CARD_KEY.encode(),
    )  # fmt: skip
    imported = select(func.count()).select_from(purchases).where(purchases.c.program_id == program_id)
    kill_points = sorted(rng.sample(range(1, total - 50), IMPORT_CRASHES))
    batch = rng.choice([20, 25, 40])
    args = ("import", "purchases", str(path), "--program", program_id, "--batch-size", str(batch))
    killed, log = 0, tmp_path / "import.log"
    try:
        for point in kill_points:
            process = start_palier(url, *args, log=log)
            killed += kill_when(process, lambda p=point: _count(db, imported) >= p, rng=rng)
            assert_verified(db, program_id, seed, f"after killing the import at {point} orders")
        done = run_palier(url, *args)
        assert done.returncode == 0, f"seed {seed}: the re-run failed:\n{done.stdout}\n{done.stderr}"
    except AssertionError as failure:
        raise AssertionError(f"[seed {seed}] {failure}\n--- import log ---\n{log.read_text()[-3000:]}") from failure
    assert killed >= IMPORT_CRASHES - 1, f"seed {seed}: only {killed} imports were killed mid-way"
    assert "already present" in done.stdout
    # Nothing lost, nothing twice: every order once, and each member exactly as after the clean import.
    with db.read() as conn:
        order_ids = Counter(
            conn.execute(select(purchases.c.order_id).where(purchases.c.program_id == program_id)).scalars()
        )
        event_count = conn.execute(
            select(func.count())
            .select_from(events)
            .where(events.c.program_id == program_id, events.c.type == "purchase")
        ).scalar_one()
    assert order_ids == Counter(o.order_id for o in orders), f"seed {seed}: orders lost or doubled"
    assert event_count == total
    assert _member_points(db, program_id) == _member_points(db, reference_id), f"seed {seed}: points differ"
    assert_cli_verify(url, program_id, seed)


# --- the worker --------------------------------------------------------------------------------------------


def _sweep_transactions(db: Database, program_id: str, reason_code: str) -> Counter[str]:
    """How many ``reason_code`` transactions (matured / expired) each lot has had."""
    with db.read() as conn:
        details = conn.execute(
            select(ledger_transactions.c.details).where(
                ledger_transactions.c.program_id == program_id, ledger_transactions.c.reason_code == reason_code
            )
        ).scalars()
        return Counter(d["lot_id"] for d in details)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_worker_killed_mid_sweep_matures_and_expires_every_lot_once(db: Database, tmp_path: Path) -> None:
    seed = seed_for("worker")
    rng = random.Random(seed)
    url = url_of(db)
    program_id, cards = _program_with_cards(db, "Sweep crash", 40, return_window_days=14, points_lifetime_months=12)
    young = 300 if not SLOW else 800
    # Imported as they were received then (a clock in the past), so their lots are still pending: due to
    # mature now (received 20 days ago), due to mature and then expire (380 days ago), and not due yet.
    now = datetime.now(UTC)
    history = [
        (now - timedelta(days=20), _orders(seed, cards, young, (21, 33), "DUE")),
        (now - timedelta(days=380), _orders(seed + 1, cards, young // 2, (381, 393), "OLD")),
        (now, _orders(seed + 2, cards, 40, (1, 5), "NEW")),
    ]
    for then, orders in history:
        stats = import_batches(
            db=db, clock=FrozenClock(then), program_id=program_id, batches=[(orders, list(range(len(orders))))],
            card_key=CARD_KEY.encode(),
        )  # fmt: skip
        assert stats.imported == len(orders), stats.rejected[:3]
    with db.read() as conn:
        program = get_program(conn=conn, program_id=program_id)
        now = datetime.now(UTC)
        state = {row.id: row for row in conn.execute(select(lots).where(lots.c.program_id == program_id))}
    assert program.return_window_days == 14
    due_mature = {i for i, lot in state.items() if lot.state == "pending" and _utc(lot.matures_at) <= now}
    due_expire = {i for i, lot in state.items() if _utc(lot.expires_at) <= now}
    # An order too small to earn a point makes no lot, so the lots are counted, not the orders.
    old_lots = {i for i, lot in state.items() if lot.label.startswith(f"Purchase #OLD{seed + 1}K")}
    young_lots = {i for i, lot in state.items() if lot.label.startswith(f"Purchase #DUE{seed}K")}
    assert len(young_lots) > young * 0.9 and len(old_lots) > young // 2 * 0.9, f"seed {seed}: too few lots"
    assert due_mature == young_lots | old_lots and due_expire == old_lots, f"seed {seed}: lots not due as set up"
    swept = (
        select(func.count())
        .select_from(ledger_transactions)
        .where(
            ledger_transactions.c.program_id == program_id,
            ledger_transactions.c.reason_code.in_(("matured", "expired")),
        )
    )
    total = len(due_mature) + len(due_expire)
    kill_points = sorted(rng.sample(range(1, total - 10), WORKER_CRASHES))
    killed, log = 0, tmp_path / "worker.log"
    try:
        for point in kill_points:
            workers = rng.choice(["1", "2"]) if db.is_postgres else "1"
            args = (
                "jobs",
                "run",
                "all",
                "--program",
                program_id,
                "--batch-size",
                str(rng.randint(4, 12)),
                "--workers",
                workers,
            )
            process = start_palier(url, *args, log=log)
            killed += kill_when(process, lambda p=point: _count(db, swept) >= p, rng=rng, jitter=0.02)
            assert_verified(db, program_id, seed, f"after killing the worker at {point} lots")
        done = run_palier(url, "jobs", "run", "all", "--program", program_id)
        assert done.returncode == 0, f"seed {seed}: the re-run failed:\n{done.stdout}\n{done.stderr}"
    except AssertionError as failure:
        raise AssertionError(f"[seed {seed}] {failure}\n--- worker log ---\n{log.read_text()[-3000:]}") from failure
    assert killed >= WORKER_CRASHES - 1, f"seed {seed}: only {killed} sweeps were killed mid-way"
    matured = _sweep_transactions(db, program_id, "matured")
    expired = _sweep_transactions(db, program_id, "expired")
    assert set(matured) == due_mature and set(matured.values()) == {1}, f"seed {seed}: a lot matured twice or never"
    assert set(expired) == due_expire and set(expired.values()) == {1}, f"seed {seed}: a lot expired twice or never"
    with db.read() as conn:
        after = {
            row.id: row.state
            for row in conn.execute(select(lots.c.id, lots.c.state).where(lots.c.program_id == program_id))
        }
    assert {i for i, s in after.items() if s == "expired"} == due_expire
    assert {i for i, s in after.items() if s == "pending"} == set(state) - due_mature
    assert_cli_verify(url, program_id, seed)


def _utc(value: datetime | None) -> datetime:
    assert value is not None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_worker_killed_mid_delivery_loses_no_webhook_event(db: Database, tmp_path: Path, receiver: Receiver) -> None:
    seed = seed_for("webhooks")
    rng = random.Random(seed)
    # Each kill may leave the batch it had claimed leased for a minute: enough batches that the kill points
    # are always reached by the batches still free (20 requests of 100 events by default).
    batches = 3 * WEBHOOK_CRASHES + 5
    url, clock, total = url_of(db), SystemClock(), batches * webhooks.BATCH
    program_id, _cards = _program_with_cards(db, "Webhook crash", 0)
    with db.write() as conn:
        spec = webhooks.WebhookSet(url=receiver.url)
        webhooks.set_webhook(conn=conn, clock=clock, program_id=program_id, spec=spec, actor="test")
        emitted = [(program_id, "segment_entered", None, {"n": n}) for n in range(total)]
        outbox.emit_many(conn, emitted, now=clock.now())
    receiver.delay = 0.03  # each delivery is in flight a while: the kills land in and between them
    kill_points = sorted(rng.sample(range(1, batches - WEBHOOK_CRASHES - 1), WEBHOOK_CRASHES))
    killed, log = 0, tmp_path / "worker.log"
    waiting = (outbox_events.c.program_id == program_id, outbox_events.c.delivered_at.is_(None))
    try:
        for point in kill_points:
            process = start_palier(url, "jobs", "run", "webhooks", "--program", program_id, log=log)
            killed += kill_when(process, lambda p=point: len(receiver.received) >= p, rng=rng, jitter=0.05)
        with db.write() as conn:  # a minute later: the batches claimed by the killed runs are free again
            conn.execute(update(outbox_events).where(*waiting).values(next_attempt_at=None))
        done = run_palier(url, "jobs", "run", "webhooks", "--program", program_id)
        assert done.returncode == 0, f"the re-run failed:\n{done.stdout}\n{done.stderr}"
    except AssertionError as failure:
        raise AssertionError(f"[seed {seed}] {failure}\n--- worker log ---\n{log.read_text()[-3000:]}") from failure
    assert killed >= WEBHOOK_CRASHES - 1, f"seed {seed}: only {killed} runs were killed mid-way"
    received = Counter(event["payload"]["n"] for event in receiver.events())
    assert set(received) == set(range(total)), f"seed {seed}: events never delivered"
    doubled = sum(count - 1 for count in received.values())
    assert doubled <= killed * webhooks.BATCH, f"seed {seed}: {doubled} events came twice, more than were in flight"
    assert _count(db, select(func.count()).where(*waiting)) == 0, f"seed {seed}: events left undelivered"
    for _headers, body in receiver.received:  # each request holds its events oldest first
        numbers = [event["payload"]["n"] for event in json.loads(body)["events"]]
        assert numbers == sorted(numbers), f"seed {seed}: a request out of order"
