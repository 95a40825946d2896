"""Warning members before their points expire: a ``points_expiring`` event in the outbox for the mailer.

A program's ``expiry_warning_days`` (30 by default; 0: no warnings) is the window: a member with points
expiring within it is warned once, about all of them ("120 points expire from 31 March"), and not warned
again until that window has ended; the next warning then covers the window after it. Every point is thus
announced once, whatever the day the job runs, and a member never hears of the same points twice.

Safe to run twice, or on two workers at once: a member is claimed by an upsert of their row in
``expiry_warnings`` that only takes when their last window has ended, and the events are written in the same
transaction as the claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Row, Select, func, select

from palier.clock import Clock, utc
from palier.db import Database
from palier.db.bulk import upsert
from palier.ledger.tables import lot_state_is, lots
from palier.members.tables import members
from palier.notify.outbox import emit_many
from palier.notify.tables import expiry_warnings
from palier.programs.tables import programs
from palier.text import points_word

BATCH = 1_000


@dataclass
class WarningRun:
    members: int = 0  # warned
    points: int = 0  # announced
    batches: int = 0


@dataclass(frozen=True)
class _Due:
    member_id: str
    points: int  # expiring within the window
    first_expiry: datetime  # the soonest of them

    @classmethod
    def of(cls, row: Row[str, int, datetime]) -> _Due:
        return cls(row[0], int(row[1]), utc(row[2]))


def warn(db: Database, clock: Clock, *, program_id: str | None = None, batch_size: int = BATCH) -> WarningRun:
    """Warn every member whose points expire within their program's warning window (all programs, or one)."""
    run = WarningRun()
    now = clock.now()
    with db.read() as conn:
        query = select(
            programs.c.id,
            programs.c.expiry_warning_days,
            programs.c.points_name,
            programs.c.points_name_by_language,
        ).where(programs.c.expiry_warning_days > 0)
        if program_id is not None:
            query = query.where(programs.c.id == program_id)
        windows = [
            (
                row.id,
                now + timedelta(days=row.expiry_warning_days),
                _Names(row.points_name, row.points_name_by_language),
            )
            for row in conn.execute(query)
        ]
    for pid, until, names in windows:
        # The candidates stream in batches from one read; each batch is claimed in its own transaction.
        with db.read() as reading:
            for rows in reading.execution_options(yield_per=batch_size).execute(_due(pid, now, until)).partitions():
                with db.write() as conn:
                    warned = _claim_and_emit(conn, pid, [_Due.of(row) for row in rows], now, until, names)
                run.batches += 1
                run.members += len(warned)
                run.points += sum(d.points for d in warned)
    return run


def _due(
    program_id: str, now: datetime, until: datetime, *, among: list[str] | None = None
) -> Select[str, int, datetime]:
    """Members with active points expiring in (now, until]: how many, and the soonest expiry. Without
    ``among``: those whose last window has ended (the candidates); with it: these members, as they are now."""
    wanted = (
        lots.c.member_id.in_(among)
        if among is not None
        else ~select(expiry_warnings.c.member_id)
        .where(
            expiry_warnings.c.program_id == program_id,
            expiry_warnings.c.member_id == lots.c.member_id,
            expiry_warnings.c.quiet_until > now,
        )
        .exists()
    )
    return (
        select(lots.c.member_id, func.sum(lots.c.remaining), func.min(lots.c.expires_at))
        .where(
            lots.c.program_id == program_id,
            lot_state_is("active"),
            lots.c.remaining > 0,
            lots.c.expires_at > now,
            lots.c.expires_at <= until,
            wanted,
        )
        .group_by(lots.c.member_id)
        .order_by(lots.c.member_id)
    )


@dataclass(frozen=True)
class _Names:
    """A program's name for its points, and the name in each language where it differs."""

    default: str
    by_language: dict[str, str] | None

    def counted(self, points: int, language: str) -> str:
        """The name as a mail to a member of ``language`` writes it beside ``points`` ("120 étoiles", "1 star")."""
        return points_word(points, (self.by_language or {}).get(language, self.default), language)


def _claim_and_emit(
    conn: Connection, program_id: str, batch: list[_Due], now: datetime, until: datetime, names: _Names
) -> list[_Due]:
    """Claim the members whose last window has ended (another worker may have just warned some), then write
    one event for each with points still expiring; the warned."""
    insert = upsert(conn, expiry_warnings)
    claim = (
        insert.values([{"program_id": program_id, "member_id": d.member_id, "quiet_until": until} for d in batch])
        .on_conflict_do_update(
            index_elements=[expiry_warnings.c.program_id, expiry_warnings.c.member_id],
            set_={"quiet_until": insert.excluded.quiet_until},
            where=expiry_warnings.c.quiet_until <= now,
        )
        .returning(expiry_warnings.c.member_id)
    )
    claimed = sorted(conn.execute(claim).scalars())
    if not claimed:
        return []
    # What expires now, in this transaction: points spent since the candidates were read are not announced.
    warned = [_Due.of(row) for row in conn.execute(_due(program_id, now, until, among=claimed))]
    if not warned:
        return []
    contacts = {
        row.id: row
        for row in conn.execute(
            select(members.c.id, members.c.email, members.c.language).where(
                members.c.id.in_([d.member_id for d in warned])
            )
        )
    }
    emit_many(
        conn,
        [
            (
                program_id,
                "points_expiring",
                d.member_id,
                {
                    "member_id": d.member_id,
                    "email": contacts[d.member_id].email,
                    "language": contacts[d.member_id].language,
                    "points": d.points,
                    "points_name": names.counted(d.points, contacts[d.member_id].language),
                    "first_expiry": d.first_expiry.isoformat(timespec="seconds"),
                    "until": until.isoformat(timespec="seconds"),
                },
            )
            for d in warned
        ],
        now=now,
    )
    return warned
