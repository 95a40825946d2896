"""What every route needs: the database, the clock, settings, and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from palier.clock import Clock
from palier.config import Settings
from palier.db import Database
from palier.errors import Unauthenticated
from palier.programs.models import Caller, Program
from palier.programs.service import authenticate, get_program, require_scope

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer key_….secret`")


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def clock(request: Request) -> Clock:
    value: Clock = request.app.state.clock
    return value


def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def caller(
    db: Annotated[Database, Depends(database)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if credentials is None:
        raise Unauthenticated(
            "missing_api_key", "Send an API key as `Authorization: Bearer <key>`.", field="Authorization"
        )
    with db.read() as conn:
        return authenticate(conn=conn, token=credentials.credentials)


class Scoped:
    """A dependency that admits callers with one of ``scopes`` (admin always) and loads their program."""

    def __init__(self, *scopes: str) -> None:
        self.scopes = scopes

    def __call__(self, who: Annotated[Caller, Depends(caller)], db: Annotated[Database, Depends(database)]) -> Access:
        require_scope(who, *self.scopes)
        with db.read() as conn:
            return Access(caller=who, program=get_program(conn=conn, program_id=who.program_id))


class Access:
    def __init__(self, *, caller: Caller, program: Program) -> None:
        self.caller = caller
        self.program = program


DB = Annotated[Database, Depends(database)]
ClockDep = Annotated[Clock, Depends(clock)]
SettingsDep = Annotated[Settings, Depends(settings)]
AdminAccess = Annotated[Access, Depends(Scoped("admin"))]
PosAccess = Annotated[Access, Depends(Scoped("pos"))]
ReadAccess = Annotated[Access, Depends(Scoped("read", "pos"))]
