"""``palier verify``: every conservation invariant of the ledger, checked in SQL.

1. each transaction's postings sum to zero per asset;
2. each account's cached balance equals the sum of its postings;
3. a member's ``available`` equals the remaining of their active lots, ``pending`` that of their
   pending lots, and ``held`` the sum of their open holds;
4. each lot's remaining equals its amount less its allocations;
5. per program and asset, all balances sum to zero: ``-issued = Σ member balances + redeemed + expired + …``;
6. no member ``available`` (nor pending, held, wallet) below zero, no ``debt`` above zero;
7. a member erased at their request holds nothing: points, held points, debt and store credit all 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class Violation:
    check: str
    subject: str
    detail: str


_CHECKS: dict[str, str] = {
    "transaction_balanced": """
        SELECT transaction_id, asset, SUM(amount) FROM postings {where_p}
        GROUP BY transaction_id, asset HAVING SUM(amount) <> 0""",
    "balance_matches_postings": """
        SELECT a.id, a.balance, COALESCE(p.total, 0) FROM accounts a
        LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM postings {where_p} GROUP BY account_id) p
          ON p.account_id = a.id
        WHERE a.balance <> COALESCE(p.total, 0) {and_a}""",
    "available_matches_active_lots": """
        SELECT a.id, a.balance, COALESCE(l.total, 0) FROM accounts a
        LEFT JOIN (SELECT member_id, SUM(remaining) AS total FROM lots WHERE state = 'active' {and_l}
                   GROUP BY member_id) l ON l.member_id = a.member_id
        WHERE a.kind = 'available' AND a.balance <> COALESCE(l.total, 0) {and_a}""",
    "pending_matches_pending_lots": """
        SELECT a.id, a.balance, COALESCE(l.total, 0) FROM accounts a
        LEFT JOIN (SELECT member_id, SUM(remaining) AS total FROM lots WHERE state = 'pending' {and_l}
                   GROUP BY member_id) l ON l.member_id = a.member_id
        WHERE a.kind = 'pending' AND a.balance <> COALESCE(l.total, 0) {and_a}""",
    "held_matches_open_holds": """
        SELECT a.id, a.balance, COALESCE(h.total, 0) FROM accounts a
        LEFT JOIN (SELECT member_id, SUM(amount) AS total FROM holds WHERE state = 'open' {and_h}
                   GROUP BY member_id) h ON h.member_id = a.member_id
        WHERE a.kind = 'held' AND a.balance <> COALESCE(h.total, 0) {and_a}""",
    "lot_matches_allocations": """
        SELECT l.id, l.amount - l.remaining, COALESCE(al.total, 0) FROM lots l
        LEFT JOIN (SELECT lot_id, SUM(amount) AS total FROM allocations {where_al} GROUP BY lot_id) al
          ON al.lot_id = l.id
        WHERE l.amount - l.remaining <> COALESCE(al.total, 0) {and_l2}""",
    "program_conserved": """
        SELECT program_id, asset, SUM(balance) FROM accounts {where_a}
        GROUP BY program_id, asset HAVING SUM(balance) <> 0""",
    "no_negative_balance": """
        SELECT a.id, a.kind, a.balance FROM accounts a
        WHERE ((a.kind IN ('available', 'pending', 'held', 'wallet') AND a.balance < 0)
            OR (a.kind = 'debt' AND a.balance > 0)) {and_a}""",
    "erased_member_holds_nothing": """
        SELECT a.id, a.kind, a.balance FROM accounts a JOIN members m ON m.id = a.member_id
        WHERE m.status = 'erased' AND a.balance <> 0 {and_a}""",
}


def verify(conn: Connection, *, program_id: str | None = None, limit: int = 50) -> list[Violation]:
    """Every invariant violation found (empty when the ledger is sound), for one program or all."""
    scope = {
        "where_p": "",
        "and_a": "",
        "and_l": "",
        "and_h": "",
        "where_al": "",
        "and_l2": "",
        "where_a": "",
    }
    params: dict[str, object] = {"limit": limit}
    if program_id is not None:
        scope = {
            "where_p": "WHERE program_id = :program_id",
            "and_a": "AND a.program_id = :program_id",
            "and_l": "AND program_id = :program_id",
            "and_h": "AND program_id = :program_id",
            "where_al": "WHERE program_id = :program_id",
            "and_l2": "AND l.program_id = :program_id",
            "where_a": "WHERE program_id = :program_id",
        }
        params["program_id"] = program_id
    found: list[Violation] = []
    for check, sql in _CHECKS.items():
        rows = conn.execute(text(sql.format(**scope) + " LIMIT :limit"), params).all()
        found.extend(Violation(check, str(r[0]), ", ".join(str(v) for v in r[1:])) for r in rows)
    return found
