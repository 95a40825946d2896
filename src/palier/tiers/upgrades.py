"""After a change of the tier policy: members whose metric already reaches a higher tier move up.

A new policy (a threshold lowered, a tier added, another metric) may put members above the tier they hold.
Purchases upgrade on the crossing and the requalification job judges periods as they end, so without this a
member whose year already reaches the lowered Gold would stay Silver, told "€0.00 more to reach Gold", until
their next purchase or the year's end. The requalification job runs this pass once per policy version, in
batches of members in id order: upgrades only (nobody is lowered before their period's end), never over a tier
lowered by hand, with a history line and a ``tier_upgraded`` event each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, true, update

from palier.clock import Clock
from palier.db import Database
from palier.db.bulk import insert_many, update_many
from palier.ids import new_ids
from palier.notify.outbox import emit_many
from palier.programs.models import Program
from palier.programs.service import get_program
from palier.tiers.models import TierPolicy
from palier.tiers.service import (
    STATUS_COLUMNS,
    _free_of_commands,
    _held_down_by_hand,
    _status_of,
    _still_active,
    get_policy,
    metric_per_status,
)
from palier.tiers.tables import member_tiers, tier_history, tier_policies


def upgrade_pass(db: Database, clock: Clock, *, program_id: str, batch_size: int = 5000) -> int:
    """Move up the members whose metric reaches a higher tier under a policy not yet passed over; how many."""
    with db.read() as conn:
        row = conn.execute(
            select(tier_policies.c.version, tier_policies.c.upgraded_version).where(
                tier_policies.c.program_id == program_id
            )
        ).first()
    if row is None or row.version == row.upgraded_version:
        return 0
    version, moved, after = row.version, 0, None
    while True:
        with db.write() as conn:
            count, after = _batch(conn, clock, program_id, batch_size, after)
            moved += count
            if after is None:
                conn.execute(
                    update(tier_policies)
                    .where(tier_policies.c.program_id == program_id, tier_policies.c.version == version)
                    .values(upgraded_version=version)
                )  # a policy changed meanwhile is passed over at the next run
                return moved


def _batch(
    conn: Connection, clock: Clock, program_id: str, batch_size: int, after: str | None
) -> tuple[int, str | None]:
    now = clock.now()
    program = get_program(conn=conn, program_id=program_id)
    policy = get_policy(conn, program_id=program_id)
    assert policy is not None
    rows = _statuses_with_values(conn, program, policy, now, batch_size, after)
    if not rows:
        return 0, None
    last = rows[-1]["member_id"] if len(rows) == batch_size else None
    updates, changes = [], []
    for row in _free_of_commands(conn, rows):
        status = _status_of(row)
        value = int(row["value"])
        qualified = policy.qualified(value)
        if policy.rank(qualified) <= policy.rank(status.tier):
            continue
        if status.manual_until is not None and _held_down_by_hand(conn, program_id, policy, status, now):
            continue
        updates.append({"member_id": status.member_id, "tier": qualified, "since": now, "grace_until": None,
                        "updated_at": now})  # fmt: skip
        changes.append((status.member_id, status.tier, qualified, value))
    if updates:
        update_many(conn, member_tiers, "member_id", updates)
        insert_many(
            conn,
            tier_history,
            [
                {"id": id_, "program_id": program_id, "member_id": m, "from_tier": old, "to_tier": new,
                 "reason": "upgrade", "details": {"value": value, "policy_changed": True}, "created_at": now}
                for id_, (m, old, new, value) in zip(new_ids("tier_change", len(changes)), changes, strict=True)
            ],
        )  # fmt: skip
        emit_many(
            conn,
            [
                (program_id, "tier_upgraded", m, {"member_id": m, "from": old, "to": new, "reason": "upgrade"})
                for m, old, new, _ in changes
            ],
            now=now,
        )
    return len(updates), last


def _statuses_with_values(
    conn: Connection, program: Program, policy: TierPolicy, now: datetime, batch_size: int, after: str | None
) -> Any:
    """Up to ``batch_size`` statuses of active members with ids above ``after``, locked, each with its metric
    over the window it is judged on: its own period (anniversary years, and a lifetime window without one), or
    the window running now, the same for everyone."""
    statuses = (
        select(*(member_tiers.c[name] for name in STATUS_COLUMNS))
        .where(
            member_tiers.c.program_id == program.id,
            member_tiers.c.member_id > after if after is not None else true(),
            _still_active,
        )
        .order_by(member_tiers.c.member_id)
        .limit(batch_size)
        .with_for_update(of=member_tiers)
        .cte("statuses")
    )
    shared = policy.window in ("calendar_year", "rolling_months")  # the year running, not the one a status holds
    value = metric_per_status(statuses, program, policy, now=now, shared=shared)
    return conn.execute(select(statuses, value.label("value")).order_by(statuses.c.member_id)).mappings().all()
