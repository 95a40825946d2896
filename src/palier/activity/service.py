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
from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from palier.activity.earning import Earning, anonymous_earning, order_total
from palier.activity.facts import checked_occurred_at, event_row, redacted
from palier.activity.models import AdjustmentIn, EventResult, MemberRef, PurchaseIn, ReturnIn, ReversalResult
from palier.activity.purchase_rows import (
    check_currency,
    note_earned,
    purchase_booking,
    purchase_result,
    purchase_row,
)
from palier.activity.returns import ReturnPlan, plan_return
from palier.activity.tables import events, purchases
from palier.clock import Clock, in_zone, utc
from palier.errors import Conflict, InvalidInput, NotFound, Unprocessable
from palier.ids import new_id
from palier.ledger import operations as ledger
from palier.ledger.catch_up import catch_up
from palier.ledger.locks import lock_key, lock_members
from palier.ledger.post import write_with
from palier.ledger.tables import allocations
from palier.members import service as members
from palier.members.identities import card_claim_key, normalise
from palier.notify import outbox
from palier.notify.tables import outbox_events
from palier.programs.models import Program
from palier.programs.service import record_audit
from palier.rewards import payments
from palier.rules import service as rules
from palier.rules.tables import awards as award_rows
from palier.tiers import service as tiers

_WHERE = {
    "web": "online",
    "phone": "by phone",
    "app": "in the app",
    "partner": "at a partner",
    "store": "in store",
}


# Built once: on the purchase path, building statements per call costs more than running them.
_insert_event_row = insert(events)
_find_event = select(events.c.payload_hash, events.c.result).where(
    events.c.program_id == bindparam("program_id"),
    events.c.type == bindparam("type"),
    events.c.external_id == bindparam("external_id"),
)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What makes two sends of a fact the same fact.

    ``value`` (the one stored) reads each moment sent with an offset as the instant it names, so a retry that
    writes it another way ("08:12:00+01:00", "07:12:00Z") is the same fact; a moment sent without an offset
    is kept as written, so an identical retry matches whatever the program's time zone has become since.
    ``local`` reads such a moment in the program's time zone: a fact first sent with an offset, resent
    without one, matches through it. ``as_sent`` is the body as earlier versions hashed it (without fields
    added since): a fact recorded before the upgrade still replays.
    """

    value: str
    local: str
    as_sent: str

    def matches(self, stored: str) -> bool:
        return stored in (self.value, self.local, self.as_sent)


def payload_hash(body: BaseModel, *context: str, timezone: str, key: bytes = b"") -> Fingerprint:
    """A fingerprint of a fact's content (and of what it applies to, e.g. the member adjusted).

    Keyed (HMAC) with the card key for anything that may hold a payment card number: a plain hash of a
    body whose card number is otherwise redacted would let anyone recover it by trying the missing digits.
    """
    return fingerprinted(body, body.model_dump(mode="json"), *context, timezone=timezone, key=key)


def fingerprinted(body: BaseModel, sent: dict[str, Any], *context: str, timezone: str, key: bytes) -> Fingerprint:
    """``payload_hash`` of ``body``, given its JSON dump ``sent`` (made once by a caller that needs it too)."""
    moments = {name: value for name, value in body if isinstance(value, datetime)}
    instants = {name: _instant(value, timezone) for name, value in moments.items() if value.tzinfo is not None}
    value = fingerprint([{**sent, **instants}, *context], key=key)
    # Each hash costs a JSON dump of the whole body: one is not made again for the same content (every moment
    # with an offset: local is value; none with one, nor a field added since: as_sent is value).
    if len(instants) == len(moments):
        local = value
    else:
        local = fingerprint(
            [{**sent, **{name: _instant(v, timezone) for name, v in moments.items()}}, *context], key=key
        )
    earlier = _as_earlier_versions_sent(sent)
    as_sent = value if earlier is sent and not instants else fingerprint([earlier, *context], key=key)
    return Fingerprint(value=value, local=local, as_sent=as_sent)


def _as_earlier_versions_sent(sent: dict[str, Any]) -> dict[str, Any]:
    """The dump without the fields added since (a return line's ``line``), when they are left out."""
    lines = sent.get("lines")
    if not isinstance(lines, list) or not any(isinstance(x, dict) and "line" in x for x in lines):
        return sent
    kept = [{k: v for k, v in x.items() if not (k == "line" and v is None)} for x in lines]
    return {**sent, "lines": kept}


def _instant(value: datetime, timezone: str) -> str:
    try:
        return in_zone(value, timezone).isoformat()
    except OverflowError:  # refused later as out of range; any stable form will do
        return value.isoformat()


def fingerprint(value: Any, *, key: bytes) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def replay(
    *, conn: Connection, program_id: str, type_: str, external_id: str, body_hash: Fingerprint, field: str
) -> EventResult | None:
    """The stored result of this fact if it was already received; 409 naming ``field`` if it came with
    another body."""
    row = conn.execute(_find_event, {"program_id": program_id, "type": type_, "external_id": external_id}).first()
    if row is None:
        return None
    if not body_hash.matches(row.payload_hash):
        raise event_conflict(type_, external_id, field)
    return EventResult.model_validate(row.result)


def stored_fact(
    *, conn: Connection, program_id: str, type_: str, external_id: str
) -> tuple[EventResult, dict[str, Any]] | None:
    """What the engine answered when this fact (a purchase's order id, a return's id) was received, and the
    fact as it was kept (redacted), if it was received."""
    row = conn.execute(
        select(events.c.result, events.c.body).where(
            events.c.program_id == program_id, events.c.type == type_, events.c.external_id == external_id
        )
    ).first()
    return None if row is None or row.result is None else (EventResult.model_validate(row.result), row.body)


def recorded_order(*, conn: Connection, program_id: str, order_id: str) -> tuple[str | None, int] | None:
    """The member an order was recorded for (None: not a member, or a card not linked yet) and its total."""
    row = conn.execute(
        select(purchases.c.member_id, purchases.c.total).where(
            purchases.c.program_id == program_id, purchases.c.order_id == order_id
        )
    ).first()
    return None if row is None else (row.member_id, int(row.total))


def lock_repeat_check(*, conn: Connection, program_id: str, member_id: str) -> None:
    """Take the member's "already recorded?" lock, first in the command: the till's check for a repeated sale,
    refund or payment then runs in the same transaction as what it guards, after any other till's command for
    the member has committed, so two tills sending the same ticket within milliseconds are taken one after the
    other and the second is asked, as a repeat sent later is. Taken before any row lock, and only here, so it
    never waits in a circle with them. SQLite's write lock already serialises the whole command."""
    lock_key(conn, f"repeat:{program_id}:{member_id}")


def looks_repeated_purchase(
    *, conn: Connection, program_id: str, member_id: str, order_id: str, total: int, since: datetime
) -> tuple[str, datetime] | None:
    """The member's latest order of the same total received since ``since`` under another order id, and when.

    The till asks before recording it again: a form sent again after the browser's Back button carries a new
    ticket number, so the order id alone does not catch a sale counted twice.
    """
    row = conn.execute(
        select(purchases.c.order_id, events.c.received_at)
        .join(events, events.c.id == purchases.c.event_id)
        .where(
            purchases.c.program_id == program_id,
            purchases.c.member_id == member_id,
            purchases.c.total == total,
            purchases.c.order_id != order_id,
            events.c.received_at >= since,
        )
        .order_by(events.c.received_at.desc())
        .limit(1)
    ).first()
    return None if row is None else (row.order_id, utc(row.received_at))


def looks_repeated_return(
    *, conn: Connection, program_id: str, member_id: str, ret: ReturnIn, since: datetime
) -> tuple[str, datetime] | None:
    """The member's latest refund of the same amount on the same order since ``since``, under another return
    id, and when: the till asks before refunding it again (a form sent again after Back has a new id)."""
    rows = conn.execute(
        select(events.c.external_id, events.c.received_at, events.c.body)
        .where(
            events.c.program_id == program_id,
            events.c.member_id == member_id,
            events.c.type == "return",
            events.c.external_id != ret.return_id,
            events.c.received_at >= since,
        )
        .order_by(events.c.received_at.desc())
    )
    for return_id, received_at, body in rows:
        if body.get("order_id") == ret.order_id and body.get("amount") == ret.amount:
            return return_id, utc(received_at)
    return None


def event_conflict(type_: str, external_id: str, field: str) -> Conflict:
    return Conflict(
        "event_conflict",
        f"The {type_} {external_id!r} was already received with different content. Use a new id for a new fact.",
        field=field,
    )


def purchase_label(p: PurchaseIn) -> str:
    where = (
        f"at {p.store_name or p.store_id}"
        if p.channel == "store" and (p.store_name or p.store_id)
        else _WHERE[p.channel]
    )
    return f"Purchase #{p.order_id} {where}"


def record_purchase(
    *, conn: Connection, clock: Clock, program: Program, purchase: PurchaseIn, card_key: bytes
) -> tuple[EventResult, bool]:
    """Earn the base rate on an order. Returns the result and whether it is a replay of an earlier send."""
    body_hash = payload_hash(purchase, timezone=program.timezone, key=card_key)
    if (
        found := replay(
            conn=conn,
            program_id=program.id,
            type_="purchase",
            external_id=purchase.order_id,
            body_hash=body_hash,
            field="order_id",
        )
    ) is not None:
        return found, True
    now = clock.now()
    occurred_at = checked_occurred_at(purchase.occurred_at, now, timezone=program.timezone)
    check_currency(purchase, program)
    event_id = new_id("event")
    if purchase.member is None:  # a shopper who is not a member: kept for the KPIs, earns nothing
        member_id, claim, member = None, None, None
        # it earns nothing, but a member may have paid part of it: refused below what they paid for
        payments.paid_otherwise(conn, program=program, order_id=purchase.order_id, total=order_total(purchase))
        earning: Earning = anonymous_earning(purchase, program)
    else:
        member_id, claim, member = _resolve_and_lock(conn, program, purchase.member, card_key)
        # read under the member's lock: a payment of this order at the till, committing meanwhile, is counted
        paid_otherwise = payments.paid_otherwise(
            conn, program=program, order_id=purchase.order_id, total=order_total(purchase)
        )
        # the base rate, or what the rules in force when it occurred award (recorded as awards of event_id)
        earning = rules.purchase_earning(
            conn=conn,
            clock=clock,
            program=program,
            purchase=purchase,
            member_id=member_id,
            event_id=event_id,
            occurred_at=occurred_at,
            paid_otherwise=paid_otherwise,
        )
    label = purchase_label(purchase)
    matures_at = occurred_at + timedelta(days=program.return_window_days)
    result = purchase_result(
        event_id=event_id, purchase=purchase, member_id=member_id, points=earning.points, label=label
    )
    if isinstance(earning, rules.RuledEarning):
        result.awards = rules.award_lines(earning.awards, program)
    plan = None
    if member_id is not None:
        booking = purchase_booking(
            program_id=program.id,
            member_id=member_id,
            purchase=purchase,
            label=label,
            now=now,
            occurred_at=occurred_at,
            event_id=event_id,
        )
        plan = ledger.prepare_earn(
            conn,
            booking,
            amount=earning.points,
            source="purchase",
            label=label,
            matures_at=matures_at,
            expires_at=members.expiry_for(program, occurred_at),
        )
        note_earned(
            result,
            transaction_id=plan.earned.transaction_id,
            pending=plan.earned.pending,
            matures_at=matures_at,
            repaid=plan.earned.repaid_debt,
            expired=plan.earned.expired,
        )
    event = event_row(
        event_id=event_id,
        program_id=program.id,
        type_="purchase",
        external_id=purchase.order_id,
        member_id=member_id,
        claim=claim,
        channel=purchase.channel,
        store_id=purchase.store_id,
        occurred_at=occurred_at,
        now=now,
        body_hash=body_hash.value,
        body=redacted(purchase),
        result=result,
    )
    row = purchase_row(
        event_id=event_id,
        program_id=program.id,
        member_id=member_id,
        purchase=purchase,
        earning=earning,
        label=label,
        lot_id=plan.earned.lot_id if plan is not None else None,
        shipping_earns=program.earn_on_shipping,
        awards=earning.awards if isinstance(earning, rules.RuledEarning) else (),
    )
    told: list[dict[str, Any]] = []  # the points_earned event, for the merchant's mailer
    if member_id is not None and plan is not None and earning.points:
        matured = None if result.matures_at is None else utc(result.matures_at).isoformat(timespec="seconds")
        credited = {"source": "purchase", "reason": label, "order_id": purchase.order_id, "points": earning.points}
        credited["pending"] = bool(result.pending)
        money = {"matures_at": matured, "total": order_total(purchase), "currency": program.currency}
        earned = outbox.tell_points(
            conn, program.id, "points_earned", member_id, credited | money, now, entries=plan.entries, member=member
        )
        told = [earned] if earned is not None else []
    # The points, the event, its purchase, its awards and the outbox's event: one statement on PostgreSQL (events
    # before the purchase that refers to it, for SQLite, which checks each foreign key at once).
    ledger_rows = plan.rows if plan is not None else []
    awarded = earning.award_rows if isinstance(earning, rules.RuledEarning) else ()
    write_with(
        conn,
        plan.entries if plan is not None else [],
        rows=[*ledger_rows, (events, [event]), (purchases, [row]), (award_rows, awarded), (outbox_events, told)],
    )
    if member_id is not None:  # the event that crosses a tier threshold upgrades at once
        tiers.on_activity(conn=conn, clock=clock, program=program, member_id=member_id, made_at=occurred_at)
    return result, False


def record_return(*, conn: Connection, clock: Clock, program: Program, ret: ReturnIn) -> tuple[EventResult, bool]:
    """Take back exactly what the returned goods earned: pending first, then available, then debt."""
    body_hash = payload_hash(ret, timezone=program.timezone)

    def sent_before() -> EventResult | None:
        return replay(
            conn=conn, program_id=program.id, type_="return", external_id=ret.return_id, body_hash=body_hash,
            field="return_id",
        )  # fmt: skip

    if (found := sent_before()) is not None:
        return found, True
    now = clock.now()
    occurred_at = checked_occurred_at(ret.occurred_at, now, timezone=program.timezone)
    order = (
        conn.execute(
            select(purchases, events.c.occurred_at, events.c.status.label("order_status"))
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
    anonymous = order["order_status"] == "anonymous"
    order, paid_by = _lock_order(conn, program.id, order)
    # the same return sent again at once (a till retrying) waited on the lock while the first was recorded:
    # it gets the first's answer, not a refusal for the items that first one returned
    if (found := sent_before()) is not None:
        return found, True
    excused = 0
    plan: ReturnPlan = plan_return(order=dict(order), ret=ret, program=program)
    event_id = new_id("event")
    member_id = order["member_id"]
    label = plan.label(ret.order_id)
    result = EventResult(
        event_id=event_id,
        type="return",
        external_id=ret.return_id,
        status="processed" if member_id else "anonymous" if anonymous else "unclaimed",
        member_id=member_id,
        points=-plan.points,
        reason=label,
    )
    # before the ledger: budget rows, then program accounts, in the order a purchase takes them
    rules.give_back(
        conn=conn,
        clock=clock,
        program=program,
        event_id=order["event_id"],
        points=rules.Returned(order["points"], order["points_returned"], order["points_returned"] + plan.points),
        money=rules.Returned(order["total"], order["refunded"], order["refunded"] + plan.refund),
        lines=rules.LinesReturned(
            order["lines"], [int(x["returned"]) for x in order["lines"]], [int(x["returned"]) for x in plan.lines]
        ),
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
        # points past their expiry expire first (as the job would): the order's own are then excused, not taken
        catch_up(conn, program_id=program.id, member_id=member_id, now=now)
        lapsed = _expired_of(conn, order["lot_id"]) - order["points_excused"] if order["lot_id"] else 0
        taken = ledger.take_back(
            conn,
            booking,
            amount=plan.points,
            own_lot_id=order["lot_id"],
            # an erased member will never earn again: what they cannot give back is written off, not owed
            shortfall="write_off" if members.is_erased(conn=conn, member_id=member_id) else program.return_shortfall,
            lapsed=max(lapsed, 0),
        )
        excused = taken.excused
        result.transaction_id = taken.transaction_id
        result.details = {
            "from_pending": taken.from_pending,
            "from_available": taken.from_available,
            "to_debt": taken.to_debt,
            "written_off": taken.written_off,
        } | ({"excused_expired": excused} if excused else {})
    conn.execute(
        update(purchases)
        .where(purchases.c.event_id == order["event_id"])
        .values(
            lines=plan.lines,
            refunded=order["refunded"] + plan.refund,
            shipping_refunded=order["shipping_refunded"] + plan.shipping,
            points_returned=order["points_returned"] + plan.points,
            points_excused=order["points_excused"] + excused,
        )
    )
    # what was paid with points or credit comes back in proportion, to whoever paid it: the order may have
    # been recorded without a member (a walk-in, a card nobody has linked) or for another member than the
    # one who paid; each payer was locked with the order (no payment is made once it is recorded)
    if paid_by:
        result.details |= payments.on_return(
            conn=conn,
            clock=clock,
            program=program,
            order_id=ret.order_id,
            refunded=order["refunded"] + plan.refund,  # the items returned with their share of the tax
            total=order["total"],
            buyer=member_id,
        )
    _insert_event(
        conn,
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
        body_hash.value,
        ret,
        result,
    )
    if member_id is not None and plan.points and not members.is_erased(conn=conn, member_id=member_id):
        taken_back = {"order_id": ret.order_id, "return_id": ret.return_id, "points": plan.points}
        outbox.tell_points(conn, program.id, "points_returned", member_id, taken_back, now)
    if member_id is not None:  # the event that crosses a tier threshold upgrades at once
        tiers.on_activity(conn=conn, clock=clock, program=program, member_id=member_id, returned=True)
    return result, False


def _expired_of(conn: Connection, lot_id: str) -> int:
    """Points of a lot that expired (its expiry allocations)."""
    total = conn.execute(
        select(func.coalesce(func.sum(allocations.c.amount), 0)).where(
            allocations.c.lot_id == lot_id, allocations.c.purpose == "expire"
        )
    ).scalar()
    return int(total or 0)


def adjust(
    *, conn: Connection, clock: Clock, program: Program, member_id: str, adjustment: AdjustmentIn, actor: str
) -> tuple[EventResult, bool]:
    """A manual correction with a reason: a credit (a new lot) or a debit (never below zero)."""
    body_hash = payload_hash(adjustment, member_id, timezone=program.timezone)
    if adjustment.external_id and (
        found := replay(
            conn=conn,
            program_id=program.id,
            type_="adjustment",
            external_id=adjustment.external_id,
            body_hash=body_hash,
            field="external_id",
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
    repaid = 0
    if adjustment.points > 0:
        earned = ledger.earn(
            conn,
            booking,
            amount=adjustment.points,
            source="adjustment",
            label=adjustment.reason,
            matures_at=None,
            expires_at=members.expiry_for(program, now),
        )
        transaction_id, repaid = earned.transaction_id, earned.repaid_debt
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
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program.id,
        actor=actor,
        action="member.adjusted",
        subject_id=member_id,
        details={"points": adjustment.points, "reason": adjustment.reason, "transaction_id": transaction_id},
    )
    result = EventResult(
        event_id=event_id,
        type="adjustment",
        external_id=adjustment.external_id or event_id,
        status="processed",
        member_id=member_id,
        points=adjustment.points,
        transaction_id=transaction_id,
        reason=adjustment.reason,
        details={"debt_repaid": repaid} if repaid else {},  # points owed are repaid first, as a purchase's are
    )
    _insert_event(
        conn,
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
        body_hash.value,
        adjustment,
        result,
    )
    outbox.tell_points(
        conn,
        program.id,
        "points_adjusted",
        member_id,
        {"points": adjustment.points, "reason": adjustment.reason, "reverses": None},
        now,
    )
    return result, False


def reassign_member(*, conn: Connection, program_id: str, source_id: str, target_id: str) -> None:
    """After a merge, the facts of the closed account belong to the remaining one: its orders (for later
    returns and the tier metric) and its events, so that what counts a member's events (action limits,
    the year's birthday gift, a first purchase) counts one person. A fact resent is found by its external
    id and body, not its member: it still answers as the first time."""
    conn.execute(update(purchases).where(purchases.c.member_id == source_id).values(member_id=target_id))
    conn.execute(
        update(events)
        .where(events.c.program_id == program_id, events.c.member_id == source_id)
        .values(member_id=target_id)
    )


# --- helpers ---


def _resolve_and_lock(
    conn: Connection, program: Program, ref: MemberRef, card_key: bytes
) -> tuple[str | None, tuple[str, str] | None, Any]:
    """Who bought, locked: (member id, None, their row); or (None, claim, None) for a payment card nobody has
    linked yet. The row (``members.require_active(with_points=True)``), read under the lock, is what the
    points_earned event needs: no other read.

    The member is checked *after* its lock is held: a merge that committed while we waited has closed
    it, and an identity then belongs to the member that remains, so we look again.
    """
    if ref.member_id is not None:
        lock_members(conn, [ref.member_id])
        try:
            found = members.require_active(conn=conn, program_id=program.id, member_id=ref.member_id, with_points=True)
        except (NotFound, Conflict) as exc:
            exc.field = "member.member_id"
            raise
        return ref.member_id, None, found
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
                return None, (normalised.kind, normalised.value), None
            raise NotFound(
                "member_not_found", f"No member has this {ref.kind.replace('_', ' ')}.", field="member.value"
            )
        lock_members(conn, [member_id])
        found = members.status_of(conn=conn, program_id=program.id, member_id=member_id, with_points=True)
        if found is not None and found.status == "active":
            return member_id, None, found
    raise Conflict("member_merged", "This member was just merged; send the purchase again.", field="member.value")


def _lock_order(conn: Connection, program_id: str, order: Any) -> tuple[Any, list[str]]:
    """The order's row and who paid part of it, re-read under the locks of its member (or the row's own,
    while unclaimed) and of its payers, taken together in one id order: two returns whose buyer is the
    other's payer would otherwise each hold one member and wait for the other.

    A concurrent return of the same order, a claim or a merge may have committed while we waited; if
    the order or a payment changed hands, lock the new owner and read again.
    """
    member_id = order["member_id"]
    payers = payments.payers(conn, program_id=program_id, order_id=order["order_id"])
    for _ in range(3):
        lock_members(conn, [*payers, *([member_id] if member_id is not None else [])])
        order = (
            conn.execute(select(purchases).where(purchases.c.event_id == order["event_id"]).with_for_update())
            .mappings()
            .one()
        )
        # a merge moves payments; none is made once the order is recorded, so none are read when none were
        now_paid_by = payments.payers(conn, program_id=program_id, order_id=order["order_id"]) if payers else []
        if order["member_id"] == member_id and set(now_paid_by) <= set(payers):
            return order, now_paid_by
        member_id, payers = order["member_id"], sorted({*payers, *now_paid_by})
    raise Conflict("order_busy", "This order is changing hands; send the return again.", field="order_id")


def _insert_event(
    conn: Connection,
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
    body: BaseModel,
    result: EventResult,
) -> None:
    row = event_row(
        event_id=event_id,
        program_id=program.id,
        type_=type_,
        external_id=external_id,
        member_id=member_id,
        claim=claim,
        channel=channel,
        store_id=store_id,
        occurred_at=occurred_at,
        now=now,
        body_hash=body_hash,
        body=redacted(body),
        result=result,
    )
    conn.execute(_insert_event_row, row)


def reverse_transaction(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    member_id: str,
    transaction_id: str,
    reason: str,
    actor: str,
) -> ReversalResult:
    """Correct a manual adjustment or welcome credit by reversing it (nothing is ever edited or deleted).

    A transaction of an account merged since is reversed through the member it was merged into, which holds
    its lots now; through the closed account, the refusal says where it went (``member_merged``)."""
    lock_members(conn, [member_id])
    members.require_active(conn=conn, program_id=program.id, member_id=member_id)
    booked_to = _booked_to(conn, program, member_id, transaction_id)
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
        reversal_id = ledger.reverse(conn, booking, original_id=transaction_id, booked_to=booked_to)
    except LookupError:
        raise _unknown_transaction(member_id, transaction_id) from None
    except ledger.NotReversible as exc:
        if not isinstance(exc, ledger.AlreadyReversed):
            raise Unprocessable("not_reversible", str(exc).capitalize() + ".", field="transaction_id") from None
        raise Conflict(
            "already_reversed", f"Transaction {transaction_id} was already reversed.", field="transaction_id"
        ) from None
    except IntegrityError:
        raise Conflict(
            "already_reversed", f"Transaction {transaction_id} was already reversed.", field="transaction_id"
        ) from None
    moved = ledger.balances_moved(conn, transaction_id=reversal_id, member_id=member_id)
    reversed_ = {"points": moved, "reason": reason, "reverses": transaction_id}
    outbox.tell_points(conn, program.id, "points_adjusted", member_id, reversed_, now)
    record_audit(
        conn=conn, clock=clock, program_id=program.id, actor=actor, action="transaction.reversed",
        subject_id=transaction_id, details={"member_id": member_id, "reversal_id": reversal_id, "reason": reason},
    )  # fmt: skip
    return ReversalResult(
        external_id=transaction_id, status="processed", member_id=member_id, points=moved,
        transaction_id=reversal_id, reason=reason,
    )  # fmt: skip


def _booked_to(conn: Connection, program: Program, member_id: str, transaction_id: str) -> str:
    """The member ``transaction_id`` was booked to: ``member_id``, or an account merged into it since."""
    booked_to = ledger.transaction_member(conn, program_id=program.id, transaction_id=transaction_id)
    if booked_to is None or members.holder_of(conn=conn, program_id=program.id, member_id=booked_to) != member_id:
        raise _unknown_transaction(member_id, transaction_id)
    return booked_to


def _unknown_transaction(member_id: str, transaction_id: str) -> NotFound:
    return NotFound(
        "transaction_not_found", f"Member {member_id} has no transaction {transaction_id}.", field="transaction_id"
    )
