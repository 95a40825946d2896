"""Routes: the outbox of domain events for the merchant's mailer, and the webhook they are pushed to (admin key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from palier.api import commands
from palier.api.deps import DB, AdminAccess, ClockDep, SettingsDep
from palier.notify import outbox, webhooks
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


@router.get("/webhook", response_model=webhooks.Webhook, summary="The program's webhook, its secret and what waits")
def get_webhook(access: AdminAccess, db: DB) -> webhooks.Webhook:
    with db.read() as conn:
        return webhooks.get_webhook(conn=conn, program_id=access.program.id)


@router.put(
    "/webhook",
    response_model=webhooks.Webhook,
    summary="Push the program's events to this URL (signed; retried until delivered)",
    openapi_extra=commands.IDEMPOTENT,
)
def set_webhook(
    spec: webhooks.WebhookSet, access: AdminAccess, db: DB, clock: ClockDep, settings: SettingsDep, request: Request
) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=spec,
        command=lambda conn: (
            webhooks.set_webhook(
                conn=conn,
                clock=clock,
                program_id=access.program.id,
                spec=spec,
                actor=access.caller.actor,
                public_only=settings.public_webhooks_only,
            ),
            200,
        ),
    )


@router.delete(
    "/webhook",
    response_model=webhooks.Webhook,
    summary="Stop pushing events (they stay readable with GET /v1/outbox)",
    openapi_extra=commands.IDEMPOTENT,
)
def remove_webhook(access: AdminAccess, db: DB, clock: ClockDep, request: Request) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=None,
        command=lambda conn: (
            webhooks.remove_webhook(conn=conn, clock=clock, program_id=access.program.id, actor=access.caller.actor),
            200,
        ),
    )


@router.post(
    "/webhook/test",
    response_model=webhooks.WebhookTest,
    summary="Send one signed webhook_test event to the webhook now, and see how the receiver answered",
)
def test_webhook(access: AdminAccess, db: DB, clock: ClockDep, settings: SettingsDep) -> webhooks.WebhookTest:
    with db.read() as conn:
        hook = webhooks.get_webhook(conn=conn, program_id=access.program.id)
    return webhooks.send_test(hook, clock, public_only=settings.public_webhooks_only)
