"""The concurrency storm: 64 commands at once against one member — mostly redemptions, with payments in
points, purchases, returns of earlier orders and the expiry job — over 200 seeded rounds per engine.

Each round is a fresh program and member at a moment when some of the member's points are due to expire,
so the expiry job races the redeemers for the same lots. The 64 commands start together (a barrier) and
each runs in its own transaction through the services the API calls, retried on deadlocks and unique-key
races as an API worker retries them. After every round, from the ledger:

- no account below zero, and ``verify`` clean (every posting, lot and allocation adds up);
- points are conserved: the member's net balance moved by exactly what the successes say (purchases in,
  returns, payments and expiry out; a redemption moves points to held, each coupon holding its cost);
- nothing was spent that was not there: redemptions plus payments never exceed what was available before
  the round plus what the round's purchases made available, less what the returns and the expiry took;
- every refusal is one a till would show (not enough points, a return larger than the order, a cap), never
  an unexpected error;
- after the worker's next expiry run, no point past its expiry is still spendable.

``PALIER_STORM_SEED=<n>`` replays a run (a failure names its seed and round); ``PALIER_SLOW=1`` plays
1,000 rounds per engine instead of 200.
"""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from palier.activity.models import EventResult
from palier.clock import FrozenClock
from palier.db import Database
from palier.ledger.tables import accounts, ledger_transactions, lots, postings
from palier.programs.models import Program
from palier.rewards import payments
from palier.rewards import service as rewards
from palier.rewards.models import PaymentIn, RedeemIn
from tests.services.factories import (
    adjust,
    assert_ledger_sound,
    balance,
    enrol,
    expire,
    line,
    make_program,
    mature,
    purchase,
    purchase_body,
    return_body,
    send_purchase,
    send_return,
)
from tests.services.test_concurrency import Outcome, run_threads
from tests.services.test_rewards import add_reward

SLOW = os.environ.get("PALIER_SLOW", "").strip() not in ("", "0")
ROUNDS = 1_000 if SLOW else 200
CHUNKS = 8  # rounds are split into this many tests per engine, so that xdist spreads them
COMMANDS = 64
# What a till may be told in a storm. Anything else (an exception, another code) fails the round.
TILL_REFUSALS = {
    "insufficient_points",
    "return_exceeds_purchase",
    "payment_too_small",
    "payment_above_share",
    "payment_above_total",
}
T0 = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)


def storm_seed() -> int:
    fixed = os.environ.get("PALIER_STORM_SEED")
    return int(fixed) if fixed else random.SystemRandom().randrange(1, 10**6)


SEED = storm_seed()


@dataclass
class Storm:
    """What one round sent and what came back."""

    redeemed: list[Any] = field(default_factory=list)  # Redemption
    paid: list[Any] = field(default_factory=list)  # Payment
    sweeps: list[Any] = field(default_factory=list)  # SweepResult
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, bucket: list[Any], value: Any) -> None:
        if value is not None:
            with self.lock:
                bucket.append(value)


@pytest.mark.parametrize("chunk", range(CHUNKS))
@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_64_commands_at_once_never_spend_what_is_not_there(db: Database, chunk: int) -> None:
    per_chunk = ROUNDS // CHUNKS
    for number in range(chunk * per_chunk, (chunk + 1) * per_chunk):
        try:
            _round(db, random.Random(SEED * 100_003 + number))
        except AssertionError as failure:
            replay = f"PALIER_STORM_SEED={SEED} .venv/bin/pytest tests/reliability/test_concurrency_storm.py"
            raise AssertionError(f"[seed {SEED}, round {number}] {failure}\nreplay: {replay}") from failure


def _round(db: Database, rng: random.Random) -> None:
    clock = FrozenClock(T0)
    program = make_program(
        db, clock, return_window_days=rng.choice([0, 14]), points_lifetime_months=12, pay_with_points_max_percent=50
    )
    member = enrol(db, clock, program)
    # A year ago: the orders whose points are due to expire now (and some to return), then younger points.
    orders = [
        purchase(db, clock, program, member, lines=[line(f"S{k}", rng.randint(500, 6_000), quantity=rng.randint(1, 3))
                                                    for k in range(rng.randint(1, 3))])
        for _ in range(rng.randint(3, 6))
    ]  # fmt: skip
    clock.set(T0 + timedelta(days=200))
    mature(db, clock, program)  # past the return window: the first orders' points are available
    for _ in range(rng.randint(1, 3)):
        adjust(db, clock, program, member, rng.randint(20, 150), reason="Goodwill")
    prices = sorted(rng.sample(range(10, 120), 3))
    offers = [add_reward(db, clock, program, cost_points=cost, amount=cost * 5) for cost in prices]
    clock.set(T0 + timedelta(days=366 + rng.randint(0, 3)))  # the first orders' points are due to expire now
    before = balance(db, program, member)
    net_before = before.available + before.pending + before.held - before.debt

    outcome, storm = Outcome(), Storm()
    kinds = _kinds(rng)

    def till(index: int, barrier: threading.Barrier) -> None:
        kind, choice = kinds[index]
        barrier.wait()
        if kind == "redeem":
            offer = offers[choice % len(offers)]
            storm.note(storm.redeemed, outcome.run(lambda: _redeem(db, clock, program, member.id, offer.id)))
        elif kind == "pay":
            storm.note(storm.paid, outcome.run(lambda: _pay(db, clock, program, member.id, choice)))
        elif kind == "purchase":
            body = purchase_body(program, member, clock=clock, amount=1_000 + choice * 37)
            outcome.run(lambda: send_purchase(db, clock, program, body))
        elif kind == "return":
            order = orders[choice % len(orders)].external_id
            body = (
                return_body(order, clock=clock, lines=[("S0", 1 + choice % 2)])
                if choice % 3
                else return_body(order, clock=clock, amount=200 + choice * 90)
            )
            outcome.run(lambda: send_return(db, clock, program, body))
        else:
            storm.note(storm.sweeps, outcome.run(lambda: expire(db, clock, program)))

    run_threads(COMMANDS, till)
    # The worker's next run: on PostgreSQL a sweep skips a member that a command holds (SKIP LOCKED), so the
    # runs inside the storm may have found them busy; whatever was still due expires now.
    storm.sweeps.append(expire(db, clock, program))
    _nothing_due_left(db, program, clock)

    unexpected = [f for f in outcome.failures if f.split(":", 1)[0] not in TILL_REFUSALS]
    assert unexpected == [], f"commands failed: {unexpected[:5]}"
    after = balance(db, program, member)
    assert min(after.available, after.pending, after.held, after.debt) >= 0, after
    _no_account_below_zero(db, program)
    assert_ledger_sound(db, program)

    results: list[EventResult] = outcome.results
    earned = sum(r.points for r in results if r.type == "purchase")
    # what the returns took from the member: their answer's points less what was excused (points of the order
    # that had expired already) or written off (the program's shortfall policy)
    returned = sum(
        r.details.get("from_pending", 0) + r.details.get("from_available", 0) + r.details.get("to_debt", 0)
        for r in results
        if r.type == "return"
    )
    paid = sum({p.id: p.points for p in storm.paid}.values())  # two tills sending one ticket pay it once
    held = sum(r.coupon.points for r in storm.redeemed)
    expired = _expired(db, program)
    net_after = after.available + after.pending + after.held - after.debt
    flows = f"earned {earned}, returned {returned}, paid {paid}, expired {expired}; ledger: {_flows(db, program)}"
    assert net_after - net_before == earned - returned - paid - expired, f"points created or destroyed: {flows}"
    assert after.held - before.held == held, "a coupon does not hold exactly its cost"
    assert len({r.coupon.code for r in storm.redeemed}) == len(storm.redeemed)
    # Nothing spent that was not there: redemptions and payments never draw on debt or pending points.
    spendable = before.available + (earned if program.return_window_days == 0 else 0)
    assert held + paid <= spendable, f"spent {held + paid} of {spendable} available"
    answered = len(results) + len(storm.redeemed) + len(storm.paid) + len(storm.sweeps)
    refused = sum(outcome.refusals.values()) + len(outcome.failures)
    assert answered + refused == COMMANDS + 1, "a command got no answer"  # and the last sweep


def _kinds(rng: random.Random) -> list[tuple[str, int]]:
    """64 commands: mostly redemptions, a few of everything else, at least one expiry run."""
    weights = {"redeem": 40, "pay": 8, "purchase": 6, "return": 8, "expire": 2}
    kinds = [*rng.choices(list(weights), weights=list(weights.values()), k=COMMANDS - 1), "expire"]
    rng.shuffle(kinds)
    return [(kind, rng.randrange(1_000)) for kind in kinds]


def _redeem(db: Database, clock: FrozenClock, program: Program, member_id: str, reward_id: str) -> Any:
    with db.write() as conn:
        return rewards.redeem(
            conn=conn, clock=clock, program=program, member_id=member_id, data=RedeemIn(reward_id=reward_id)
        )


def _pay(db: Database, clock: FrozenClock, program: Program, member_id: str, choice: int) -> Any:
    data = PaymentIn(kind="points", order_id=f"TICKET-{choice}", order_total=5_000, points=5 + choice % 40)
    with db.write() as conn:
        return payments.pay(conn=conn, clock=clock, program=program, member_id=member_id, data=data)


def _expired(db: Database, program: Program) -> int:
    """Points the expiry took from the member in this round's program (it has one member)."""
    with db.read() as conn:
        moved = conn.execute(
            select(postings.c.amount)
            .join(ledger_transactions, ledger_transactions.c.id == postings.c.transaction_id)
            .where(
                ledger_transactions.c.program_id == program.id,
                ledger_transactions.c.reason_code == "expired",
                postings.c.member_id.is_not(None),
            )
        ).scalars()
        return -sum(int(amount) for amount in moved)


def _nothing_due_left(db: Database, program: Program, clock: FrozenClock) -> None:
    with db.read() as conn:
        due = conn.execute(
            select(lots.c.id, lots.c.remaining).where(
                lots.c.program_id == program.id,
                lots.c.state == "active",
                lots.c.remaining > 0,
                lots.c.expires_at <= clock.now(),
            )
        ).all()
    assert due == [], f"points past their expiry still spendable: {due}"


def _flows(db: Database, program: Program) -> dict[str, int]:
    """The member's points moved by each kind of transaction (to explain a failure)."""
    with db.read() as conn:
        rows = conn.execute(
            select(ledger_transactions.c.reason_code, postings.c.amount, accounts.c.kind)
            .join(postings, postings.c.transaction_id == ledger_transactions.c.id)
            .join(accounts, accounts.c.id == postings.c.account_id)
            .where(ledger_transactions.c.program_id == program.id, postings.c.member_id.is_not(None))
        ).all()
    found: dict[str, int] = {}
    for code, amount, kind in rows:
        if kind in ("available", "pending", "held", "debt"):
            found[code] = found.get(code, 0) + int(amount)
    return found


def _no_account_below_zero(db: Database, program: Program) -> None:
    """The member's available, pending and held points are never below zero (debt is kept as a negative
    balance of its own account, so it is never above zero)."""
    with db.read() as conn:
        wrong = conn.execute(
            select(accounts.c.id, accounts.c.balance).where(
                accounts.c.program_id == program.id,
                accounts.c.member_id.is_not(None),
                ((accounts.c.kind != "debt") & (accounts.c.balance < 0))
                | ((accounts.c.kind == "debt") & (accounts.c.balance > 0)),
            )
        ).all()
    assert wrong == [], f"accounts on the wrong side of zero: {wrong}"
