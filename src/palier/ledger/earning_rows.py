"""The rows one earning of points writes — its transaction, its lot, the debt it repays — built, not written.

Pure (no I/O): :func:`palier.ledger.operations.earn` builds one member's rows and writes them at once;
the bulk import builds many members' rows and writes each table in one statement
(:func:`palier.ledger.bulk_write.write_earnings`). Either way the same rows come out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from palier.ids import new_id
from palier.ledger.accounts import member_account, program_account
from palier.ledger.post import Entry, Posting

if TYPE_CHECKING:  # operations.py imports this module
    from palier.ledger.operations import Booking


@dataclass(frozen=True)
class EarnRows:
    """A new lot and the transaction that issues it, and the allocation of the debt it repays (if any).

    A lot whose life had already ended when it was recorded (a purchase sent long after it was made)
    also gets its expiry: ``expiry`` is that transaction and ``expiry_allocation`` takes the whole lot.
    """

    entry: Entry
    lot: dict[str, Any]  # a ``lots`` row
    repayment: dict[str, Any] | None  # an ``allocations`` row (purpose repay_debt) taking from the lot
    pending: bool
    expiry: Entry | None = None
    expiry_allocation: dict[str, Any] | None = None

    @property
    def lot_id(self) -> str:
        return str(self.lot["id"])

    @property
    def repaid(self) -> int:
        return int(self.repayment["amount"]) if self.repayment else 0

    @property
    def expired(self) -> int:
        return int(self.expiry_allocation["amount"]) if self.expiry_allocation else 0

    @property
    def entries(self) -> list[Entry]:
        return [self.entry, *([self.expiry] if self.expiry else [])]

    @property
    def allocations(self) -> list[dict[str, Any]]:
        return [row for row in (self.repayment, self.expiry_allocation) if row]


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    """Points whose life has ended: the expiry job takes them, or their recording does at once."""
    return expires_at is not None and expires_at <= now


def is_pending(matures_at: datetime | None, now: datetime) -> bool:
    """Points stay pending until they mature (the end of the return window)."""
    return matures_at is not None and matures_at > now


def earn_rows(
    booking: Booking,
    *,
    amount: int,
    owed: int,
    source: str,
    label: str,
    matures_at: datetime | None,
    expires_at: datetime | None,
) -> EarnRows:
    """Issue ``amount`` (> 0) points to ``booking.member_id`` as a new lot.

    Pending until ``matures_at`` if that is still ahead; otherwise available at once, after repaying
    first what the member owes (``owed``, their debt as a positive number): points earned later repay
    debt before they become spendable. Pending points never repay debt.

    Points whose ``expires_at`` has already passed (an order sent long after it was made) are issued and
    expire in the same write, as the expiry job would have done: they are never spendable, and being
    gone already they repay no debt.
    """
    b, member_id = booking, booking.member_id
    dead = is_expired(expires_at, b.now)
    pending = not dead and is_pending(matures_at, b.now)
    repay = 0 if pending or dead else min(amount, owed)
    issued = Posting(program_account(b.program_id, "issued", for_member=member_id), -amount)
    entry = b.entry([issued], extra={"debt_repaid": repay} if repay else None)
    if pending:
        entry.postings.append(_member_posting(member_id, "pending", amount))
    else:
        entry.postings += [
            _member_posting(member_id, "debt", repay),
            _member_posting(member_id, "available", amount - repay),
        ]
    lot_id = new_id("lot")
    lot = {
        "id": lot_id,
        "program_id": b.program_id,
        "member_id": member_id,
        "transaction_id": entry.id,
        "event_id": b.event_id,
        "source": source,
        "label": label,
        "amount": amount,
        "remaining": amount,  # the repayment's allocation takes its share, as any debit does
        "state": "expired" if dead else "pending" if pending else "active",
        "earned_at": b.effective_at,
        "matures_at": matures_at,
        "expires_at": expires_at,
    }
    repayment = None
    if repay:
        repayment = {
            "transaction_id": entry.id,
            "program_id": b.program_id,
            "member_id": member_id,
            "lot_id": lot_id,
            "amount": repay,
            "purpose": "repay_debt",
        }
    if not dead:
        return EarnRows(entry, lot, repayment, pending)
    assert expires_at is not None
    expiry = replace(
        b,
        kind="expire",
        reason=f"{amount} {'point' if amount == 1 else 'points'} from {label} expired",
        reason_code="expired",
        effective_at=expires_at,
        event_id=None,
        details=None,
    ).entry(
        [
            _member_posting(member_id, "available", -amount),
            Posting(program_account(b.program_id, "expired", for_member=member_id), amount),
        ],
        extra={"lot_id": lot_id},
    )
    expired = {
        "transaction_id": expiry.id,
        "program_id": b.program_id,
        "member_id": member_id,
        "lot_id": lot_id,
        "amount": amount,
        "purpose": "expire",
    }
    return EarnRows(entry, lot, None, False, expiry, expired)


def _member_posting(member_id: str, kind: str, amount: int) -> Posting:
    return Posting(member_account(member_id, kind), amount, member_id=member_id)
