"""A member's history: every ledger transaction that touched them, newest first, cursor-paginated."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, select

from palier.clock import utc
from palier.ledger.tables import ledger_transactions, postings


def member_history(
    conn: Connection, *, program_id: str, member_id: str, before: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` transactions older than ``before`` (a transaction id), and the next cursor.

    Each line has the transaction's reason and how much each of the member's accounts moved.
    Transaction ids sort by time, so the id is the cursor.
    """
    query = (
        select(postings.c.transaction_id)
        .where(postings.c.program_id == program_id, postings.c.member_id == member_id)
        .group_by(postings.c.transaction_id)
        .order_by(postings.c.transaction_id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(postings.c.transaction_id < before)
    ids = list(conn.execute(query).scalars())
    page, more = ids[:limit], len(ids) > limit
    if not page:
        return [], None
    moves: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for txn_id, account_id, amount in conn.execute(
        select(postings.c.transaction_id, postings.c.account_id, postings.c.amount).where(
            postings.c.transaction_id.in_(page), postings.c.member_id == member_id
        )
    ):
        moves[txn_id][account_id.rsplit(":", 1)[1]] += int(amount)
    rows = conn.execute(
        select(ledger_transactions).where(ledger_transactions.c.id.in_(page)).order_by(ledger_transactions.c.id.desc())
    ).mappings()
    lines = [
        {
            "id": row["id"],
            "kind": row["kind"],
            "reason": row["reason"],
            "reason_code": row["reason_code"],
            "occurred_at": utc(row["effective_at"]),
            "booked_at": utc(row["created_at"]),
            "event_id": row["event_id"],
            "reverses_id": row["reverses_id"],
            **{kind: moves[row["id"]].get(kind, 0) for kind in ("available", "pending", "held")},
            "debt": -moves[row["id"]].get("debt", 0),
        }
        for row in rows
    ]
    return lines, page[-1] if more else None
