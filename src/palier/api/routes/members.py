"""Routes: enrol, read and update members, their identities, lookup, merge, balance, history, portal links."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from palier.activity import service as activity
from palier.activity.models import AdjustmentIn, EventResult, ReversalResult
from palier.api import commands, ratelimit
from palier.api.deps import DB, AdminAccess, ClockDep, Cursor, PosAccess, ReadAccess, SettingsDep
from palier.api.openapi import RATE_LIMITED
from palier.members import erasure, service
from palier.members.export import MemberExport, record_export
from palier.members.export import export as export_member
from palier.members.identities import IdentityKind
from palier.members.models import (
    Balance,
    ErasureIn,
    ErasureResult,
    HistoryPage,
    IdentityIn,
    Member,
    MemberCreate,
    MemberUpdate,
    MergeRequest,
    MergeResult,
)
from palier.portal import service as portal
from palier.text import PlainText
from palier.web import history_text

router = APIRouter(prefix="/v1/members", tags=["members"])


class Lookup(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: IdentityKind
    value: str = Field(min_length=1, max_length=254)


@router.post("", status_code=201, response_model=Member, summary="Enrol a member", openapi_extra=commands.IDEMPOTENT)
def enrol(
    data: MemberCreate, access: PosAccess, db: DB, clock: ClockDep, settings: SettingsDep, request: Request
) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=data,
        command=lambda conn: (
            service.enrol(
                conn=conn,
                clock=clock,
                program=access.program,
                data=data,
                card_key=settings.card_hash_key,
                actor=access.caller.actor,
            ),
            201,
        ),
    )


@router.post(
    "/lookup",
    response_model=Member,
    summary="Find a member by card, e-mail, phone, customer id or payment card",
    openapi_extra=RATE_LIMITED,
)
def lookup(query: Lookup, access: ReadAccess, db: DB, settings: SettingsDep, request: Request) -> Member:
    """A POST, so that phone numbers and payment card numbers never appear in URLs or access logs."""
    ratelimit.check(request, "lookup", access.caller.key_id)
    with db.read() as conn:
        return service.lookup(
            conn=conn,
            program=access.program,
            kind=query.kind,
            value=query.value,
            card_key=settings.card_hash_key,
        )


@router.post(
    "/merge", response_model=MergeResult, summary="Merge two accounts of one person", openapi_extra=commands.IDEMPOTENT
)
def merge(data: MergeRequest, access: AdminAccess, db: DB, clock: ClockDep, request: Request) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=data,
        command=lambda conn: (
            service.merge(
                conn=conn,
                clock=clock,
                program=access.program,
                source_id=data.source_member_id,
                target_id=data.target_member_id,
                actor=access.caller.actor,
            ),
            200,
        ),
    )


@router.get("/{member_id}", response_model=Member, summary="A member's profile and identities")
def read(member_id: str, access: ReadAccess, db: DB) -> Member:
    with db.read() as conn:
        return service.get_member(conn=conn, program_id=access.program.id, member_id=member_id)


@router.patch(
    "/{member_id}", response_model=Member, summary="Update a member's profile", openapi_extra=commands.IDEMPOTENT
)
def update(
    member_id: str, changes: MemberUpdate, access: PosAccess, db: DB, clock: ClockDep, request: Request
) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=changes,
        command=lambda conn: (
            service.update_member(
                conn=conn,
                clock=clock,
                program=access.program,
                member_id=member_id,
                changes=changes,
                actor=access.caller.actor,
            ),
            200,
        ),
    )


@router.post(
    "/{member_id}/identities",
    response_model=Member,
    summary="Link an identity (credits unclaimed card purchases)",
    openapi_extra=commands.IDEMPOTENT,
)
def link_identity(
    member_id: str,
    identity: IdentityIn,
    access: PosAccess,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    request: Request,
) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=identity,
        command=lambda conn: (
            service.add_identity(
                conn=conn,
                clock=clock,
                program=access.program,
                member_id=member_id,
                identity=identity,
                card_key=settings.card_hash_key,
                actor=access.caller.actor,
            ),
            200,
        ),
    )


@router.delete(
    "/{member_id}/identities/{identity_id}",
    response_model=Member,
    summary="Unlink an identity",
    openapi_extra=commands.IDEMPOTENT,
)
def unlink_identity(
    member_id: str, identity_id: str, access: AdminAccess, db: DB, clock: ClockDep, request: Request
) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=None,
        command=lambda conn: (
            service.remove_identity(
                conn=conn,
                clock=clock,
                program=access.program,
                member_id=member_id,
                identity_id=identity_id,
                actor=access.caller.actor,
            ),
            200,
        ),
    )


@router.get("/{member_id}/balance", response_model=Balance, summary="Available, pending, held, debt and next expiry")
def balance(member_id: str, access: ReadAccess, db: DB, clock: ClockDep) -> Balance:
    with db.read() as conn:
        return service.balance(conn=conn, clock=clock, program=access.program, member_id=member_id, next_rewards=True)


@router.get(
    "/{member_id}/history",
    response_model=HistoryPage,
    summary="Every change to a member's points, newest first",
)
def history(
    member_id: str,
    access: ReadAccess,
    db: DB,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    language: Annotated[
        Literal["en", "fr"] | None,
        Query(description="the language of each line's title and detail (default: the member's)"),
    ] = None,
) -> HistoryPage:
    with db.read() as conn:
        page = service.history(
            conn=conn, program=access.program, member_id=member_id, cursor=cursor or None, limit=limit
        )
        in_words = history_text.describe(
            conn, access.program, page.items, language or service.language_of(conn, member_id)
        )
        for line, said in zip(page.items, in_words, strict=True):
            line.title, line.detail = said.title, said.detail
        return page


@router.post(
    "/{member_id}/adjustments",
    status_code=201,
    response_model=EventResult,
    responses={200: {"model": EventResult, "description": "This external_id was already received: the first result"}},
    summary="Credit or debit points by hand, with a reason",
    openapi_extra=commands.IDEMPOTENT,
)
def adjust(
    member_id: str, adjustment: AdjustmentIn, access: AdminAccess, db: DB, clock: ClockDep, request: Request
) -> JSONResponse:
    def command(conn):  # type: ignore[no-untyped-def]
        result, replayed = activity.adjust(
            conn=conn,
            clock=clock,
            program=access.program,
            member_id=member_id,
            adjustment=adjustment,
            actor=access.caller.actor,
        )
        return result, 200 if replayed else 201

    return commands.run(
        request=request, db=db, clock=clock, program_id=access.program.id, body=adjustment, command=command
    )


class Reversal(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: PlainText = Field(min_length=3, max_length=200)


@router.post(
    "/{member_id}/transactions/{transaction_id}/reverse",
    status_code=201,
    response_model=ReversalResult,
    summary="Correct a manual adjustment or welcome credit by reversing it",
    openapi_extra=commands.IDEMPOTENT,
)
def reverse(
    member_id: str,
    transaction_id: str,
    data: Reversal,
    access: AdminAccess,
    db: DB,
    clock: ClockDep,
    request: Request,
) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=data,
        command=lambda conn: (
            activity.reverse_transaction(
                conn=conn,
                clock=clock,
                program=access.program,
                member_id=member_id,
                transaction_id=transaction_id,
                reason=data.reason,
                actor=access.caller.actor,
            ),
            201,
        ),
    )


class PortalLink(BaseModel):
    url: str = Field(description="send the member there: it signs them in to the member portal, once")
    expires_at: datetime


@router.post(
    "/{member_id}/portal-link",
    status_code=201,
    response_model=PortalLink,
    summary="A single-use link that signs a member in to the member portal (valid 15 minutes)",
)
def portal_link(
    member_id: str, access: PosAccess, db: DB, clock: ClockDep, settings: SettingsDep, request: Request
) -> PortalLink:
    """For the merchant's site, which has signed its customer in already: redirect them to ``url``.
    The link is bound to this program and member, and works once: its page asks "Continue as …?" and
    the button signs the member in (opening the link alone signs no one in)."""
    with db.write() as conn:
        issued = portal.issue_link(
            conn=conn, clock=clock, program=access.program, member_id=member_id, secret_key=settings.secret_key
        )
    base = settings.public_url or str(request.base_url).rstrip("/")
    url = f"{base}/p/{access.program.id}/enter?token={issued.token}"
    return PortalLink(url=url, expires_at=issued.expires_at)


@router.get(
    "/{member_id}/export",
    response_model=MemberExport,
    summary="Everything Palier holds about a member, as one document (GDPR right of access)",
)
def export(member_id: str, access: AdminAccess, db: DB, clock: ClockDep) -> MemberExport:
    """Profile, identities (payment cards as brand and last four digits), consents, balance, the whole history,
    coupons, memberships, tier, segments, purchases and returns with their lines, store credit, audit entries.
    Recorded in the audit trail (`member.exported`)."""
    with db.read() as conn:
        document = export_member(conn=conn, clock=clock, program=access.program, member_id=member_id)
    with db.write() as conn:
        record_export(conn=conn, clock=clock, program=access.program, member_id=member_id, actor=access.caller.actor)
    return document


@router.post(
    "/{member_id}/erase",
    response_model=ErasureResult,
    summary="Erase a member at their request (GDPR): points and personal data go, the ledger's amounts stay",
    openapi_extra=commands.IDEMPOTENT,
)
def erase(
    member_id: str, data: ErasureIn, access: AdminAccess, db: DB, clock: ClockDep, request: Request
) -> JSONResponse:
    """Refused with 409 `store_credit_left` while the member has store credit, unless `forfeit_store_credit`.
    Sent again, answers the first erasure's result."""
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=data,
        command=lambda conn: (
            erasure.erase(
                conn=conn,
                clock=clock,
                program=access.program,
                member_id=member_id,
                reason=data.reason,
                forfeit_store_credit=data.forfeit_store_credit,
                actor=access.caller.actor,
            ),
            200,
        ),
    )
