"""Warning members before their points expire: a ``points_expiring`` event in the outbox for the mailer.

A program's ``expiry_warning_days`` (30 by default; 0: no warnings) is the window: a member with points
expiring within it is warned once, about all of them ("120 points expire from 31 March"), and each lot
announced is marked (``lots.expiry_warned_at``), so no point is announced twice. The points that enter the
window as days pass wait until the window of the last warning has ended; the next warning then covers the
window after it, so a member hears once per window. Points the last warning could not announce, because they
became spendable since (they matured after the return window, or were recorded late), are announced at the
next run if they expire within the window: every point that expires is announced, as early as it can be.

Safe to run twice, or on two workers at once: a batch locks its members (skipping those busy with a command)
and marks the lots it announces, and the events are written in the same transaction as the marks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, and_, func, select, update

from palier.clock import Clock, utc
from palier.db import Database
from palier.db.bulk import upsert
from palier.ledger.locks import try_lock_members
from palier.ledger.tables import lot_state_is, lots
from palier.members.tables import members
from palier.notify.outbox import emit_many
from palier.notify.tables import expiry_warnings
from palier.programs.tables import programs
from palier.text import points_word

BATCH = 1_000
MAX_BATCH = 10_000  # members a batch's IN lists name: well under SQLite's 32,766 bound parameters


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
    """Warn every member whose points expire within their program's warning window (all programs, or one).
    ``batch_size`` is bounded by ``MAX_BATCH`` (``palier jobs run --batch-size`` counts a sweep's lots)."""
    batch_size = min(batch_size, MAX_BATCH)
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
    """Members with points to announce now (see :func:`_announced`): how many, and the soonest expiry.
    Without ``among``: every such member of the program (the candidates); with it: these, as they are now."""
    query = select(lots.c.member_id, func.sum(lots.c.remaining), func.min(lots.c.expires_at)).where(
        _announced(program_id, now, until)
    )
    if among is not None:  # read under their locks: an erased member's points are gone, and they hear no more
        active = select(members.c.id).where(members.c.id == lots.c.member_id, members.c.status == "active").exists()
        query = query.where(lots.c.member_id.in_(among), active)
    return query.group_by(lots.c.member_id).order_by(lots.c.member_id)


def _unannounced(program_id: str, now: datetime, until: datetime) -> ColumnElement[bool]:
    """Lots with points left that expire in (now, until] and were never announced."""
    return and_(
        lots.c.program_id == program_id,
        lot_state_is("active"),
        lots.c.remaining > 0,
        lots.c.expires_at > now,
        lots.c.expires_at <= until,
        lots.c.expiry_warned_at.is_(None),
    )


def _announced(program_id: str, now: datetime, until: datetime) -> ColumnElement[bool]:
    """Unannounced lots that a warning announces now. Only one kind waits: a lot of a member still within the
    window of their last warning, that expires after that window and was spendable when the warning was
    written (the days brought it into the window: the next window's warning covers it). A lot spendable only
    since (matured, or recorded late) is announced now, and so is one that expires within that window."""
    waits = (
        select(expiry_warnings.c.member_id)
        .where(
            expiry_warnings.c.program_id == program_id,
            expiry_warnings.c.member_id == lots.c.member_id,
            expiry_warnings.c.quiet_until > now,
            lots.c.expires_at > expiry_warnings.c.quiet_until,
            func.coalesce(lots.c.matures_at, lots.c.earned_at) <= expiry_warnings.c.warned_at,
        )
        .exists()
    )
    return and_(_unannounced(program_id, now, until), ~waits)


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
    """Lock the batch's members (skipping those busy with a command), mark every unannounced lot within the
    window of those who still have points to announce (another worker may have just warned some, and points
    may have been spent since the candidates were read), then write one event for each; the warned."""
    locked = sorted(try_lock_members(conn, [d.member_id for d in batch]))
    if not locked:
        return []
    due = [row[0] for row in conn.execute(_due(program_id, now, until, among=locked))]
    if not due:
        return []
    # The lots that wait for the next window are announced with the others: the member is written to now.
    marked = conn.execute(
        update(lots)
        .where(_unannounced(program_id, now, until), lots.c.member_id.in_(due))
        .values(expiry_warned_at=now)
        .returning(lots.c.member_id, lots.c.remaining, lots.c.expires_at)
    ).all()
    warned = _totals(marked)
    if not warned:  # expired meanwhile by the sweep
        return []
    insert = upsert(conn, expiry_warnings)
    conn.execute(
        insert.values(
            [
                {"program_id": program_id, "member_id": d.member_id, "quiet_until": until, "warned_at": now}
                for d in warned
            ]
        ).on_conflict_do_update(
            index_elements=[expiry_warnings.c.program_id, expiry_warnings.c.member_id],
            set_={"quiet_until": insert.excluded.quiet_until, "warned_at": insert.excluded.warned_at},
        )
    )
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


def _totals(marked: Sequence[Row[Any, Any, Any]]) -> list[_Due]:
    """Per member, in id order: the points of the lots just marked, and the soonest expiry among them."""
    points: dict[str, int] = {}
    first: dict[str, datetime] = {}
    for member_id, remaining, expires_at in marked:
        points[member_id] = points.get(member_id, 0) + int(remaining)
        moment = utc(expires_at)
        first[member_id] = min(first.get(member_id, moment), moment)
    return [_Due(m, points[m], first[m]) for m in sorted(points)]
