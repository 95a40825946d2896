"""The till: find the member (card scan, phone, e-mail) or enrol a new one, see their points and coupons, use
one or pay with points, record the sale so that it earns, and refund a ticket.

Made for a counter: one big search box that a barcode scanner fills and submits (it types, then Enter),
big buttons, and each action one form post. Coupons are used and points paid through the same services
as the API (``rewards.use_coupon``, ``payments.pay``, ``activity.record_purchase`` and ``record_return``),
with the ticket number as the order id so that a double tap is answered once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from palier.activity import service as activity
from palier.activity.models import EventResult, PurchaseIn, ReturnIn
from palier.db import Database
from palier.errors import PalierError, Unprocessable
from palier.members import service as members
from palier.members.identities import is_payment_card_number, normalise
from palier.members.models import Member, MemberCreate
from palier.memberships import service as memberships
from palier.programs.models import Program
from palier.programs.service import record_audit
from palier.rewards import codes, payments
from palier.rewards import service as rewards
from palier.rewards.models import CouponUse, Payment, PaymentIn
from palier.text import mask_card_numbers, points_word
from palier.web import i18n, once, present
from palier.web.console import fees
from palier.web.console.access import current, requires, staff_router
from palier.web.console.forms import errors_by_field, parse_money, whole
from palier.web.console.people import shown_member
from palier.web.console.search import find_members, listed, namesakes, posted_search, scanned_once
from palier.web.render import render

router = staff_router()
_TICKET_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
FactIn = TypeVar("FactIn", PurchaseIn, ReturnIn)
REPEAT_WINDOW = timedelta(minutes=10)  # a payment like one made this recently asks before paying again


def _ticket(request: Request) -> str:
    """A ticket number for the forms of this page: posting the same form twice gives the same answer."""
    # Letters for the random part: a long run of digits could pass for a card number (and be refused).
    zone = ZoneInfo(current(request).program.timezone)
    now = request.app.state.clock.now().astimezone(zone)  # the shop's time, as on its receipts
    return f"T{now:%H%M}-{''.join(secrets.choice(_TICKET_LETTERS) for _ in range(5))}"


@router.get("/till")
@requires("till.use")
def till(request: Request) -> Response:
    return render(request, "console/till.html", staff=current(request), section="till", q="", rows=[], searched=False)


@router.post("/till")
@requires("till.use")
async def till_search(request: Request) -> Response:
    """One member found: their page; several: a choice; none: the way to enrol them."""
    who = current(request)
    q, found = await posted_search(request, who.program)
    if len(found) == 1:
        return RedirectResponse(f"/till/members/{found[0].id}", status_code=303)
    if not found and (owner := _coupon_owner(request, q)) is not None:  # the QR code of a coupon, scanned
        query = urlencode({"ok": "scanned", "code": codes.normalise(q)})
        return RedirectResponse(f"/till/members/{owner}?{query}", status_code=303)
    rows, more = listed(found)
    return render(
        request, "console/till.html", staff=who, section="till", q=q, rows=rows, more=more, searched=bool(q),
        page_url="/till", mistyped=not found and _mistyped_coupon(q),
    )  # fmt: skip


def _member(request: Request, member_id: str, *, status: int = 200, **ctx: Any) -> HTMLResponse:
    who = current(request)
    language = i18n.request_language(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        view = shown_member(conn, request, member_id, history=5)
        refunded, paid = ctx.pop("fee_refunded", None), ctx.pop("fee_paid", None)
        if who.may("memberships.refund") or who.may("sales.record"):  # the fees, to give one back; the plans
            ctx |= fees.fees_shown(
                conn, program_id=who.program.id, member_id=view.member.id, refunded=refunded, paid=paid
            )
            ctx["plans"] = [
                p for p in memberships.list_plans(conn=conn, program_id=who.program.id) if p.status == "active"
            ]
        if who.may("points.pay") and view.member.status == "active":  # what the customer may redeem here
            ctx["offered"] = rewards.catalog(
                conn=conn, clock=request.app.state.clock, program=who.program, member_id=view.member.id, channel="store"
            )
        gives, in_store = {}, []
        for coupon in view.usable_coupons:
            reward = rewards.reward_of(conn=conn, program_id=who.program.id, coupon=coupon)  # its terms as issued
            if reward.channels is None or "store" in reward.channels:  # the others are for the web shop, the app…
                in_store.append(coupon)
                gives[coupon.code] = present.coupon_gives(reward, who.program, language)
    ctx.setdefault("error", None)
    ctx.setdefault("ok", None)
    ctx.setdefault("sent", {})  # what a refused payment form held, shown again
    ctx.setdefault("repeat", None)  # a payment like this one, made minutes ago: confirm before paying again
    ctx.setdefault("failed", None)  # the box of the payment form a refusal is about
    ctx.setdefault("fees", [])
    ctx.setdefault("offered", [])
    ctx.setdefault("portal_link", None)  # a sign-in link to the member's portal, just made: on this answer only
    ctx.setdefault("plans", [])
    ctx.setdefault("fee_refunded", None)
    ctx.setdefault("fee_paid", None)
    ctx.setdefault("fee_refused", None)
    if request.method != "GET":  # a form answered here (refused, or asked again): the address of the page, not
        ctx.setdefault("page_url", f"/till/members/{view.member.id}")  # the form's, for a reload and the FR/EN switch
    return render(
        request,
        "console/till_member.html",
        status=status,
        staff=who,
        section="till",
        v=view,
        gives=gives,
        in_store=in_store,
        ticket=_ticket(request),
        refund_id=f"R{_ticket(request)}",  # a refund form sent twice is one refund
        worth=lambda points: present.money(payments.points_value(who.program, points), who.program, language),
        **ctx,
    )


@router.get("/till/members/{member_id}")
@requires("till.use")
def till_member(request: Request, member_id: str, ok: str | None = None, code: str | None = None,
                payment: str | None = None, order: str | None = None, fee_refunded: str | None = None,
                fee_paid: str | None = None) -> HTMLResponse:  # fmt: skip
    done = _done(request, member_id[:40], ok, code, payment, order)
    unusable = _why_unusable(request, member_id, code) if ok == "scanned" and code else None
    return _member(request, member_id, ok=done, unusable=unusable, fee_refunded=fee_refunded, fee_paid=fee_paid)


def _done(
    request: Request, member_id: str, ok: str | None, code: str | None, payment: str | None, order: str | None
) -> dict[str, Any] | None:
    """What the last form did, as the page says it, read from what was recorded: a link with made-up figures
    (``?ok=paid&points=5000``) shows no payment that was never made."""
    if ok in ("enrolled", "scanned"):
        return {"kind": ok, "code": code, "points": None, "amount": None, "order_id": None}
    who = current(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        if ok == "coupon" and code:
            try:
                coupon = rewards.find_coupon(conn=conn, program_id=who.program.id, code=code[:40])
            except PalierError:
                return None
            if coupon.member_id == member_id and coupon.state == "used":
                done = {"kind": ok, "code": coupon.code, "points": None, "amount": coupon.discount or 0}
                return done | {"order_id": coupon.order_id}
        if ok == "redeemed" and code:
            return _redeemed(conn, who.program.id, member_id, code[:40], i18n.request_language(request))
        if ok in ("paid", "credit") and payment:
            try:
                paid = payments.get_payment(conn=conn, program_id=who.program.id, payment_id=payment[:40])
            except PalierError:
                return None
            if (
                paid.member_id == member_id
                and paid.state == "paid"
                and ok == ("paid" if paid.kind == "points" else "credit")
            ):
                return {
                    "kind": ok,
                    "code": None,
                    "points": paid.points,
                    "amount": paid.amount,
                    "order_id": paid.order_id,
                }
        if ok in ("sale", "refund") and order:
            kind = "purchase" if ok == "sale" else "return"
            fact = activity.stored_fact(conn=conn, program_id=who.program.id, type_=kind, external_id=order[:64])
            if fact is not None and fact[0].member_id == member_id:
                result, order_id = fact[0], str(fact[1]["order_id"])
                details = result.details
                recorded = activity.recorded_order(conn=conn, program_id=who.program.id, order_id=order_id)
                return {
                    "kind": ok,
                    "code": None,
                    "points": abs(result.points),
                    "amount": recorded[1] if recorded else None,
                    "order_id": order_id,
                    "matures_at": result.matures_at if result.pending else None,
                    # to this customer; to another member who paid part of the ticket, said apart
                    "given_back": details.get("points_given_back", 0) - details.get("points_given_back_to_others", 0),
                    "given_to_others": details.get("points_given_back_to_others", 0),
                    "credit_back": details.get("credit_given_back", 0),  # not to be given in cash too
                    # their lots ran out meanwhile
                    "expired_back": details.get("points_expired", 0) - details.get("points_expired_to_others", 0),
                }
    return None


def _redeemed(conn: Any, program_id: str, member_id: str, code: str, language: str) -> dict[str, Any] | None:
    """The coupon a reward redeemed at the till gave the member (its store credit, for a store_credit reward)."""
    try:
        coupon = rewards.find_coupon(conn=conn, program_id=program_id, code=code)
    except PalierError:
        return None
    if coupon.member_id != member_id or coupon.source != "redeem":
        return None
    credit = coupon.amount if coupon.kind == "store_credit" else None  # landed in the wallet: no coupon to use
    title = getattr(coupon.title, language)
    return {"kind": "redeemed", "code": coupon.code, "points": coupon.points, "title": title, "credit": credit,
            "amount": None, "order_id": None}  # fmt: skip


def _why_unusable(request: Request, member_id: str, code: str) -> str | None:
    """Why the member's coupon scanned cannot be used in store, and since when; None while it can."""
    program, language = current(request).program, i18n.request_language(request)
    with request.app.state.db.read() as conn:
        try:
            coupon = rewards.find_coupon(conn=conn, program_id=program.id, code=code[:40])
            reward = rewards.reward_of(conn=conn, program_id=program.id, coupon=coupon)
        except PalierError:
            return None
    if coupon.member_id != member_id:
        return None
    t, shown = i18n.translator(language), present.display_code(coupon.code)
    expired = coupon.expires_at is not None and coupon.expires_at <= request.app.state.clock.now()
    if coupon.state == "used" and coupon.used_at is not None:
        when = present.moment(coupon.used_at, program, language)
        where = "store" if coupon.channel == "store" else "order" if coupon.order_id else "wallet"
        return t(f"console.till.scanned_used_{where}", code=shown, when=when, order=coupon.order_id or "")
    if coupon.state == "cancelled" and coupon.closed_at is not None:
        return t("console.till.scanned_cancelled", code=shown, when=present.moment(coupon.closed_at, program, language))
    if (coupon.state == "expired" or expired) and coupon.expires_at is not None:
        return t("console.till.scanned_expired", code=shown, when=present.moment(coupon.expires_at, program, language))
    if coupon.state == "issued" and reward.channels is not None and "store" not in reward.channels:
        channels = ", ".join(t(f"console.channel.{channel}") for channel in reward.channels)
        return t("console.till.scanned_not_in_store", code=shown, channels=channels)
    return None


@router.post("/till/members/{member_id}/coupons/{code}/use")
@requires("coupons.use")
async def use_coupon(request: Request, member_id: str, code: str) -> Response:
    who = current(request)
    form = await request.form()
    sent = _sent(form, "coupon", "order_id", "order_total") | {"code": code[:40]}  # which coupon's form it was
    try:
        # the receipt's total: the coupon's minimum order is checked and its discount worked out on it
        total = parse_money(str(form.get("order_total", "")), who.program.currency_exponent, field="order_total")
        use = CouponUse.model_validate(
            {
                "channel": "store",
                "member_id": member_id[:40],
                "order_id": str(form.get("order_id", "")).strip() or _ticket(request),
                "order_total": total,
            }
        )

        def command(conn: Any) -> str:
            coupon, _ = rewards.use_coupon(
                conn=conn, clock=request.app.state.clock, program=who.program, code=code[:40], use=use
            )
            query = urlencode({"ok": "coupon", "code": coupon.code})
            return once.led_to(conn, request, f"/till/members/{member_id}?{query}")

        location = once.run(request, command)
    except (ValidationError, PalierError) as error:
        return _refused(request, member_id, error, sent)
    return RedirectResponse(location, status_code=303)


@router.post("/till/members/{member_id}/pay")
@requires("points.pay")
async def pay_with_points(request: Request, member_id: str) -> Response:
    """Part of the ticket paid with points (``kind=points``) or with the member's store credit (``kind=credit``)."""
    who = current(request)
    form = await request.form()
    kind = "credit" if form.get("kind") == "credit" else "points"
    fields = ("order_id", "order_total", "points" if kind == "points" else "amount")
    sent = _sent(form, kind, *fields)
    exponent = who.program.currency_exponent
    try:
        total = parse_money(str(form.get("order_total", "")), exponent, field="order_total")
        data: dict[str, object] = {
            "kind": kind,
            "order_id": str(form.get("order_id", "")).strip() or _ticket(request),
            "order_total": total,
            "channel": "store",
        }
        if kind == "points":
            points_text = str(form.get("points", "")).strip()
            data["points"] = whole(points_text)
        else:
            data["amount"] = parse_money(str(form.get("amount", "")), exponent, field="amount")
        payment = PaymentIn.model_validate(data)

        def command(conn: Any) -> str:
            def repeated_payment(since: datetime) -> Payment | None:
                return payments.looks_repeated(
                    conn=conn, program=who.program, member_id=member_id[:40], data=payment, since=since
                )

            _ask_if_repeated(request, conn, member_id[:40], form, repeated_payment)
            paid = payments.pay(
                conn=conn, clock=request.app.state.clock, program=who.program, member_id=member_id[:40], data=payment
            )
            query = urlencode({"ok": "paid" if kind == "points" else "credit", "payment": paid.id})
            return once.led_to(conn, request, f"/till/members/{member_id}?{query}")

        location = once.run(request, command)
    except _Repeated as asked:
        return _member(request, member_id, status=409, repeat=asked.repeat, sent=sent)
    except (ValidationError, PalierError) as error:
        return _refused(request, member_id, error, sent)
    return RedirectResponse(location, status_code=303)


def _sent(form: Any, kind: str, *names: str) -> dict[str, str]:
    """What a till form held, to show again if it is refused (a card number typed in it masked) and its kind."""
    return {name: mask_card_numbers(str(form.get(name, "")).strip()[:64]) for name in names} | {"kind": kind}


# The boxes of the till's forms, by the field a refusal names (a sale's or a refund's where theirs differ).
_LABELS = {"order_id": "console.till.ticket", "order_total": "console.till.order_total",
           "points": "console.till.points", "amount": "console.till.credit_amount"}  # fmt: skip
_LABELS_OF = {
    "sale": {"order_total": "console.till.sale_total"},
    "refund": {"order_id": "console.till.refund_ticket", "amount": "console.till.refund_amount"},
}


def _refused(
    request: Request, member_id: str, error: ValidationError | PalierError, sent: dict[str, str] | None = None
) -> HTMLResponse:
    """The member's till page again, saying why the form was refused and, where a box of the form is at fault,
    which one ("Points to use: Give at least 1."), that box marked (``failed``) so that it is focused and read
    out with the refusal; what the form held is shown again."""
    field: str | None
    if isinstance(error, ValidationError):
        field, said = next(iter(errors_by_field(error, i18n.request_language(request)).items()))
    else:
        field, said = error.field, _in_words(request, error)
    kind = (sent or {}).get("kind", "")
    if kind == "sale" and field and (field.startswith("lines") or (field == "order_id" and _about_total(error))):
        field = "order_total"  # the ticket's one line holds its total, and a total below what was paid is its fault
    labels = _LABELS | _LABELS_OF.get(kind, {})
    status = error.status if isinstance(error, PalierError) else 422  # a conflict stays a 409
    if sent is None or field not in labels:
        return _member(request, member_id, status=status, error=said, sent=sent or {})
    language = i18n.request_language(request)
    t, name = i18n.translator(language), current(request).program.points_name_in(language)
    plural = points_word(2, name, language)  # the boxes say the program's points: "Étoiles à utiliser"
    said = t("console.till.field_error", field=t(labels[field], name=plural, Name=plural.capitalize()), message=said)
    return _member(request, member_id, status=status, error=said, sent=sent, failed=field)


def _about_total(error: ValidationError | PalierError) -> bool:
    return isinstance(error, PalierError) and error.code == "order_total_below_payment"


class _Repeated(Exception):
    """The till's form looks like one recorded minutes ago under another ticket: asked about first (``repeat``
    says what was recorded, for the question); the command writes nothing."""

    def __init__(self, repeat: Any) -> None:
        super().__init__("asked first")
        self.repeat = repeat


def _ask_if_repeated(
    request: Request, conn: Any, member_id: str, form: Any, twin_since: Callable[[datetime], Any | None]
) -> None:
    """First in a till command: raise :class:`_Repeated` if ``twin_since`` finds the same thing recorded for
    the member within ``REPEAT_WINDOW`` and the cashier has not confirmed (``repeat=yes``). The check runs under
    the member's repeat lock, in the command's transaction, so a second till sending the same form within
    milliseconds waits for the first and is asked, as a repeat sent later is."""
    activity.lock_repeat_check(conn=conn, program_id=current(request).program.id, member_id=member_id)
    if form.get("repeat") != "yes":
        twin = twin_since(request.app.state.clock.now() - REPEAT_WINDOW)
        if twin is not None:
            raise _Repeated(twin)


# --- the sale itself, and refunds ---------------------------------------------------------------------------


@router.post("/till/members/{member_id}/sale")
@requires("sales.record")
async def record_sale(request: Request, member_id: str) -> Response:
    """The ticket, recorded for the member as ``POST /v1/events/purchases`` would (channel ``store``): it earns
    the program's rate and rules on what was paid with money; a part paid with points or credit on the same
    ticket earns nothing."""
    who = current(request)
    form = await request.form()
    sent = _sent(form, "sale", "order_id", "order_total")
    clock = request.app.state.clock
    try:
        total = parse_money(str(form.get("order_total", "")), who.program.currency_exponent, field="order_total")
        if total == 0:
            raise Unprocessable(
                "zero_total", "A sale of 0 earns nothing: type the ticket's total.", field="order_total"
            )
        purchase = PurchaseIn.model_validate(
            {
                "order_id": str(form.get("order_id", "")).strip() or _ticket(request),
                "member": {"member_id": member_id[:40]},
                "channel": "store",
                "occurred_at": clock.now(),
                "currency": who.program.currency,
                "lines": [{"sku": "TILL", "name": "Till ticket", "quantity": 1, "unit_price": total}],
            }
        )
        card_key = request.app.state.settings.card_hash_key

        def command(conn: Any) -> Any:
            def repeated_sale(since: datetime) -> dict[str, Any] | None:
                twin = activity.looks_repeated_purchase(
                    conn=conn, program_id=who.program.id, member_id=member_id[:40], order_id=purchase.order_id,
                    total=total, since=since,
                )  # fmt: skip
                return None if twin is None else {"kind": "sale", "order_id": twin[0], "order_total": total,
                                                  "created_at": twin[1]}  # fmt: skip

            _ask_if_repeated(request, conn, member_id[:40], form, repeated_sale)
            sent_first = _as_first_sent(conn, who.program.id, "purchase", purchase.order_id, purchase)
            done = activity.record_purchase(
                conn=conn, clock=clock, program=who.program, purchase=sent_first, card_key=card_key
            )
            result, _ = _audited(request, conn, "till.sale", done, total=total)
            query = urlencode({"ok": "sale", "order": result.external_id})
            return once.led_to(conn, request, f"/till/members/{member_id}?{query}")

        location = once.run(request, command)
    except _Repeated as asked:
        return _member(request, member_id, status=409, repeat=asked.repeat, sent=sent)
    except (ValidationError, PalierError) as error:
        return _refused(request, member_id, error, sent)
    return RedirectResponse(location, 303)


@router.post("/till/members/{member_id}/refund")
@requires("sales.record")
async def refund(request: Request, member_id: str) -> Response:
    """Money given back on one of the member's tickets, as ``POST /v1/events/returns`` with an ``amount``: it
    takes back the points that part earned, and gives back the points or credit that paid for it."""
    who = current(request)
    form = await request.form()
    sent = _sent(form, "refund", "order_id", "amount")
    clock = request.app.state.clock
    try:
        amount = parse_money(str(form.get("amount", "")), who.program.currency_exponent, field="amount")
        ret = ReturnIn.model_validate(
            {
                "return_id": str(form.get("return_id", "")).strip() or f"R{_ticket(request)}",
                "order_id": str(form.get("order_id", "")).strip(),
                "occurred_at": clock.now(),
                "amount": amount,
            }
        )

        def command(conn: Any) -> Any:
            def repeated_refund(since: datetime) -> dict[str, Any] | None:
                twin = activity.looks_repeated_return(
                    conn=conn, program_id=who.program.id, member_id=member_id[:40], ret=ret, since=since
                )
                return None if twin is None else {"kind": "refund", "order_id": ret.order_id, "amount": amount,
                                                  "created_at": twin[1]}  # fmt: skip

            _ask_if_repeated(request, conn, member_id[:40], form, repeated_refund)
            recorded = activity.recorded_order(conn=conn, program_id=who.program.id, order_id=ret.order_id)
            if recorded is not None and recorded[0] != member_id[:40]:  # the receipt of someone else
                raise Unprocessable(
                    "order_of_another_member", "This ticket was recorded for another customer.", field="order_id"
                )
            sent_first = _as_first_sent(conn, who.program.id, "return", ret.return_id, ret)
            done = activity.record_return(conn=conn, clock=clock, program=who.program, ret=sent_first)
            result, _ = _audited(request, conn, "till.refund", done, amount=amount, order_id=ret.order_id)
            query = urlencode({"ok": "refund", "order": result.external_id})
            return once.led_to(conn, request, f"/till/members/{member_id}?{query}")

        location = once.run(request, command)
    except _Repeated as asked:
        return _member(request, member_id, status=409, repeat=asked.repeat, sent=sent | {"return_id": ret.return_id})
    except (ValidationError, PalierError) as error:
        return _refused(request, member_id, error, sent)
    return RedirectResponse(location, 303)


def _as_first_sent(conn: Any, program_id: str, type_: str, external_id: str, fact: FactIn) -> FactIn:
    """``fact`` dated as the first send of the same ticket (or refund), if there was one: a second tap seconds
    later is then the same fact, answered with the first result, not refused as the same ticket with other
    content. Any other difference (another total, another customer) is still refused as before."""
    stored = activity.stored_fact(conn=conn, program_id=program_id, type_=type_, external_id=external_id)
    if stored is None or not isinstance(stored[1].get("occurred_at"), str):
        return fact
    return fact.model_copy(update={"occurred_at": datetime.fromisoformat(stored[1]["occurred_at"])})


def _audited(request: Request, conn: Any, action: str, done: tuple[EventResult, bool], **details: Any) -> Any:
    """``done`` (a sale or refund recorded at the till), with an audit entry naming the staff user who
    recorded it: unlike a till that sends its sales, anyone at the counter could give points this way.
    A second tap, answered with the first result, adds none."""
    result, replayed = done
    if not replayed:
        record_audit(
            conn=conn, clock=request.app.state.clock, program_id=current(request).program.id,
            actor=f"staff:{current(request).user.id}", action=action, subject_id=result.external_id,
            details={"member_id": result.member_id, "points": result.points, **details},
        )  # fmt: skip
    return done


# --- enrolling a customer at the counter --------------------------------------------------------------------

ENROL_FIELDS = ("first_name", "last_name", "email", "phone", "card", "birthday", "language", "invitation_code")


def _coupon_owner(request: Request, text: str) -> str | None:
    """The member whose coupon ``text`` is (a coupon code scanned from its QR code), or None."""
    if not codes.is_well_formed(codes.normalise(text)):
        return None
    with request.app.state.db.read() as conn:
        try:
            coupon = rewards.find_coupon(conn=conn, program_id=current(request).program.id, code=text)
        except PalierError:
            return None
    return coupon.member_id


def _mistyped_coupon(text: str) -> bool:
    """``text`` is typed as a coupon's code is shown (``ABCD-EFGH-JKM``), but its check character says a
    character is wrong: a code read out from the customer's phone, with a slip."""
    groups = [len(group) for group in re.split(r"[\s\-\u2010-\u2015\u2212]+", text.strip())]
    code = codes.normalise(text)
    return groups == [4, 4, 3] and code.isalnum() and not codes.is_well_formed(code)


def _prefill(q: str | None) -> dict[str, str]:
    """What the search box held, in the field it belongs to: an e-mail, a phone number, or a card scanned."""
    text = scanned_once((q or "").strip()[:254])
    if not text:
        return {}
    if "@" in text:
        return {"email": text}
    digits = text.replace(" ", "").replace(".", "").replace("-", "")
    if digits.startswith("+") or (digits.startswith("0") and len(digits) == 10 and digits.isdigit()):
        return {"phone": text}
    if is_payment_card_number(digits):
        return {}  # a bank card swiped at the till: never a loyalty card number, and never shown again
    if codes.is_well_formed(codes.normalise(text)) or _mistyped_coupon(text):
        return {}  # a coupon's code, not a loyalty card
    if digits.isalnum() and any(ch.isdigit() for ch in digits):
        return {"card": text}
    return {"first_name": text} if text.replace(" ", "").isalpha() else {}


def _enrol_page(request: Request, *, status: int = 200, sent: dict[str, str], errors: dict[str, str],
                existing: str | None = None, same_name: list[Member] | None = None) -> HTMLResponse:  # fmt: skip
    who = current(request)
    sent = {name: mask_card_numbers(value) for name, value in sent.items()}  # a bank card is never shown back
    return render(
        request, "console/till_enrol.html", status=status, staff=who, section="till", sent=sent, errors=errors,
        existing=existing, invitation=who.program.enrolment == "invitation", same_name=same_name or [],
        page_url="/till/new-member",  # answered from the search's post too: the FR/EN switch opens the form
    )  # fmt: skip


@router.get("/till/new-member")
@requires("members.enrol")
def enrol_form(request: Request) -> HTMLResponse:
    return _enrol_page(request, sent={"language": i18n.request_language(request)}, errors={})


@router.post("/till/new-member/start")
@requires("members.enrol")
async def enrol_from_search(request: Request) -> HTMLResponse:
    """The enrolment form, with what the till searched for in its field (posted, to keep it out of the URL)."""
    q = str((await request.form()).get("q", ""))
    return _enrol_page(request, sent={"language": i18n.request_language(request)} | _prefill(q), errors={})


@router.post("/till/new-member")
@requires("members.enrol")
async def enrol_customer(request: Request) -> Response:
    """The same service as ``POST /v1/members`` (channel ``store``). A customer the till can find again:
    an e-mail, a phone or a loyalty card is needed. Someone already a member (or a second tap) is shown
    the way to their page, not enrolled twice."""
    who = current(request)
    form = await request.form()
    sent = {name: str(form.get(name, "")).strip() for name in ENROL_FIELDS}
    consents = {name: form.get(name) == "on" for name in ("email_marketing", "sms_marketing")}
    body: dict[str, Any] = {k: v for k, v in sent.items() if v and k != "card"}
    body |= {"channel": "store", "consents": consents}
    sent |= {name: "on" for name, given in consents.items() if given}  # ticked again if the form comes back
    if not (sent["email"] or sent["phone"] or sent["card"]):
        why = i18n.translate(i18n.request_language(request), "console.enrol.need_identity")
        return _enrol_page(request, status=422, sent=sent, errors={"email": why})
    if sent["card"]:
        body["identities"] = [{"kind": "card", "value": sent["card"]}]
    settings = request.app.state.settings
    if errors := _identity_errors(request, who.program, sent, settings.card_hash_key):  # each one at its field
        return _enrol_page(request, status=422, sent=sent, errors=errors)
    db: Database = request.app.state.db
    if form.get("namesake") != "yes":  # the same person enrolled before under another card? Asked once.
        with db.read() as conn:
            same = namesakes(conn=conn, program=who.program, first_name=sent["first_name"], last_name=sent["last_name"])
        if same:
            return _enrol_page(request, status=409, sent=sent, errors={}, same_name=same)
    try:
        data = MemberCreate.model_validate(body)

        def command(conn: Any) -> str:
            member = members.enrol(
                conn=conn, clock=request.app.state.clock, program=who.program, data=data,
                card_key=settings.card_hash_key, actor=f"staff:{who.user.id}",
            )  # fmt: skip
            return once.led_to(conn, request, f"/till/members/{member.id}?ok=enrolled")

        location = once.run(request, command)
    except ValidationError as error:
        errors = _enrol_errors(errors_by_field(error, i18n.request_language(request)))
        return _enrol_page(request, status=422, sent=sent, errors=errors)
    except PalierError as error:
        existing = None
        if error.code == "identity_taken":
            field = error.field or ""
            value = sent["card"] if field.startswith("identities") else sent.get(field, "")
            with db.read() as conn:
                found = find_members(conn=conn, program=who.program, text=value, card_key=settings.card_hash_key)
            existing = found[0].id if len(found) == 1 else None
        errors = _enrol_errors({error.field or "email": _in_words(request, error)})
        return _enrol_page(request, status=error.status, sent=sent, errors=errors, existing=existing)
    return RedirectResponse(location, status_code=303)


def _identity_errors(request: Request, program: Program, sent: dict[str, str], card_key: bytes) -> dict[str, str]:
    """What is wrong with each identity typed, all at once (the service stops at the first)."""
    errors = {}
    for kind, name in (("email", "email"), ("phone", "phone"), ("card", "card")):
        if sent[name]:
            try:
                normalise(kind, sent[name], field=name, card_key=card_key, default_country=program.default_country)
            except PalierError as error:
                errors[name] = _in_words(request, error)
    return errors


def _in_words(request: Request, error: PalierError) -> str:
    language, program = i18n.request_language(request), current(request).program
    name = program.points_name_in(language)
    return i18n.said(language, error, points_name=name, money=lambda amount: program.money(amount, language))


def _enrol_errors(found: dict[str, str]) -> dict[str, str]:
    """Field errors under the form's names (a card is ``identities[0].value`` to the service)."""
    return {("card" if field.startswith("identities") else field): message for field, message in found.items()}
