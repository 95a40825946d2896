"""Serialising a member's commands.

PostgreSQL: ``SELECT … FOR UPDATE`` on the members' ``available`` account rows, always in id order,
so two commands touching the same two members (a merge) cannot deadlock. SQLite: every write already
holds the database write lock from ``BEGIN IMMEDIATE``, so there is nothing more to take.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, select, text

from palier.ledger.accounts import member_account
from palier.ledger.tables import accounts

_lock_accounts = (
    select(accounts.c.id)
    .where(accounts.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(accounts.c.id)
    .with_for_update()
)


def lock_members(conn: Connection, member_ids: Iterable[str]) -> None:
    if conn.dialect.name != "postgresql":
        return
    ids = sorted({member_account(m, "available") for m in member_ids})
    if ids:
        conn.execute(_lock_accounts, {"ids": ids})


def try_lock_members(conn: Connection, member_ids: Iterable[str]) -> set[str]:
    """Lock what can be locked now and skip the rest (batch jobs never wait on a member's command)."""
    wanted = set(member_ids)
    if conn.dialect.name != "postgresql" or not wanted:
        return wanted
    ids = sorted(member_account(m, "available") for m in wanted)
    got = conn.execute(
        select(accounts.c.member_id)
        .where(accounts.c.id.in_(ids))
        .order_by(accounts.c.id)
        .with_for_update(skip_locked=True)
    ).scalars()
    return {m for m in got if m is not None}


def lock_key(conn: Connection, key: str) -> None:
    """A transaction-scoped lock on an arbitrary key (PostgreSQL advisory lock; SQLite needs none).

    Used where two commands must not interleave but share no row yet, e.g. a purchase paid with a card
    and the linking of that card: whichever comes second sees what the first committed.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


def lock_keys(conn: Connection, keys: Iterable[str]) -> None:
    """:func:`lock_key` on each of ``keys``, in one statement and always in the same order (so that two
    callers locking overlapping sets never wait on each other in a circle)."""
    ordered = sorted(set(keys))
    if conn.dialect.name == "postgresql" and ordered:
        conn.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0))"
                " FROM (SELECT unnest(CAST(:keys AS text[])) AS k ORDER BY 1) AS ordered"
            ),
            {"keys": ordered},
        )
