"""Routes: the reward catalog (admin), a member's catalog, redemption, coupons at the till, paying with points."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Connection

from palier.api import commands, ratelimit
from palier.api.deps import DB, AdminAccess, ClockDep, Cursor, PosAccess, ReadAccess
from palier.api.openapi import RATE_LIMITED
from palier.rewards import payments
from palier.rewards import service as rewards
from palier.rewards.models import (
    CatalogItem,
    Coupon,
    CouponCancel,
    CouponCheck,
    CouponPage,
    CouponUse,
    CouponValidity,
    Payment,
    PaymentIn,
    RedeemIn,
    Redemption,
    Reward,
    RewardIn,
    RewardUpdate,
    Wallet,
)

router = APIRouter(tags=["rewards"])
Code = Annotated[str, Path(min_length=1, max_length=40, description="the coupon code, with or without dashes")]
CouponStates = Literal["issued", "used", "expired", "cancelled"]


@router.post(
    "/v1/rewards",
    status_code=201,
    response_model=Reward,
    summary="Add a reward to the catalog",
    openapi_extra=commands.IDEMPOTENT,
)
def create(data: RewardIn, access: AdminAccess, db: DB, clock: ClockDep, request: Request) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=data,
        command=lambda conn: (
            rewards.create_reward(conn=conn, clock=clock, program=access.program, data=data, actor=access.caller.actor),
            201,
        ),
    )


@router.get("/v1/rewards", response_model=list[Reward], summary="The catalog, as the merchant sees it")
def list_all(
    access: ReadAccess, db: DB, status: Annotated[Literal["active", "archived"] | None, Query()] = None
) -> list[Reward]:
    with db.read() as conn:
        return rewards.list_rewards(conn=conn, program_id=access.program.id, status=status)


@router.get("/v1/rewards/{reward_id}", response_model=Reward, summary="One reward")
def read(reward_id: Annotated[str, Path(max_length=32)], access: ReadAccess, db: DB) -> Reward:
    with db.read() as conn:
        return rewards.get_reward(conn=conn, program_id=access.program.id, reward_id=reward_id)


@router.patch(
    "/v1/rewards/{reward_id}",
    response_model=Reward,
    summary="Change a reward, or archive it",
    openapi_extra=commands.IDEMPOTENT,
)
def update(
    reward_id: Annotated[str, Path(max_length=32)],
    changes: RewardUpdate,
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
            rewards.update_reward(
                conn=conn,
                clock=clock,
                program=access.program,
                reward_id=reward_id,
                changes=changes,
                actor=access.caller.actor,
            ),
            200,
        ),
    )


@router.get(
    "/v1/members/{member_id}/rewards",
    response_model=list[CatalogItem],
    summary="The rewards a member can have, nearest first",
)
def member_catalog(
    member_id: str,
    access: ReadAccess,
    db: DB,
    clock: ClockDep,
    affordable: Annotated[bool, Query(description="only what the member can redeem right now")] = False,
    channel: Annotated[Literal["web", "store", "phone", "app", "partner"] | None, Query()] = None,
) -> list[CatalogItem]:
    with db.read() as conn:
        return rewards.catalog(
            conn=conn,
            clock=clock,
            program=access.program,
            member_id=member_id,
            affordable_only=affordable,
            channel=channel,
        )


@router.post(
    "/v1/members/{member_id}/redemptions",
    status_code=201,
    response_model=Redemption,
    summary="Redeem a reward: its points are held and a coupon issued",
    openapi_extra=commands.IDEMPOTENT | RATE_LIMITED,
)
def redeem(
    member_id: str, data: RedeemIn, access: PosAccess, db: DB, clock: ClockDep, request: Request
) -> JSONResponse:
    ratelimit.check(request, "redeem", access.program.id, member_id)
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=data,
        command=lambda conn: (
            rewards.redeem(conn=conn, clock=clock, program=access.program, member_id=member_id, data=data),
            201,
        ),
    )


@router.get(
    "/v1/members/{member_id}/coupons", response_model=CouponPage, summary="A member's coupons, newest first, by pages"
)
def member_coupons(
    member_id: str,
    access: ReadAccess,
    db: DB,
    clock: ClockDep,
    state: Annotated[list[CouponStates] | None, Query(description="only these states")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CouponPage:
    """A coupon past its date reads `expired` at once, before the expiry job closes it."""
    with db.read() as conn:
        return rewards.coupon_page(
            conn=conn, program_id=access.program.id, member_id=member_id, states=state, cursor=cursor or None,
            limit=limit, now=clock.now(),
        )  # fmt: skip


@router.get("/v1/coupons/{code}", response_model=Coupon, summary="Look a coupon up by its code (the till)")
def lookup(code: Code, access: ReadAccess, db: DB, clock: ClockDep) -> Coupon:
    """A coupon past its date reads `expired` at once, before the expiry job closes it."""
    with db.read() as conn:
        return rewards.as_of(rewards.find_coupon(conn=conn, program_id=access.program.id, code=code), clock.now())


@router.post(
    "/v1/coupons/{code}/validate",
    response_model=CouponValidity,
    summary="Can this coupon be used on this cart, and what does it take off? (writes nothing)",
)
def validate(code: Code, check: CouponCheck, access: PosAccess, db: DB, clock: ClockDep) -> CouponValidity:
    with db.read() as conn:
        return rewards.validate_coupon(conn=conn, clock=clock, program=access.program, code=code, check=check)


@router.post(
    "/v1/coupons/{code}/use",
    response_model=Coupon,
    summary="Use a coupon on an order (idempotent for the same order)",
    openapi_extra=commands.IDEMPOTENT,
)
def use(code: Code, data: CouponUse, access: PosAccess, db: DB, clock: ClockDep, request: Request) -> JSONResponse:
    def command(conn):  # type: ignore[no-untyped-def]
        coupon, _again = rewards.use_coupon(conn=conn, clock=clock, program=access.program, code=code, use=data)
        return coupon, 200

    return commands.run(request=request, db=db, clock=clock, program_id=access.program.id, body=data, command=command)


@router.post(
    "/v1/coupons/{code}/cancel",
    response_model=Coupon,
    summary="Cancel an unused coupon: its points go back",
    openapi_extra=commands.IDEMPOTENT,
)
def cancel(
    code: Code, data: CouponCancel, access: PosAccess, db: DB, clock: ClockDep, request: Request
) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=data,
        command=lambda conn: (
            rewards.cancel_coupon(conn=conn, clock=clock, program=access.program, code=code, actor=access.caller.actor),
            200,
        ),
    )


@router.post(
    "/v1/members/{member_id}/payments",
    status_code=201,
    response_model=Payment,
    responses={200: {"model": Payment, "description": "This order and kind were already paid: the first payment"}},
    summary="Pay part of an order with points or store credit (once per order and kind)",
    openapi_extra=commands.IDEMPOTENT,
)
def pay(member_id: str, data: PaymentIn, access: PosAccess, db: DB, clock: ClockDep, request: Request) -> JSONResponse:
    def command(conn: Connection) -> tuple[Payment, int]:
        paid, resent = payments.pay_or_resend(
            conn=conn, clock=clock, program=access.program, member_id=member_id, data=data
        )
        return paid, 200 if resent else 201  # a resend answers 200, as a resent purchase does

    return commands.run(request=request, db=db, clock=clock, program_id=access.program.id, body=data, command=command)


@router.post(
    "/v1/members/{member_id}/payments/{payment_id}/cancel",
    response_model=Payment,
    summary="Undo a payment with points or credit before the order is recorded",
    openapi_extra=commands.IDEMPOTENT,
)
def cancel_payment(
    member_id: str,
    payment_id: Annotated[str, Path(max_length=32)],
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
            payments.cancel(conn=conn, clock=clock, program=access.program, member_id=member_id, payment_id=payment_id),
            200,
        ),
    )


@router.get("/v1/members/{member_id}/wallet", response_model=Wallet, summary="A member's store credit")
def wallet(member_id: str, access: ReadAccess, db: DB) -> Wallet:
    with db.read() as conn:
        return payments.wallet(conn=conn, program=access.program, member_id=member_id)
