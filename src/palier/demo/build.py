"""Play the planned year of Maison Fournil through the services, a week at a time, with a moving clock.

Each week: at opening time on its first morning the reward catalog opens (once) and the week's
redemptions are made (demo/rewards.py); new members enrol at their own time; at the week's close its
purchases are imported in bulk, cards are linked, returns, adjustments and merges are booked, and the
jobs run (pending points mature after the 14-day window, year-old points expire, unused coupons expire).
So every balance, pending and expired point, coupon and store credit in the demo was made by the same
code that runs in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select

from palier.activity.bulk import import_purchases
from palier.activity.models import AdjustmentIn, PurchaseIn, ReturnIn, ReturnLine
from palier.activity.service import adjust, record_purchase, record_return
from palier.clock import FrozenClock, SystemClock
from palier.config import load_settings
from palier.db import Database
from palier.demo import catalog
from palier.demo.history import Day, Plan, Purchase, plan_history
from palier.demo.people import Person
from palier.demo.rewards import Redeemer
from palier.demo.rules import TEN_EUROS, demo_rules
from palier.demo.status import add_status
from palier.jobs import sweeps
from palier.ledger.tables import accounts
from palier.members import service as members
from palier.members.models import Consents, IdentityIn, MemberCreate
from palier.notify import expiry
from palier.programs.models import KeyCreate, Program, ProgramSettings
from palier.programs.service import create_key, create_program, get_program, record_audit
from palier.programs.tables import audit_entries, programs
from palier.rewards.models import RewardIn
from palier.rewards.service import create_reward, expire_coupons
from palier.rules.service import apply_rules

DEMO_NAME = "Maison Fournil"
DEMO_SETTINGS = ProgramSettings(
    name=DEMO_NAME,
    currency="EUR",
    timezone="Europe/Paris",
    points_name="points",
    earn_points=1,
    earn_per_amount=100,  # 1 point per euro
    return_window_days=14,
    points_lifetime_months=12,
    welcome_points=50,
)
ACTOR = "demo"
BUILT = "demo.built"  # the audit entry written once the demo is whole (see find_demo)
# The clock moves a week at a time: purchases are booked at the week's close and the jobs run then,
# so points are booked as matured or expired up to a week late in the past (dated when they fell due, as a
# worker that was stopped books them); on the last step (today) everything due is done.
STEP_DAYS = 7


@dataclass(frozen=True)
class DemoInfo:
    program_id: str
    admin_key: str
    pos_key: str
    read_key: str
    sample_member_ids: list[str]


def build_demo(
    db: Database, *, members: int = 300, seed: int = 42, now: datetime | None = None, card_key: bytes | None = None
) -> DemoInfo:
    """Create the Maison Fournil program with a year of history ending ``now``; its keys and samples."""
    card_key = card_key or load_settings().card_hash_key  # a PALIER_CARD_KEY refused before anything is written
    end = now or SystemClock().now()
    plan = plan_history(members=members, seed=seed, end=end)
    clock = FrozenClock(plan.start)
    with db.write() as conn:
        program = create_program(conn=conn, clock=clock, settings=DEMO_SETTINGS, actor=ACTOR)
    player = _Player(db, clock, program, plan, card_key)
    for start in range(0, len(plan.days), STEP_DAYS):
        player.play(plan.days[start : start + STEP_DAYS])
    clock.set(end)
    with db.write() as conn:  # from now on, purchases earn by the demo's rules (see demo/rules.py)
        voucher = create_reward(
            conn=conn, clock=clock, program=program, data=RewardIn.model_validate(TEN_EUROS), actor=ACTOR
        )
        document = demo_rules(end, reward_id=voucher.id)
        apply_rules(conn=conn, clock=clock, program_id=program.id, document=document, actor=ACTOR)
        program = get_program(conn=conn, program_id=program.id)
    add_status(db, clock, program, seed=seed)  # tiers, the Club plan, segments (see demo/status.py)
    expiry.warn(db, clock, program_id=program.id)  # points earned a year ago expire soon: the mailer's work
    with db.write() as conn:  # the demo is whole: only now will find_demo reuse it
        record_audit(conn=conn, clock=clock, program_id=program.id, actor=ACTOR, action=BUILT)
    return demo_access(db, program.id, clock=clock)


def find_demo(db: Database) -> str | None:
    """The id of the demo program in this database, if there is one: the program the demo created and finished
    building, known by who wrote its ``demo.built`` audit entry, never by its name, which any program may share."""
    with db.read() as conn:
        return conn.execute(
            select(audit_entries.c.program_id)
            .where(audit_entries.c.action == BUILT, audit_entries.c.actor == ACTOR)
            .order_by(audit_entries.c.program_id)
        ).scalar()


def unfinished_demo(db: Database) -> bool:
    """Whether this database holds only a demo whose building stopped half-way (Ctrl-C, an error): to build again,
    not to reuse, and nothing else in it to lose."""
    by_demo = select(audit_entries.c.program_id).where(audit_entries.c.actor == ACTOR)
    with db.read() as conn:
        started = set(conn.execute(by_demo.where(audit_entries.c.action == "program.created")).scalars())
        finished = conn.execute(by_demo.where(audit_entries.c.action == BUILT)).first()
        every = conn.execute(select(func.count()).select_from(programs)).scalar_one()
    return bool(started) and finished is None and every == len(started)


def demo_access(db: Database, program_id: str, *, clock: FrozenClock | SystemClock | None = None) -> DemoInfo:
    """New admin, POS and read-only keys for the demo (secrets are shown once), and sample members."""
    clock = clock or SystemClock()
    secrets: dict[str, str] = {}
    with db.write() as conn:
        get_program(conn=conn, program_id=program_id)
        for scope, name in (("admin", "Demo admin"), ("pos", "Demo till, Lyon"), ("read", "Demo dashboard")):
            spec = KeyCreate(name=name, scopes=[scope])  # type: ignore[list-item]
            key = create_key(conn=conn, clock=clock, program_id=program_id, spec=spec, actor=ACTOR)
            secrets[scope] = key.secret
        samples = sample_members(conn, program_id)
    return DemoInfo(program_id, secrets["admin"], secrets["pos"], secrets["read"], samples)


def sample_members(conn: Connection, program_id: str, limit: int = 5) -> list[str]:
    """Members worth looking at: points both available and pending, the richest first."""
    available, pending = accounts.alias("available"), accounts.alias("pending")
    query = (
        select(available.c.member_id)
        .join(pending, and_(pending.c.member_id == available.c.member_id, pending.c.kind == "pending"))
        .where(available.c.program_id == program_id, available.c.kind == "available", pending.c.balance > 0)
        .order_by(available.c.balance.desc(), available.c.member_id)
        .limit(limit)
    )
    return [str(m) for m in conn.execute(query).scalars()]


class _Player:
    def __init__(self, db: Database, clock: FrozenClock, program: Program, plan: Plan, card_key: bytes) -> None:
        self.db, self.clock, self.program, self.plan, self.card_key = db, clock, program, plan, card_key
        self.member_ids: dict[int, str] = {}
        self.redeemer = Redeemer(clock, program, plan.people, plan.days[-1].day, card_key)

    def person(self, index: int) -> Person:
        return self.plan.people[index]

    def play(self, days: list[Day]) -> None:
        """A stretch of days in one transaction: redemptions at opening time on the first morning, enrolments
        at their time, then the rest at closing time."""
        with self.db.write() as conn:
            self.redeemer.morning(conn, days, self.member_ids)
            for index in (i for day in days for i in day.enrolments):
                self._enrol(conn, self.person(index))
            self.clock.set(days[-1].close)
            self._import(conn, sorted((p for day in days for p in day.purchases), key=lambda p: p.when))
            for day in days:
                self._events(conn, day)
        # only this program's lots: other programs in the database live on another clock
        sweeps.mature(self.db, self.clock, program_id=self.program.id)
        sweeps.expire(self.db, self.clock, program_id=self.program.id)
        expire_coupons(self.db, self.clock, program_id=self.program.id)

    def _import(self, conn: Connection, planned: list[Purchase]) -> None:
        stats = import_purchases(
            conn=conn,
            clock=self.clock,
            program=self.program,
            purchases=[self._purchase(p) for p in planned if p.ref != "anonymous"],
            card_key=self.card_key,
        )
        for p in planned:  # shoppers who are not members: sent one by one, like a till would (no ledger work)
            if p.ref == "anonymous":
                record_purchase(
                    conn=conn,
                    clock=self.clock,
                    program=self.program,
                    purchase=self._purchase(p),
                    card_key=self.card_key,
                )
        if stats.rejected:  # the plan only sends what the engine must accept
            raise RuntimeError(f"demo purchases rejected: {stats.rejected[:3]}")

    def _enrol(self, conn: Connection, person: Person) -> None:
        self.clock.set(person.enrol_at)
        identities = [IdentityIn(kind="card", value=person.loyalty_card)]
        if person.payment_card and person.card_linked_at is None:
            identities.append(IdentityIn(kind="payment_card", value=person.payment_card))
        data = MemberCreate(
            first_name=person.first_name,
            last_name=person.last_name,
            email=person.email,
            phone=person.phone,
            birthday=person.birthday,
            language=person.language,  # type: ignore[arg-type]
            consents=Consents(**person.consents),
            identities=identities,
            channel=person.enrol_channel,  # type: ignore[arg-type]
        )
        member = members.enrol(
            conn=conn, clock=self.clock, program=self.program, data=data, card_key=self.card_key, actor=ACTOR
        )
        self.member_ids[person.index] = member.id

    def _purchase(self, p: Purchase) -> PurchaseIn:
        member: dict[str, Any] | None
        if p.ref == "anonymous":
            member = None
        elif p.person is None:
            member = {"kind": "payment_card", "value": p.pan}
        else:
            person = self.person(p.person)
            values = {
                "card": person.loyalty_card,
                "payment_card": person.payment_card,
                "phone": person.phone,
                "email": person.email,
            }
            member = (
                {"member_id": self.member_ids[p.person]}
                if p.ref == "member_id"
                else {"kind": p.ref, "value": values[p.ref]}
            )
        return PurchaseIn.model_validate(
            {
                "order_id": p.order_id,
                "member": member,
                "channel": p.channel,
                "store_id": p.store_id,
                "store_name": catalog.STORES[p.store_id] if p.store_id else None,
                "occurred_at": p.when,
                "currency": "EUR",
                "lines": catalog.lines(p.basket),
                "shipping": p.shipping,
            }
        )

    def _events(self, conn: Connection, day: Day) -> None:
        clock, program = self.clock, self.program
        for index in day.card_links:  # purchases made with the card so far are credited now
            person = self.person(index)
            members.add_identity(
                conn=conn,
                clock=clock,
                program=program,
                member_id=self.member_ids[index],
                identity=IdentityIn(kind="payment_card", value=person.payment_card or ""),
                card_key=self.card_key,
                actor=ACTOR,
            )
        for ret in sorted(day.returns, key=lambda r: r.when):
            spec = ReturnIn(
                return_id=f"RET-{ret.order_id}",
                order_id=ret.order_id,
                occurred_at=ret.when,
                lines=[ReturnLine(sku=sku, quantity=q) for sku, q in ret.lines] if ret.lines else None,
                amount=ret.amount,
                reason=ret.reason,
            )
            record_return(conn=conn, clock=clock, program=program, ret=spec)
        for a in day.adjustments:
            member_id = self.member_ids[a.person]
            if (
                a.points < 0
                and members.balance(conn=conn, clock=clock, program=program, member_id=member_id).available < -a.points
            ):
                continue  # not enough points for the treat: nothing to take
            adjust(
                conn=conn,
                clock=clock,
                program=program,
                member_id=member_id,
                adjustment=AdjustmentIn(points=a.points, reason=a.reason),
                actor=ACTOR,
            )
        for index in day.merges:
            duplicate = self.person(index)
            assert duplicate.duplicate_of is not None
            members.merge(
                conn=conn,
                clock=clock,
                program=program,
                source_id=self.member_ids[index],
                target_id=self.member_ids[duplicate.duplicate_of],
                actor=ACTOR,
            )
