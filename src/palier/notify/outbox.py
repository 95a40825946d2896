"""Writing domain events to the outbox, in the caller's transaction: an event exists iff its change committed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from palier.db.bulk import insert_many
from palier.ids import new_ids
from palier.notify.tables import outbox_events

EVENT_TYPES = frozenset(
    {
        "tier_upgraded",
        "tier_downgraded",
        "membership_started",
        "membership_renewed",
        "membership_cancelled",
        "membership_lapsed",
        "segment_entered",
        "segment_left",
        "portal_sign_in_code",  # a member asked for a one-time code: the merchant's mailer sends it
    }
)


def emit(
    conn: Connection, *, program_id: str, type_: str, subject_id: str | None, payload: dict[str, Any], now: datetime
) -> None:
    emit_many(conn, [(program_id, type_, subject_id, payload)], now=now)


def emit_many(
    conn: Connection, events: Sequence[tuple[str, str, str | None, dict[str, Any]]], *, now: datetime
) -> None:
    """Several events at once: (program_id, type, subject_id, payload)."""
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
    if len(rows) >= 50:  # a job's batch: one COPY on PostgreSQL
        insert_many(conn, outbox_events, rows)
    elif rows:
        conn.execute(insert(outbox_events), rows)


def recent(conn: Connection, *, program_id: str, types: Sequence[str] = (), limit: int = 100) -> list[dict[str, Any]]:
    """The program's latest events, newest first (what a webhook sender or a test reads)."""
    query = select(outbox_events).where(outbox_events.c.program_id == program_id)
    if types:
        query = query.where(outbox_events.c.type.in_(list(types)))
    return [dict(r) for r in conn.execute(query.order_by(outbox_events.c.id.desc()).limit(limit)).mappings()]
