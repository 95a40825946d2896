"""Facts from outside: purchases earn, returns take back, adjustments correct. Each stored once.

A fact is unique by (program, type, external id): sending it again returns the first result, and a
different body under the same id is refused (409). Purchases paid with a payment card nobody has
linked yet are kept as *unclaimed* and credited when that card is linked to a member.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Dialect, and_, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from palier.activity.earning import Earning, purchase_earning
from palier.activity.models import AdjustmentIn, EventResult, MemberRef, PurchaseIn, ReturnIn
from palier.activity.returns import ReturnPlan, plan_return
from palier.activity.tables import events, purchases
from palier.clock import Clock, utc
from palier.errors import Conflict, InvalidInput, NotFound, Unprocessable
from palier.ids import new_id
from palier.ledger import operations as ledger
from palier.ledger.accounts import member_account
from palier.ledger.locks import lock_key, lock_members
from palier.ledger.post import PreparedWrite, prepare_write
from palier.ledger.tables import accounts
from palier.members import service as members
from palier.members.identities import card_claim_key, normalise
from palier.members.tables import members as members_table
from palier.programs.models import Program

FUTURE_TOLERANCE = timedelta(minutes=5)
_WHERE = {
    "web": "online",
    "phone": "by phone",
    "app": "in the app",
    "partner": "at a partner",
    "store": "in store",
}


# Built once: on the purchase path, building statements per call costs more than running them.
_insert_event_row = insert(events)
_insert_purchase = insert(purchases)
_find_event = select(events.c.payload_hash, events.c.result).where(
    events.c.program_id == bindparam("program_id"),
    events.c.type == bindparam("type"),
    events.c.external_id == bindparam("external_id"),
)


def payload_hash(body: BaseModel, *context: str, key: bytes = b"") -> str:
    """A fingerprint of a fact's content (and of what it applies to, e.g. the member adjusted).

    Keyed (HMAC) with the card key for anything that may hold a payment card number: a plain hash of a
    body whose card number is otherwise redacted would let anyone recover it by trying the missing digits.
    """
    return fingerprint([body.model_dump(mode="json"), *context], key=key)


def fingerprint(value: Any, *, key: bytes) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def replay(*, conn: Connection, program_id: str, type_: str, external_id: str, body_hash: str) -> EventResult | None:
    """The stored result of this fact if it was already received; 409 if it came with another body."""
    row = conn.execute(_find_event, {"program_id": program_id, "type": type_, "external_id": external_id}).first()
    if row is None:
        return None
    return _replayed(type_, external_id, body_hash, row.payload_hash, row.result)


def _replayed(type_: str, external_id: str, body_hash: str, stored_hash: str, stored_result: Any) -> EventResult:
    if stored_hash != body_hash:
        field = {"purchase": "order_id", "return": "return_id", "adjustment": "external_id"}[type_]
        raise Conflict(
            "event_conflict",
            f"A {type_} with id {external_id!r} was already received with different "
            "content. Use a new id for a new fact.",
            field=field,
        )
    return EventResult.model_validate(stored_result)


def purchase_label(p: PurchaseIn) -> str:
    where = (
        f"at {p.store_name or p.store_id}"
        if p.channel == "store" and (p.store_name or p.store_id)
        else _WHERE[p.channel]
    )
    return f"Purchase #{p.order_id} {where}"


@dataclass(frozen=True)
class _Receipt:
    """A purchase worked out without the database: its fingerprint, what it earns, its ids and dates."""

    purchase: PurchaseIn
    body: dict[str, Any]  # as stored: a payment card number redacted
    body_hash: str
    earning: Earning
    label: str
    event_id: str
    now: datetime
    occurred_at: datetime
    matures_at: datetime
    expires_at: datetime | None


def _receipt(program: Program, purchase: PurchaseIn, now: datetime, card_key: bytes) -> _Receipt:
    dumped = purchase.model_dump(mode="json")
    occurred_at = utc(purchase.occurred_at)
    return _Receipt(
        purchase=purchase,
        body=_redact(dumped),
        body_hash=fingerprint([dumped], key=card_key),  # = payload_hash(purchase, key=card_key)
        earning=purchase_earning(purchase, program),
        label=purchase_label(purchase),
        event_id=new_id("event"),
        now=now,
        occurred_at=occurred_at,
        matures_at=occurred_at + timedelta(days=program.return_window_days),
        expires_at=members.expiry_for(program, occurred_at),
    )


def record_purchase(
    *, conn: Connection, clock: Clock, program: Program, purchase: PurchaseIn, card_key: bytes
) -> tuple[EventResult, bool]:
    """Earn the base rate on an order. Returns the result and whether it is a replay of an earlier send.

    Everything that needs no database (the fingerprint, the earning, every row to write) is worked out
    before the first statement: on SQLite that is before the write lock is taken. A buyer named by
    member id then costs two statements: :func:`_lock_buyer` and one write of every row.
    """
    receipt = _receipt(program, purchase, clock.now(), card_key)
    member_id = purchase.member.member_id
    if member_id is not None:
        # Points that stay pending repay no debt, so their rows are known before the member is locked.
        pending = ledger.earns_pending(receipt.matures_at, receipt.now)
        booked = _booking(conn.dialect, program, receipt, member_id, None, owed_debt=0) if pending else None
        found, status = _lock_buyer(conn, program, receipt, member_id)
        if found is not None:
            return found, True
        _check(program, receipt)
        members.refuse_unless_active(member_id, status, field="member.member_id")
        if booked is None:
            booked = _booking(
                conn.dialect, program, receipt, member_id, None, owed_debt=_debt(conn, program, receipt, member_id)
            )
    else:
        found = replay(
            conn=conn,
            program_id=program.id,
            type_="purchase",
            external_id=purchase.order_id,
            body_hash=receipt.body_hash,
        )
        if found is not None:
            return found, True
        _check(program, receipt)
        buyer, claim = _resolve_and_lock(conn, program, purchase.member, card_key)
        owed = _debt(conn, program, receipt, buyer) if buyer is not None else 0
        booked = _booking(conn.dialect, program, receipt, buyer, claim, owed_debt=owed)
    booked.write.run(conn)
    return booked.result, False


# One round trip instead of three: the member's lock (its `available` account row, as ledger.locks takes
# it) and its status, with the order's earlier result if it was already received. The member row is
# locked too: PostgreSQL re-reads the rows it locks after waiting, not the others, so a merge that
# committed while we waited is seen. An order received meanwhile is not seen; its unique key then
# refuses our insert and the command is retried, as any unique-key race is.
_lock_buyer_row = (
    select(members_table.c.status, members_table.c.merged_into_id, events.c.payload_hash, events.c.result)
    .select_from(
        accounts.join(members_table, members_table.c.id == accounts.c.member_id).outerjoin(
            events,
            and_(
                events.c.program_id == members_table.c.program_id,
                events.c.type == "purchase",
                events.c.external_id == bindparam("order_id"),
            ),
        )
    )
    .where(accounts.c.id == bindparam("account_id"), members_table.c.program_id == bindparam("program_id"))
    .with_for_update(of=[accounts, members_table])
)


def _lock_buyer(
    conn: Connection, program: Program, receipt: _Receipt, member_id: str
) -> tuple[EventResult | None, Any]:
    """The first result if this order was already received; else lock the member: its status row (or None)."""
    order_id = receipt.purchase.order_id
    row = conn.execute(
        _lock_buyer_row,
        {"account_id": member_account(member_id, "available"), "program_id": program.id, "order_id": order_id},
    ).first()
    if row is None:  # no such member: a replay still answers first
        found = replay(
            conn=conn, program_id=program.id, type_="purchase", external_id=order_id, body_hash=receipt.body_hash
        )
        return found, None
    if row.payload_hash is not None:
        return _replayed("purchase", order_id, receipt.body_hash, row.payload_hash, row.result), row
    return None, row


def _check(program: Program, receipt: _Receipt) -> None:
    _occurred_at(receipt.occurred_at, receipt.now)
    if receipt.purchase.currency != program.currency:
        raise InvalidInput(
            "currency_mismatch",
            f"This program counts in {program.currency}, not {receipt.purchase.currency}.",
            field="currency",
        )


def _debt(conn: Connection, program: Program, receipt: _Receipt, member_id: str) -> int:
    return ledger.debt_owed(conn, _ledger_booking(program, receipt, member_id), matures_at=receipt.matures_at)


@dataclass(frozen=True)
class _Booked:
    """What recording a purchase writes: the ledger transaction and the rows that go with it."""

    result: EventResult
    write: PreparedWrite  # every row, parameters encoded: run it holding the member's lock


def _ledger_booking(program: Program, receipt: _Receipt, member_id: str) -> ledger.Booking:
    return ledger.Booking(
        program_id=program.id,
        member_id=member_id,
        kind="earn",
        reason=receipt.label,
        reason_code="purchase",
        now=receipt.now,
        effective_at=receipt.occurred_at,
        event_id=receipt.event_id,
        details={"order_id": receipt.purchase.order_id},
    )


def _booking(
    dialect: Dialect,
    program: Program,
    receipt: _Receipt,
    member_id: str | None,
    claim: tuple[str, str] | None,
    *,
    owed_debt: int,
) -> _Booked:
    """The purchase's ledger transaction (for a known buyer), event and purchase rows."""
    purchase, earning = receipt.purchase, receipt.earning
    result = EventResult(
        event_id=receipt.event_id,
        type="purchase",
        external_id=purchase.order_id,
        status="processed" if member_id else "unclaimed",
        member_id=member_id,
        points=earning.points,
        reason=receipt.label,
    )
    plan = None
    if member_id is not None:
        plan = ledger.plan_earn(
            _ledger_booking(program, receipt, member_id),
            amount=earning.points,
            source="purchase",
            label=receipt.label,
            matures_at=receipt.matures_at,
            expires_at=receipt.expires_at,
            owed_debt=owed_debt,
        )
        earned = plan.earned
        result.transaction_id, result.pending = earned.transaction_id, earned.pending
        result.matures_at = receipt.matures_at if earned.pending else None
        if earned.repaid_debt:
            result.details["debt_repaid"] = earned.repaid_debt
    event = _event_row(
        program,
        receipt.event_id,
        "purchase",
        purchase.order_id,
        member_id,
        claim,
        purchase.channel,
        purchase.store_id,
        receipt.occurred_at,
        receipt.now,
        receipt.body_hash,
        receipt.body,
        result,
    )
    order = dict(
        event_id=receipt.event_id,
        program_id=program.id,
        member_id=member_id,
        order_id=purchase.order_id,
        label=receipt.label,
        total=earning.total,
        eligible=earning.eligible,
        points=earning.points,
        lot_id=plan.earned.lot_id if plan else None,
        lines=[
            {"sku": line.sku, "quantity": line.quantity, "amount": line.amount, "points": pts, "returned": 0}
            for line, pts in zip(purchase.lines, earning.line_points, strict=True)
        ],
    )
    write = prepare_write(
        dialect,
        plan.entries if plan else [],
        # parents first (SQLite checks each foreign key at once): the lot refers to the transaction,
        # the purchase to the event
        rows=[*(plan.rows if plan else []), (events, [event]), (purchases, [order])],
    )
    return _Booked(result, write)


def record_return(*, conn: Connection, clock: Clock, program: Program, ret: ReturnIn) -> tuple[EventResult, bool]:
    """Take back exactly what the returned goods earned: pending first, then available, then debt."""
    body_hash = payload_hash(ret)
    if (
        found := replay(
            conn=conn, program_id=program.id, type_="return", external_id=ret.return_id, body_hash=body_hash
        )
    ) is not None:
        return found, True
    now = clock.now()
    occurred_at = _occurred_at(ret.occurred_at, now)
    order = (
        conn.execute(
            select(purchases, events.c.occurred_at)
            .join(events, events.c.id == purchases.c.event_id)
            .where(purchases.c.program_id == program.id, purchases.c.order_id == ret.order_id)
        )
        .mappings()
        .first()
    )
    if order is None:
        raise NotFound(
            "order_not_found",
            f"No purchase with order id {ret.order_id!r} in this program.",
            field="order_id",
        )
    if occurred_at < utc(order["occurred_at"]):
        raise InvalidInput("return_before_purchase", "A return cannot happen before its purchase.", field="occurred_at")
    order = _lock_order(conn, order["event_id"], order["member_id"])
    plan: ReturnPlan = plan_return(order=dict(order), ret=ret)
    event_id = new_id("event")
    member_id = order["member_id"]
    label = plan.label(ret.order_id)
    result = EventResult(
        event_id=event_id,
        type="return",
        external_id=ret.return_id,
        status="processed" if member_id else "unclaimed",
        member_id=member_id,
        points=-plan.points,
        reason=label,
    )
    if member_id is not None and plan.points:
        booking = ledger.Booking(
            program_id=program.id,
            member_id=member_id,
            kind="return",
            reason=label,
            reason_code="return",
            now=now,
            effective_at=occurred_at,
            event_id=event_id,
            details={"order_id": ret.order_id},
        )
        taken = ledger.take_back(
            conn, booking, amount=plan.points, own_lot_id=order["lot_id"], shortfall=program.return_shortfall
        )
        result.transaction_id = taken.transaction_id
        result.details = {
            "from_pending": taken.from_pending,
            "from_available": taken.from_available,
            "to_debt": taken.to_debt,
            "written_off": taken.written_off,
        }
    conn.execute(
        update(purchases)
        .where(purchases.c.event_id == order["event_id"])
        .values(
            lines=plan.lines,
            refunded=order["refunded"] + plan.refund,
            points_returned=order["points_returned"] + plan.points,
        )
    )
    conn.execute(
        _insert_event_row,
        _event_row(
            program,
            event_id,
            "return",
            ret.return_id,
            member_id,
            None,
            None,
            None,
            occurred_at,
            now,
            body_hash,
            _redacted(ret),
            result,
        ),
    )
    return result, False


def adjust(
    *, conn: Connection, clock: Clock, program: Program, member_id: str, adjustment: AdjustmentIn, actor: str
) -> tuple[EventResult, bool]:
    """A manual correction with a reason: a credit (a new lot) or a debit (never below zero)."""
    body_hash = payload_hash(adjustment, member_id)
    if adjustment.external_id and (
        found := replay(
            conn=conn,
            program_id=program.id,
            type_="adjustment",
            external_id=adjustment.external_id,
            body_hash=body_hash,
        )
    ):
        return found, True
    lock_members(conn, [member_id])
    members.require_active(conn=conn, program_id=program.id, member_id=member_id)
    now = clock.now()
    event_id = new_id("event")
    booking = ledger.Booking(
        program_id=program.id,
        member_id=member_id,
        kind="adjust",
        reason=adjustment.reason,
        reason_code="adjustment",
        now=now,
        effective_at=now,
        event_id=event_id,
        details={"actor": actor},
    )
    if adjustment.points > 0:
        transaction_id = ledger.earn(
            conn,
            booking,
            amount=adjustment.points,
            source="adjustment",
            label=adjustment.reason,
            matures_at=None,
            expires_at=members.expiry_for(program, now),
        ).transaction_id
    else:
        try:
            transaction_id = ledger.spend(conn, booking, amount=-adjustment.points, sink="adjusted")
        except ledger.InsufficientPoints as exc:
            raise Unprocessable(
                "insufficient_points",
                f"The member has {exc.available} points available; this debit needs {exc.needed}.",
                field="points",
                needed=exc.needed,
                available=exc.available,
            ) from None
    result = EventResult(
        event_id=event_id,
        type="adjustment",
        external_id=adjustment.external_id or event_id,
        status="processed",
        member_id=member_id,
        points=adjustment.points,
        transaction_id=transaction_id,
        reason=adjustment.reason,
    )
    conn.execute(
        _insert_event_row,
        _event_row(
            program,
            event_id,
            "adjustment",
            result.external_id,
            member_id,
            None,
            None,
            None,
            now,
            now,
            body_hash,
            _redacted(adjustment),
            result,
        ),
    )
    return result, False


def claim_unclaimed(*, conn: Connection, clock: Clock, program: Program, member_id: str, kind: str, value: str) -> int:
    """Credit ``member_id`` with the purchases made with this card before it was linked; returns how many.

    The caller holds the card's claim lock (``card_claim_key``); the orders are locked so that a return
    being recorded on one of them at this moment is counted exactly once.
    """
    lock_members(conn, [member_id])
    rows = conn.execute(
        select(
            events.c.id,
            events.c.occurred_at,
            purchases.c.points,
            purchases.c.points_returned,
            purchases.c.label,
            purchases.c.order_id,
        )
        .join(purchases, purchases.c.event_id == events.c.id)
        .where(
            events.c.program_id == program.id,
            events.c.claim_kind == kind,
            events.c.claim_value == value,
            events.c.status == "unclaimed",
        )
        .order_by(events.c.occurred_at)
        .with_for_update(of=purchases)
    ).all()
    if not rows:
        return 0
    now = clock.now()
    for row in rows:
        occurred_at = utc(row.occurred_at)
        booking = ledger.Booking(
            program_id=program.id,
            member_id=member_id,
            kind="earn",
            reason=f"{row.label} (card linked later)",
            reason_code="purchase_claimed",
            now=now,
            effective_at=occurred_at,
            event_id=row.id,
            details={"order_id": row.order_id},
        )
        earned = ledger.earn(
            conn,
            booking,
            amount=row.points - row.points_returned,
            source="purchase",
            label=row.label,
            matures_at=occurred_at + timedelta(days=program.return_window_days),
            expires_at=members.expiry_for(program, occurred_at),
        )
        conn.execute(update(events).where(events.c.id == row.id).values(member_id=member_id, status="processed"))
        conn.execute(
            update(purchases).where(purchases.c.event_id == row.id).values(member_id=member_id, lot_id=earned.lot_id)
        )
    return len(rows)


def reassign_member(*, conn: Connection, source_id: str, target_id: str) -> None:
    """After a merge, the orders of the closed account belong to the remaining one (for later returns)."""
    conn.execute(update(purchases).where(purchases.c.member_id == source_id).values(member_id=target_id))


# --- helpers ---


def _occurred_at(value: datetime, now: datetime) -> datetime:
    value = utc(value)
    if value > now + FUTURE_TOLERANCE:
        raise InvalidInput("occurred_in_future", "This event is dated in the future.", field="occurred_at")
    return value


def _resolve_and_lock(
    conn: Connection, program: Program, ref: MemberRef, card_key: bytes
) -> tuple[str | None, tuple[str, str] | None]:
    """Who bought, locked: (member id, None); or (None, claim) for a payment card nobody has linked yet.

    The member is checked *after* its lock is held: a merge that committed while we waited has closed
    it, and an identity then belongs to the member that remains, so we look again.
    """
    if ref.member_id is not None:
        lock_members(conn, [ref.member_id])
        try:
            members.require_active(conn=conn, program_id=program.id, member_id=ref.member_id)
        except (NotFound, Conflict) as exc:
            exc.field = "member.member_id"
            raise
        return ref.member_id, None
    assert ref.kind is not None and ref.value is not None
    normalised = normalise(
        ref.kind, ref.value, field="member.value", card_key=card_key, default_country=program.default_country
    )
    if normalised.kind == "payment_card":
        lock_key(conn, card_claim_key(program.id, normalised.value))  # see members.service.add_identity
    for _ in range(3):
        member_id = members.owner_of(conn=conn, program_id=program.id, normalised=normalised)
        if member_id is None:
            if normalised.kind == "payment_card":
                return None, (normalised.kind, normalised.value)
            raise NotFound(
                "member_not_found", f"No member has this {ref.kind.replace('_', ' ')}.", field="member.value"
            )
        lock_members(conn, [member_id])
        if members.is_active(conn=conn, member_id=member_id):
            return member_id, None
    raise Conflict("member_merged", "This member was just merged; send the purchase again.", field="member.value")


def _lock_order(conn: Connection, event_id: str, member_id: str | None) -> Any:
    """The order's row, re-read under its member's lock (or its own, while unclaimed).

    A concurrent return of the same order, a claim or a merge may have committed while we waited; if
    the order changed hands, lock its new owner and read again.
    """
    for _ in range(3):
        if member_id is not None:
            lock_members(conn, [member_id])
        order = (
            conn.execute(select(purchases).where(purchases.c.event_id == event_id).with_for_update()).mappings().one()
        )
        if order["member_id"] == member_id:
            return order
        member_id = order["member_id"]
    raise Conflict("order_busy", "This order is changing hands; send the return again.", field="order_id")


def _event_row(
    program: Program,
    event_id: str,
    type_: str,
    external_id: str,
    member_id: str | None,
    claim: tuple[str, str] | None,
    channel: str | None,
    store_id: str | None,
    occurred_at: datetime,
    now: datetime,
    body_hash: str,
    stored_body: dict[str, Any],
    result: EventResult,
) -> dict[str, Any]:
    return dict(
        id=event_id,
        program_id=program.id,
        type=type_,
        external_id=external_id,
        member_id=member_id,
        status="processed" if claim is None else "unclaimed",
        claim_kind=claim[0] if claim else None,
        claim_value=claim[1] if claim else None,
        channel=channel,
        store_id=store_id,
        occurred_at=occurred_at,
        received_at=now,
        payload_hash=body_hash,
        body=stored_body,
        result=result.model_dump(mode="json"),
    )


def _redacted(body: BaseModel) -> dict[str, Any]:
    """The stored copy of a request: a payment card number is replaced by its last four digits."""
    return _redact(body.model_dump(mode="json"))


def _redact(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a request as JSON) with a payment card number replaced by its last four digits (a copy)."""
    member = data.get("member")
    if isinstance(member, dict) and member.get("kind") == "payment_card" and member.get("value"):
        digits = "".join(ch for ch in member["value"] if ch.isdigit())
        data = {**data, "member": {**member, "value": f"•••• {digits[-4:]}"}}
    return data


def reverse_transaction(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    member_id: str,
    transaction_id: str,
    reason: str,
    actor: str,
) -> EventResult:
    """Correct a manual adjustment or welcome credit by reversing it (nothing is ever edited or deleted)."""
    lock_members(conn, [member_id])
    members.require_active(conn=conn, program_id=program.id, member_id=member_id)
    now = clock.now()
    booking = ledger.Booking(
        program_id=program.id,
        member_id=member_id,
        kind="reversal",
        reason=reason,
        reason_code="reversal",
        now=now,
        effective_at=now,
        details={"actor": actor},
    )
    try:
        reversal_id = ledger.reverse(conn, booking, original_id=transaction_id)
    except LookupError:
        raise NotFound(
            "transaction_not_found",
            f"Member {member_id} has no transaction {transaction_id}.",
            field="transaction_id",
        ) from None
    except ledger.NotReversible as exc:
        raise Unprocessable("not_reversible", str(exc).capitalize() + ".", field="transaction_id") from None
    except IntegrityError:
        raise Conflict(
            "already_reversed", f"Transaction {transaction_id} was already reversed.", field="transaction_id"
        ) from None
    moved = ledger.balances_moved(conn, transaction_id=reversal_id, member_id=member_id)
    return EventResult(
        event_id=reversal_id,
        type="adjustment",
        external_id=transaction_id,
        status="processed",
        member_id=member_id,
        points=moved,
        transaction_id=reversal_id,
        reason=reason,
    )
