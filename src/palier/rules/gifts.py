"""Gifts the rules give without a purchase: on enrolment (the welcome gift), on the member's birthday and
on their membership anniversary, both on the local day in the program's time zone.

Birthdays and anniversaries are jobs, safe to run twice (or on two workers at once): each gift is an
event stored once per member and year, ``birthday`` / ``anniversary`` with external id
``<member id>:<year of the day celebrated>``; after a merge, the closed account's gift of a year counts
for the member that remains. Members are picked by set-based queries, in batches locked
with SKIP LOCKED. A job catches up the last :data:`CATCH_UP_DAYS` days, so a worker stopped over a weekend
still gives the gifts it missed (a birthday only to members who had joined by that day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, and_, extract, false, or_, select
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
from palier.rules import bookings, limits
from palier.rules.calendar import anniversary_windows, local_midnight, month_days_celebrated_on
from palier.rules.engine import CompiledRuleSet, EventSnapshot
from palier.rules.service import member_context_at, rules_at

BATCH = 500
MAX_BATCH = 10_000  # members a batch's IN lists name: well under SQLite's 32,766 bound parameters
CATCH_UP_DAYS = 7  # a gift whose day passed while no job ran is still given within this many days


def on_enrolment(
    *, conn: Connection, clock: Clock, program: Program, member_id: str, channel: str | None = None
) -> EventResult | None:
    """The welcome gift of the rules in force (beside the program's ``welcome_points``); None if there is none.
    ``channel``: where the member joined (a gift for joining in the app)."""
    now = clock.now()
    rules = rules_at(conn=conn, program=program, when=now)
    if rules is None or "enrolment" not in rules.by_event:
        return None
    return _give(conn, clock, program, rules, member_id, "enrolment", member_id, now, "Welcome gift", channel)


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
    batch_size = min(batch_size, MAX_BATCH)  # palier jobs run --batch-size counts a sweep's lots: far more
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
    candidates = _candidates(conn, program, kind, today, size)
    locked = try_lock_members(conn, list(candidates))
    given = points = 0
    label = "Happy birthday!" if kind == "birthday" else "Happy membership anniversary!"
    for member_id in sorted(locked):
        if not _still_due(conn, program, member_id, kind, candidates[member_id]):
            continue  # merged meanwhile: the person had that year's gift on the other account, or left this one
        external_id = f"{member_id}:{candidates[member_id]}"
        result = _give(conn, clock, program, rules, member_id, kind, external_id, now, label)
        given += 1
        points += result.points
    return given, points, len(candidates)


def _candidates(conn: Connection, program: Program, kind: str, today: date, size: int) -> dict[str, int]:
    """Active members whose gift day was one of the last :data:`CATCH_UP_DAYS` days (today included) and who
    have not had that year's gift, with that year (a set-based query)."""
    tz = _tz(program)
    days = [today - timedelta(days=back) for back in range(CATCH_UP_DAYS)]
    by_year = []
    for year in sorted({day.year for day in days}):
        due = or_(*(_due_on(day, kind, program, tz) for day in days if day.year == year))
        # that year's gift, whichever account of the person it went to: a merge moves the closed account's
        # events (external id ``<its member id>:<year>``) to the member that remains
        already = (
            select(events.c.id)
            .where(
                events.c.program_id == program.id,
                events.c.member_id == members.c.id,
                events.c.type == kind,
                events.c.external_id.endswith(f":{year}"),
            )
            .exists()
        )
        by_year.append((year, and_(due, ~already)))
    found: dict[str, int] = {}
    for year, due in by_year:  # a member due in two years (the turn of the year): the earlier first
        query = (
            select(members.c.id)
            .where(members.c.program_id == program.id, members.c.status == "active", due)
            .order_by(members.c.id)
            .limit(size)
        )
        for member_id in conn.execute(query).scalars():
            found.setdefault(member_id, year)
    return dict(sorted(found.items())[:size])


def _still_due(conn: Connection, program: Program, member_id: str, kind: str, year: int) -> bool:
    """Read again under the member's lock: still active, and still without that year's gift (a merge that
    committed after the candidates were chosen may have brought the other account's)."""
    status = conn.execute(select(members.c.status).where(members.c.id == member_id)).scalar()
    had = conn.execute(
        select(events.c.id)
        .where(
            events.c.program_id == program.id,
            events.c.member_id == member_id,
            events.c.type == kind,
            events.c.external_id.endswith(f":{year}"),
        )
        .limit(1)
    ).first()
    return status == "active" and had is None


def _due_on(day: date, kind: str, program: Program, tz: ZoneInfo) -> ColumnElement[bool]:
    """Members whose gift falls on ``day``: their birthday (if they had joined by the end of that day), or
    the day they joined in an earlier year."""
    if kind == "birthday":
        born = or_(
            *(
                and_(extract("month", members.c.birthday) == m, extract("day", members.c.birthday) == d)
                for m, d in month_days_celebrated_on(day)
            )
        )
        return and_(born, members.c.enrolled_at < local_midnight(day + timedelta(days=1), tz))
    # the program's first local day (a member who joined on its first evening in Los Angeles joined on
    # 31 December, while it was already 1 January in UTC)
    windows = anniversary_windows(day, utc(program.created_at).astimezone(tz).date(), tz)
    return or_(false(), *(and_(members.c.enrolled_at >= start, members.c.enrolled_at < end) for start, end in windows))


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
    channel: str | None = None,
) -> EventResult:
    context = member_context_at(conn=conn, program=program, member_id=member_id, rules=rules, at=now)
    event = EventSnapshot(type=kind, channel=channel)
    awards = limits.evaluate_within(
        conn=conn, program=program, rules=rules, event=event, member=context, at=now, member_id=member_id, lock=True
    )
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
        channel=channel,
    )
