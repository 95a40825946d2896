"""Many tills at once: one member's purchases, returns and debits from 16 threads, sweeps beside them,
and interleavings of two commands that can lose points. Nothing may be invented or lost, on either engine.

Each command runs in its own ``db.write()``; a deadlock or serialisation failure (OperationalError) or a
unique-key race (IntegrityError) is retried, as an API worker would. SQLite serialises writers with
``BEGIN IMMEDIATE`` and a busy timeout; PostgreSQL with row locks.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError, OperationalError

from palier.activity import service as activity
from palier.activity.models import EventResult
from palier.activity.tables import events, purchases
from palier.clock import FrozenClock, utc
from palier.db import Database
from palier.errors import PalierError
from palier.jobs import sweeps
from palier.ledger.tables import ledger_transactions, lots
from palier.members import service as members
from palier.members.models import IdentityIn, Member
from palier.programs.models import Program
from tests.services.factories import (
    ACTOR,
    CARD_KEY,
    add_identity,
    adjust,
    balance,
    enrol,
    line,
    luhn_card,
    purchase,
    purchase_body,
    return_,
    return_body,
    send_purchase,
    send_return,
)
from tests.waiting import PATIENCE, backend_pid, until_waited_on

THREADS = 16
EXPECTED_REFUSALS = {"insufficient_points", "return_exceeds_purchase"}


@dataclass
class Outcome:
    results: list[EventResult] = field(default_factory=list)
    replays: list[EventResult] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, command: Callable[[], Any], attempts: int = 30) -> Any:
        """Run ``command`` (one transaction), retrying what a worker would retry; note what happened."""
        for attempt in range(attempts):
            try:
                value = command()
            except (OperationalError, IntegrityError) as error:
                with self.lock:
                    self.retries += 1
                last = error
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
                continue
            except PalierError as error:
                with self.lock:
                    if error.code in EXPECTED_REFUSALS:
                        self.refusals[error.code] += 1
                    else:
                        self.failures.append(f"{error.code}: {error.detail}")
                return None
            except Exception as error:  # collected and reported by the test
                with self.lock:
                    self.failures.append(repr(error))
                return None
            if isinstance(value, tuple):  # (result, replayed)
                result, replayed = value
                with self.lock:
                    (self.replays if replayed else self.results).append(result)
                return result
            if isinstance(value, EventResult):
                with self.lock:
                    self.results.append(value)
            return value
        with self.lock:
            self.failures.append(f"gave up after {attempts} attempts: {last!r}")
        return None


def run_threads(count: int, work: Callable[[int, threading.Barrier], None]) -> None:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            work(index, barrier)
        except BaseException as error:  # re-raised in the main thread
            errors.append(error)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (deadlock?)"
    if errors:
        raise errors[0]


def net(db: Database, program: Program, member_id: str) -> int:
    shown = balance(db, program, member_id)
    return shown.available + shown.pending + shown.held - shown.debt


def test_sixteen_tills_on_one_member_lose_and_invent_nothing(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    outcome = Outcome()
    outcome.run(lambda: adjust(db, clock, program, member, 300, reason="Opening balance"))
    shared_orders = [
        purchase_body(program, member, clock=clock, amount=1234 * (i + 1), order_id=f"shared-{program.id}-{i}")
        for i in range(4)
    ]

    def till(index: int, barrier: threading.Barrier) -> None:
        rng = random.Random(index)
        mine: list[str] = []
        barrier.wait()
        for step in range(6):
            roll = rng.random()
            if step == 0 and index < 8:  # two tills send each shared order: one earns, one replays
                body = shared_orders[index % 4]
                outcome.run(lambda body=body: send_purchase(db, clock, program, body))
            elif roll < 0.45 or not mine:
                old = rng.random() < 0.5
                lines = [
                    line(f"S{k}", rng.randint(100, 4000), quantity=rng.randint(1, 3)) for k in range(rng.randint(1, 3))
                ]
                body = purchase_body(
                    program,
                    member,
                    clock=clock,
                    lines=lines,
                    occurred_at=clock.now() - timedelta(days=20 if old else 0),
                )
                if outcome.run(lambda body=body: send_purchase(db, clock, program, body)) is not None:
                    mine.append(body.order_id)
            elif roll < 0.8:
                order_id = rng.choice(mine)
                if rng.random() < 0.5:
                    sku, qty = f"S{rng.randint(0, 2)}", rng.randint(1, 2)
                    body = return_body(order_id, clock=clock, lines=[(sku, qty)])
                else:
                    body = return_body(order_id, clock=clock, amount=rng.randint(1, 3000))
                outcome.run(lambda body=body: send_return(db, clock, program, body))
            else:
                points = -rng.randint(1, 60)
                outcome.run(lambda points=points: adjust(db, clock, program, member, points, reason="Till redemption"))

    run_threads(THREADS, till)

    assert outcome.failures == [], outcome.failures
    by_type = Counter(r.type for r in outcome.results)
    assert by_type["purchase"] >= 4 and by_type["return"] >= 1 and by_type["adjustment"] >= 2
    assert len(outcome.replays) == 4  # every shared order earned exactly once
    assert net(db, program, member.id) == sum(r.points for r in outcome.results)
    shown = balance(db, program, member)
    assert min(shown.available, shown.pending, shown.held) >= 0 and shown.debt >= 0
    with db.read() as conn:
        stored = {
            row.id: row.result["points"]
            for row in conn.execute(select(events.c.id, events.c.result).where(events.c.program_id == program.id))
        }
        orders = conn.execute(
            select(purchases.c.points, purchases.c.points_returned).where(purchases.c.program_id == program.id)
        ).all()
        transactions = set(
            conn.execute(
                select(ledger_transactions.c.id).where(ledger_transactions.c.program_id == program.id)
            ).scalars()
        )
    assert stored == {r.event_id: r.points for r in outcome.results}  # one event per success, no ghost
    assert sum(o.points for o in orders) == sum(r.points for r in outcome.results if r.type == "purchase")
    assert sum(o.points_returned for o in orders) == -sum(r.points for r in outcome.results if r.type == "return")
    assert {r.transaction_id for r in outcome.results if r.transaction_id} <= transactions


def test_maturity_sweeps_beside_purchases_mature_each_lot_once(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    start = clock.now()
    people = [enrol(db, clock, program) for _ in range(4)]
    earned: Counter[str] = Counter()
    for i in range(24):
        first = purchase(db, clock, program, people[i % 4], amount=500 + 37 * i)
        earned[people[i % 4].id] += first.points
    later = FrozenClock(start + timedelta(days=15))
    outcome = Outcome()

    def worker(index: int, barrier: threading.Barrier) -> None:
        rng = random.Random(100 + index)
        barrier.wait()
        if index < 2:  # two sweep workers, in small batches so they overlap
            for _ in range(6):
                outcome.run(lambda: sweeps.mature(db, later, batch_size=5, program_id=program.id))
            return
        for _ in range(6):
            body = purchase_body(
                program,
                rng.choice(people),
                clock=clock,
                amount=rng.randint(100, 5000),
                occurred_at=start - timedelta(days=rng.choice([0, 3, 20])),
            )
            outcome.run(lambda body=body: send_purchase(db, clock, program, body))

    run_threads(8, worker)
    sweeps.mature(db, later, program_id=program.id)  # whatever the busy workers had to skip

    assert outcome.failures == [], outcome.failures
    with db.read() as conn:
        matured = [
            details["lot_id"]
            for details in conn.execute(
                select(ledger_transactions.c.details).where(
                    ledger_transactions.c.program_id == program.id, ledger_transactions.c.kind == "mature"
                )
            ).scalars()
        ]
        made = conn.execute(
            select(lots.c.id, lots.c.state, lots.c.matures_at).where(lots.c.program_id == program.id)
        ).all()
    assert [lot for lot, n in Counter(matured).items() if n > 1] == []  # none matured twice
    born_pending = {lot.id for lot in made if utc(lot.matures_at) > start}
    assert set(matured) == born_pending and len(born_pending) >= 24
    assert {lot.state for lot in made} == {"active"}
    for result in outcome.results:
        earned[result.member_id or ""] += result.points
    for person in people:
        shown = balance(db, program, person)
        assert (shown.available, shown.pending) == (earned[person.id], 0)


# --- interleavings: one command holds its transaction open while another runs beside it ---


def beside(db: Database, hold: Callable[[Any], Any], other: Callable[[], Any]) -> tuple[Any, Any]:
    """Run ``hold(conn)`` in an open write transaction and start ``other`` in a thread; once ``other`` has
    finished or is waiting on a lock (PostgreSQL), or has had a moment to queue for the write lock
    (SQLite: it cannot pass ``BEGIN IMMEDIATE``), commit, then let ``other`` finish.
    Returns (hold's value, other's value or exception)."""
    box: dict[str, Any] = {}

    def run_other() -> None:
        try:
            box["value"] = other()
        except Exception as error:  # handed back to the test
            box["value"] = error

    thread = threading.Thread(target=run_other)
    with db.write() as conn:
        held = hold(conn)
        pid = backend_pid(conn) if db.is_postgres else None
        thread.start()
        if pid is not None:
            until_waited_on(db, pid, finished=lambda: not thread.is_alive())
        else:
            thread.join(timeout=0.3)
    thread.join(timeout=PATIENCE)
    assert not thread.is_alive()
    return held, box.get("value")


def test_a_card_linked_while_its_purchase_is_in_flight_still_earns(
    request: pytest.FixtureRequest, db: Database, clock: FrozenClock, program: Program
) -> None:
    card = luhn_card()
    member = enrol(db, clock, program)
    body = purchase_body(program, ("payment_card", card), clock=clock, amount=2500)
    result, _ = beside(
        db,
        lambda conn: activity.record_purchase(
            conn=conn, clock=clock, program=program, purchase=body, card_key=CARD_KEY
        ),
        lambda: add_identity(db, clock, program, member, "payment_card", card),
    )
    assert result[0].status == "unclaimed"
    assert balance(db, program, member).pending == 25


def linking(clock: FrozenClock, program: Program, member: Member, card: str) -> Callable[[Connection], object]:
    """The command linking ``card`` to ``member``, for :func:`beside` to hold open while another runs."""
    return lambda conn: members.add_identity(
        conn=conn,
        clock=clock,
        program=program,
        member_id=member.id,
        identity=IdentityIn(kind="payment_card", value=card),
        card_key=CARD_KEY,
        actor=ACTOR,
    )


def test_two_members_linking_one_card_at_once_claim_its_purchases_once(
    request: pytest.FixtureRequest, db: Database, clock: FrozenClock, program: Program
) -> None:
    from tests.services.test_rules import campaign_counters, with_campaign_bonus

    program = with_campaign_bonus(db, clock, program, "launch", 30, budget=100)
    card = luhn_card()
    purchase(db, clock, program, ("payment_card", card), amount=2500)
    ann, bo = enrol(db, clock, program), enrol(db, clock, program)
    _, second = beside(
        db,
        linking(clock, program, ann, card),
        lambda: add_identity(db, clock, program, bo, "payment_card", card),
    )
    assert isinstance(second, PalierError) and second.code == "identity_taken"
    assert (balance(db, program, ann).pending, balance(db, program, bo).pending) == (25 + 30, 0)
    assert campaign_counters(db, program) == {"": 30}


def test_a_return_sent_while_the_card_is_being_linked_takes_back_what_the_claim_gave(
    request: pytest.FixtureRequest, db: Database, clock: FrozenClock, program: Program
) -> None:
    from tests.services.test_rules import campaign_counters, with_campaign_bonus

    program = with_campaign_bonus(db, clock, program, "launch", 30, budget=100)
    card = luhn_card()
    order = purchase(db, clock, program, ("payment_card", card), amount=2500)
    ann = enrol(db, clock, program)
    _, returned = beside(
        db,
        linking(clock, program, ann, card),
        lambda: return_(db, clock, program, order.external_id, amount=2500),
    )
    assert isinstance(returned, EventResult) and (returned.member_id, returned.points) == (ann.id, -(25 + 30))
    assert balance(db, program, ann).pending == 0
    assert campaign_counters(db, program) == {"": 0}


@pytest.mark.parametrize("command", ["purchase", "credit"])
def test_points_sent_to_a_member_being_merged_reach_the_remaining_account(
    request: pytest.FixtureRequest, db: Database, clock: FrozenClock, program: Program, command: str
) -> None:
    source, target = enrol(db, clock, program), enrol(db, clock, program)

    def send() -> EventResult:
        if command == "purchase":
            return purchase(db, clock, program, source, amount=1000)
        return adjust(db, clock, program, source, 10, reason="Goodwill")

    _, outcome = beside(
        db,
        lambda conn: members.merge(
            conn=conn, clock=clock, program=program, source_id=source.id, target_id=target.id, actor=ACTOR
        ),
        send,
    )
    gone = balance(db, program, source)
    assert (gone.available, gone.pending) == (0, 0), "points were booked on the merged-away account"
    if isinstance(outcome, PalierError):
        assert outcome.code == "member_merged"
    else:
        assert not isinstance(outcome, Exception), outcome
        assert net(db, program, target.id) == 10


def test_two_returns_of_an_unclaimed_order_at_once_both_count(
    request: pytest.FixtureRequest, db: Database, clock: FrozenClock, program: Program
) -> None:
    card = luhn_card()
    order = purchase(db, clock, program, ("payment_card", card), lines=[line("A", 1000), line("B", 2000)])
    first, second = beside(
        db,
        lambda conn: activity.record_return(
            conn=conn, clock=clock, program=program, ret=return_body(order.external_id, clock=clock, lines=[("A", 1)])
        ),
        lambda: return_(db, clock, program, order.external_id, lines=[("B", 1)]),
    )
    assert first[0].points == -10 and isinstance(second, EventResult) and second.points == -20
    member = enrol(db, clock, program, identities=[("payment_card", card)])
    assert balance(db, program, member).pending == 0  # everything was returned before the claim
    with pytest.raises(PalierError) as again:
        return_(db, clock, program, order.external_id, lines=[("A", 1)])
    assert again.value.code == "return_exceeds_purchase"


def test_two_returns_of_a_members_order_at_once_both_count(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=[line("A", 1000), line("B", 2000)])
    first, second = beside(
        db,
        lambda conn: activity.record_return(
            conn=conn, clock=clock, program=program, ret=return_body(order.external_id, clock=clock, lines=[("A", 1)])
        ),
        lambda: return_(db, clock, program, order.external_id, lines=[("A", 1), ("B", 1)]),
    )
    assert first[0].points == -10
    assert isinstance(second, PalierError) and second.code == "return_exceeds_purchase"
    assert balance(db, program, member).pending == 20


@pytest.mark.parametrize("change", ["link", "patch", "merge"])
def test_a_member_changed_while_being_erased_gets_nothing_of_the_person_back(
    db: Database, clock: FrozenClock, program: Program, change: str
) -> None:
    """An e-mail linked, a name typed, or a duplicate merged in while the erasure commits waits for it and is
    refused (``member_erased``): it never writes the person back onto the erased member."""
    from palier.members.erasure import erase
    from palier.members.models import MemberUpdate

    member = enrol(db, clock, program, first_name="Camille", email=f"{random.randrange(10**9)}@example.com")
    duplicate = enrol(db, clock, program, first_name="Cam", email=f"{random.randrange(10**9)}@example.com")
    mail = f"{random.randrange(10**9)}@example.com"

    def other() -> Any:
        if change == "link":
            return add_identity(db, clock, program, member, "email", mail)
        with db.write() as conn:
            if change == "patch":
                return members.update_member(
                    conn=conn, clock=clock, program=program, member_id=member.id,
                    changes=MemberUpdate(first_name="Camille", email=mail), actor=ACTOR,
                )  # fmt: skip
            return members.merge(
                conn=conn, clock=clock, program=program, source_id=duplicate.id, target_id=member.id, actor=ACTOR
            )

    def forget(conn: Any) -> Any:
        return erase(
            conn=conn, clock=clock, program=program, member_id=member.id, reason="Asked to be forgotten",
            forfeit_store_credit=False, actor=ACTOR,
        )  # fmt: skip

    _, outcome = beside(db, forget, other)
    assert isinstance(outcome, PalierError) and outcome.code == "member_erased", outcome
    with db.read() as conn:
        erased = members.get_member(conn=conn, program_id=program.id, member_id=member.id)
        owner = members.find_member_id(conn=conn, program=program, kind="email", value=mail, card_key=CARD_KEY)
    assert (erased.first_name, erased.email, erased.identities, owner) == (None, None, [], None)
