"""Gifts the rules give without a purchase: on enrolment (the welcome gift), on the member's birthday and
on their membership anniversary, both on the local day in the program's time zone.

Birthdays and anniversaries are jobs, safe to run twice (or on two workers at once): each gift is an
event stored once per member and year, ``birthday`` / ``anniversary`` with external id
``<member id>:<year>``. Members are picked by set-based queries, in batches locked with SKIP LOCKED.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, extract, or_, select
from sqlalchemy.exc import IntegrityError

from palier.activity.models import EventResult
from palier.activity.tables import events
from palier.clock import Clock, utc
from palier.db import Database
from palier.ledger.locks import try_lock_members
from palier.members.tables import members
from palier.programs.models import Program
from palier.programs.service import get_program
from palier.programs.tables import programs
from palier.rules import bookings
from palier.rules.calendar import anniversary_windows, month_days_celebrated_on
from palier.rules.engine import CompiledRuleSet, EventSnapshot
from palier.rules.service import member_context, rules_at

BATCH = 500


def on_enrolment(*, conn: Connection, clock: Clock, program: Program, member_id: str) -> EventResult | None:
    """The welcome gift of the rules in force (beside the program's ``welcome_points``); None if there is none."""
    now = clock.now()
    rules = rules_at(conn=conn, program=program, when=now)
    if rules is None or "enrolment" not in rules.by_event:
        return None
    return _give(conn, clock, program, rules, member_id, "enrolment", member_id, now, "Welcome gift")


@dataclass
class GiftRun:
    members: int = 0
    points: int = 0
    batches: int = 0


def birthdays(db: Database, clock: Clock, *, program_id: str | None = None, batch_size: int = BATCH) -> GiftRun:
    """Give every member whose birthday it is today (program time) the birthday gift, once a year."""
    return _run(db, clock, "birthday", program_id, batch_size)


def anniversaries(db: Database, clock: Clock, *, program_id: str | None = None, batch_size: int = BATCH) -> GiftRun:
    """Give every member who joined on this day in an earlier year the anniversary gift, once a year."""
    return _run(db, clock, "anniversary", program_id, batch_size)


def _run(db: Database, clock: Clock, kind: str, program_id: str | None, batch_size: int) -> GiftRun:
    run = GiftRun()
    with db.read() as conn:
        query = select(programs.c.id).where(programs.c.rules_version > 0)
        if program_id is not None:
            query = query.where(programs.c.id == program_id)
        ids = list(conn.execute(query).scalars())
    for pid in ids:
        while True:
            try:
                with db.write() as conn:
                    given, points, seen = _batch(conn, clock, get_program(conn=conn, program_id=pid), kind, batch_size)
            except IntegrityError:  # another worker gave one of these gifts first: run the batch again
                continue
            run.batches += 1
            run.members += given
            run.points += points
            if seen < batch_size or given == 0:
                break
    return run


def _batch(conn: Connection, clock: Clock, program: Program, kind: str, size: int) -> tuple[int, int, int]:
    now = clock.now()
    rules = rules_at(conn=conn, program=program, when=now)
    if rules is None or kind not in rules.by_event:
        return 0, 0, 0
    today = now.astimezone(rules.timezone).date()
    year = today.year
    candidates = _candidates(conn, program, kind, today, size)
    locked = try_lock_members(conn, candidates)
    given = points = 0
    label = "Happy birthday!" if kind == "birthday" else "Happy membership anniversary!"
    for member_id in sorted(locked):
        result = _give(conn, clock, program, rules, member_id, kind, f"{member_id}:{year}", now, label)
        given += 1
        points += result.points
    return given, points, len(candidates)


def _candidates(conn: Connection, program: Program, kind: str, today: date, size: int) -> list[str]:
    """Active members due this gift today who have not had this year's (a set-based query)."""
    if kind == "birthday":
        due = or_(
            *(
                and_(extract("month", members.c.birthday) == m, extract("day", members.c.birthday) == d)
                for m, d in month_days_celebrated_on(today)
            )
        )
    else:
        windows = anniversary_windows(today, utc(program.created_at).date(), _tz(program))
        if not windows:
            return []
        due = or_(*(and_(members.c.enrolled_at >= start, members.c.enrolled_at < end) for start, end in windows))
    already = (
        select(events.c.id)
        .where(
            events.c.program_id == program.id,
            events.c.type == kind,
            events.c.external_id == members.c.id + f":{today.year}",
        )
        .exists()
    )
    query = (
        select(members.c.id)
        .where(members.c.program_id == program.id, members.c.status == "active", due, ~already)
        .order_by(members.c.id)
        .limit(size)
    )
    return list(conn.execute(query).scalars())


def _tz(program: Program) -> ZoneInfo:
    return ZoneInfo(program.timezone)


def _give(
    conn: Connection,
    clock: Clock,
    program: Program,
    rules: CompiledRuleSet,
    member_id: str,
    kind: str,
    external_id: str,
    now: datetime,
    label: str,
) -> EventResult:
    context = member_context(conn=conn, program=program, member_id=member_id, rules=rules)
    awards = rules.evaluate(EventSnapshot(type=kind), context, now)
    names = [a.name.en for a in awards]
    return bookings.credit(
        conn=conn,
        clock=clock,
        program=program,
        rules=rules,
        member_id=member_id,
        type_=kind,
        external_id=external_id,
        shown_id=external_id,
        occurred_at=now,
        awards=awards,
        label=names[0] if len(names) == 1 else label,
        body={"kind": kind, "member_id": member_id, "date": now.date().isoformat()},
        body_hash=f"{kind}:{external_id}",
    )
