"""Maturing or expiring one batch of due lots in a handful of set-based statements, in one transaction.

The batch is first copied into a temporary table, ``palier_sweep_batch`` (one row per lot, carrying
the id of the ledger transaction it will get); every later statement reads it:

  1. claim     due lots into the batch, soonest due first (PostgreSQL: ``FOR UPDATE SKIP LOCKED``)
  2. members   lock their ``available`` rows (``SKIP LOCKED``); drop the lots of members busy elsewhere
  3. mature: what each lot repays of its member's debt / expire: each member's slot of ``expired``
  4. INSERT … SELECT ledger_transactions  (one per lot: the member's history line names the lot; dated
                                          when the lot fell due, booked now: see ``_DATED``)
  5. INSERT … SELECT postings             (member legs, and program slot legs for expiry)
  6. INSERT … SELECT allocations          (debt repaid, or points expired)
  7. UPDATE lots                          (state, remaining)
  8. UPDATE member accounts FROM (their postings' sums)
  9. program slot accounts, in id order  (``post.apply_deltas``: at most 32 rows)

Lock order: lots, then members, then program slots. Member commands lock member, then lots, then
slots; the batch never waits on a lot or a member (it skips them), and slots are taken last in id
order by both sides, so there is no deadlock (but see ``jobs.sweeps._sweep`` for the
commands that take a slot before a lot). On SQLite the batch holds the write lock (``BEGIN IMMEDIATE``)
and steps 1–2 only claim.

A member's command catches that member up with the same statements (``member_id``, ``ledger.catch_up``)
before it debits: it already holds the member's lock, so step 1 waits for lots a job's batch holds (that
batch skips the member and leaves them) and step 2 is not needed. Lots are then locked after the member,
as every command locks them (``lots.choose_lots``).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Final, Literal

from sqlalchemy import Connection, TextClause, bindparam, text

from palier.db.metadata import Timestamp
from palier.ids import CROCKFORD, new_id
from palier.ledger.accounts import POINTS, program_account
from palier.ledger.post import apply_deltas

Sweep = Literal["mature", "expire"]

# Transaction ids of a batch: a fresh random stem, then the lot's position in the batch in 4 base-32 digits.
MAX_BATCH: Final = 32**4


@dataclass(frozen=True)
class BatchResult:
    claimed: int  # due lots claimed (fewer than asked: nothing more is due, or other workers hold the rest)
    swept: int  # lots matured or expired (claimed less those whose member was busy)
    points: int  # points they moved


def sweep_batch(
    conn: Connection,
    sweep: Sweep,
    *,
    now: datetime,
    size: int,
    program_id: str | None = None,
    member_id: str | None = None,
) -> BatchResult:
    """Mature or expire up to ``size`` lots due at ``now`` (all programs, or ``program_id``).

    With ``member_id`` (and its ``program_id``), only that member's lots: the caller holds the member's
    lock (``locks.lock_members``), and lots a job's batch holds are waited for rather than skipped.

    The caller holds the database transaction (``Database.write``): everything here commits or
    rolls back together, so a lot is swept exactly once however many workers run.
    """
    if not 0 < size <= MAX_BATCH:
        raise ValueError(f"batch size must be 1..{MAX_BATCH}")
    if member_id is not None and program_id is None:
        raise ValueError("a member's lots are swept within their program")
    sql = _Dialect(conn)
    for statement in sql.temp_tables():
        conn.execute(text(statement))
    params = _claim_params(now, size, program_id) | {"member_id": member_id}
    claimed = conn.execute(_claim(sql, sweep, program_id, member_id), params).rowcount
    if claimed and sql.pg and member_id is None:
        conn.execute(text(_DROP_BUSY_MEMBERS))
    swept, points = conn.execute(text(_COUNT)).one()
    if not swept:
        return BatchResult(claimed, 0, 0)
    sinks: dict[str, str] = {}
    slot_deltas: dict[str, int] = {}
    if sweep == "mature":
        conn.execute(text(_REPAY_DEBT.format(greatest=sql.greatest, least=sql.least)))
    else:
        sinks, slot_deltas = _expired_slots(conn)
    spec = _SPECS[sweep]
    for write in _writes(spec, sql):
        conn.execute(write, {"now": now, "sinks": json.dumps(sinks)})
    conn.execute(text(_MOVE_MEMBER_BALANCES.format(member_legs=spec.member_legs)))
    apply_deltas(conn, slot_deltas)
    return BatchResult(claimed, int(swept), int(points or 0))


class _Dialect:
    """The few spots where PostgreSQL and SQLite spell the batch differently."""

    def __init__(self, conn: Connection) -> None:
        self.pg = conn.dialect.name == "postgresql"
        self.greatest, self.least = ("GREATEST", "LEAST") if self.pg else ("max", "min")
        self.json_object = "jsonb_build_object" if self.pg else "json_object"
        # The pairs (key, value) of a JSON object sent as parameter :sinks.
        self.sinks = "jsonb_each_text(CAST(:sinks AS jsonb))" if self.pg else "json_each(:sinks)"
        # The type of a ``Timestamp`` column (``lots.expires_at``), as each engine stores it.
        self.timestamp = "TIMESTAMP WITH TIME ZONE" if self.pg else "DATETIME"

    def temp_tables(self) -> list[str]:
        # PostgreSQL empties it at commit (and rollback); SQLite keeps rows. Emptied first on both: a
        # command may catch a member up more than once in its transaction (mature, then expire).
        on_commit = " ON COMMIT DELETE ROWS" if self.pg else ""
        return [
            f"CREATE TEMPORARY TABLE IF NOT EXISTS palier_sweep_batch"
            f" ({_BATCH_COLUMNS.format(timestamp=self.timestamp)}){on_commit}",
            "DELETE FROM palier_sweep_batch",
        ]


_BATCH_COLUMNS = """
    seq INTEGER NOT NULL,
    lot_id VARCHAR(32) NOT NULL,
    program_id VARCHAR(32) NOT NULL,
    member_id VARCHAR(32) NOT NULL,
    label TEXT NOT NULL,
    remaining BIGINT NOT NULL,
    transaction_id VARCHAR(32) NOT NULL,
    due_at {timestamp} NOT NULL,
    repay BIGINT NOT NULL DEFAULT 0"""

# The due lots of each sweep: (state, date column), each served by a partial index of the lots in that state
# (``ledger.tables``: the state is written into the SQL, so the planner sees the index fits).
_DUE: Final = {"mature": ("pending", "matures_at"), "expire": ("active", "expires_at")}

# The instant each lot's points moved, which its transaction is dated at (``effective_at``; ``created_at`` is
# when the batch booked it, however late the job ran): the balances showed them moved from then on
# (``catch_up.as_of``), so the member's history and the dashboard's weeks say so too. A lot still pending at
# its expiry (a return window longer than the points' life) kept its points pending until it matured: they
# expired then, not before.
_DATED: Final = {"mature": "matures_at", "expire": "{greatest}(expires_at, COALESCE(matures_at, expires_at))"}


def _claim(sql: _Dialect, sweep: Sweep, program_id: str | None, member_id: str | None) -> TextClause:
    state, due_at = _DUE[sweep]
    only_program = "AND program_id = :program_id" if program_id is not None else ""
    only_member = "AND member_id = :member_id" if member_id is not None else ""
    # A job skips lots another batch holds; a member's command (who holds the member) waits for them.
    lock = ("FOR UPDATE" if member_id is not None else "FOR UPDATE SKIP LOCKED") if sql.pg else ""
    seq = "row_number() OVER (ORDER BY due_order, id)"
    dated = _DATED[sweep].format(greatest=sql.greatest)
    # Stored in lot id order: ids sort by time, like the lots' rows on disk, so the UPDATE of lots (and
    # of accounts, sorted likewise) walks the table and its index in order instead of jumping about.
    return _timed(
        f"""
        INSERT INTO palier_sweep_batch
               (seq, lot_id, program_id, member_id, label, remaining, transaction_id, due_at)
        SELECT seq, id, program_id, member_id, label, remaining, :stem || {_base32("seq", 4)}, due_at
        FROM (SELECT due.*, {seq} AS seq
              FROM (SELECT id, program_id, member_id, label, remaining, {due_at} AS due_order, {dated} AS due_at
                    FROM lots
                    WHERE state = '{state}' AND {due_at} <= :now {only_program} {only_member}
                    ORDER BY {due_at} LIMIT :size {lock}) AS due) AS numbered
        ORDER BY id"""
    )


def _claim_params(now: datetime, size: int, program_id: str | None) -> dict[str, object]:
    # A fresh transaction id shape: ``txn_`` + 10 characters of time + 12 random characters; each lot
    # adds its 4 digits. Ids still sort by time; the random stem keeps them apart from every other id.
    time_part = new_id("transaction")[4:14]
    random_part = "".join(secrets.choice(CROCKFORD) for _ in range(12))
    return {"now": now, "size": size, "program_id": program_id, "stem": f"txn_{time_part}{random_part}"}


def _base32(expression: str, digits: int) -> str:
    """SQL for ``expression`` (a non-negative integer) as ``digits`` Crockford base-32 characters."""
    parts = [f"substr('{CROCKFORD}', CAST((({expression}) >> {5 * k}) & 31 AS INTEGER) + 1, 1)" for k in range(digits)]
    return " || ".join(reversed(parts))


def _member_account(member_id: str, kind: str) -> str:
    """SQL for ``accounts.member_account``: ``<member_id>:<kind>`` (``\\:`` is a colon, not a bind, in text())."""
    return f"{member_id} || '\\:{kind}'"


def _timed(sql: str) -> TextClause:
    """``text(sql)``, its ``:now`` (if any) bound as a timestamp the way the dialect stores one."""
    clause = text(sql)
    return clause.bindparams(bindparam("now", type_=Timestamp)) if ":now" in sql else clause


# A job never waits on a member's command: the members whose row is locked now keep their lots for a
# later batch. SKIP LOCKED takes no lock it would wait for, so the order of these locks does not matter.
_DROP_BUSY_MEMBERS = f"""
    WITH locked AS MATERIALIZED (
        SELECT member_id FROM accounts
        WHERE id IN (SELECT {_member_account("member_id", "available")} FROM palier_sweep_batch)
        FOR UPDATE SKIP LOCKED)
    DELETE FROM palier_sweep_batch AS b WHERE NOT EXISTS (SELECT FROM locked WHERE locked.member_id = b.member_id)"""

_COUNT = "SELECT count(*), sum(remaining) FROM palier_sweep_batch"

# Maturing points repay debt first (as ledger.operations.earn does): lot by lot in claim order, each
# repays what its member still owes after the lots before it, at most its own remaining.
_REPAY_DEBT = f"""
    UPDATE palier_sweep_batch SET repay = owed.repay
    FROM (SELECT b.lot_id, {{greatest}}(0, {{least}}(b.remaining, -debt.balance
                 - (SUM(b.remaining) OVER (PARTITION BY b.member_id ORDER BY b.seq) - b.remaining))) AS repay
          FROM palier_sweep_batch AS b
          JOIN accounts AS debt ON debt.id = {_member_account("b.member_id", "debt")}
          WHERE debt.balance < 0) AS owed
    WHERE palier_sweep_batch.lot_id = owed.lot_id AND owed.repay > 0"""


def _expired_slots(conn: Connection) -> tuple[dict[str, str], dict[str, int]]:
    """Each member's slot of the program's ``expired`` account, and what each slot takes in this batch.

    A slot is ``accounts.program_account``'s crc32 of the member id, which PostgreSQL lacks, so it is
    computed here from one row per member and sent back (``:sinks``) to the postings' INSERT."""
    sinks: dict[str, str] = {}
    deltas: dict[str, int] = {}
    for program_id, member_id, points in conn.execute(text(_POINTS_BY_MEMBER)):
        sinks[member_id] = program_account(program_id, "expired", for_member=member_id)
        deltas[sinks[member_id]] = deltas.get(sinks[member_id], 0) + int(points)
    return sinks, deltas


_POINTS_BY_MEMBER = """
    SELECT program_id, member_id, SUM(remaining) FROM palier_sweep_batch WHERE remaining > 0
    GROUP BY program_id, member_id"""


# Postings of each lot's transaction (transaction_id, program_id, member_id, account_id, amount); member_id
# is NULL on program accounts, as ledger.operations.program_posting writes them. Zero legs are left out.
_MATURE_LEGS = f"""
    SELECT transaction_id, program_id, member_id, {_member_account("member_id", "pending")} AS account_id,
           -remaining AS amount
      FROM palier_sweep_batch WHERE remaining > 0
    UNION ALL
    SELECT transaction_id, program_id, member_id, {_member_account("member_id", "available")}, remaining - repay
      FROM palier_sweep_batch WHERE remaining > repay
    UNION ALL
    SELECT transaction_id, program_id, member_id, {_member_account("member_id", "debt")}, repay
      FROM palier_sweep_batch WHERE repay > 0"""

_EXPIRE_LEGS = f"""
    SELECT transaction_id, program_id, member_id, {_member_account("member_id", "available")} AS account_id,
           -remaining AS amount
      FROM palier_sweep_batch WHERE remaining > 0"""

_EXPIRE_PROGRAM_LEGS = """
    UNION ALL
    SELECT b.transaction_id, b.program_id, NULL, sink.value, b.remaining
      FROM palier_sweep_batch AS b JOIN {sinks} AS sink ON sink.key = b.member_id
     WHERE b.remaining > 0"""


@dataclass(frozen=True)
class _Spec:
    """What one sweep writes, as SQL over a row of the batch (``json_object`` is the dialect's function)."""

    kind: str  # of the ledger transaction
    reason: str  # what the member's history shows, as it always has
    reason_code: str
    details: str
    member_legs: str
    program_legs: str  # UNION ALL … (their balances move in Python: post.apply_deltas)
    allocated: str  # points allocated from the lot (its remaining falls by as much)
    purpose: str  # of those allocations
    state: str  # of the lot afterwards


_SPECS: Final = {
    "mature": _Spec(
        kind="mature",
        reason="label || ': points now available'",
        reason_code="matured",
        details="CASE WHEN repay > 0 THEN {json_object}('lot_id', lot_id, 'debt_repaid', repay) "
        "ELSE {json_object}('lot_id', lot_id) END",
        member_legs=_MATURE_LEGS,
        program_legs="",
        allocated="repay",
        purpose="repay_debt",
        state="active",
    ),
    "expire": _Spec(
        kind="expire",
        reason="CAST(remaining AS TEXT) || CASE WHEN remaining = 1 THEN ' point from ' ELSE ' points from ' END"
        " || label || ' expired'",
        reason_code="expired",
        details="{json_object}('lot_id', lot_id)",
        member_legs=_EXPIRE_LEGS,
        program_legs=_EXPIRE_PROGRAM_LEGS,
        allocated="remaining",
        purpose="expire",
        state="expired",
    ),
}

# Steps 4–7. A lot with nothing left gets no transaction: only its state changes.
_WRITES = (
    """
    INSERT INTO ledger_transactions
           (id, program_id, member_id, kind, reason, reason_code, created_at, effective_at, details)
    SELECT transaction_id, program_id, member_id, '{kind}', {reason}, '{reason_code}', :now, due_at, {details}
    FROM palier_sweep_batch WHERE remaining > 0""",
    f"""
    INSERT INTO postings (transaction_id, program_id, member_id, account_id, asset, amount)
    SELECT transaction_id, program_id, member_id, account_id, '{POINTS}', amount
    FROM ({{member_legs}} {{program_legs}}) AS legs""",
    """
    INSERT INTO allocations (transaction_id, program_id, member_id, lot_id, amount, purpose)
    SELECT transaction_id, program_id, member_id, lot_id, {allocated}, '{purpose}' FROM palier_sweep_batch
    WHERE {allocated} > 0""",
    """
    UPDATE lots SET state = '{state}', remaining = lots.remaining - b.{allocated}
    FROM palier_sweep_batch AS b WHERE lots.id = b.lot_id""",
)


def _writes(spec: _Spec, sql: _Dialect) -> list[TextClause]:
    fields = {
        **asdict(spec),
        "details": spec.details.format(json_object=sql.json_object),
        "program_legs": spec.program_legs.format(sinks=sql.sinks),
    }
    return [_timed(statement.format(**fields)) for statement in _WRITES]


# Members' cached balances move by their postings' sums: one UPDATE for the batch. Their rows were
# locked in step 2 (``available``) or belong to a member locked there (pending, debt).
_MOVE_MEMBER_BALANCES = """
    UPDATE accounts SET balance = accounts.balance + moved.delta, version = accounts.version + 1
    FROM (SELECT account_id, SUM(amount) AS delta FROM ({member_legs}) AS legs
          GROUP BY account_id HAVING SUM(amount) <> 0 ORDER BY account_id) AS moved
    WHERE accounts.id = moved.account_id"""
