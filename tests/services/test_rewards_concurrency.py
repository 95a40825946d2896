"""Redemption under contention: a point is never spent twice, a stocked reward never oversold, a coupon used once.

Threads run real commands, each in its own ``db.write()``, retried on deadlocks and unique-key races as an
API worker retries them (api/commands.py). On both engines.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from palier.clock import FrozenClock
from palier.db import Database
from palier.programs.models import Program
from palier.rewards import service as rewards
from palier.rewards.models import CouponUse, RedeemIn, RewardUpdate
from tests.services.factories import adjust, assert_ledger_sound, balance, enrol, history, make_program
from tests.services.test_concurrency import Outcome, run_threads
from tests.services.test_rewards import add_reward
from tests.waiting import PATIENCE, backend_pid, until_waited_on


def _redeem(db: Database, clock: FrozenClock, program: Program, member_id: str, reward_id: str) -> Any:
    with db.write() as conn:
        return rewards.redeem(
            conn=conn, clock=clock, program=program, member_id=member_id, data=RedeemIn(reward_id=reward_id)
        )


def test_32_redemptions_against_a_balance_that_affords_10(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program, first_name="Ada")
    adjust(db, clock, program, member, 1_000)
    coffee = add_reward(db, clock, program, cost_points=100)
    outcome = Outcome()
    successes: list[Any] = []
    lock = threading.Lock()

    def till(index: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        found = outcome.run(lambda: _redeem(db, clock, program, member.id, coffee.id))
        if found is not None:
            with lock:
                successes.append(found)

    run_threads(32, till)
    assert outcome.failures == [], outcome.failures
    assert len(successes) == 10
    assert outcome.refusals == Counter({"insufficient_points": 22})
    shown = balance(db, program, member)
    assert (shown.available, shown.held) == (0, 1_000)
    assert len({s.coupon.code for s in successes}) == 10
    assert sum(1 for h in history(db, program, member) if h.reason_code == "reward_redeemed") == 10


def test_20_members_race_for_a_reward_with_stock_5(db: Database, clock: FrozenClock, program: Program) -> None:
    tote = add_reward(db, clock, program, kind="gift", amount=None, cost_points=300, stock=5)
    people = [enrol(db, clock, program, first_name=f"P{i}") for i in range(20)]
    for person in people:
        adjust(db, clock, program, person, 300)
    outcome = Outcome()
    won: list[Any] = []
    lock = threading.Lock()

    def member(index: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        found = outcome.run(lambda: _redeem(db, clock, program, people[index].id, tote.id))
        if found is not None:
            with lock:
                won.append(found)

    run_threads(20, member)
    assert [f for f in outcome.failures if "out_of_stock" not in f] == []
    assert len(won) == 5
    with db.read() as conn:
        assert rewards.get_reward(conn=conn, program_id=program.id, reward_id=tote.id).stock_left == 0
    held = sorted(balance(db, program, p).held for p in people)
    assert held == [0] * 15 + [300] * 5
    assert sum(balance(db, program, p).available for p in people) == 15 * 300


def test_one_coupon_used_at_two_tills_at_once_is_used_once(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program, first_name="Eli")
    adjust(db, clock, program, member, 500)
    voucher = add_reward(db, clock, program)
    code = _redeem(db, clock, program, member.id, voucher.id).coupon.code
    outcome = Outcome()
    answers: list[Any] = []
    lock = threading.Lock()

    def till(index: int, barrier: threading.Barrier) -> None:
        use = CouponUse(channel="store", order_id=f"T-{index % 2}", store_id=f"till-{index}")
        barrier.wait()

        def command() -> Any:
            with db.write() as conn:
                return rewards.use_coupon(conn=conn, clock=clock, program=program, code=code, use=use)[0]

        found = outcome.run(command)
        if found is not None:
            with lock:
                answers.append(found)

    run_threads(8, till)  # four tills scan it for order T-0, four for T-1
    winners = {a.order_id for a in answers}
    assert len(winners) == 1  # one order got the coupon; the others are refused or see the same answer
    refused = [f for f in outcome.failures if f.startswith("coupon_used")]
    assert len(answers) + len(refused) == 8 and len(refused) == 4
    shown = balance(db, program, member)
    assert (shown.available, shown.held) == (0, 0)
    assert sum(1 for h in history(db, program, member) if h.reason_code == "coupon_used") == 1


def test_a_reward_edited_while_its_last_unit_is_redeemed_is_not_oversold(
    postgresql_db: Database, clock: FrozenClock
) -> None:
    """A marketer fixes the title while a member takes the last unit: the edit must not write back the count
    of units it read before (stock 1 let out two coupons). PostgreSQL: SQLite runs one writer at a time."""
    db = postgresql_db
    program = make_program(db, clock)
    tote = add_reward(db, clock, program, kind="gift", amount=None, cost_points=300, stock=1)
    first, second = enrol(db, clock, program), enrol(db, clock, program)
    for person in (first, second):
        adjust(db, clock, program, person, 300)
    outcome = Outcome()
    member = threading.Thread(target=lambda: outcome.run(lambda: _redeem(db, clock, program, first.id, tote.id)))

    class MidEdit(FrozenClock):
        """The edit's clock: once the edit has read the reward, the member redeems (given a second to commit)."""

        def now(self) -> Any:
            if not member.is_alive() and member.ident is None:
                member.start()
                member.join(timeout=1)
            return clock.now()

    with db.write() as conn:
        rewards.update_reward(
            conn=conn, clock=MidEdit(clock.now()), program=program, reward_id=tote.id,
            changes=RewardUpdate.model_validate({"title": {"fr": "Sac", "en": "Tote bag"}}), actor="test",
        )  # fmt: skip
    member.join()
    assert outcome.failures == [] and balance(db, program, first).held == 300  # the member has the last unit
    with db.read() as conn:
        assert rewards.get_reward(conn=conn, program_id=program.id, reward_id=tote.id).stock_left == 0
    assert outcome.run(lambda: _redeem(db, clock, program, second.id, tote.id)) is None
    assert outcome.failures == ["out_of_stock: This reward is out of stock."]
    assert_ledger_sound(db, program)


def test_a_coupon_used_while_its_member_is_merged_is_not_cancelled_beside_it(
    postgresql_db: Database, clock: FrozenClock
) -> None:
    """The till scans Ada's coupon while her duplicate account is merged into Bea's; the phone desk cancels
    the same coupon, now Bea's, meanwhile. The till must hold Bea's lock too: the coupon is used once and the
    cancellation told so (the till's use failed, or the points were both spent and given back).
    PostgreSQL: SQLite runs one writer at a time."""
    from palier.errors import PalierError
    from palier.members import service as members

    db = postgresql_db
    program = make_program(db, clock)
    ada, bea = enrol(db, clock, program, first_name="Ada"), enrol(db, clock, program, first_name="Bea")
    adjust(db, clock, program, ada, 500)
    code = _redeem(db, clock, program, ada.id, add_reward(db, clock, program).id).coupon.code
    cancelled: list[str] = []

    def cancel() -> None:
        try:
            with db.write() as conn:
                rewards.cancel_coupon(conn=conn, clock=clock, program=program, code=code, actor="phone")
            cancelled.append("cancelled")
        except PalierError as refused:
            cancelled.append(refused.code)

    desk = threading.Thread(target=cancel)

    class MidUse(FrozenClock):
        """The till's clock: once the till has read the coupon under its lock, the desk cancels it."""

        def now(self) -> Any:
            if desk.ident is None:
                desk.start()
                desk.join(timeout=1)
            return clock.now()

    used: list[Any] = []

    def till() -> None:
        with db.write() as conn:
            use = CouponUse(channel="store", order_id="T-1")
            used.append(rewards.use_coupon(conn=conn, clock=MidUse(clock.now()), program=program, code=code, use=use))

    scanner = threading.Thread(target=till)
    with db.write() as conn:  # the merge holds Ada's lock while the till reads her coupon
        members.merge(conn=conn, clock=clock, program=program, source_id=ada.id, target_id=bea.id, actor="admin")
        scanner.start()
        assert until_waited_on(db, backend_pid(conn), finished=lambda: not scanner.is_alive())  # on Ada's lock
    scanner.join(timeout=PATIENCE)
    desk.join(timeout=PATIENCE)
    assert not scanner.is_alive() and not desk.is_alive(), "the till or the desk is stuck (deadlock?)"
    assert used and used[0][0].state == "used", "the till's use failed"
    assert cancelled == ["coupon_used"]
    shown = balance(db, program, bea)
    assert (shown.available, shown.held) == (0, 0)
    assert_ledger_sound(db, program)
