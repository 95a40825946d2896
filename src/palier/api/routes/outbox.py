"""Routes: the outbox of domain events, for the merchant's mailer or webhook sender (admin key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from palier.api import commands
from palier.api.deps import DB, AdminAccess, ClockDep
from palier.notify import outbox
from palier.notify.models import Acknowledge, Acknowledged, EventType, OutboxPage

router = APIRouter(prefix="/v1", tags=["outbox"])


@router.get(
    "/outbox",
    response_model=OutboxPage,
    summary="Events not yet acknowledged, oldest first (sign-in codes, expiry warnings, tier changes…)",
)
def undelivered(
    access: AdminAccess,
    db: DB,
    type_: Annotated[list[EventType] | None, Query(alias="type", description="only these types")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> OutboxPage:
    with db.read() as conn:
        return outbox.undelivered(conn, program_id=access.program.id, types=type_ or (), limit=limit)


@router.post(
    "/outbox/ack",
    response_model=Acknowledged,
    summary="Acknowledge events handled: they are not served again",
    openapi_extra=commands.IDEMPOTENT,
)
def acknowledge(body: Acknowledge, access: AdminAccess, db: DB, clock: ClockDep, request: Request) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=body,
        command=lambda conn: (
            Acknowledged(
                acknowledged=outbox.acknowledge(conn, program_id=access.program.id, ids=body.ids, now=clock.now())
            ),
            200,
        ),
    )
