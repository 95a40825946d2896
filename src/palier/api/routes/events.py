"""Routes: purchases and returns from the web shop, the till, the phone desk and the app."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from palier.activity import service
from palier.activity.models import EventResult, PurchaseIn, ReturnIn
from palier.api import commands
from palier.api.deps import DB, ClockDep, PosAccess, SettingsDep

router = APIRouter(prefix="/v1/events", tags=["events"])

REPLAY: dict[int | str, dict[str, Any]] = {
    200: {"model": EventResult, "description": "This fact was already received: the first result, unchanged"}
}


@router.post(
    "/purchases",
    status_code=201,
    response_model=EventResult,
    responses=REPLAY,
    summary="A purchase: earns points, pending through the return window",
    openapi_extra=commands.IDEMPOTENT,
)
def purchase(
    data: PurchaseIn, access: PosAccess, db: DB, clock: ClockDep, settings: SettingsDep, request: Request
) -> JSONResponse:
    def command(conn):  # type: ignore[no-untyped-def]
        result, replayed = service.record_purchase(
            conn=conn, clock=clock, program=access.program, purchase=data, card_key=settings.card_hash_key
        )
        return result, 200 if replayed else 201

    return commands.run(request=request, db=db, clock=clock, program_id=access.program.id, body=data, command=command)


@router.post(
    "/returns",
    status_code=201,
    response_model=EventResult,
    responses=REPLAY,
    summary="A return or refund: takes back what the returned goods earned",
    openapi_extra=commands.IDEMPOTENT,
)
def return_(data: ReturnIn, access: PosAccess, db: DB, clock: ClockDep, request: Request) -> JSONResponse:
    def command(conn):  # type: ignore[no-untyped-def]
        result, replayed = service.record_return(conn=conn, clock=clock, program=access.program, ret=data)
        return result, 200 if replayed else 201

    return commands.run(request=request, db=db, clock=clock, program_id=access.program.id, body=data, command=command)
