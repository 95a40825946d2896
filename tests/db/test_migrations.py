"""The packaged migrations build exactly the declared schema, on both engines, and undo it.

On PostgreSQL they also make the ledger's history append-only: UPDATE and DELETE are refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, delete, func, insert, inspect, select, text, update
from sqlalchemy.exc import DBAPIError

from palier.clock import FrozenClock
from palier.db import Database, make_database
from palier.db.migrate import current, downgrade, head, schema_diffs, upgrade
from palier.db.schema import metadata
from palier.ids import new_id
from palier.ledger.tables import accounts, allocations, ledger_transactions, lots, postings
from palier.members.tables import members
from palier.notify import expiry, outbox
from palier.notify.tables import expiry_warnings, outbox_events
from tests.factories import insert_program_row

APPEND_ONLY = ["ledger_transactions", "postings", "allocations"]


def test_upgrade_builds_the_declared_schema(empty_database_url: str) -> None:
    assert current(empty_database_url) is None
    upgrade(empty_database_url)
    upgrade(empty_database_url)  # a second run has nothing to do
    assert current(empty_database_url) == head()
    database = make_database(empty_database_url)
    try:
        with database.read() as conn:
            assert schema_diffs(conn) == []
            assert set(inspect(conn).get_table_names()) == {*metadata.tables, "alembic_version"}
    finally:
        database.dispose()


def test_downgrade_removes_everything(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    downgrade(empty_database_url, "base")
    assert current(empty_database_url) is None
    database = make_database(empty_database_url)
    try:
        with database.read() as conn:
            assert inspect(conn).get_table_names() == ["alembic_version"]
            if database.is_postgres:
                functions = text("SELECT count(*) FROM pg_proc WHERE proname = 'palier_refuse_change'")
                assert conn.execute(functions).scalar_one() == 0
    finally:
        database.dispose()
    upgrade(empty_database_url)  # and it can be built again
    assert current(empty_database_url) == head()


def test_the_session_database_is_in_step_with_the_metadata(db: Database) -> None:
    with db.read() as conn:
        assert schema_diffs(conn) == []


def test_events_written_before_the_outbox_was_served_are_not_served(empty_database_url: str) -> None:
    """0008: the outbox becomes a feed of what is not yet delivered; older events must not reach members now."""
    upgrade(empty_database_url, "0007")
    database = make_database(empty_database_url)
    try:
        written = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        with database.write() as conn:
            program_id = insert_program_row(conn, new_id("program"))
            conn.execute(
                insert(outbox_events).values(
                    id=new_id("outbox"), program_id=program_id, type="tier_upgraded", subject_id=None,
                    payload={"member_id": "mem_1"}, created_at=written,
                )
            )  # fmt: skip
        upgrade(empty_database_url)
        with database.read() as conn:
            assert outbox.undelivered(conn, program_id=program_id).items == []
            delivered = conn.execute(select(outbox_events.c.delivered_at)).scalar_one()
            assert delivered.replace(tzinfo=UTC) == written
    finally:
        database.dispose()


def test_lots_announced_before_lots_were_marked_are_not_announced_again(empty_database_url: str) -> None:
    """0017: a warning written before the upgrade covered the lots spendable then; a lot matured since, within
    its window, is still to announce."""
    upgrade(empty_database_url, "0016")
    database = make_database(empty_database_url)
    now = datetime.now(UTC).replace(microsecond=0)
    member_id = new_id("member")
    try:
        with database.write() as conn:
            txn = _insert_ledger_history(conn, member_id)
            program_id = conn.execute(select(ledger_transactions.c.program_id)).scalar_one()
            conn.execute(
                insert(members).values(
                    id=member_id, program_id=program_id, status="active", language="fr", consents={},
                    enrolled_at=now, enrolment_channel="store", updated_at=now,
                )
            )  # fmt: skip
            warned_at = now - timedelta(days=10)  # the program's 30-day window: until 20 days from now
            conn.execute(
                insert(expiry_warnings).values(
                    program_id=program_id, member_id=member_id, quiet_until=warned_at + timedelta(days=30)
                )
            )
            lot = {"program_id": program_id, "member_id": member_id, "transaction_id": txn, "state": "active"}
            kinds = {
                "announced": (now - timedelta(days=300), None, now + timedelta(days=5)),
                "matured_since": (now - timedelta(days=20), now - timedelta(days=6), now + timedelta(days=10)),
                "next_window": (now - timedelta(days=200), None, now + timedelta(days=25)),
            }
            for label, (earned, matures, expires) in kinds.items():
                conn.execute(
                    insert(lots).values(
                        **lot, id=new_id("lot"), source="adjustment", label=label, amount=7, remaining=7,
                        earned_at=earned, matures_at=matures, expires_at=expires,
                    )
                )  # fmt: skip
        upgrade(empty_database_url)
        with database.read() as conn:
            found = conn.execute(select(lots.c.label, lots.c.expiry_warned_at).where(lots.c.label.in_(kinds)))
            marked = {label: at for label, at in found}
            assert [label for label, at in sorted(marked.items()) if at is not None] == ["announced"]
            recorded = conn.execute(select(expiry_warnings.c.warned_at)).scalar_one()
            assert recorded.replace(tzinfo=UTC) == warned_at
        run = expiry.warn(database, FrozenClock(now + timedelta(hours=1)), program_id=program_id)
        # the lot matured since, and with it the one of the next window; not the one announced already
        assert (run.members, run.points) == (1, 14)
    finally:
        database.dispose()


def _insert_ledger_history(conn: Connection, member_id: str) -> str:
    """One program, two accounts, one transaction with its postings, a lot and an allocation."""
    program_id = insert_program_row(conn, new_id("program"))
    mine = {"program_id": program_id, "member_id": member_id}
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    issued, available = f"{program_id}:issued:00", f"{member_id}:available"
    conn.execute(
        insert(accounts),
        [
            {**mine, "id": issued, "member_id": None, "kind": "issued", "asset": "PTS"},
            {**mine, "id": available, "kind": "available", "asset": "PTS"},
        ],
    )
    txn = new_id("transaction")
    conn.execute(
        insert(ledger_transactions).values(
            **mine,
            id=txn,
            kind="earn",
            reason="Welcome",
            reason_code="welcome",
            created_at=now,
            effective_at=now,
        )
    )
    conn.execute(
        insert(postings),
        [
            {
                **mine,
                "transaction_id": txn,
                "member_id": None,
                "account_id": issued,
                "asset": "PTS",
                "amount": -100,
            },
            {**mine, "transaction_id": txn, "account_id": available, "asset": "PTS", "amount": 100},
        ],
    )
    lot_id = new_id("lot")
    conn.execute(
        insert(lots).values(
            **mine,
            id=lot_id,
            transaction_id=txn,
            source="welcome",
            label="Welcome",
            amount=100,
            remaining=100,
            state="active",
            earned_at=now,
        )
    )
    conn.execute(insert(allocations).values(**mine, transaction_id=txn, lot_id=lot_id, amount=10, purpose="spend"))
    return txn


@pytest.mark.parametrize("change", ["update", "delete"])
@pytest.mark.parametrize("table_name", APPEND_ONLY)
def test_postgresql_refuses_to_change_ledger_history(postgresql_db: Database, table_name: str, change: str) -> None:
    member_id = new_id("member")
    with postgresql_db.write() as conn:
        txn = _insert_ledger_history(conn, member_id)
    table = metadata.tables[table_name]
    mine = (table.c.id if table_name == "ledger_transactions" else table.c.transaction_id) == txn
    statement = (
        update(table).where(mine).values(member_id=new_id("member"))
        if change == "update"
        else delete(table).where(mine)
    )
    with (
        pytest.raises(DBAPIError, match="ledger rows are append-only: correct by reversal"),
        postgresql_db.write() as conn,
    ):
        conn.execute(statement)
    with postgresql_db.read() as conn:
        untouched = select(func.count()).select_from(table).where(mine, table.c.member_id == member_id)
        assert conn.execute(untouched).scalar_one() >= 1


@pytest.mark.parametrize("table_name", APPEND_ONLY)
def test_postgresql_refuses_to_truncate_ledger_history(postgresql_db: Database, table_name: str) -> None:
    with postgresql_db.write() as conn:
        _insert_ledger_history(conn, new_id("member"))
    with (
        pytest.raises(DBAPIError, match="ledger rows are append-only: correct by reversal"),
        postgresql_db.write() as conn,
    ):
        conn.exec_driver_sql(f"TRUNCATE {table_name} CASCADE")
    with postgresql_db.read() as conn:
        assert conn.execute(select(func.count()).select_from(metadata.tables[table_name])).scalar_one() >= 1


def test_coupons_issued_before_they_kept_their_terms_take_their_rewards_terms(empty_database_url: str) -> None:
    """0021: a coupon keeps the terms it was issued with, its title included; one issued before takes its
    reward's terms as they are at the upgrade, and keeps them when the reward is edited afterwards."""
    from palier.rewards.tables import coupons, rewards

    upgrade(empty_database_url, "0020")
    database = make_database(empty_database_url)
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    try:
        with database.write() as conn:
            program_id = insert_program_row(conn, new_id("program"))
            terms = {
                "voucher": {"kind": "amount_off", "amount": 500, "min_order": 2_000, "channels": ["store", "web"]},
                "percent": {"kind": "percent_off", "percent": 10, "max_discount": 300},
                "coffee": {"kind": "free_product", "sku": "COFFEE"},
            }
            for name, given in terms.items():
                conn.execute(
                    insert(rewards).values(
                        id=name, program_id=program_id, status="active", cost_points=100, valid_days=30,
                        title={"fr": name, "en": name}, created_at=now, updated_at=now, **given,
                    )
                )  # fmt: skip
                conn.execute(
                    insert(coupons).values(
                        id=f"cpn_{name}", program_id=program_id, member_id="mem_1", reward_id=name, code=name.upper(),
                        state="issued", points=100, source="redeem", issued_at=now, expires_at=now + timedelta(days=30),
                    )
                )  # fmt: skip
        upgrade(empty_database_url)
        with database.write() as conn:
            retitled = {"fr": "Renommé", "en": "Renamed"}
            conn.execute(update(rewards).values(amount=None, percent=None, sku=None, title=retitled))  # edited since
            conn.execute(update(rewards).where(rewards.c.id == "voucher").values(amount=100, channels=None))
            names = ("amount", "percent", "max_discount", "min_order", "sku", "channels", "title")
            found = {
                row.reward_id: {name: getattr(row, name) for name in names if getattr(row, name) is not None}
                for row in conn.execute(select(coupons))
            }
        kept = {
            name: {k: v for k, v in given.items() if k != "kind"} | {"title": {"fr": name, "en": name}}
            for name, given in terms.items()
        }
        assert found == kept
    finally:
        database.dispose()
