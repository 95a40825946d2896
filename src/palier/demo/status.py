"""The demo's tiers, VIP plan and segments: Bronze / Silver / Gold on yearly spend with a grace period,
the "Club" at €4.99 a month, and segments including the top 20 % of customers."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select

from palier.clock import FrozenClock
from palier.db import Database
from palier.members.tables import members
from palier.memberships import service as memberships
from palier.memberships.models import JoinIn, MembershipPaymentIn, PlanIn
from palier.programs.models import Program
from palier.programs.service import get_program
from palier.rewards.tables import rewards
from palier.segments import service as segments
from palier.segments.models import SegmentIn
from palier.tiers import service as tiers
from palier.tiers.models import TierPolicy

ACTOR = "demo"

TIERS = {
    "metric": "spend",
    "window": "calendar_year",
    "downgrade": "grace",
    "grace_months": 3,
    "tiers": [
        {"code": "bronze", "name": {"fr": "Bronze", "en": "Bronze"}, "threshold": 0},
        {
            "code": "silver",
            "name": {"fr": "Argent", "en": "Silver"},
            "threshold": 250_00,
            "multiplier_percent": 125,
            "perks": [{"fr": "Points ×1,25", "en": "Points ×1.25"}],
        },
        {
            "code": "gold",
            "name": {"fr": "Or", "en": "Gold"},
            "threshold": 800_00,
            "multiplier_percent": 150,
            "perks": [
                {"fr": "Points ×1,5", "en": "Points ×1.5"},
                {"fr": "Un café offert chaque lundi", "en": "A free coffee every Monday"},
            ],
        },
    ],
}

SEGMENTS = [
    {"code": "top20", "name": {"fr": "Meilleurs clients (20 %)", "en": "Top 20% customers"}, "kind": "top_revenue"},
    {
        "code": "lapsing",
        "name": {"fr": "À relancer", "en": "Lapsing regulars"},
        "conditions": [
            {"field": "days_since_last_purchase", "op": ">=", "value": 45},
            {"field": "order_count", "op": ">=", "value": 3},
        ],
    },
    {
        "code": "online",
        "name": {"fr": "Clients en ligne", "en": "Online shoppers"},
        "conditions": [{"field": "web_share", "op": ">=", "value": 50}],
    },
    {
        "code": "champions",
        "name": {"fr": "Champions (RFM)", "en": "Champions (RFM)"},
        "conditions": [{"field": "rfm_score", "op": ">=", "value": 13}],
    },
]


def add_status(db: Database, clock: FrozenClock, program: Program, *, seed: int = 42) -> Program:
    """Tiers, the Club plan and segments on the demo program, with members placed and some Club members."""
    rng = random.Random(seed)
    with db.write() as conn:
        tiers.set_policy(conn=conn, clock=clock, program=program, policy=TierPolicy.model_validate(TIERS), actor=ACTOR)
        for segment in SEGMENTS:
            segments.create_segment(
                conn=conn, clock=clock, program=program, data=SegmentIn.model_validate(segment), actor=ACTOR
            )
        delivery = conn.execute(
            select(rewards.c.id).where(rewards.c.program_id == program.id, rewards.c.kind == "free_shipping")
        ).scalar()
        plan = {
            "code": "club",
            "name": {"fr": "Club Fournil", "en": "Fournil Club"},
            "price": 499,
            "period": "monthly",
            "trial_days": 14,
            "benefits": {
                "multiplier_percent": 200,
                "period_rewards": [delivery] if delivery else [],
                "perks": [{"fr": "Points doublés", "en": "Double points"}],
            },
        }
        memberships.create_plan(conn=conn, clock=clock, program=program, data=PlanIn.model_validate(plan), actor=ACTOR)
        program = get_program(conn=conn, program_id=program.id)
        people = list(
            conn.execute(
                select(members.c.id)
                .where(members.c.program_id == program.id, members.c.status == "active")
                .order_by(members.c.id)
            ).scalars()
        )
    tiers.requalify(db, clock, program_id=program.id)
    segments.refresh(db, clock, program_id=program.id)
    club = rng.sample(people, min(12, len(people)))
    with db.write() as conn:
        for n, member_id in enumerate(club):
            paid_at = clock.now() - timedelta(days=rng.randint(0, 25))
            data = MembershipPaymentIn(
                payment_id=f"demo-club-{n}", member_id=member_id, plan="club", amount=499, paid_at=paid_at
            )
            memberships.record_payment(conn=conn, clock=clock, program=program, data=data)
        if len(people) > len(club):
            trialist = next(m for m in people if m not in club)
            memberships.start_trial(
                conn=conn, clock=clock, program=program, member_id=trialist, data=JoinIn(plan="club")
            )
    return program
