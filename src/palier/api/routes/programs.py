"""Routes: the caller's program, its settings and its API keys; creating programs (operator only)."""

from __future__ import annotations

import hmac
import os
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Connection

from palier.api import commands
from palier.api.deps import DB, AdminAccess, ClockDep, Cursor, ReadAccess
from palier.errors import Forbidden
from palier.programs import service
from palier.programs.models import ApiKey, AuditPage, KeyCreate, NewApiKey, Program, ProgramSettings, ProgramUpdate

OPERATOR = "operator"
router = APIRouter(prefix="/v1", tags=["programs"])


class CreatedProgram(BaseModel):
    program: Program
    admin_key: NewApiKey


@router.post(
    "/programs",
    status_code=201,
    response_model=CreatedProgram,
    summary="Create a program (operator token)",
    openapi_extra=commands.IDEMPOTENT,
)
def create_program(
    settings: ProgramSettings,
    db: DB,
    clock: ClockDep,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Needs the instance operator token (`PALIER_OPERATOR_TOKEN`), not a program key. Returns the new
    program and its first admin key; the key's secret is shown once."""
    token = os.environ.get("PALIER_OPERATOR_TOKEN", "")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not token or not hmac.compare_digest(token.encode(), given.encode()):
        raise Forbidden(
            "operator_token_required",
            "Creating programs needs the operator token (PALIER_OPERATOR_TOKEN); or use `palier program create`.",
            field="Authorization",
        )

    def command(conn: Connection) -> tuple[CreatedProgram, int]:
        program = service.create_program(conn=conn, clock=clock, settings=settings, actor="operator")
        key = service.create_key(
            conn=conn,
            clock=clock,
            program_id=program.id,
            spec=KeyCreate(name="admin", scopes=["admin"]),
            actor="operator",
        )
        return CreatedProgram(program=program, admin_key=key), 201

    def without_secret(created: dict[str, Any]) -> dict[str, Any]:
        return {**created, "admin_key": _without_secret(created["admin_key"])}

    # Operator requests are kept under their own namespace, apart from every program's keys.
    return commands.run(
        request=request, db=db, clock=clock, program_id=OPERATOR, body=settings, command=command, redact=without_secret
    )


@router.get("/program", response_model=Program, summary="The program of this API key")
def read_program(access: ReadAccess) -> Program:
    return access.program


@router.patch("/program", response_model=Program, summary="Change program settings", openapi_extra=commands.IDEMPOTENT)
def update_program(
    changes: ProgramUpdate, access: AdminAccess, db: DB, clock: ClockDep, request: Request
) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=changes,
        command=lambda conn: (
            service.update_program(
                conn=conn, clock=clock, program_id=access.program.id, changes=changes, actor=access.caller.actor
            ),
            200,
        ),
    )


@router.get("/audit", response_model=AuditPage, summary="The audit trail of admin actions, newest first")
def audit_trail(
    access: AdminAccess,
    db: DB,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    with db.read() as conn:
        return service.audit_trail(conn=conn, program_id=access.program.id, cursor=cursor or None, limit=limit)


@router.get("/keys", response_model=list[ApiKey], summary="API keys of this program (never their secrets)")
def list_keys(access: AdminAccess, db: DB) -> list[ApiKey]:
    with db.read() as conn:
        return service.list_keys(conn=conn, program_id=access.program.id)


@router.post(
    "/keys",
    status_code=201,
    response_model=NewApiKey,
    summary="Create an API key (secret shown once)",
    openapi_extra=commands.IDEMPOTENT,
)
def create_key(spec: KeyCreate, access: AdminAccess, db: DB, clock: ClockDep, request: Request) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=spec,
        command=lambda conn: (
            service.create_key(
                conn=conn, clock=clock, program_id=access.program.id, spec=spec, actor=access.caller.actor
            ),
            201,
        ),
        redact=_without_secret,
    )


def _without_secret(created: dict[str, Any]) -> dict[str, Any]:
    """A retry of a key creation gets the key's id, never its secret again (secrets are shown once)."""
    return {**created, "secret": "(shown once, when the key was created)"}


@router.delete("/keys/{key_id}", response_model=ApiKey, summary="Revoke an API key", openapi_extra=commands.IDEMPOTENT)
def revoke_key(key_id: str, access: AdminAccess, db: DB, clock: ClockDep, request: Request) -> JSONResponse:
    return commands.run(
        request=request,
        db=db,
        clock=clock,
        program_id=access.program.id,
        body=None,
        command=lambda conn: (
            service.revoke_key(
                conn=conn, clock=clock, program_id=access.program.id, key_id=key_id, actor=access.caller.actor
            ),
            200,
        ),
    )
