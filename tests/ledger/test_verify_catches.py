"""``palier verify`` catches every way the ledger can be corrupted, as DESIGN.md lists its invariants.

Each case builds a small program through the services (earning, pending points, a coupon still held, one
used, store credit in a wallet), checks ``palier verify`` passes, then corrupts the database behind the
application's back in exactly one way and runs ``palier verify --program`` as an operator would: it must
exit 1 and name the invariant and the account, transaction, lot, hold or member at fault.

The corruptions run in a database of their own (one per engine and module): on PostgreSQL they switch the
append-only triggers off for their own transaction (``session_replication_role``) and drop a CHECK
constraint where they must, which the shared test database must never see.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Connection, text
from typer.testing import CliRunner

from palier.cli.common import console, err_console
from palier.cli.main import app
from palier.clock import FrozenClock
from palier.db import Database
from palier.ledger.verify import CHECKS
from palier.rewards import service as rewards
from palier.rewards.models import CouponUse, RedeemIn, RewardIn
from tests.conftest import ENGINES, own_database
from tests.services import factories as f

runner = CliRunner()


@pytest.fixture(scope="module", params=ENGINES)
def private_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A migrated database of its own: what the corruptions do to it (a dropped CHECK) stays here."""
    with own_database(request.param, tmp_path_factory, "corrupt") as database:
        yield database


@pytest.fixture
def cli_db(private_db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("PALIER_DATABASE_URL", private_db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("PALIER_CARD_KEY", "6" * 64)  # PostgreSQL: the CLI refuses to start without one
    monkeypatch.setattr(console, "width", 250)
    monkeypatch.setattr(err_console, "width", 250)
    return private_db


@dataclass(frozen=True)
class Shop:
    """What the corruptions aim at: ids of real rows made by the services."""

    program_id: str
    alice: str  # 1,000 points adjusted, 20 pending, a coupon held, one used, store credit
    bob: str  # 50 points
    adjust_txn: str  # alice's adjustment: +1,000 available
    active_lot: str  # its lot
    pending_lot: str  # alice's purchase lot
    open_hold: str  # the held coupon's hold
    held_coupon: str
    used_coupon: str
    wallet_txn: str  # the store credit's transaction (money postings)
    issued_slot: str  # the program's issued account alice's postings use


def build_shop(db: Database, clock: FrozenClock) -> Shop:
    program = f.make_program(db, clock)
    alice, bob = f.enrol(db, clock, program), f.enrol(db, clock, program)
    f.adjust(db, clock, program, alice, 1_000)
    f.purchase(db, clock, program, alice, amount=2_000)  # 20 points, pending through the return window
    f.adjust(db, clock, program, bob, 50)
    voucher = _reward(db, clock, program, kind="amount_off", amount=500, cost_points=300)
    credit = _reward(db, clock, program, kind="store_credit", amount=1_000, cost_points=200)
    held = _redeem(db, clock, program, alice.id, voucher.id)
    used = _redeem(db, clock, program, alice.id, voucher.id)
    with db.write() as conn:
        rewards.use_coupon(
            conn=conn, clock=clock, program=program, code=used.coupon.code,
            use=CouponUse(order_id=f.unique("order"), channel="store", order_total=5_000),
        )  # fmt: skip
    _redeem(db, clock, program, alice.id, credit.id)
    with db.read() as conn:
        one = _one(conn)
        adjust_txn = one("SELECT transaction_id FROM lots WHERE member_id = :m AND source <> 'purchase'", m=alice.id)
        return Shop(
            program_id=program.id,
            alice=alice.id,
            bob=bob.id,
            adjust_txn=adjust_txn,
            active_lot=one("SELECT id FROM lots WHERE transaction_id = :t", t=adjust_txn),
            pending_lot=one("SELECT id FROM lots WHERE member_id = :m AND state = 'pending'", m=alice.id),
            open_hold=str(held.coupon.hold_id),
            held_coupon=held.coupon.id,
            used_coupon=used.coupon.id,
            wallet_txn=one("SELECT transaction_id FROM postings WHERE account_id = :a", a=f"{alice.id}:wallet"),
            issued_slot=one(
                "SELECT account_id FROM postings WHERE transaction_id = :t AND account_id LIKE '%:issued:%'",
                t=adjust_txn,
            ),
        )


def _reward(db: Database, clock: FrozenClock, program: Any, **fields: Any) -> Any:
    data = {"title": {"fr": "Bon", "en": "Voucher"}} | fields
    with db.write() as conn:
        return rewards.create_reward(
            conn=conn, clock=clock, program=program, data=RewardIn.model_validate(data), actor="test"
        )


def _redeem(db: Database, clock: FrozenClock, program: Any, member_id: str, reward_id: str) -> Any:
    with db.write() as conn:
        return rewards.redeem(
            conn=conn, clock=clock, program=program, member_id=member_id, data=RedeemIn(reward_id=reward_id)
        )


def _one(conn: Connection) -> Callable[..., str]:
    def one(sql: str, **params: Any) -> str:
        return str(conn.execute(text(sql), params).scalar_one())

    return one


# --- corrupting the database behind the application's back ---


_ACCOUNT_CHECKS = {
    "ck_accounts_member_not_negative": "kind NOT IN ('available', 'pending', 'held', 'wallet') OR balance >= 0",
    "ck_accounts_debt_not_positive": "kind <> 'debt' OR balance <= 0",
}


def tamper(db: Database, statements: list[str], params: dict[str, str], *, past_checks: bool) -> None:
    """Run ``statements`` as someone at a SQL prompt could. PostgreSQL: with the append-only triggers off for
    this transaction only; ``past_checks``: past the accounts' CHECK constraints too (dropped and put back
    unvalidated, so the rows written stay). SQLite: as its command-line shell leaves the tables (no foreign
    key checks), past the CHECK constraints if asked."""
    if db.engine.dialect.name == "sqlite":
        raw = sqlite3.connect(str(db.engine.url.database), isolation_level=None)
        try:
            raw.execute(f"PRAGMA ignore_check_constraints = {'ON' if past_checks else 'OFF'}")
            raw.execute("BEGIN IMMEDIATE")
            for sql in statements:
                raw.execute(sql, params)
            raw.execute("COMMIT")
        finally:
            raw.close()
        return
    with db.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for name in _ACCOUNT_CHECKS if past_checks else ():
            conn.exec_driver_sql(f"ALTER TABLE accounts DROP CONSTRAINT {name}")
        for sql in statements:
            conn.execute(text(sql), params)
        for name, check in _ACCOUNT_CHECKS.items() if past_checks else ():
            conn.exec_driver_sql(f"ALTER TABLE accounts ADD CONSTRAINT {name} CHECK ({check}) NOT VALID")


@dataclass(frozen=True)
class Corruption:
    invariant: str  # the check ``palier verify`` must name
    subject: str  # the Shop field whose id it must name
    sql: list[str]  # the corruption, with the Shop's fields as parameters
    past_checks: bool = False  # it needs the accounts' CHECK constraints out of the way
    detail: str = ""  # a word the violation's detail must hold

    def __str__(self) -> str:
        return self.invariant


AVAILABLE, HELD = ":alice_available", ":alice_held"

# DESIGN.md, "The ledger", in its order; each line: what an operator would find broken.
CORRUPTIONS: dict[str, Corruption] = {
    # Double entry: the postings of a transaction sum to zero per asset.
    "a posting added to a transaction": Corruption(
        "transaction_balanced", "adjust_txn",
        ["INSERT INTO postings (transaction_id, program_id, member_id, account_id, asset, amount)"
         f" VALUES (:adjust_txn, :program_id, :alice, {AVAILABLE}, 'PTS', 5)"],
    ),
    "a posting's amount changed": Corruption(
        "transaction_balanced", "adjust_txn",
        [f"UPDATE postings SET amount = amount + 5 WHERE transaction_id = :adjust_txn AND account_id = {AVAILABLE}"],
    ),
    "a posting deleted": Corruption(
        "transaction_balanced", "adjust_txn",
        [f"DELETE FROM postings WHERE transaction_id = :adjust_txn AND account_id = {AVAILABLE}"],
    ),
    "a money posting changed": Corruption(
        "transaction_balanced", "wallet_txn",
        ["UPDATE postings SET amount = amount + 1 WHERE transaction_id = :wallet_txn AND account_id = :alice_wallet"],
        detail="EUR/2",
    ),
    # Postings are written in their account's asset, program and member (history reads them by member).
    "postings moved to another asset": Corruption(
        "posting_matches_account", "alice_available",
        ["UPDATE postings SET asset = 'EUR/2' WHERE transaction_id = :adjust_txn"],
        detail="EUR/2",
    ),
    "a posting shown in another member's history": Corruption(
        "posting_matches_account", "alice_available",
        [f"UPDATE postings SET member_id = :bob WHERE transaction_id = :adjust_txn AND account_id = {AVAILABLE}"],
    ),
    # Each account keeps a cached balance and version, updated in the same transaction as its postings.
    "a cached balance drifted": Corruption(
        "balance_matches_postings", "issued_slot", ["UPDATE accounts SET balance = balance - 7 WHERE id = :issued_slot"]
    ),
    "a whole transaction deleted": Corruption(
        "balance_matches_postings", "alice_wallet",
        ["DELETE FROM postings WHERE transaction_id = :wallet_txn",
         "DELETE FROM ledger_transactions WHERE id = :wallet_txn"],
        detail="0 posting(s)",
    ),
    "an account's version wound back": Corruption(
        "version_counts_writes", "alice", [f"UPDATE accounts SET version = 0 WHERE id = {AVAILABLE}"]
    ),
    "an account's version pushed on": Corruption(
        "version_counts_writes", "alice", [f"UPDATE accounts SET version = version + 100 WHERE id = {AVAILABLE}"]
    ),
    # Lots: available = the remaining of the active lots, pending that of the pending ones.
    "an active lot marked expired": Corruption(
        "available_matches_active_lots", "alice", ["UPDATE lots SET state = 'expired' WHERE id = :active_lot"]
    ),
    "a pending lot marked active": Corruption(
        "pending_matches_pending_lots", "alice", ["UPDATE lots SET state = 'active' WHERE id = :pending_lot"]
    ),
    # Debits allocate from lots: a lot's remaining = its amount less its allocations.
    "a lot's amount changed": Corruption(
        "lot_matches_allocations", "active_lot", ["UPDATE lots SET amount = amount + 5 WHERE id = :active_lot"]
    ),
    "an allocation deleted": Corruption(
        "lot_matches_allocations", "active_lot", ["DELETE FROM allocations WHERE lot_id = :active_lot"]
    ),
    "an allocation changed": Corruption(
        "lot_matches_allocations", "active_lot",
        ["UPDATE allocations SET amount = amount - 1 WHERE lot_id = :active_lot"],
    ),
    # Holds: held = the sum of the open holds; a coupon's hold is open while the coupon can be used.
    "an open hold closed": Corruption(
        "held_matches_open_holds", "alice", ["UPDATE holds SET state = 'voided' WHERE id = :open_hold"]
    ),
    "a held coupon marked used": Corruption(
        "coupon_matches_hold", "held_coupon", ["UPDATE coupons SET state = 'used' WHERE id = :held_coupon"]
    ),
    "a used coupon's hold reopened": Corruption(
        "coupon_matches_hold", "used_coupon",
        ["UPDATE holds SET state = 'open' WHERE id = (SELECT hold_id FROM coupons WHERE id = :used_coupon)",
         f"UPDATE accounts SET balance = balance + 300 WHERE id = {HELD}"],
    ),
    "a coupon's points changed": Corruption(
        "coupon_matches_hold", "held_coupon", ["UPDATE coupons SET points = points - 100 WHERE id = :held_coupon"]
    ),
    "a held coupon deleted": Corruption(
        "coupon_matches_hold", "open_hold", ["DELETE FROM coupons WHERE id = :held_coupon"]
    ),
    # Conservation: -issued = Σ member balances + redeemed + expired + … per program and asset.
    "points made from nothing": Corruption(
        "program_conserved", "program_id",
        ["INSERT INTO postings (transaction_id, program_id, member_id, account_id, asset, amount)"
         f" VALUES (:adjust_txn, :program_id, :alice, {AVAILABLE}, 'PTS', 5)",
         f"UPDATE accounts SET balance = balance + 5 WHERE id = {AVAILABLE}"],
        detail="PTS",
    ),
    "store credit made from nothing": Corruption(
        "program_conserved", "program_id",
        ["INSERT INTO postings (transaction_id, program_id, member_id, account_id, asset, amount)"
         " VALUES (:wallet_txn, :program_id, :alice, :alice_wallet, 'EUR/2', 100)",
         "UPDATE accounts SET balance = balance + 100 WHERE id = :alice_wallet"],
        detail="EUR/2",
    ),
    # No member balance below zero (debt at most zero).
    "available below zero": Corruption(
        "no_negative_balance", "bob", ["UPDATE accounts SET balance = -5 WHERE id = :bob_available"],
        past_checks=True,
    ),
    "store credit below zero": Corruption(
        "no_negative_balance", "alice", ["UPDATE accounts SET balance = -1 WHERE id = :alice_wallet"],
        past_checks=True,
    ),
    "debt above zero": Corruption(
        "no_negative_balance", "bob", ["UPDATE accounts SET balance = 5 WHERE id = :bob_debt"],
        past_checks=True,
    ),
    # Debt: points earned later repay it before they become available.
    "a debt left beside available points": Corruption(
        "debt_repaid_first", "bob", ["UPDATE accounts SET balance = -10 WHERE id = :bob_debt"], detail="owes 10"
    ),
    # A member erased at their request holds nothing.
    "an erased member still holding points": Corruption(
        "erased_member_holds_nothing", "alice", ["UPDATE members SET status = 'erased' WHERE id = :alice"]
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CORRUPTIONS.values(), ids=list(CORRUPTIONS))
def test_verify_names_the_corruption(cli_db: Database, clock: FrozenClock, case: Corruption) -> None:
    shop = build_shop(cli_db, clock)
    clean = runner.invoke(app, ["verify", "--program", shop.program_id])
    assert clean.exit_code == 0, clean.output
    assert "all invariants hold" in clean.output
    params = {name: str(value) for name, value in vars(shop).items()}
    for who in ("alice", "bob"):
        params |= {f"{who}_{kind}": f"{params[who]}:{kind}" for kind in ("available", "held", "debt", "wallet")}
    tamper(cli_db, case.sql, params, past_checks=case.past_checks)
    subject = params[case.subject]

    broken = runner.invoke(app, ["verify", "--program", shop.program_id])
    assert broken.exit_code == 1, broken.output
    assert "ledger violation(s)" in broken.output
    assert any(case.invariant in line and subject in line for line in broken.output.splitlines()), broken.output

    as_json = runner.invoke(app, ["verify", "--program", shop.program_id, "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["program_id"] == shop.program_id
    named = [v for v in report["violations"] if v["check"] == case.invariant and subject in v["subject"]]
    assert named, report["violations"]
    assert any(case.detail in v["detail"] for v in named), named


def test_every_invariant_verify_checks_has_a_corruption_it_catches() -> None:
    assert {case.invariant for case in CORRUPTIONS.values()} == set(CHECKS)


def test_verify_lists_at_most_the_limit_and_says_there_is_more(cli_db: Database, clock: FrozenClock) -> None:
    shop = build_shop(cli_db, clock)
    sound = runner.invoke(app, ["verify", "--program", shop.program_id, "--json"])
    assert sound.exit_code == 0, sound.output
    report = json.loads(sound.stdout)
    assert report["ok"] is True and report["violations"] == [] and report["more"] == []
    assert report["transactions"] >= 6 and report["accounts"] >= 8 + 6 * 32  # 2 members, the program's slots
    slots = "SELECT id FROM accounts WHERE program_id = :program_id AND kind = 'adjusted'"
    tamper(cli_db, [f"UPDATE accounts SET balance = balance + 1 WHERE id IN ({slots})"], vars(shop), past_checks=False)

    listed = runner.invoke(app, ["verify", "--program", shop.program_id, "--limit", "2"])
    assert listed.exit_code == 1
    assert listed.output.count("balance_matches_postings") == 3  # 2 rows and the line saying there are more
    assert "balance_matches_postings: more than 2 violations, the first 2 listed (--limit)" in listed.output
    report = json.loads(runner.invoke(app, ["verify", "--program", shop.program_id, "--json", "--limit", "2"]).stdout)
    assert [v["check"] for v in report["violations"]].count("balance_matches_postings") == 2
    assert "balance_matches_postings" in report["more"]
