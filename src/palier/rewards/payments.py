"""Paying part of an order with points or store credit, and what returns and earning make of it.

Points burnt at checkout are worth the program's redemption rate (``redeem_amount`` minor units per
``redeem_points`` points) and may pay at most ``pay_with_points_max_percent`` of the order. Points
are earned only on the part of an order paid with money (see :func:`paid_otherwise`); returning the
order gives points and credit back in proportion to what is refunded.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from palier.clock import Clock, utc
from palier.errors import Conflict, NotFound, Unprocessable
from palier.ids import new_id
from palier.ledger import operations as ledger
from palier.ledger.accounts import member_account, money_asset, open_wallet
from palier.ledger.locks import lock_key, lock_keys, lock_members
from palier.ledger.post import Entry, Posting, write
from palier.members import service as members
from palier.notify import outbox
from palier.programs.models import Program
from palier.rewards.models import Payment, PaymentIn, Wallet
from palier.rewards.tables import order_payments
from palier.units import Rounding, divide


def points_value(program: Program, points: int) -> int:
    """What ``points`` are worth in minor units, rounded down (a point never pays more than its worth)."""
    return divide(points * program.redeem_amount, program.redeem_points, Rounding.FLOOR)


def lock_order(conn: Connection, *, program_id: str, order_id: str) -> None:
    """Serialise what an order's payments and its purchase decide about each other (after the members' locks).

    The payer and the buyer may be different members, or the buyer none (a walk-in, a card nobody has
    linked), so their locks do not meet: without this one, a purchase recorded while the order is being
    paid would earn on the whole of it and pass under the total the points were checked against.
    """
    lock_key(conn, f"order:{program_id}:{order_id}")


def lock_orders(conn: Connection, *, program_id: str, order_ids: Iterable[str]) -> None:
    """:func:`lock_order` on many orders at once (a bulk import's batch), in one statement."""
    lock_keys(conn, (f"order:{program_id}:{order_id}" for order_id in order_ids))


def looks_repeated(
    *, conn: Connection, program: Program, member_id: str, data: PaymentIn, since: datetime
) -> Payment | None:
    """The member's latest live payment since ``since`` of the same kind and figures under another order id.

    The till asks before paying it again: a form sent again after the browser's Back button carries a new
    ticket number, so the order id alone does not catch the customer charged twice for one sale.
    """
    figures = order_payments.c.points == (data.points or 0)
    if data.kind == "credit":
        figures = order_payments.c.amount == (data.amount or 0)
    row = (
        conn.execute(
            select(order_payments)
            .where(
                order_payments.c.program_id == program.id,
                order_payments.c.member_id == member_id,
                order_payments.c.kind == data.kind,
                order_payments.c.state == "paid",
                order_payments.c.order_total == data.order_total,
                figures,
                order_payments.c.order_id != data.order_id,
                order_payments.c.created_at >= since,
            )
            .order_by(order_payments.c.created_at.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return _payment(row) if row is not None else None


def pay(*, conn: Connection, clock: Clock, program: Program, member_id: str, data: PaymentIn) -> Payment:
    """Burn points, or spend store credit, for part of order ``data.order_id``. Once per order and kind."""
    return pay_or_resend(conn=conn, clock=clock, program=program, member_id=member_id, data=data)[0]


def pay_or_resend(
    *, conn: Connection, clock: Clock, program: Program, member_id: str, data: PaymentIn
) -> tuple[Payment, bool]:
    """:func:`pay`, and whether the payment was there already (a resend, answered 200 as a purchase is): told
    under the locks, so that a resend that arrives while the first is being written is one too."""
    lock_members(conn, [member_id])
    member = members.require_active(conn=conn, program_id=program.id, member_id=member_id)  # and their address
    lock_order(conn, program_id=program.id, order_id=data.order_id)
    existing = _find(conn, program.id, data.order_id, data.kind)
    if existing is not None:
        if (
            existing.member_id != member_id
            or (existing.points, existing.order_total)
            != (
                data.points or 0,
                data.order_total,
            )
            or (data.kind == "credit" and existing.amount != data.amount)
        ):
            other = "by another member" if existing.member_id != member_id else "with other amounts"
            raise Conflict(
                "payment_conflict",
                f"Order {data.order_id!r} already has a {data.kind} payment {other}; cancel it first to pay "
                "differently.",
                field="order_id",
            )
        return _with_balances(conn, existing, member_id, shown=(clock, program)), True
    if _order_recorded(conn, program.id, data.order_id):
        raise Conflict(
            "order_already_recorded",
            f"Order {data.order_id!r} was already recorded as a purchase: pay with points at checkout, before it.",
            field="order_id",
        )
    now = clock.now()
    money = money_asset(program.currency, program.currency_exponent)
    booking = ledger.Booking(
        program_id=program.id,
        member_id=member_id,
        kind="pay",
        reason=f"Paid with {'points' if data.kind == 'points' else 'store credit'}: order #{data.order_id}",
        reason_code="paid_with_points" if data.kind == "points" else "paid_with_credit",
        now=now,
        effective_at=now,
        details={"order_id": data.order_id},
    )
    already, _ = _paid(conn, program.id, data.order_id)
    if data.kind == "points":
        assert data.points is not None
        points, amount = data.points, points_value(program, data.points)
        cap = divide(data.order_total * program.pay_with_points_max_percent, 100, Rounding.FLOOR)
        if program.pay_with_points_max_percent == 0:
            raise Unprocessable(
                "pay_with_points_disabled", "This program does not take points as payment.", field="kind"
            )
        if amount < 1:
            fewest = divide(program.redeem_points, program.redeem_amount, Rounding.CEILING)  # worth one minor unit
            raise Unprocessable(
                "payment_too_small",
                f"{points} points are worth less than one minor unit; use at least {fewest}.",
                field="points",
                min_points=fewest,
            )
        worth_exactly = divide(amount * program.redeem_points, program.redeem_amount, Rounding.CEILING)
        if worth_exactly != points:  # the points beyond would be burnt for nothing
            above = divide((amount + 1) * program.redeem_points, program.redeem_amount, Rounding.CEILING)
            raise Unprocessable(
                "payment_points_not_whole",
                f"{points} points are worth {program.money(amount)} and a fraction, which cannot be paid; use "
                f"{worth_exactly} points ({program.money(amount)}) or {above} ({program.money(amount + 1)}).",
                field="points",
                lower_points=worth_exactly,
                higher_points=above,
            )
        if amount > cap:
            raise Unprocessable(
                "payment_above_share",
                f"Points may pay at most {program.pay_with_points_max_percent}% of this order "
                f"({program.money(cap)}); {points} points are worth {program.money(amount)}.",
                field="points",
                max_amount=cap,
                max_points=_max_points(program, cap),
            )
        _refuse_above_total(data, already + amount)
        try:
            transaction_id = ledger.spend(conn, booking, amount=points, sink="redeemed")
        except ledger.InsufficientPoints as short:
            raise Unprocessable(
                "insufficient_points",
                f"{short.needed} points asked; {short.available} are available.",
                field="points",
                needed=short.needed,
                available=short.available,
                missing=short.needed - short.available,
            ) from None
    else:
        assert data.amount is not None
        points, amount = 0, data.amount
        _refuse_above_total(data, already + amount)
        wallet_id = open_wallet(conn, program_id=program.id, member_id=member_id, money=money)
        balance = ledger.balances_of(conn, member_id, "wallet")
        if amount > balance:
            raise Unprocessable(
                "insufficient_credit",
                f"{program.money(amount)} asked; the member has {program.money(balance)} of store credit.",
                field="amount",
                needed=amount,
                available=balance,
            )
        entry = booking.entry(
            [
                Posting(wallet_id, -amount, member_id=member_id, asset=money),
                ledger.program_posting(program.id, "credit_spent", amount, member_id=member_id, asset=money),
            ]
        )
        write(conn, [entry])
        transaction_id = entry.id
    payment_id = new_id("payment")
    conn.execute(
        insert(order_payments).values(
            id=payment_id,
            program_id=program.id,
            member_id=member_id,
            order_id=data.order_id,
            kind=data.kind,
            state="paid",
            order_total=data.order_total,
            amount=amount,
            points=points,
            transaction_id=transaction_id,
            channel=data.channel,
            created_at=now,
        )
    )
    paid = _with_balances(conn, _get(conn, program.id, payment_id), member_id)
    _tell_paid(conn, program, paid, member, channel=data.channel, now=now)
    return paid, False


def _tell_paid(
    conn: Connection, program: Program, payment: Payment, member: Any, *, channel: str | None, now: datetime
) -> None:
    """The merchant's mailer hears of points (``points_spent``) or store credit (``credit_spent``) paying for an
    order, with what the member has left. ``member``: their row read under the lock (their address)."""
    told: dict[str, Any] = {"order_id": payment.order_id, "payment_id": payment.id, "channel": channel}
    told |= {"amount": payment.amount, "currency": program.currency}
    if payment.kind == "points":
        outbox.tell_points(conn, program.id, "points_spent", payment.member_id, told | {"points": payment.points}, now)
        return
    who = outbox.contact(conn, payment.member_id, member)
    payload = who | told | {"wallet": payment.wallet}
    outbox.emit(
        conn, program_id=program.id, type_="credit_spent", subject_id=payment.member_id, payload=payload, now=now
    )


def _tell_refunded(
    conn: Connection, program: Program, payment: Payment, *, why: str, points: int, expired: int, amount: int, now: Any
) -> None:
    """The mailer hears of what a cancelled checkout or a return gave back of a payment (``payment_refunded``):
    ``points`` came back, of which ``expired`` expired at once (their lots had expired meanwhile), or
    ``amount`` of store credit."""
    told: dict[str, Any] = {"order_id": payment.order_id, "payment_id": payment.id, "kind": payment.kind, "why": why}
    told |= {"points": points - expired, "points_expired": expired, "amount": amount}
    told["wallet"] = ledger.balances_of(conn, payment.member_id, "wallet")
    outbox.tell_points(conn, program.id, "payment_refunded", payment.member_id, told, now)


def _max_points(program: Program, cap: int) -> int:
    """The most points that pay at most ``cap`` and are taken (none burnt for a fraction): the fewest that pay
    ``cap`` itself when a point is worth less than a minor unit (150 points to €1: 752 pay €5.01), else as many
    as ``cap`` holds whole (a point worth 5 cents: 99 of them for €4.99)."""
    points = divide(cap * program.redeem_points, program.redeem_amount, Rounding.CEILING)
    return points if points_value(program, points) <= cap else points - 1


def _refuse_above_total(data: PaymentIn, paid: int) -> None:
    if paid > data.order_total:
        raise Unprocessable(
            "payment_above_total",
            f"Points and credit would pay {paid}, more than the order's {data.order_total}.",
            field="order_total",
        )


def cancel(*, conn: Connection, clock: Clock, program: Program, member_id: str, payment_id: str) -> Payment:
    """The checkout was abandoned: the points go back to their lots (or expire), the credit to the wallet."""
    lock_members(conn, [member_id])
    # an erased member's points and credit left with the erasure: none comes back to them (member_erased)
    members.require_active(conn=conn, program_id=program.id, member_id=member_id)
    payment = _get(conn, program.id, payment_id)
    if payment.member_id != member_id:
        raise NotFound("payment_not_found", f"No payment {payment_id} for this member.", field="payment_id")
    if payment.state == "cancelled":
        return _with_balances(conn, payment, member_id, shown=(clock, program))
    lock_order(conn, program_id=program.id, order_id=payment.order_id)  # a purchase of it under way commits first
    if _order_recorded(conn, program.id, payment.order_id):
        raise Conflict(
            "order_already_recorded",
            "The order was recorded as a purchase: a return gives the points back, not a cancellation.",
            field="payment_id",
        )
    now = clock.now()
    points, amount = payment.points, payment.amount if payment.kind == "credit" else 0
    expired = _give_back(conn, program, payment, points=points, amount=amount, now=now, reason="cancelled")
    _tell_refunded(conn, program, payment, why="cancelled", points=points, expired=expired, amount=amount, now=now)
    conn.execute(
        update(order_payments)
        .where(order_payments.c.id == payment.id)
        .values(
            state="cancelled",
            closed_at=now,
            points_returned=payment.points,
            amount_returned=payment.amount,
        )
    )
    return _with_balances(conn, _get(conn, program.id, payment_id), member_id, shown=(clock, program))


def payers(conn: Connection, *, program_id: str, order_id: str) -> list[str]:
    """The members who paid part of ``order_id`` with points or credit (usually one, or none)."""
    query = (
        select(order_payments.c.member_id)
        .where(
            order_payments.c.program_id == program_id,
            order_payments.c.order_id == order_id,
            order_payments.c.state == "paid",
        )
        .distinct()
    )
    return sorted(conn.execute(query).scalars())


def on_return(
    *, conn: Connection, clock: Clock, program: Program, order_id: str, refunded: int, total: int, buyer: str | None
) -> dict[str, int]:
    """An order was (partly) returned: give back points and credit in proportion to ``refunded`` of ``total``.

    Cumulative and exact: returning the whole order in several goes gives back exactly what was paid.
    The totals count every payer; what went to payers other than ``buyer`` (the member the order was
    recorded for) is also said apart (``…_to_others``), so that the customer is told only what is theirs.
    The caller holds the member's lock."""
    found: dict[str, int] = {}
    rows = conn.execute(
        select(order_payments).where(
            order_payments.c.program_id == program.id,
            order_payments.c.order_id == order_id,
            order_payments.c.state == "paid",
        )
    ).mappings()
    for row in list(rows):
        payment = _payment(row)
        erased = members.is_erased(conn=conn, member_id=payment.member_id)
        share = min(refunded, total)
        points_due = divide(payment.points * share, total, Rounding.FLOOR) if total else payment.points
        amount_due = divide(payment.amount * share, total, Rounding.FLOOR) if total else payment.amount
        points = points_due - payment.points_returned
        amount = amount_due - payment.amount_returned if payment.kind == "credit" else 0
        if points <= 0 and amount <= 0:
            continue
        lapsed = _give_back(
            conn,
            program,
            payment,
            points=max(points, 0),
            amount=max(amount, 0),
            now=clock.now(),
            reason="returned",
        )
        conn.execute(
            update(order_payments)
            .where(order_payments.c.id == payment.id)
            .values(points_returned=points_due, amount_returned=amount_due if payment.kind == "credit" else 0)
        )
        others = "_to_others" if payment.member_id != buyer else ""
        tallies = [("points_expired", lapsed)]  # their lots expired since the payment: they expire now instead
        if erased:  # the payer asked to be forgotten: what comes back leaves at once, as the rest did then
            removed, forfeited = _remove_from_erased(conn, program, payment, now=clock.now())
            for key, value in (("points_removed", removed), ("store_credit_forfeited", forfeited)):
                if value:
                    found[key] = found.get(key, 0) + value
        else:
            tallies.append(("points_given_back", points - lapsed))
            if amount > 0:
                found["credit_given_back"] = found.get("credit_given_back", 0) + amount
            back = {"points": max(points, 0), "expired": lapsed, "amount": max(amount, 0)}
            _tell_refunded(conn, program, payment, why="returned", **back, now=clock.now())
        for key, value in tallies:
            if value > 0:
                found[key] = found.get(key, 0) + value
                if others:
                    found[key + others] = found.get(key + others, 0) + value
    return found


def _remove_from_erased(conn: Connection, program: Program, payment: Payment, *, now: Any) -> tuple[int, int]:
    """Take what a return gave back to an erased payer out again, as their erasure did with the rest: points to
    the program's ``adjusted`` account, store credit forfeited. Returns (points, credit) removed."""
    from palier.ledger.closing import close_points
    from palier.members.erasure import REASON, forfeit_credit

    booking = ledger.Booking(
        program_id=program.id,
        member_id=payment.member_id,
        kind="erase",
        reason=f"{REASON}: what order #{payment.order_id} gave back leaves too",
        reason_code="member_erased",
        now=now,
        effective_at=now,
        details={"order_id": payment.order_id, "payment_id": payment.id},
    )
    closed = close_points(conn, booking)
    credit = forfeit_credit(conn, booking, program, forfeit=True)
    return closed.available + closed.pending, credit


def _give_back(
    conn: Connection, program: Program, payment: Payment, *, points: int, amount: int, now: Any, reason: str
) -> int:
    """Give ``points`` (or ``amount`` of credit) of ``payment`` back; returns the points that expired instead."""
    booking = ledger.Booking(
        program_id=program.id,
        member_id=payment.member_id,
        kind="pay_back",
        reason=f"Payment for order #{payment.order_id} {reason}"
        + ("" if payment.kind == "points" else ": store credit back"),  # points: give_back says what came back
        reason_code="payment_" + reason,
        now=now,
        effective_at=now,
        details={"order_id": payment.order_id, "payment_id": payment.id},
    )
    if payment.kind == "points":
        given = ledger.give_back(
            conn,
            booking,
            original_id=payment.transaction_id,
            amount=points,
            already=payment.points_returned,
            sink="redeemed",
        )
        return given.expired
    money = money_asset(program.currency, program.currency_exponent)
    entry: Entry = booking.entry(
        [
            Posting(member_account(payment.member_id, "wallet"), amount, member_id=payment.member_id, asset=money),
            ledger.program_posting(program.id, "credit_spent", -amount, member_id=payment.member_id, asset=money),
        ]
    )
    write(conn, [entry])
    return 0


_sum_paid = select(func.coalesce(func.sum(order_payments.c.amount), 0), func.max(order_payments.c.order_total)).where(
    order_payments.c.program_id == bindparam("program_id"),
    order_payments.c.order_id == bindparam("order_id"),
    order_payments.c.state == "paid",
)  # built once: every purchase of a member runs it


def paid_otherwise(conn: Connection, *, program: Program, order_id: str, total: int) -> int:
    """Minor units of an order paid with points or store credit: no points are earned on them.

    The order being recorded with ``total``: refused (``order_total_below_payment``) if that is less than
    the total the payments were checked against at checkout, since points would then pay more than
    their share of it, or more than all of it. Takes the order's lock (:func:`lock_order`) first.
    """
    lock_order(conn, program_id=program.id, order_id=order_id)
    paid, declared = _paid(conn, program.id, order_id)
    if declared is not None and total < declared:
        raise Unprocessable(
            "order_total_below_payment",
            f"Order {order_id!r} was paid with points or store credit at checkout for a total of "
            f"{program.money(int(declared))}, but is recorded with a total of {program.money(total)}. Record the "
            "order as it was paid, or cancel the payment and pay again.",
            field="order_id",
            paid_for_total=declared,
            total=total,
        )
    return paid


def _paid(conn: Connection, program_id: str, order_id: str) -> tuple[int, int | None]:
    """What an order's payments paid, and the largest order total they were checked against (None: no payment)."""
    paid, declared = conn.execute(_sum_paid, {"program_id": program_id, "order_id": order_id}).one()
    return int(paid or 0), None if declared is None else int(declared)


def wallet(*, conn: Connection, program: Program, member_id: str) -> Wallet:
    members.require_known(conn=conn, program_id=program.id, member_id=member_id)
    return Wallet(member_id=member_id, currency=program.currency, balance=ledger.balances_of(conn, member_id, "wallet"))


def _order_recorded(conn: Connection, program_id: str, order_id: str) -> bool:
    from palier.activity.tables import purchases

    found = conn.execute(
        select(purchases.c.event_id).where(purchases.c.program_id == program_id, purchases.c.order_id == order_id)
    ).first()
    return found is not None


def _find(conn: Connection, program_id: str, order_id: str, kind: str) -> Payment | None:
    row = (
        conn.execute(
            select(order_payments).where(
                order_payments.c.program_id == program_id,
                order_payments.c.order_id == order_id,
                order_payments.c.kind == kind,
                order_payments.c.state == "paid",
            )
        )
        .mappings()
        .first()
    )
    return _payment(row) if row is not None else None


def member_payments(*, conn: Connection, program_id: str, member_id: str) -> list[Payment]:
    """Every part of an order the member paid with points or store credit, oldest first (cancelled ones too)."""
    rows = conn.execute(
        select(order_payments)
        .where(order_payments.c.program_id == program_id, order_payments.c.member_id == member_id)
        .order_by(order_payments.c.created_at, order_payments.c.id)
    ).mappings()
    return [_payment(row) for row in rows]


def get_payment(*, conn: Connection, program_id: str, payment_id: str) -> Payment:
    """One of the program's payments by its id (``payment_not_found`` otherwise)."""
    return _get(conn, program_id, payment_id)


def _get(conn: Connection, program_id: str, payment_id: str) -> Payment:
    row = (
        conn.execute(
            select(order_payments).where(order_payments.c.id == payment_id, order_payments.c.program_id == program_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound("payment_not_found", f"No payment {payment_id} in this program.", field="payment_id")
    return _payment(row)


def _payment(row: Any) -> Payment:
    data = {k: row[k] for k in Payment.model_fields if k in row}
    data["created_at"] = utc(data["created_at"])
    data["closed_at"] = utc(data["closed_at"]) if data.get("closed_at") else None
    return Payment.model_validate(data)


def _with_balances(
    conn: Connection, payment: Payment, member_id: str, *, shown: tuple[Clock, Program] | None = None
) -> Payment:
    """The payment with the member's balances: as stored just after a debit (it caught the member up), or
    with ``shown`` (clock, program) as the balance shows them, without points past their expiry."""
    if shown is None:
        payment.available = ledger.balances_of(conn, member_id, "available")
    else:
        clock, program = shown
        payment.available = members.balance(conn=conn, clock=clock, program=program, member_id=member_id).available
    payment.wallet = ledger.balances_of(conn, member_id, "wallet")
    return payment
