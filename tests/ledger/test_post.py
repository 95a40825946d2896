"""Posting to the ledger: balanced entries move cached balances, debits trace lots, verify() catches drift."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import IntegrityError

from palier.clock import FrozenClock, utc
from palier.db import Database
from palier.ids import new_id
from palier.ledger.accounts import member_account, open_member_accounts, open_program_accounts, program_account
from palier.ledger.lots import Taken, add_lot, choose_lots, lot_row, record_allocations
from palier.ledger.post import Entry, Posting, UnbalancedTransaction, post, write, write_with
from palier.ledger.tables import accounts, allocations, ledger_transactions, lots, postings
from palier.ledger.verify import verify
from tests.factories import insert_program_row


@dataclass(frozen=True)
class Member:
    program_id: str
    id: str

    def account(self, kind: str) -> str:
        return member_account(self.id, kind)

    def program_account(self, kind: str) -> str:
        return program_account(self.program_id, kind, for_member=self.id)


@pytest.fixture
def member(db: Database) -> Member:
    """A member of a new program, every account opened at zero."""
    program_id, member_id = new_id("program"), new_id("member")
    with db.write() as conn:
        insert_program_row(conn, program_id)
        open_program_accounts(conn, program_id=program_id, money="EUR/2")
        open_member_accounts(conn, program_id=program_id, member_id=member_id)
    return Member(program_id, member_id)


def entry(m: Member, when: datetime, *moves: tuple[str, int], kind: str = "adjust") -> Entry:
    """An entry of ``(account_id, amount)`` moves for member ``m``."""
    return Entry(
        program_id=m.program_id,
        member_id=m.id,
        kind=kind,
        reason="Test",
        reason_code=kind,
        postings=[
            Posting(account, amount, member_id=m.id if account.startswith(m.id) else None) for account, amount in moves
        ],
        created_at=when,
        effective_at=when,
    )


def earn(
    conn: Connection,
    m: Member,
    amount: int,
    *,
    now: datetime,
    state: str = "active",
    earned_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Issue ``amount`` points as a lot: pending lots land in ``pending``, the others in ``available``."""
    target = m.account("pending" if state == "pending" else "available")
    txn = post(conn, entry(m, now, (m.program_account("issued"), -amount), (target, amount), kind="earn"))
    return add_lot(
        conn,
        program_id=m.program_id,
        member_id=m.id,
        transaction_id=txn,
        source="purchase",
        label="Purchase",
        amount=amount,
        state=state,
        earned_at=earned_at or now,
        matures_at=None,
        expires_at=expires_at,
    )


def spend(conn: Connection, m: Member, amount: int, *, now: datetime) -> tuple[str, list[Taken]]:
    """Redeem ``amount`` available points, allocating them from lots; returns the transaction and the lots."""
    taken = choose_lots(conn, program_id=m.program_id, member_id=m.id, amount=amount)
    moved = sum(t.amount for t in taken)
    txn = post(conn, entry(m, now, (m.account("available"), -moved), (m.program_account("redeemed"), moved)))
    parts = [(t.lot_id, t.amount) for t in taken]
    record_allocations(conn, program_id=m.program_id, member_id=m.id, transaction_id=txn, purpose="spend", parts=parts)
    return txn, taken


def account_state(conn: Connection, account_id: str) -> tuple[int, int]:
    row = conn.execute(select(accounts.c.balance, accounts.c.version).where(accounts.c.id == account_id)).one()
    return int(row.balance), int(row.version)


def count(conn: Connection, table_name: str, m: Member) -> int:
    table = {"ledger_transactions": ledger_transactions, "postings": postings}[table_name]
    query = select(func.count()).select_from(table).where(table.c.program_id == m.program_id)
    return int(conn.execute(query).scalar_one())


def test_an_unbalanced_entry_is_refused_before_anything_is_written(
    db: Database, member: Member, clock: FrozenClock
) -> None:
    now = clock.now()
    balanced = entry(member, now, (member.program_account("issued"), -100), (member.account("available"), 100))
    unbalanced = entry(member, now, (member.program_account("issued"), -100), (member.account("available"), 90))
    with db.write() as conn:
        with pytest.raises(UnbalancedTransaction, match="do not sum to zero"):
            post(conn, unbalanced)
        with pytest.raises(UnbalancedTransaction):
            write(conn, [balanced, unbalanced])  # the balanced one is not written either
        assert count(conn, "ledger_transactions", member) == 0
        assert count(conn, "postings", member) == 0
        assert account_state(conn, member.account("available")) == (0, 0)
        assert account_state(conn, member.program_account("issued")) == (0, 0)


def test_a_balanced_entry_moves_cached_balances_and_bumps_versions(
    db: Database, member: Member, clock: FrozenClock
) -> None:
    with db.write() as conn:
        earn(conn, member, 100, now=clock.now())
        spend(conn, member, 30, now=clock.now())
    with db.read() as conn:
        assert account_state(conn, member.account("available")) == (70, 2)
        assert account_state(conn, member.program_account("issued")) == (-100, 1)
        assert account_state(conn, member.program_account("redeemed")) == (30, 1)
        assert account_state(conn, member.account("pending")) == (0, 0)  # untouched
        assert count(conn, "ledger_transactions", member) == 2
        assert count(conn, "postings", member) == 4
        assert verify(conn, program_id=member.program_id) == []


def _tamper(db: Database, member: Member, clock: FrozenClock, sql: str) -> tuple[set[tuple[str, str]], str]:
    """Earn 100, spend 40, check the ledger is sound, run ``sql``; returns what verify() finds and the lot."""
    with db.write() as conn:
        lot_id = earn(conn, member, 100, now=clock.now())
        spend(conn, member, 40, now=clock.now())
        assert verify(conn, program_id=member.program_id) == []
    with db.write() as conn:
        conn.execute(text(sql), {"account_id": member.account("available"), "lot_id": lot_id})
        return {(v.check, v.subject) for v in verify(conn, program_id=member.program_id)}, lot_id


def test_verify_reports_a_balance_that_drifted_from_its_postings(
    db: Database, member: Member, clock: FrozenClock
) -> None:
    found, _ = _tamper(db, member, clock, "UPDATE accounts SET balance = balance + 5 WHERE id = :account_id")
    assert ("balance_matches_postings", member.account("available")) in found


def test_verify_reports_a_lot_that_drifted_from_the_available_balance(
    db: Database, member: Member, clock: FrozenClock
) -> None:
    found, lot_id = _tamper(db, member, clock, "UPDATE lots SET remaining = remaining - 10 WHERE id = :lot_id")
    assert ("available_matches_active_lots", member.account("available")) in found
    assert ("lot_matches_allocations", lot_id) in found


def remaining_by_lot(conn: Connection, m: Member) -> dict[str, int]:
    """Each lot's remaining points, after checking it is the lot's amount less its allocations."""
    allocated = (
        select(func.coalesce(func.sum(allocations.c.amount), 0))
        .where(allocations.c.lot_id == lots.c.id)
        .scalar_subquery()
    )
    rows = conn.execute(select(lots.c.id, lots.c.remaining, lots.c.amount - allocated).where(lots.c.member_id == m.id))
    found = {lot_id: (int(remaining), int(expected)) for lot_id, remaining, expected in rows}
    assert all(remaining == expected for remaining, expected in found.values()), found
    return {lot_id: remaining for lot_id, (remaining, _) in found.items()}


def test_debits_take_soonest_expiring_lots_first_and_never_expiring_last(
    db: Database, member: Member, clock: FrozenClock
) -> None:
    now = clock.now()

    def days(n: int) -> datetime:
        return now + timedelta(days=n)

    with db.write() as conn:
        late = earn(conn, member, 50, now=now, expires_at=days(90))
        never = earn(conn, member, 50, now=now)
        # Earned a day later but written first: a tie on expiry goes to the older lot, not the older row.
        younger = earn(conn, member, 20, now=now, earned_at=days(1), expires_at=days(30))
        soon = earn(conn, member, 30, now=now, expires_at=days(30))
        pending = earn(conn, member, 40, now=now, state="pending", expires_at=days(10))  # not spendable yet

        first_txn, first = spend(conn, member, 70, now=now)
        assert [(t.lot_id, t.amount) for t in first] == [(soon, 30), (younger, 20), (late, 20)]
        written = select(allocations.c.lot_id, allocations.c.amount).where(allocations.c.transaction_id == first_txn)
        assert sorted(conn.execute(written).all()) == sorted([(soon, 30), (younger, 20), (late, 20)])  # one per lot
        assert remaining_by_lot(conn, member) == {late: 30, never: 50, soon: 0, younger: 0, pending: 40}

        _, second = spend(conn, member, 60, now=now)
        assert [(t.lot_id, t.amount) for t in second] == [(late, 30), (never, 30)]
        assert remaining_by_lot(conn, member) == {late: 0, never: 20, soon: 0, younger: 0, pending: 40}

        _, rest = spend(conn, member, 1_000, now=now)  # more than there is: takes what is left
        assert [(t.lot_id, t.amount) for t in rest] == [(never, 20)]
        assert account_state(conn, member.account("available"))[0] == 0
        assert verify(conn, program_id=member.program_id) == []


def test_write_with_writes_the_rows_that_go_with_a_transaction_and_moves_balances(
    db: Database, member: Member, clock: FrozenClock
) -> None:
    now = clock.now()
    earned = entry(member, now, (member.program_account("issued"), -40), (member.account("available"), 40), kind="earn")
    lot = lot_row(
        program_id=member.program_id,
        member_id=member.id,
        transaction_id=earned.id,
        source="adjustment",
        label="Goodwill",
        amount=40,
        state="active",
        earned_at=now,
        matures_at=None,
        expires_at=now + timedelta(days=365),
    )
    with db.write() as conn:
        write_with(conn, [earned], rows=[(lots, [lot])])
    with db.read() as conn:
        assert account_state(conn, member.account("available")) == (40, 1)
        assert account_state(conn, member.program_account("issued")) == (-40, 1)
        stored = conn.execute(select(lots.c.remaining, lots.c.expires_at).where(lots.c.id == lot["id"])).one()
        assert stored.remaining == 40 and utc(stored.expires_at) == now + timedelta(days=365)
        assert (
            conn.execute(select(ledger_transactions.c.details).where(ledger_transactions.c.id == earned.id)).scalar()
            is None
        )
        assert verify(conn, program_id=member.program_id) == []


def test_write_with_refuses_postings_to_an_account_that_does_not_exist(
    db: Database, member: Member, clock: FrozenClock
) -> None:
    now = clock.now()
    stray = entry(member, now, (member.program_account("issued"), -5), ("mem_nobody:available", 5))
    with pytest.raises((LookupError, IntegrityError)), db.write() as conn:  # a foreign key may refuse it first
        write_with(conn, [stray])
    with db.read() as conn:
        assert count(conn, "ledger_transactions", member) == 0
        assert account_state(conn, member.program_account("issued")) == (0, 0)


def test_write_with_takes_points_from_lots_with_their_allocations(
    db: Database, member: Member, clock: FrozenClock
) -> None:
    """A debit written in one statement: the transaction, its allocations and each lot's ``remaining``."""
    now = clock.now()
    with db.write() as conn:
        soon = earn(conn, member, 30, now=now, expires_at=now + timedelta(days=30))
        late = earn(conn, member, 50, now=now, expires_at=now + timedelta(days=90))
    debit = entry(member, now, (member.account("available"), -45), (member.program_account("redeemed"), 45))
    parts = [
        {"transaction_id": debit.id, "program_id": member.program_id, "member_id": member.id, "lot_id": lot_id,
         "amount": amount, "purpose": "spend"}
        for lot_id, amount in ((soon, 30), (late, 15))
    ]  # fmt: skip
    with db.write() as conn:
        write_with(conn, [debit], rows=[(allocations, parts)], lots_taken={soon: 30, late: 15})
    with db.read() as conn:
        assert remaining_by_lot(conn, member) == {soon: 0, late: 35}
        assert account_state(conn, member.account("available")) == (35, 3)
        assert verify(conn, program_id=member.program_id) == []


def test_write_with_refuses_to_take_from_a_lot_that_does_not_exist(
    db: Database, member: Member, clock: FrozenClock
) -> None:
    now = clock.now()
    with db.write() as conn:
        earn(conn, member, 30, now=now)
    debit = entry(member, now, (member.account("available"), -5), (member.program_account("redeemed"), 5))
    with pytest.raises(LookupError), db.write() as conn:
        write_with(conn, [debit], lots_taken={"lot_nobody": 5})
    with db.read() as conn:
        assert account_state(conn, member.account("available")) == (30, 1)
        assert count(conn, "ledger_transactions", member) == 1
