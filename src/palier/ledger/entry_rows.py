"""The rows a ledger transaction is stored as, and the balances it moves: built from entries, no I/O.

:func:`palier.ledger.post.write` stores a command's few entries with them;
:func:`palier.ledger.bulk_write.write_earnings` a batch's thousands, one set-based statement per table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # post.py imports this module
    from palier.ledger.post import Entry


def transaction_row(e: Entry) -> dict[str, Any]:
    """The ``ledger_transactions`` row of ``e``."""
    return {
        "id": e.id,
        "program_id": e.program_id,
        "member_id": e.member_id,
        "kind": e.kind,
        "reason": e.reason,
        "reason_code": e.reason_code,
        "event_id": e.event_id,
        "reverses_id": e.reverses_id,
        "created_at": e.created_at,
        "effective_at": e.effective_at,
        "details": e.details,
    }


def posting_rows(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """The ``postings`` rows of ``entries`` (postings of 0 are not stored)."""
    return [
        {
            "transaction_id": e.id,
            "program_id": e.program_id,
            "member_id": p.member_id,
            "account_id": p.account_id,
            "asset": p.asset,
            "amount": p.amount,
        }
        for e in entries
        for p in e.postings
        if p.amount
    ]


def balance_deltas(entries: Sequence[Entry]) -> dict[str, int]:
    """How much ``entries`` move each account's cached balance, by account id."""
    deltas: dict[str, int] = defaultdict(int)
    for e in entries:
        for p in e.postings:
            deltas[p.account_id] += p.amount
    return deltas
