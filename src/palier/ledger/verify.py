"""``palier verify``: every conservation invariant of the ledger, checked in SQL.

1. each transaction's postings sum to zero per asset;
2. each account's cached balance equals the sum of its postings; its version counts the writes that moved it
   (each adds one and at least one posting, so it is at most its postings and not 0 if they sum to non-zero);
   each posting is in its account's asset, program and member (a member's history reads them by member);
3. a member's ``available`` equals the remaining of their active lots, ``pending`` that of their
   pending lots, and ``held`` the sum of their open holds;
4. each lot's remaining equals its amount less its allocations;
5. a redeemed coupon's hold is open while the coupon can be used, captured once used, voided once cancelled or
   expired, for the coupon's points and member; every hold is a coupon's;
6. per program and asset, all balances sum to zero: ``-issued = Σ member balances + redeemed + expired + …``;
7. no member ``available`` (nor pending, held, wallet) below zero, no ``debt`` above zero, and no member who
   owes points while they have some available (points earned repay debt first);
8. a member erased at their request holds nothing: points, held points, debt and store credit all 0.

Each check is one set-based statement: a scan of a table, grouped, joined to another (no loop over members).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class Violation:
    check: str
    subject: str  # the account, transaction, lot, coupon or program at fault
    detail: str


@dataclass(frozen=True)
class Findings:
    violations: list[Violation]
    more: list[str] = field(default_factory=list)  # checks that found more than the limit listed


# An account's postings, summed and described in one pass over postings (balance, version, asset, owner).
_ACCOUNT_POSTINGS = """
    SELECT CASE WHEN a.balance <> COALESCE(p.total, 0) THEN 'balance_matches_postings'
                WHEN a.version < 0 OR a.version > COALESCE(p.n, 0)
                  OR (a.version = 0 AND COALESCE(p.total, 0) <> 0) THEN 'version_counts_writes'
                ELSE 'posting_matches_account' END,
           a.id, a.balance, COALESCE(p.total, 0), a.version, COALESCE(p.n, 0), a.asset, p.min_asset, p.max_asset,
           a.program_id, p.min_program, p.max_program, a.member_id, p.min_member, p.max_member, p.with_member
    FROM accounts a
    LEFT JOIN (SELECT account_id, SUM(amount) AS total, COUNT(*) AS n,
                      MIN(asset) AS min_asset, MAX(asset) AS max_asset,
                      MIN(program_id) AS min_program, MAX(program_id) AS max_program,
                      MIN(member_id) AS min_member, MAX(member_id) AS max_member, COUNT(member_id) AS with_member
               FROM postings {where_p} GROUP BY account_id) p
      ON p.account_id = a.id
    WHERE (a.balance <> COALESCE(p.total, 0)
        OR a.version < 0 OR a.version > COALESCE(p.n, 0) OR (a.version = 0 AND COALESCE(p.total, 0) <> 0)
        OR p.min_asset <> a.asset OR p.max_asset <> a.asset
        OR p.min_program <> a.program_id OR p.max_program <> a.program_id
        OR (a.member_id IS NULL AND p.with_member > 0)
        OR (a.member_id IS NOT NULL AND (p.with_member <> p.n OR p.min_member <> a.member_id
                                         OR p.max_member <> a.member_id))) {and_a}"""

# Each coupon's hold: open while it can be used, captured once used, voided once cancelled or expired.
_COUPON_HOLDS = """
    SELECT 'coupon_matches_hold', c.id, c.state, c.points, c.member_id, h.id, h.state, h.amount, h.member_id
    FROM coupons c LEFT JOIN holds h ON h.id = c.hold_id
    WHERE c.hold_id IS NOT NULL {and_c}
      AND (h.id IS NULL OR h.member_id <> c.member_id OR h.amount <> c.points
           OR h.state <> CASE c.state WHEN 'issued' THEN 'open' WHEN 'used' THEN 'captured' ELSE 'voided' END)
    UNION ALL
    SELECT 'coupon_matches_hold', h.id, NULL, NULL, NULL, h.id, h.state, h.amount, h.member_id
    FROM holds h
    WHERE NOT EXISTS (SELECT 1 FROM coupons c WHERE c.hold_id = h.id AND c.program_id = h.program_id) {and_h}"""

# (statement, how many checks it can name): rows are (check, subject, values for its detail…).
_QUERIES: list[tuple[str, int]] = [
    (
        """SELECT 'transaction_balanced', transaction_id, asset, SUM(amount) FROM postings {where_p}
           GROUP BY transaction_id, asset HAVING SUM(amount) <> 0""",
        1,
    ),
    (_ACCOUNT_POSTINGS, 3),
    (
        """SELECT 'available_matches_active_lots', a.id, a.balance, COALESCE(l.total, 0) FROM accounts a
           LEFT JOIN (SELECT member_id, SUM(remaining) AS total FROM lots WHERE state = 'active' {and_l}
                      GROUP BY member_id) l ON l.member_id = a.member_id
           WHERE a.kind = 'available' AND a.balance <> COALESCE(l.total, 0) {and_a}""",
        1,
    ),
    (
        """SELECT 'pending_matches_pending_lots', a.id, a.balance, COALESCE(l.total, 0) FROM accounts a
           LEFT JOIN (SELECT member_id, SUM(remaining) AS total FROM lots WHERE state = 'pending' {and_l}
                      GROUP BY member_id) l ON l.member_id = a.member_id
           WHERE a.kind = 'pending' AND a.balance <> COALESCE(l.total, 0) {and_a}""",
        1,
    ),
    (
        """SELECT 'held_matches_open_holds', a.id, a.balance, COALESCE(h.total, 0) FROM accounts a
           LEFT JOIN (SELECT member_id, SUM(amount) AS total FROM holds WHERE state = 'open' {and_h_open}
                      GROUP BY member_id) h ON h.member_id = a.member_id
           WHERE a.kind = 'held' AND a.balance <> COALESCE(h.total, 0) {and_a}""",
        1,
    ),
    (
        """SELECT 'lot_matches_allocations', l.id, l.member_id, l.amount, l.remaining, COALESCE(al.total, 0)
           FROM lots l
           LEFT JOIN (SELECT lot_id, SUM(amount) AS total FROM allocations {where_al} GROUP BY lot_id) al
             ON al.lot_id = l.id
           WHERE l.amount - l.remaining <> COALESCE(al.total, 0) {and_l2}""",
        1,
    ),
    (_COUPON_HOLDS, 1),
    (
        """SELECT 'program_conserved', program_id, asset, SUM(balance) FROM accounts {where_a}
           GROUP BY program_id, asset HAVING SUM(balance) <> 0""",
        1,
    ),
    (
        """SELECT 'no_negative_balance', a.id, a.kind, a.balance FROM accounts a
           WHERE ((a.kind IN ('available', 'pending', 'held', 'wallet') AND a.balance < 0)
               OR (a.kind = 'debt' AND a.balance > 0)) {and_a}""",
        1,
    ),
    (
        """SELECT 'debt_repaid_first', d.member_id, -d.balance, a.balance FROM accounts d
           JOIN accounts a ON a.member_id = d.member_id AND a.program_id = d.program_id AND a.kind = 'available'
           WHERE d.kind = 'debt' AND d.balance < 0 AND a.balance > 0 {and_d}""",
        1,
    ),
    (
        """SELECT 'erased_member_holds_nothing', a.id, a.kind, a.balance FROM accounts a
           JOIN members m ON m.id = a.member_id
           WHERE m.status = 'erased' AND a.balance <> 0 {and_a}""",
        1,
    ),
]

_WHOLE = {
    "where_p": "",
    "and_a": "",
    "and_d": "",
    "and_l": "",
    "and_h": "",
    "and_h_open": "",
    "and_c": "",
    "where_al": "",
    "and_l2": "",
    "where_a": "",
}
_ONE_PROGRAM = {
    "where_p": "WHERE program_id = :program_id",
    "and_a": "AND a.program_id = :program_id",
    "and_d": "AND d.program_id = :program_id",
    "and_l": "AND program_id = :program_id",
    "and_h": "AND h.program_id = :program_id",
    "and_h_open": "AND program_id = :program_id",
    "and_c": "AND c.program_id = :program_id",
    "where_al": "WHERE program_id = :program_id",
    "and_l2": "AND l.program_id = :program_id",
    "where_a": "WHERE program_id = :program_id",
}


def _account_postings(v: Sequence[Any]) -> str:
    balance, total, version, n, asset, min_asset, max_asset, program, min_p, max_p, member, min_m, max_m, with_m = v
    said = [f"cached balance {balance}, its {n} posting(s) sum to {total}, version {version}"]
    if n and (min_asset, max_asset) != (asset, asset):
        said.append(f"postings in asset {_range(min_asset, max_asset)}, the account's is {asset}")
    if n and (min_p, max_p) != (program, program):
        said.append(f"postings of program {_range(min_p, max_p)}, the account's is {program}")
    if n and member is None and with_m:
        said.append(f"{with_m} posting(s) name member {_range(min_m, max_m)}, the account is the program's")
    elif n and member is not None and (with_m != n or (min_m, max_m) != (member, member)):
        named = (_range(min_m, max_m) if with_m else "none") + (" (some none)" if 0 < with_m < n else "")
        said.append(f"postings name member {named}, the account is {member}'s")
    return "; ".join(said)


def _range(low: Any, high: Any) -> str:
    return str(low) if low == high else f"{low} … {high}"


def _coupon_hold(v: Sequence[Any]) -> str:
    c_state, points, c_member, hold_id, h_state, amount, h_member = v
    if c_state is None:
        return f"{h_state} hold of {amount} points of member {h_member}, no coupon holds it"
    if hold_id is None:
        return f"{c_state} coupon of {points} points of member {c_member}: its hold is missing"
    return (
        f"{c_state} coupon of {points} points of member {c_member}, its hold {hold_id} is {h_state},"
        f" of {amount} points of member {h_member}"
    )


_DETAILS: dict[str, Callable[[Sequence[Any]], str]] = {
    "transaction_balanced": lambda v: f"its {v[0]} postings sum to {v[1]}, not 0",
    "balance_matches_postings": _account_postings,
    "version_counts_writes": _account_postings,
    "posting_matches_account": _account_postings,
    "available_matches_active_lots": lambda v: f"available {v[0]}, the active lots hold {v[1]}",
    "pending_matches_pending_lots": lambda v: f"pending {v[0]}, the pending lots hold {v[1]}",
    "held_matches_open_holds": lambda v: f"held {v[0]}, the open holds hold {v[1]}",
    "lot_matches_allocations": lambda v: (
        f"lot of member {v[0]}: amount {v[1]} - remaining {v[2]} = {v[1] - v[2]} taken, its allocations take {v[3]}"
    ),
    "coupon_matches_hold": _coupon_hold,
    "program_conserved": lambda v: f"{v[0]} balances sum to {v[1]}, not 0",
    "no_negative_balance": lambda v: f"{v[0]} balance {v[1]}",
    "debt_repaid_first": lambda v: f"owes {v[0]} points while {v[1]} are available (repaid by `palier jobs run debts`)",
    "erased_member_holds_nothing": lambda v: f"{v[0]} balance {v[1]} of an erased member",
}
CHECKS = tuple(_DETAILS)  # every invariant, in the order they are checked


def find(conn: Connection, *, program_id: str | None = None, limit: int = 50) -> Findings:
    """Every invariant violation found, at most ``limit`` per check, for one program or all."""
    scope = _WHOLE if program_id is None else _ONE_PROGRAM
    found: list[Violation] = []
    more: list[str] = []
    for sql, checks in _QUERIES:
        # one more row per check than listed: enough to tell that there are more
        params: dict[str, object] = {"program_id": program_id, "cap": (limit + 1) * checks}
        rows = conn.execute(text(sql.format(**scope) + " LIMIT :cap"), params).all()
        listed: dict[str, int] = {}
        for check, subject, *values in rows:
            listed[check] = listed.get(check, 0) + 1
            if listed[check] <= limit:
                found.append(Violation(check, str(subject), _DETAILS[check](values)))
        more += [check for check, n in listed.items() if n > limit]
    return Findings(found, more)


def verify(conn: Connection, *, program_id: str | None = None, limit: int = 50) -> list[Violation]:
    """Every invariant violation found (empty when the ledger is sound), for one program or all."""
    return find(conn, program_id=program_id, limit=limit).violations
