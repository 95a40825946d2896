"""The deterministic simulation: the engine and a reference model (``simulation_model.py``, plain Python)
receive the same seeded operations — purchases (half the seeds in a program whose earning rule gives big
baskets a bonus), refunds, redemptions, coupon use and cancel, payments in points, the maturity and expiry
jobs, a merge, clock jumps — and must agree after every step on each member's available, pending, held
points and debt, on every lot (amount, remaining, state, owner, dates) and on every coupon's state; the
ledger verifies clean at the end.

The engine runs on a frozen clock through the services the API calls. 1,000 seeds on SQLite and 200 on
PostgreSQL per run (``PALIER_SIM_SEEDS=<n>`` for more); each run starts at a fresh base seed, printed by a
failure with the step, the operations up to it and the one command that replays it:
``PALIER_SIM_SEED=<seed> .venv/bin/pytest tests/reliability/test_simulation.py -q`` (``-s`` prints the trace).
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from palier.activity.tables import purchases
from palier.clock import FrozenClock, utc
from palier.db import Database
from palier.errors import PalierError
from palier.ledger.tables import lots
from palier.members import service as members
from palier.programs.models import Program
from palier.rewards import payments
from palier.rewards import service as rewards
from palier.rewards.models import CouponUse, PaymentIn, RedeemIn, RewardIn
from palier.rewards.tables import coupons
from tests.reliability.simulation_model import BIG_BASKET, PER_POINT, Model, Refused
from tests.services.factories import (
    ACTOR,
    apply_rules,
    assert_ledger_sound,
    enrol,
    expire,
    make_program,
    mature,
    merge,
    purchase_body,
    return_body,
    send_purchase,
    send_return,
)

ONE = os.environ.get("PALIER_SIM_SEED")
COUNTS = {"sqlite": 1_000, "postgresql": 200}
CHUNKS = 10
STEPS = 16
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
STORED = FrozenClock(START - timedelta(days=1))  # a balance as the ledger holds it: nothing is due yet
COSTS = (10, 25, 60)
# The earning rule of half the seeds' programs: the base rate as a rule, and the model's "big basket" bonus.
RULES = {
    "rules": [
        {"id": "base", "name": {"en": "1 point per euro"}, "event": "purchase",
         "effect": {"type": "points_per_amount", "points": 1, "per_amount": PER_POINT}},
        {"id": "big-basket", "name": {"en": "Big basket"}, "event": "purchase",
         "conditions": {"min_spend": BIG_BASKET[0]}, "effect": {"type": "fixed", "points": BIG_BASKET[1]}},
    ]
}  # fmt: skip
BASE = int(ONE) if ONE else random.SystemRandom().randrange(1, 10**6) * 10_000


def _seeds(engine: str, chunk: int) -> range:
    if ONE:
        return range(int(ONE), int(ONE) + 1) if chunk == 0 else range(0)
    count = int(os.environ.get("PALIER_SIM_SEEDS", COUNTS[engine]))
    size = -(-count // CHUNKS)
    return range(BASE + chunk * size, BASE + min(count, (chunk + 1) * size))


@pytest.mark.parametrize("chunk", range(CHUNKS))
@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_the_engine_agrees_with_the_model_after_every_step(db: Database, chunk: int) -> None:
    engine = "postgresql" if db.is_postgres else "sqlite"
    shared: dict[tuple[int, bool], tuple[Program, dict[int, str]]] = {}  # by (return window, rule): program, rewards
    for seed in _seeds(engine, chunk):
        Simulation(db, seed, shared).run()
    for program, _ in shared.values():
        assert_ledger_sound(db, program)


@dataclass
class Simulation:
    """One seed: two new members of a program shared by the chunk's seeds (the jobs run for that program;
    what they do to earlier seeds' members is no business of this one)."""

    db: Database
    seed: int
    shared: dict[tuple[int, bool], tuple[Program, dict[int, str]]]
    trace: list[str] = field(default_factory=list)
    setting: str = ""

    def run(self) -> None:
        rng = random.Random(self.seed)
        self.clock = FrozenClock(START)
        window, big_basket = rng.choice([0, 14]), rng.random() < 0.5
        if (window, big_basket) not in self.shared:
            program = make_program(
                self.db, self.clock, return_window_days=window, points_lifetime_months=12, welcome_points=0,
                pay_with_points_max_percent=100, redeem_points=1, redeem_amount=1,
            )  # fmt: skip
            if big_basket:  # in force long before any purchase, a late one too
                program = apply_rules(self.db, FrozenClock(START - timedelta(days=1_000)), program, RULES)
            self.program = program
            self.shared[(window, big_basket)] = (program, {cost: self._reward(cost) for cost in COSTS})
        self.program, self.rewards = self.shared[(window, big_basket)]
        self.setting = f"return window {window} days, big basket rule {'on' if big_basket else 'off'}"
        self.model = Model(window_days=window, now=self.clock.now(), big_basket=big_basket)
        self.ids: dict[str, str] = {}  # model member -> engine member id
        self.codes: dict[str, str] = {}  # model coupon key -> engine code
        for name in ("A", "B"):
            self.ids[name] = enrol(self.db, self.clock, self.program).id
            self.model.enrol(name)
        self.serial = 0
        for step in range(STEPS):
            self.clock.advance(minutes=rng.randint(1, 5))
            self.model.now = self.clock.now()
            operation = self._pick(rng)
            try:
                try:
                    operation(rng)
                finally:
                    self.trace.append(
                        f"{operation.__name__.lstrip('_')}{self.last_args} at {self.clock.now():%Y-%m-%d %H:%M}"
                    )
                self._compare()
            except AssertionError as mismatch:
                raise AssertionError(self._report(step, mismatch)) from mismatch
        if ONE:
            assert_ledger_sound(self.db, self.program)
            print(self.setting, *(f"{n:>3}. {t}" for n, t in enumerate(self.trace)), sep="\n")

    def _report(self, step: int, mismatch: AssertionError) -> str:
        ops = "\n".join(f"  {n:>3}. {t}" for n, t in enumerate(self.trace))
        replay = f"PALIER_SIM_SEED={self.seed} .venv/bin/pytest tests/reliability/test_simulation.py -q"
        return f"seed {self.seed}, step {step}: {mismatch}\n{self.setting}; operations:\n{ops}\nreplay: {replay}"

    def _reward(self, cost: int) -> str:
        data = RewardIn.model_validate(
            {"kind": "gift", "cost_points": cost, "title": {"fr": f"Cadeau {cost}", "en": f"Gift {cost}"},
             "valid_days": 3650}
        )  # fmt: skip
        with self.db.write() as conn:
            return rewards.create_reward(conn=conn, clock=self.clock, program=self.program, data=data, actor=ACTOR).id

    # --- choosing an operation ---

    last_args: tuple[Any, ...] = ()

    def _pick(self, rng: random.Random) -> Callable[[random.Random], None]:
        choices: list[tuple[Callable[[random.Random], None], int]] = [
            (self._purchase, 26), (self._late_purchase, 4), (self._refund, 11), (self._refund_shipping, 3),
            (self._redeem, 16), (self._use, 7), (self._cancel, 7), (self._pay, 8), (self._mature, 6),
            (self._expire, 5), (self._jump, 7), (self._merge, 2),
        ]  # fmt: skip
        operation = rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]
        self.last_args = ()
        return operation

    def _member(self, rng: random.Random) -> str:
        return rng.choice(self.model.active_members())

    def _agree(self, expected: Callable[[], Any], actual: Callable[[], Any]) -> Any:
        """Run the model, then the engine: both succeed, or both refuse with the same code."""
        try:
            wanted = expected()
            refused = None
        except Refused as refusal:
            refused = refusal.code
        try:
            got = actual()
        except PalierError as error:
            assert refused == error.code, f"the engine refused ({error.code}: {error.detail}), the model {refused}"
            return None
        assert refused is None, f"the model refused ({refused}), the engine did it: {got}"
        return wanted

    # --- the operations ---

    def _purchase(self, rng: random.Random, *, days_late: int = 0) -> None:
        member, amount, shipping = self._member(rng), rng.randint(50, 6_000), rng.choice([0, 0, 490])
        self.serial += 1
        order_id = f"S{self.seed}N{self.serial}"
        occurred = self.clock.now() - timedelta(days=days_late)
        self.last_args = (member, order_id, amount, shipping, days_late)
        body = purchase_body(
            self.program, self.ids[member], clock=self.clock, amount=amount, order_id=order_id, shipping=shipping,
            occurred_at=occurred,
        )  # fmt: skip
        points = self._agree(
            lambda: self.model.purchase(member, order_id, amount, shipping=shipping, occurred=occurred),
            lambda: send_purchase(self.db, self.clock, self.program, body)[0],
        )
        assert points is not None

    def _late_purchase(self, rng: random.Random) -> None:
        """A receipt sent days late, or after its points' life is over (they expire as they are recorded)."""
        self._purchase(rng, days_late=rng.choice([3, 20, 200, 400]))

    def _refund(self, rng: random.Random) -> None:
        if not self.model.orders:
            return
        order = self.model.orders[rng.choice(sorted(self.model.orders))]
        amount = rng.choice([order.total - order.refunded + 1, rng.randint(1, max(1, order.total))])
        self.last_args = (order.order_id, amount)
        body = return_body(order.order_id, clock=self.clock, amount=amount)
        self._agree(
            lambda: self.model.refund(order.order_id, amount),
            lambda: send_return(self.db, self.clock, self.program, body)[0],
        )

    def _refund_shipping(self, rng: random.Random) -> None:
        shipped = sorted(o.order_id for o in self.model.orders.values() if o.shipping)
        if not shipped:
            return
        order = self.model.orders[rng.choice(shipped)]
        amount = rng.choice([order.shipping - order.shipping_refunded + 1, rng.randint(1, order.shipping)])
        self.last_args = (order.order_id, amount)
        body = return_body(order.order_id, clock=self.clock, shipping=amount)
        self._agree(
            lambda: self.model.refund(order.order_id, shipping=amount),
            lambda: send_return(self.db, self.clock, self.program, body)[0],
        )

    def _redeem(self, rng: random.Random) -> None:
        member, cost = self._member(rng), rng.choice(COSTS)
        self.serial += 1
        key = f"C{self.serial}"
        self.last_args = (member, cost, key)

        def engine() -> Any:
            with self.db.write() as conn:
                done = rewards.redeem(
                    conn=conn, clock=self.clock, program=self.program, member_id=self.ids[member],
                    data=RedeemIn(reward_id=self.rewards[cost]),
                )  # fmt: skip
            self.codes[key] = done.coupon.code
            return done

        self._agree(lambda: self.model.redeem(member, key, cost), engine)

    def _coupon(self, rng: random.Random) -> str | None:
        keys = sorted(self.codes)
        return rng.choice(keys) if keys else None

    def _use(self, rng: random.Random) -> None:
        key = self._coupon(rng)
        if key is None:
            return
        self.serial += 1
        use = CouponUse(channel="store", order_id=f"U{self.seed}N{self.serial}")
        self.last_args = (key, use.order_id)

        def engine() -> Any:
            with self.db.write() as conn:
                return rewards.use_coupon(
                    conn=conn, clock=self.clock, program=self.program, code=self.codes[key], use=use
                )

        self._agree(lambda: self.model.use(key), engine)

    def _cancel(self, rng: random.Random) -> None:
        key = self._coupon(rng)
        if key is None:
            return
        self.last_args = (key,)

        def engine() -> Any:
            with self.db.write() as conn:
                return rewards.cancel_coupon(
                    conn=conn, clock=self.clock, program=self.program, code=self.codes[key], actor=ACTOR
                )

        self._agree(lambda: self.model.cancel(key), engine)

    def _pay(self, rng: random.Random) -> None:
        member, points = self._member(rng), rng.randint(1, 80)
        self.serial += 1
        data = PaymentIn(kind="points", order_id=f"P{self.seed}N{self.serial}", order_total=10**7, points=points)
        self.last_args = (member, points)

        def engine() -> Any:
            with self.db.write() as conn:
                return payments.pay(
                    conn=conn, clock=self.clock, program=self.program, member_id=self.ids[member], data=data
                )

        self._agree(lambda: self.model.pay(member, points), engine)

    def _mature(self, rng: random.Random) -> None:
        self.model.mature()
        mature(self.db, self.clock, self.program)

    def _expire(self, rng: random.Random) -> None:
        self.model.expire()
        expire(self.db, self.clock, self.program)

    def _jump(self, rng: random.Random) -> None:
        days = rng.choice([1, 10, 15, 40, 200, 380])
        self.last_args = (days,)
        self.clock.advance(days=days)
        self.model.now = self.clock.now()

    def _merge(self, rng: random.Random) -> None:
        if len(self.model.active_members()) < 2:
            return
        source, target = ("B", "A") if rng.random() < 0.5 else ("A", "B")
        self.last_args = (source, target)
        self.model.merge(source, target)
        merge(self.db, self.clock, self.program, self.ids[source], self.ids[target])

    # --- agreeing ---

    def _compare(self) -> None:
        db, program = self.db, self.program
        owner = {engine_id: name for name, engine_id in self.ids.items()}
        once_swept = copy.deepcopy(self.model)  # what a balance shows: as it stands once the jobs have run
        once_swept.mature()
        once_swept.expire()
        with db.read() as conn:
            for name in self.model.active_members():
                for clock, model in ((STORED, self.model), (self.clock, once_swept)):
                    shown = members.balance(conn=conn, clock=clock, program=program, member_id=self.ids[name])
                    account = model.accounts[name]
                    got = (shown.available, shown.pending, shown.held, shown.debt)
                    wanted = (account.available, account.pending, account.held, account.debt)
                    assert got == wanted, (
                        f"member {name} at {clock.now():%Y-%m-%d}: engine (available, pending, held, debt) {got}, "
                        f"model {wanted}"
                    )
            rows = conn.execute(
                select(purchases.c.order_id, lots.c.member_id, lots.c.amount, lots.c.remaining, lots.c.state,
                       lots.c.matures_at, lots.c.expires_at)
                .join(lots, lots.c.id == purchases.c.lot_id)
                .where(purchases.c.program_id == program.id, purchases.c.order_id.in_(list(self.model.orders)))
            ).all()  # fmt: skip
            engine_lots = {
                r.order_id: (owner[r.member_id], int(r.amount), int(r.remaining), r.state, utc(r.matures_at),
                             utc(r.expires_at))
                for r in rows
            }  # fmt: skip
            codes = list(self.codes.values())
            states = dict(conn.execute(select(coupons.c.code, coupons.c.state).where(coupons.c.code.in_(codes))).all())
        model_lots = {
            lot.order_id: (lot.member, lot.amount, lot.remaining, lot.state, lot.matures_at, lot.expires_at)
            for lot in self.model.lots
        }  # fmt: skip
        for order_id in sorted(set(engine_lots) | set(model_lots)):
            got, wanted = engine_lots.get(order_id), model_lots.get(order_id)
            assert got == wanted, f"lot of order {order_id}: engine {got}, model {wanted}"
        for key, code in self.codes.items():
            assert states[code] == self.model.coupons[key].state, f"coupon {key}: engine {states[code]}"


def test_the_model_refuses_what_a_till_is_refused() -> None:
    """The model on its own: the refusals the engine must give too (a model that refuses nothing would
    agree with an engine that checks nothing)."""
    model = Model(window_days=0, now=START)
    model.enrol("A")
    assert model.purchase("A", "O1", 2_599) == 25
    with pytest.raises(Refused, match="insufficient_points"):
        model.redeem("A", "C1", 60)
    model.redeem("A", "C1", 25)
    with pytest.raises(Refused, match="return_exceeds_purchase"):
        model.refund("O1", 2_600)
    assert model.refund("O1", 2_599) == 25 and model.accounts["A"].debt == 25  # the points were held: debt
    model.cancel("C1")  # back to the lot, and at once to the debt: never owing while holding points to spend
    assert (model.accounts["A"].available, model.accounts["A"].held, model.accounts["A"].debt) == (0, 0, 0)
    model.now += timedelta(days=400)
    model.expire()
    assert model.accounts["A"].available == 0 and model.lots[0].state == "expired"
