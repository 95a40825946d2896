"""Routes: tiers, paid VIP plans and memberships, segments, invitations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import RootModel

from palier.api import commands
from palier.api.deps import DB, AdminAccess, ClockDep, PosAccess, ReadAccess
from palier.memberships import service as memberships
from palier.memberships.models import (
    Invitation,
    InvitationsIn,
    JoinIn,
    Membership,
    MembershipPaymentIn,
    MembershipRefund,
    MembershipRefundIn,
    Plan,
    PlanIn,
    PlanUpdate,
)
from palier.programs.service import get_program
from palier.segments import service as segments
from palier.segments.models import Refreshed, Segment, SegmentIn
from palier.tiers import service as tiers
from palier.tiers.models import ManualTier, TierPolicy, TierProgress

router = APIRouter(tags=["tiers, memberships and segments"])
Invitations = RootModel[list[Invitation]]
Code = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]


# --- tiers ---


@router.put(
    "/v1/tiers",
    response_model=TierPolicy,
    summary="Set the program's tiers and how they are kept",
    openapi_extra=commands.IDEMPOTENT,
)
def set_tiers(policy: TierPolicy, access: AdminAccess, db: DB, clock: ClockDep, request: Request) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=policy,
        command=lambda conn: (
            tiers.set_policy(conn=conn, clock=clock, program=access.program, policy=policy, actor=access.caller.actor),
            200,
        ),
    )


@router.get("/v1/tiers", response_model=TierPolicy | None, summary="The program's tiers (null: none)")
def get_tiers(access: ReadAccess, db: DB) -> TierPolicy | None:
    with db.read() as conn:
        return tiers.get_policy(conn, program_id=access.program.id)


@router.get(
    "/v1/members/{member_id}/tier",
    response_model=TierProgress,
    summary="A member's tier, what is left to the next one and to keep this one, and the tier history",
)
def tier_progress(member_id: str, access: ReadAccess, db: DB, clock: ClockDep) -> TierProgress:
    with db.read() as conn:
        return tiers.progress(conn=conn, clock=clock, program=access.program, member_id=member_id)


@router.post(
    "/v1/members/{member_id}/tier",
    response_model=TierProgress,
    summary="Give (or take away) a tier by hand, with a reason, until a date",
    openapi_extra=commands.IDEMPOTENT,
)
def assign_tier(
    member_id: str, data: ManualTier, access: AdminAccess, db: DB, clock: ClockDep, request: Request
) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=data,
        command=lambda conn: (
            tiers.assign(
                conn=conn,
                clock=clock,
                program=get_program(conn=conn, program_id=access.program.id),
                member_id=member_id,
                data=data,
                actor=access.caller.actor,
            ),
            200,
        ),
    )


# --- VIP plans and memberships ---


@router.post(
    "/v1/plans", status_code=201, response_model=Plan, summary="Add a paid VIP plan", openapi_extra=commands.IDEMPOTENT
)
def create_plan(data: PlanIn, access: AdminAccess, db: DB, clock: ClockDep, request: Request) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=data,
        command=lambda conn: (
            memberships.create_plan(
                conn=conn, clock=clock, program=access.program, data=data, actor=access.caller.actor
            ),
            201,
        ),
    )


@router.patch(
    "/v1/plans/{code}", response_model=Plan, summary="Change or archive a VIP plan", openapi_extra=commands.IDEMPOTENT
)
def update_plan(
    code: Code,
    changes: PlanUpdate,
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
        body=changes,
        command=lambda conn: (
            memberships.update_plan(
                conn=conn, clock=clock, program=access.program, code=code, changes=changes, actor=access.caller.actor
            ),
            200,
        ),
    )


@router.get("/v1/plans", response_model=list[Plan], summary="The program's VIP plans")
def list_plans(access: ReadAccess, db: DB) -> list[Plan]:
    with db.read() as conn:
        return memberships.list_plans(conn=conn, program_id=access.program.id)


@router.post(
    "/v1/memberships/payments",
    response_model=Membership,
    summary="The merchant's checkout took a membership fee: start or renew (once per payment_id)",
    openapi_extra=commands.IDEMPOTENT,
)
def membership_payment(
    data: MembershipPaymentIn, access: PosAccess, db: DB, clock: ClockDep, request: Request
) -> JSONResponse:
    def command(conn):  # type: ignore[no-untyped-def]
        membership, _replayed = memberships.record_payment(conn=conn, clock=clock, program=access.program, data=data)
        return membership, 200

    return commands.run(request=request, db=db, clock=clock, program_id=access.program.id, body=data, command=command)


@router.post(
    "/v1/memberships/payments/{payment_id}/refund",
    response_model=MembershipRefund,
    summary="The merchant refunded a membership fee: take back the time and coupons it paid for, unused",
    openapi_extra=commands.IDEMPOTENT,
)
def refund_membership_payment(
    payment_id: Annotated[str, Path(min_length=1, max_length=64)],
    data: MembershipRefundIn,
    access: PosAccess,
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
            memberships.refund_payment(
                conn=conn,
                clock=clock,
                program=access.program,
                payment_id=payment_id,
                data=data,
                actor=access.caller.actor,
            ),
            200,
        ),
    )


@router.post(
    "/v1/members/{member_id}/memberships",
    status_code=201,
    response_model=Membership,
    summary="Start a plan's free trial",
    openapi_extra=commands.IDEMPOTENT,
)
def start_trial(
    member_id: str, data: JoinIn, access: PosAccess, db: DB, clock: ClockDep, request: Request
) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=data,
        command=lambda conn: (
            memberships.start_trial(conn=conn, clock=clock, program=access.program, member_id=member_id, data=data),
            201,
        ),
    )


@router.get("/v1/members/{member_id}/memberships", response_model=list[Membership], summary="A member's memberships")
def member_memberships(member_id: str, access: ReadAccess, db: DB) -> list[Membership]:
    with db.read() as conn:
        return memberships.member_memberships(conn=conn, program_id=access.program.id, member_id=member_id)


@router.post(
    "/v1/members/{member_id}/memberships/{membership_id}/cancel",
    response_model=Membership,
    summary="Stop renewing: benefits last to the end of the paid period",
    openapi_extra=commands.IDEMPOTENT,
)
def cancel_membership(
    member_id: str,
    membership_id: Annotated[str, Path(max_length=32)],
    access: PosAccess,
    db: DB,
    clock: ClockDep,
    request: Request,
) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=None,
        command=lambda conn: (
            memberships.cancel(
                conn=conn, clock=clock, program=access.program, member_id=member_id, membership_id=membership_id
            ),
            200,
        ),
    )


@router.post(
    "/v1/invitations",
    status_code=201,
    response_model=list[Invitation],
    summary="Invitation codes: to join an invite-only program, or a plan open by invitation",
    openapi_extra=commands.IDEMPOTENT,
)
def create_invitations(
    data: InvitationsIn, access: AdminAccess, db: DB, clock: ClockDep, request: Request
) -> JSONResponse:
    def command(conn):  # type: ignore[no-untyped-def]
        made = memberships.create_invitations(
            conn=conn, clock=clock, program=access.program, data=data, actor=access.caller.actor
        )
        return Invitations(made), 201

    return commands.run(request=request, db=db, clock=clock, program_id=access.program.id, body=data, command=command)


# --- segments ---


@router.post(
    "/v1/segments",
    status_code=201,
    response_model=Segment,
    summary="Define a segment",
    openapi_extra=commands.IDEMPOTENT,
)
def create_segment(data: SegmentIn, access: AdminAccess, db: DB, clock: ClockDep, request: Request) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=data,
        command=lambda conn: (
            segments.create_segment(
                conn=conn, clock=clock, program=access.program, data=data, actor=access.caller.actor
            ),
            201,
        ),
    )


@router.put(
    "/v1/segments/{code}",
    response_model=Segment,
    summary="Redefine a segment (members move at the next refresh)",
    openapi_extra=commands.IDEMPOTENT,
)
def update_segment(
    code: Code, data: SegmentIn, access: AdminAccess, db: DB, clock: ClockDep, request: Request
) -> JSONResponse:
    """The whole definition, as for a creation; the code in the body must be the one in the path."""
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=data,
        command=lambda conn: (
            segments.update_segment(
                conn=conn, clock=clock, program=access.program, code=code, data=data, actor=access.caller.actor
            ),
            200,
        ),
    )


@router.get("/v1/segments", response_model=list[Segment], summary="The program's segments and their sizes")
def list_segments(access: ReadAccess, db: DB) -> list[Segment]:
    with db.read() as conn:
        return segments.list_segments(conn=conn, program_id=access.program.id)


@router.post(
    "/v1/segments/{code}/refresh",
    response_model=Refreshed,
    summary="Recompute a segment now (the job does it for all)",
    openapi_extra=commands.IDEMPOTENT,
)
def refresh_segment(code: Code, access: AdminAccess, db: DB, clock: ClockDep, request: Request) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=None,
        command=lambda conn: (
            segments.refresh_in(
                conn=conn, clock=clock, program_id=access.program.id, code=code, actor=access.caller.actor
            )[0],
            200,
        ),
    )


@router.get("/v1/members/{member_id}/segments", response_model=list[str], summary="The codes of a member's segments")
def member_segments(member_id: str, access: ReadAccess, db: DB) -> list[str]:
    from palier.members.service import require_known

    with db.read() as conn:
        require_known(conn=conn, program_id=access.program.id, member_id=member_id)
        return sorted(segments.member_segments(conn, member_id=member_id))
