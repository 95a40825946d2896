"""Domain events written to the outbox in the caller's transaction (an event exists iff its change committed),
and served to the merchant's systems until they acknowledge them.

A consumer (the merchant's mailer, a webhook sender) asks for the events not yet acknowledged, oldest first,
handles them and acknowledges their ids; an event is served again until then, so nothing is lost when the
consumer stops half-way, and one committed late (ids are taken before commit) is not skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, get_args

from sqlalchemy import Connection, bindparam, insert, select, update

from palier.clock import utc
from palier.db.bulk import insert_many
from palier.errors import NotFound
from palier.ids import new_ids
from palier.ledger.accounts import member_account, member_balance
from palier.ledger.entry_rows import balance_deltas
from palier.ledger.post import Entry
from palier.members.tables import members
from palier.notify.models import EventType, OutboxEvent, OutboxPage
from palier.notify.tables import outbox_events

EVENT_TYPES = frozenset(get_args(EventType))
# events a mailer writes to the member about: each says to whom (the member's e-mail) and in which language, unless
# its payload says so already
ADDRESSED = frozenset(
    {"tier_placed", "tier_upgraded", "tier_downgraded"} | {t for t in EVENT_TYPES if t.startswith("membership_")}
)


def emit(
    conn: Connection, *, program_id: str, type_: str, subject_id: str | None, payload: dict[str, Any], now: datetime
) -> None:
    emit_many(conn, [(program_id, type_, subject_id, payload)], now=now)


def emit_many(
    conn: Connection, events: Sequence[tuple[str, str, str | None, dict[str, Any]]], *, now: datetime
) -> None:
    """Several events at once: (program_id, type, subject_id, payload). An event of a type in ``ADDRESSED`` about
    a member gets their ``email`` and ``language``."""
    addressed = {subject for _, type_, subject, payload in events if type_ in ADDRESSED and "email" not in payload}
    contacts = _contacts(conn, sorted(s for s in addressed if s is not None))
    events = [
        (
            program_id,
            type_,
            subject,
            payload | contacts[subject] if type_ in ADDRESSED and subject in contacts else payload,
        )
        for program_id, type_, subject, payload in events
    ]
    rows = event_rows(events, now=now)
    if len(rows) >= 50:  # a job's batch: one COPY on PostgreSQL
        insert_many(conn, outbox_events, rows)
    elif rows:
        conn.execute(insert(outbox_events), rows)


def event_rows(events: Sequence[tuple[str, str, str | None, dict[str, Any]]], *, now: datetime) -> list[dict[str, Any]]:
    """The ``outbox_events`` rows of these events, to insert with a command's other rows (``post.write_with``)."""
    rows = []
    for id_, (program_id, type_, subject_id, payload) in zip(new_ids("outbox", len(events)), events, strict=True):
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        rows.append(
            {
                "id": id_,
                "program_id": program_id,
                "type": type_,
                "subject_id": subject_id,
                "payload": payload,
                "created_at": now,
            }
        )
    return rows


def _contacts(conn: Connection, member_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(member_ids), 1000):
        query = select(members.c.id, members.c.email, members.c.language).where(
            members.c.id.in_(member_ids[start : start + 1000])
        )
        found |= {row.id: {"email": row.email, "language": row.language or "fr"} for row in conn.execute(query)}
    return found


def contact(conn: Connection, member_id: str, member: Any = None) -> dict[str, Any]:
    """What every event about a member starts with: their id, and the e-mail and language a mail to them needs.
    ``member``: a row of theirs with ``email`` and ``language`` read already (``members.require_active``), so
    no statement runs."""
    if member is None:
        return {"member_id": member_id} | _contacts(conn, [member_id])[member_id]
    return {"member_id": member_id, "email": member.email, "language": member.language or "fr"}


def tell_points(
    conn: Connection,
    program_id: str,
    type_: str,
    member_id: str,
    payload: dict[str, Any],
    now: datetime,
    *,
    entries: Sequence[Entry] | None = None,
    member: Any = None,
) -> dict[str, Any] | None:
    """The merchant's mailer hears of the member's points (the outbox, in this transaction): to whom, in which
    language, what happened, and the member's points after it. One read (the member's address and balances)
    and one insert; with ``entries`` (the command's ledger entries, not yet written), the balances are read
    before them and the event's row is returned for the caller to write with them (no statement of its own).
    ``member``: that read already made under the member's lock (``members.require_active(with_points=True)``),
    so none is."""
    found = member if member is not None else conn.execute(_contact_and_points, {"member_id": member_id}).one()
    moves = balance_deltas(entries or [])
    points = {
        kind: int(getattr(found, kind) or 0) + moves.get(account_id, 0)
        for kind, account_id in ((k, member_account(member_id, k)) for k in TOLD_BALANCES)
    }
    after = {"available": points["available"], "pending_balance": points["pending"]}
    if type_ == "points_returned":
        after["debt"] = -points["debt"]
    event = (program_id, type_, member_id, contact(conn, member_id, found) | payload | after)
    if entries is not None:
        [row] = event_rows([event], now=now)
        return row
    emit_many(conn, [event], now=now)
    return None


TOLD_BALANCES = ("available", "pending", "debt")  # what a points event says the member has after it
_contact_and_points = select(
    members.c.email, members.c.language, *(member_balance(members.c.id, kind) for kind in TOLD_BALANCES)
).where(members.c.id == bindparam("member_id"))


def recent(conn: Connection, *, program_id: str, types: Sequence[str] = (), limit: int = 100) -> list[dict[str, Any]]:
    """The program's latest events, newest first (what a webhook sender or a test reads)."""
    query = select(outbox_events).where(outbox_events.c.program_id == program_id)
    if types:
        query = query.where(outbox_events.c.type.in_(list(types)))
    return [dict(r) for r in conn.execute(query.order_by(outbox_events.c.id.desc()).limit(limit)).mappings()]


def undelivered(conn: Connection, *, program_id: str, types: Sequence[str] = (), limit: int = 100) -> OutboxPage:
    """The program's events not yet acknowledged, oldest first (``types``: only those)."""
    query = select(outbox_events).where(
        outbox_events.c.program_id == program_id, outbox_events.c.delivered_at.is_(None)
    )
    if types:
        query = query.where(outbox_events.c.type.in_(sorted(set(types))))
    rows = conn.execute(query.order_by(outbox_events.c.id).limit(limit + 1)).mappings().all()
    items = [OutboxEvent(**{**row, "created_at": utc(row["created_at"])}) for row in rows[:limit]]
    return OutboxPage(items=items, more=len(rows) > limit)


def acknowledge(conn: Connection, *, program_id: str, ids: Sequence[str], now: datetime) -> int:
    """Mark these events delivered; how many were not already. An id that is not one of the program's
    events is refused (nothing is marked)."""
    wanted = list(dict.fromkeys(ids))
    known = set(
        conn.execute(
            select(outbox_events.c.id).where(outbox_events.c.program_id == program_id, outbox_events.c.id.in_(wanted))
        ).scalars()
    )
    for position, event_id in enumerate(ids):
        if event_id not in known:
            raise NotFound(
                "outbox_event_not_found", f"No event {event_id!r} in this program's outbox.", field=f"ids[{position}]"
            )
    done = conn.execute(
        update(outbox_events)
        .where(
            outbox_events.c.program_id == program_id,
            outbox_events.c.id.in_(wanted),
            outbox_events.c.delivered_at.is_(None),
        )
        .values(delivered_at=now)
    )
    return int(done.rowcount)
