"""A member's standing in one read: tier, segments, VIP plans, and the earn multiplier they give.

Rules conditions (tier, segments), reward eligibility and the status bonus on purchases all read it.
A program whose ``status_version`` is 0 has no tiers, plans or segments: nothing is read at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, update

from palier.programs.models import Program
from palier.programs.tables import programs
from palier.rewards.models import Localized


@dataclass(frozen=True)
class Standing:
    tier: str | None = None
    segments: frozenset[str] = frozenset()
    plans: frozenset[str] = frozenset()
    multiplier_percent: int = 100  # the best of the tier's and the plans'
    multiplier_source: str | None = None  # "tier:gold" or "plan:club"
    multiplier_name: Localized | None = None
    tags: dict[str, str] = field(default_factory=dict)


NONE = Standing()


def standing(conn: Connection, *, program: Program, member_id: str | None, now: datetime) -> Standing:
    if member_id is None or program.status_version == 0:
        return NONE
    from palier.memberships.service import live_plan_benefits
    from palier.segments.service import member_segments
    from palier.tiers.service import policy_for, tier_at

    tier = tier_at(conn, program_id=program.id, member_id=member_id, at=now)
    best, source, name = 100, None, None
    if tier is not None and (policy := policy_for(conn, program)) is not None:
        found = policy.tier(tier)
        if found is not None and found.multiplier_percent > best:
            best, source, name = found.multiplier_percent, f"tier:{tier}", found.name
    plans = live_plan_benefits(conn, program_id=program.id, member_id=member_id, now=now)
    for code, (plan_name, percent) in sorted(plans.items()):
        if percent > best:
            best, source, name = percent, f"plan:{code}", plan_name
    return Standing(
        tier=tier,
        segments=member_segments(conn, member_id=member_id, at=now),
        plans=frozenset(plans),
        multiplier_percent=best,
        multiplier_source=source,
        multiplier_name=name,
    )


def bump(conn: Connection, *, program_id: str) -> None:
    """Tiers, plans or segments changed: purchases of this program look members' standing up from now on."""
    conn.execute(
        update(programs).where(programs.c.id == program_id).values(status_version=programs.c.status_version + 1)
    )
