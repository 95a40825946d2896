"""Account naming and opening.

Member accounts are ``<member_id>:<kind>``. Program accounts are split into ``SLOTS`` rows
(``<program_id>:<kind>:<slot>``); a member's postings always use the slot their id hashes to. A
program's balance is the sum of its slots. Splitting keeps 8 tills from queueing on one hot row
while each balance is still updated in the same transaction as its postings.
"""

from __future__ import annotations

import zlib
from typing import Final

from sqlalchemy import ColumnElement, Connection, Label, insert, select

from palier.ledger.tables import accounts

POINTS: Final = "PTS"
SLOTS: Final = 32
MEMBER_KINDS: Final = ("available", "pending", "held", "debt")
# issued is the source of every point (its negative balance is every point issued net of returns); the others
# are sinks.
PROGRAM_KINDS: Final = ("issued", "redeemed", "expired", "adjusted")
# Store credit, in the program's currency: credit_issued is its source (the money owed to members),
# credit_spent where it goes when a member pays with it. A member's credit sits in their ``wallet``.
MONEY_PROGRAM_KINDS: Final = ("credit_issued", "credit_spent")


def money_asset(currency: str, exponent: int) -> str:
    """The asset code of a currency: ``EUR/2`` is euros counted in cents."""
    return f"{currency}/{exponent}"


def member_account(member_id: str, kind: str) -> str:
    return f"{member_id}:{kind}"


def member_balance(member_id: ColumnElement[str], kind: str) -> Label[int | None]:
    """The balance of a member's ``kind`` account as a column of another query (``member_id``: the member's id
    column there), named ``kind``; None when the account was never opened."""
    account_id = member_id.concat(f":{kind}")
    return select(accounts.c.balance).where(accounts.c.id == account_id).scalar_subquery().label(kind)


def slot_of(member_id: str) -> int:
    return zlib.crc32(member_id.encode()) % SLOTS


def program_account(program_id: str, kind: str, *, for_member: str) -> str:
    """The slot of program account ``kind`` that ``for_member``'s postings use."""
    return f"{program_id}:{kind}:{slot_of(for_member):02d}"


def open_program_accounts(conn: Connection, *, program_id: str, money: str) -> None:
    """The program's points accounts and its store-credit accounts in asset ``money`` (``EUR/2``)."""
    kinds = [(kind, POINTS) for kind in PROGRAM_KINDS] + [(kind, money) for kind in MONEY_PROGRAM_KINDS]
    conn.execute(
        insert(accounts),
        [
            {
                "id": f"{program_id}:{kind}:{slot:02d}",
                "program_id": program_id,
                "member_id": None,
                "kind": kind,
                "asset": asset,
                "slot": slot,
            }
            for kind, asset in kinds
            for slot in range(SLOTS)
        ],
    )


def open_wallet(conn: Connection, *, program_id: str, member_id: str, money: str) -> str:
    """The member's store-credit account, opened on first use (the caller holds the member's lock)."""
    account_id = member_account(member_id, "wallet")
    if conn.execute(select(accounts.c.id).where(accounts.c.id == account_id)).first() is None:
        conn.execute(
            insert(accounts).values(
                id=account_id, program_id=program_id, member_id=member_id, kind="wallet", asset=money, slot=0
            )
        )
    return account_id


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
