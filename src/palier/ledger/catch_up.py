"""Points are gone the instant they expire, and available the instant their return window closes.

The jobs mature and expire lots in batches about once a minute (``jobs.sweeps``). A debit cannot wait for
them: under the member's lock, before it reads what the member can spend, it catches that member up with the
jobs' own statements (``sweep_sql.sweep_batch`` for one member), so the history, the reason codes and the
accounts are those a sweep writes, and the next sweep finds nothing left to do for these lots.

Reads hold no write transaction: they show the balances as they are once caught up (:func:`as_of`), from
the lots they already read, without writing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import Connection, and_, bindparam, or_, select

from palier.clock import utc
from palier.db.metadata import Timestamp
from palier.ledger.sweep_sql import sweep_batch
from palier.ledger.tables import lots

# Lots one statement of a catch-up takes (a member with more due lots takes several).
BATCH: Final = 1_000


def catch_up(conn: Connection, *, program_id: str, member_id: str, now: datetime) -> int:
    """Mature, then expire, the member's lots due at ``now``, as the jobs would; returns the lots swept.

    The caller holds the member's lock (``locks.lock_members``) and the database transaction. One indexed
    read when nothing is due, which is nearly always."""
    params = {"program_id": program_id, "member_id": member_id, "now": now}
    if conn.execute(_any_due, params).first() is None:
        return 0
    swept = 0
    for sweep in ("mature", "expire"):  # the jobs' order: points maturing past their expiry then expire
        while True:
            batch = sweep_batch(conn, sweep, now=now, size=BATCH, program_id=program_id, member_id=member_id)
            swept += batch.swept
            if batch.claimed < BATCH:
                break
    return swept


_any_due = (
    select(lots.c.id)
    .where(
        lots.c.program_id == bindparam("program_id"),
        lots.c.member_id == bindparam("member_id"),
        or_(
            # bound states: the member's index (program, member, state, expires_at) serves this, not the
            # jobs' partial indexes of every due lot
            and_(lots.c.state == "pending", lots.c.matures_at <= bindparam("now", type_=Timestamp)),
            and_(lots.c.state == "active", lots.c.expires_at <= bindparam("now", type_=Timestamp)),
        ),
    )
    .limit(1)
)


@dataclass(frozen=True)
class LiveLot:
    """A lot as a read finds it: ``state`` pending or active, with points left."""

    id: str
    state: str
    remaining: int
    matures_at: datetime | None
    expires_at: datetime | None


def as_of(amounts: dict[str, int], live: Iterable[LiveLot], now: datetime) -> tuple[dict[str, int], list[LiveLot]]:
    """The member's balances (``available``, ``pending``, ``debt``…) and live lots once the lots due at ``now``
    are caught up, computed as :func:`catch_up` would write them: maturing lots repay debt first, in the order
    a sweep takes them; lots past their expiry are gone. Pure: no I/O."""
    shown = dict(amounts)
    owed = -shown.get("debt", 0)
    maturing = sorted(
        (lot for lot in live if lot.state == "pending" and _due(lot.matures_at, now)),
        key=lambda lot: (utc(lot.matures_at or now), lot.id),  # a sweep's order: soonest due first
    )
    maturing_ids = {lot.id for lot in maturing}
    lots_now = [lot for lot in live if lot.id not in maturing_ids]
    for lot in maturing:
        repay = min(lot.remaining, owed)
        owed -= repay
        shown["pending"] = shown.get("pending", 0) - lot.remaining
        shown["debt"] = shown.get("debt", 0) + repay
        shown["available"] = shown.get("available", 0) + lot.remaining - repay
        lots_now.append(LiveLot(lot.id, "active", lot.remaining - repay, None, lot.expires_at))
    kept: list[LiveLot] = []
    for lot in lots_now:
        if lot.state == "active" and _due(lot.expires_at, now):
            shown["available"] = shown.get("available", 0) - lot.remaining
        elif lot.remaining > 0:
            kept.append(lot)
    return shown, kept


def _due(when: datetime | None, now: datetime) -> bool:
    return when is not None and utc(when) <= now
