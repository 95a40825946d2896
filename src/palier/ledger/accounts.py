"""Account naming and opening.

Member accounts are ``<member_id>:<kind>``. Program accounts are split into ``SLOTS`` rows
(``<program_id>:<kind>:<slot>``); a member's postings always use the slot their id hashes to. A
program's balance is the sum of its slots. Splitting keeps 8 tills from queueing on one hot row
while each balance is still updated in the same transaction as its postings.
"""

from __future__ import annotations

import zlib
from typing import Final

from sqlalchemy import Connection, insert

from palier.ledger.tables import accounts

POINTS: Final = "PTS"
SLOTS: Final = 32
MEMBER_KINDS: Final = ("available", "pending", "held", "debt")
# issued is the source of every point (its negative balance is the liability); the others are sinks.
PROGRAM_KINDS: Final = ("issued", "redeemed", "expired", "adjusted")


def member_account(member_id: str, kind: str) -> str:
    return f"{member_id}:{kind}"


def slot_of(member_id: str) -> int:
    return zlib.crc32(member_id.encode()) % SLOTS


def program_account(program_id: str, kind: str, *, for_member: str) -> str:
    """The slot of program account ``kind`` that ``for_member``'s postings use."""
    return f"{program_id}:{kind}:{slot_of(for_member):02d}"


def open_program_accounts(conn: Connection, *, program_id: str) -> None:
    conn.execute(
        insert(accounts),
        [
            {
                "id": f"{program_id}:{kind}:{slot:02d}",
                "program_id": program_id,
                "member_id": None,
                "kind": kind,
                "asset": POINTS,
                "slot": slot,
            }
            for kind in PROGRAM_KINDS
            for slot in range(SLOTS)
        ],
    )


def open_member_accounts(conn: Connection, *, program_id: str, member_id: str) -> None:
    conn.execute(
        insert(accounts),
        [
            {
                "id": member_account(member_id, kind),
                "program_id": program_id,
                "member_id": member_id,
                "kind": kind,
                "asset": POINTS,
                "slot": 0,
            }
            for kind in MEMBER_KINDS
        ],
    )
