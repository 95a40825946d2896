"""Members who owe points while holding some to spend repay the debt from them.

Since stop 24 every operation that gives a member points repays their debt at once
(``ledger.operations.settle_debt``), so nobody comes to owe and hold points together any more. Earlier
versions left that state after a merge, a cancelled coupon, a points payment given back or a reversed debit;
this job settles those members, one short transaction each, under the member's lock. It finds nothing to do
once they are settled, and is safe to run twice or on two workers at once (the debt is read again under the
lock).
"""

from __future__ import annotations

from sqlalchemy import and_, select

from palier.clock import Clock
from palier.db import Database
from palier.ledger.locks import lock_members
from palier.ledger.operations import Booking, settle_debt
from palier.ledger.tables import accounts

BATCH = 1000


def settle_all(db: Database, clock: Clock, *, program_id: str | None = None) -> int:
    """Settle every member who owes points and has some to spend; returns how many were settled."""
    debt, available = accounts.alias("debt"), accounts.alias("available")
    owing = (
        select(debt.c.program_id, debt.c.member_id)
        .join(available, and_(available.c.member_id == debt.c.member_id, available.c.kind == "available"))
        .where(debt.c.kind == "debt", debt.c.balance < 0, available.c.balance > 0)
        .order_by(debt.c.member_id)
        .limit(BATCH)
    )
    if program_id is not None:
        owing = owing.where(debt.c.program_id == program_id)
    settled = 0
    while True:
        with db.read() as conn:
            found = conn.execute(owing).all()
        repaid_here = 0
        for program, member_id in found:
            with db.write() as conn:
                lock_members(conn, [member_id])
                now = clock.now()
                booking = Booking(
                    program_id=program,
                    member_id=member_id,
                    kind="repay",
                    reason="Points owed repaid",
                    reason_code="debt_repaid",
                    now=now,
                    effective_at=now,
                )
                repaid_here += 1 if settle_debt(conn, booking) else 0
        settled += repaid_here
        if len(found) < BATCH or repaid_here == 0:
            return settled
