"""Members in the console: search by any identity, detail with balances and history, manual adjustment,
merging a duplicate account of the same person into the one shown, and a member's data exported or erased."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import Connection

from palier.activity import service as activity
from palier.activity.models import AdjustmentIn
from palier.db import Database
from palier.errors import PalierError
from palier.members import erasure
from palier.members import service as members
from palier.members.export import export as export_member
from palier.members.export import record_export
from palier.members.models import Balance, ErasureIn, Member
from palier.web import history_text, i18n, once
from palier.web.console import fees
from palier.web.console.access import current, requires, staff_router
from palier.web.console.forms import errors_by_field
from palier.web.console.people import shown_member
from palier.web.console.search import MAX_FOUND, display_name, listed, posted_search
from palier.web.render import render

router = staff_router()


@router.get("/console/members")
@requires("members.view")
def members_page(request: Request) -> Response:
    return render(request, "console/members.html", staff=current(request), section="members", q="", rows=[])


@router.post("/console/members")
@requires("members.view")
async def members_search(request: Request) -> Response:
    who = current(request)
    q, found = await posted_search(request, who.program)
    if len(found) == 1:
        return RedirectResponse(f"/console/members/{found[0].id}", status_code=303)
    rows, more = listed(found)
    return render(
        request, "console/members.html", staff=who, section="members", q=q, rows=rows, more=more,
        page_url="/console/members",
    )  # fmt: skip


def _detail(
    request: Request, member_id: str, *, status: int = 200, before: str | None = None, **ctx: Any
) -> HTMLResponse:
    who = current(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        view = shown_member(conn, request, member_id, before=before)
        said = history_text.describe(conn, who.program, view.history, i18n.request_language(request))
        refunded = ctx.pop("fee_refunded", None)
        ctx |= fees.fees_shown(conn, program_id=who.program.id, member_id=view.member.id, refunded=refunded)
    ctx.setdefault("fee_refused", None)
    ctx.setdefault("errors", {})
    ctx.setdefault("sent", {})
    ctx.setdefault("merged", False)
    ctx.setdefault("erased", False)
    ctx.setdefault("adjusted", None)
    ctx.setdefault("erase_refused", None)
    ctx.setdefault("erase_reason", "")
    lines = list(zip(view.history, said, strict=True))
    return render(
        request, "console/member.html", status=status, staff=who, section="members", v=view, lines=lines, **ctx
    )


@router.get("/console/members/{member_id}")
@requires("members.view")
def member_page(
    request: Request,
    member_id: str,
    adjusted: int | None = None,
    merged: str | None = None,
    before: str | None = None,
    erased: bool = False,
    fee_refunded: str | None = None,
) -> HTMLResponse:
    return _detail(
        request, member_id, adjusted=adjusted, merged=merged is not None and _merged_into(request, merged, member_id),
        before=before, erased=erased, fee_refunded=fee_refunded,
    )  # fmt: skip


@router.post("/console/members/{member_id}/adjust")
@requires("members.adjust")
async def adjust(request: Request, member_id: str) -> Response:
    """The same service as ``POST /v1/members/{id}/adjustments``: a lot or a debit, a reason, an audit entry."""
    who = current(request)
    form = await request.form()
    points_text, reason = str(form.get("points", "")).strip(), str(form.get("reason", "")).strip()
    sent = {"points": points_text, "reason": reason}
    try:
        points = int(points_text.replace("+", "").replace(" ", "")) if points_text else 0
        adjustment = AdjustmentIn.model_validate({"points": points, "reason": reason})

        def command(conn: Connection) -> str:
            done, _ = activity.adjust(
                conn=conn,
                clock=request.app.state.clock,
                program=who.program,
                member_id=member_id[:40],
                adjustment=adjustment,
                actor=f"staff:{who.user.id}",
            )
            return once.led_to(conn, request, f"/console/members/{member_id}?adjusted={done.points}")

        location = once.run(request, command)
    except ValueError as error:  # not a number, or pydantic's ValidationError
        language = i18n.request_language(request)
        errors = errors_by_field(error, language) if isinstance(error, ValidationError) else {"points": "not_a_number"}
    except PalierError as error:
        language = i18n.request_language(request)
        said = i18n.said(language, error, points_name=who.program.points_name_in(language))
        errors = {error.field or "points": said}
    else:
        return RedirectResponse(location, status_code=303)
    return _detail(request, member_id, status=422, errors=errors, sent=sent, adjusted=None)


# --- a VIP membership fee given back ---------------------------------------------------------------------------


@router.post("/console/members/{member_id}/fees/{payment_id}/refund")
@requires("memberships.refund")
async def refund_fee(request: Request, member_id: str, payment_id: str) -> Response:
    done = await fees.refund_fee(request, member_id, payment_id, page=f"/console/members/{member_id[:40]}")
    if isinstance(done, fees.FeeRefused):
        return _detail(request, member_id, status=done.status, fee_refused=done)
    return RedirectResponse(done, status_code=303)


# --- merging a duplicate account ------------------------------------------------------------------------------


def _merged_into(request: Request, source_id: str, target_id: str) -> bool:
    """Whether ``source_id`` was merged into ``target_id`` (what the page after a merge says, checked)."""
    who = current(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        try:
            source = members.get_member(conn=conn, program_id=who.program.id, member_id=source_id[:40])
        except PalierError:
            return False
    return source.merged_into_id == target_id


def _merge_page(
    request: Request, member_id: str, *, q: str, found: list[Member], status: int = 200, error: str | None = None
) -> HTMLResponse:
    """The account shown (``member_id``, which stays) beside the duplicates the search found, each with its balance."""
    who = current(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        target = shown_member(conn, request, member_id, history=1)
        others: list[tuple[Member, str, Balance]] = [
            (
                m,
                display_name(m),
                members.balance(conn=conn, clock=request.app.state.clock, program=who.program, member_id=m.id),
            )
            for m in found
            if m.id != target.member.id and m.status == "active"
        ]
    return render(
        request,
        "console/merge.html",
        status=status,
        staff=who,
        section="members",
        v=target,
        q=q,
        others=others,
        error=error,
    )


@router.post("/console/members/{member_id}/merge/find")
@requires("members.merge")
async def merge_find(request: Request, member_id: str) -> Response:
    """Find the duplicate to merge into this member: by card, phone, e-mail, member id or name."""
    q, found = await posted_search(request, current(request).program)
    return _merge_page(request, member_id, q=q, found=found[:MAX_FOUND])


@router.post("/console/members/{member_id}/merge")
@requires("members.merge")
async def merge(request: Request, member_id: str) -> Response:
    """The same service as ``POST /v1/members/merge``: the other account is closed, all it had moves here."""
    who = current(request)
    source_id = str((await request.form()).get("source_id", "")).strip()[:40]
    target_id = member_id[:40]
    location = f"/console/members/{target_id}?merged={source_id}"

    def command(conn: Connection) -> None:
        members.merge(
            conn=conn,
            clock=request.app.state.clock,
            program=who.program,
            source_id=source_id,
            target_id=target_id,
            actor=f"staff:{who.user.id}",
        )
        once.led_to(conn, request, location)

    try:
        once.run(request, command)
    except PalierError as error:
        if not _merged_into(request, source_id, target_id):  # else: the second tap, answered as the first
            language = i18n.request_language(request)
            said = i18n.said(language, error, points_name=who.program.points_name_in(language))
            return _merge_page(request, member_id, q="", found=[], status=422, error=said)
    return RedirectResponse(location, status_code=303)


# --- a member's personal data: export and erasure (GDPR) -------------------------------------------------------


@router.get("/console/members/{member_id}/export")
@requires("members.privacy")
def export_data(request: Request, member_id: str) -> Response:
    """The same document as ``GET /v1/members/{id}/export``, downloaded as a file to hand to the member."""
    who = current(request)
    db: Database = request.app.state.db
    clock = request.app.state.clock
    with db.read() as conn:
        found = export_member(conn=conn, clock=clock, program=who.program, member_id=member_id[:40])
    with db.write() as conn:
        record_export(
            conn=conn, clock=clock, program=who.program, member_id=found.profile.id, actor=f"staff:{who.user.id}"
        )
    return Response(
        found.model_dump_json(indent=2),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{found.profile.id}.json"',
            "Cache-Control": "no-store",  # personal data: never kept by a proxy or the browser's cache
        },
    )


@router.post("/console/members/{member_id}/erase")
@requires("members.privacy")
async def erase(request: Request, member_id: str) -> Response:
    """The same service as ``POST /v1/members/{id}/erase``; the audit entry names the staff user."""
    who = current(request)
    form = await request.form()
    reason = str(form.get("reason", "")).strip()
    forfeit = form.get("forfeit_store_credit") == "on"
    sent = {"reason": reason, "forfeit_store_credit": forfeit}
    language = i18n.request_language(request)
    try:
        data = ErasureIn.model_validate(sent)

        def command(conn: Connection) -> str:
            erasure.erase(
                conn=conn,
                clock=request.app.state.clock,
                program=who.program,
                member_id=member_id[:40],
                reason=data.reason,
                forfeit_store_credit=data.forfeit_store_credit,
                actor=f"staff:{who.user.id}",
            )
            return once.led_to(conn, request, f"/console/members/{member_id[:40]}?erased=1")

        location = once.run(request, command)
    except ValidationError as error:
        refused = next(iter(errors_by_field(error, language).values()))
    except PalierError as error:
        refused = i18n.said(language, error, points_name=who.program.points_name_in(language))
    else:
        return RedirectResponse(location, status_code=303)
    return _detail(request, member_id, status=422, erase_refused=refused, erase_reason=reason)
