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
from palier.programs.service import authenticate_with_program, require_scope

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer key_….secret`")


# The plain dependencies are ``async``: FastAPI runs a sync dependency in the thread pool, and a hop to a
# thread and back costs more than reading ``app.state`` (three of them on every request).
async def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def clock(request: Request) -> Clock:
    value: Clock = request.app.state.clock
    return value


async def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise Unauthenticated(
            "missing_api_key", "Send an API key as `Authorization: Bearer <key>`.", field="Authorization"
        )
    return credentials.credentials


class Scoped:
    """A dependency that admits callers with one of ``scopes`` (admin always) and loads their program.

    The key and its program are read by one statement, outside a transaction (on every request)."""

    def __init__(self, *scopes: str) -> None:
        self.scopes = scopes

    def __call__(
        self,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        db: Annotated[Database, Depends(database)],
    ) -> Access:
        token = _token(credentials)
        with db.read_one() as conn:
            who, program = authenticate_with_program(conn=conn, token=token)
        require_scope(who, *self.scopes)
        assert program is not None
        return Access(caller=who, program=program)


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
