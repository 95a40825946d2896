"""Running totals kept in SQL (``value = value + n``, never read-modify-write): campaign budgets and caps,
and each member's running spend for a spend_step rule.

A campaign's program-wide budget row is locked (``FOR UPDATE``) before it is read, so two purchases racing
for the last points of a budget are served one after the other and never overspend it. Lock order: the
member (held by the caller), then budget rows in name order.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, case, delete, select, update

from palier.db.bulk import upsert
from palier.rules.tables import counters

PROGRAM_WIDE = ""  # member_id of a counter that belongs to the whole program


def campaign_counter(campaign_id: str) -> str:
    return f"campaign:{campaign_id}"


def _ensure(conn: Connection, program_id: str, member_id: str, name: str) -> None:
    values = {"program_id": program_id, "member_id": member_id, "name": name, "value": 0}
    conn.execute(upsert(conn, counters).values(values).on_conflict_do_nothing())


def read(
    conn: Connection, *, program_id: str, member_id: str, names: Iterable[str], lock: bool = False
) -> dict[str, int]:
    """Current values (absent counters are 0). ``lock``: create the rows and lock them, in name order."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    if lock:
        for name in wanted:
            _ensure(conn, program_id, member_id, name)
    query = (
        select(counters.c.name, counters.c.value)
        .where(counters.c.program_id == program_id, counters.c.member_id == member_id, counters.c.name.in_(wanted))
        .order_by(counters.c.name)
    )
    if lock:
        query = query.with_for_update()
    found = {str(name): int(value) for name, value in conn.execute(query)}
    return {name: found.get(name, 0) for name in wanted}


def stored(conn: Connection, *, program_id: str, member_id: str, names: Iterable[str]) -> dict[str, int]:
    """The values of those of ``names`` the member has a row for: an absent counter is left out (a spend_step
    rule's steps paid is absent from counters kept before it was recorded, which 0 would misread)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    query = select(counters.c.name, counters.c.value).where(
        counters.c.program_id == program_id, counters.c.member_id == member_id, counters.c.name.in_(wanted)
    )
    return {str(name): int(value) for name, value in conn.execute(query)}


def add(conn: Connection, *, program_id: str, member_id: str, name: str, delta: int) -> int:
    """Add ``delta`` and return the new value."""
    _ensure(conn, program_id, member_id, name)
    row = conn.execute(
        update(counters)
        .where(counters.c.program_id == program_id, counters.c.member_id == member_id, counters.c.name == name)
        .values(value=counters.c.value + delta)
        .returning(counters.c.value)
    ).scalar_one()
    return int(row)


def raise_to(conn: Connection, *, program_id: str, member_id: str, name: str, value: int) -> None:
    """Set the counter to ``value`` unless it already holds more."""
    _ensure(conn, program_id, member_id, name)
    conn.execute(
        update(counters)
        .where(counters.c.program_id == program_id, counters.c.member_id == member_id, counters.c.name == name)
        .values(value=case((counters.c.value < value, value), else_=counters.c.value))
    )


def move_member(conn: Connection, *, program_id: str, source_id: str, target_id: str) -> dict[str, int]:
    """A merge: add each of ``source``'s counters to ``target``'s (campaign points against a cap, running
    spend and steps rewarded of spend_step rules all add up, as if one person had earned them) and remove
    the source's. Returns what moved, by name.

    The caller holds both members' locks, which guard these rows (never the program-wide ones); a handful of
    rows per member, each changed in SQL.
    """
    query = (
        select(counters.c.name, counters.c.value)
        .where(counters.c.program_id == program_id, counters.c.member_id == source_id)
        .order_by(counters.c.name)
    )
    moved = {str(name): int(value) for name, value in conn.execute(query)}
    for name, value in moved.items():
        add(conn, program_id=program_id, member_id=target_id, name=name, delta=value)
    if moved:
        conn.execute(delete(counters).where(counters.c.program_id == program_id, counters.c.member_id == source_id))
    return {name: value for name, value in moved.items() if value}
