"""What every route needs: the database, the clock, settings, and the authenticated caller."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from palier.clock import Clock
from palier.config import Settings
from palier.db import Database
from palier.errors import InvalidInput, Unauthenticated
from palier.programs.models import Caller, Program
from palier.programs.service import authenticate_with_program, require_scope

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer key_….secret`")


# The plain dependencies are ``async``: FastAPI runs a sync dependency in the thread pool, and a hop to a
# thread and back costs more than reading ``app.state`` (three of them on every request).
async def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def no_nul_character(request: Request) -> None:
    """Refuse a body holding a NUL character (``\\u0000`` in JSON, ``%00`` in a form), naming its field: no
    database stores it in text (PostgreSQL refuses it outright), and no till or shop means to send it."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    try:
        body = await request.body()
    except RuntimeError:  # a route taking form fields has read them already (the stream is gone, the form kept)
        form = await request.form()
        field = next((name for name, value in form.multi_items() if "\x00" in f"{name}{value}"), None)
    else:
        if b"\\u0000" not in body and b"\x00" not in body and b"%00" not in body:
            return
        field = _holding_nul(body)  # None: only what looks like one ("100%00" in a text, an escaped backslash)
    if field is not None:
        from palier.web import PAGES  # a form of a page: refused with a page in its language, not the API's JSON
        from palier.web.render import PageError

        if request.url.path.startswith(PAGES):
            raise PageError(422, "error.nul_character")
        raise InvalidInput("nul_character", "A NUL character (\\u0000) cannot be stored: remove it.", field=field)


def _holding_nul(body: bytes) -> str | None:
    """Where the NUL is: a JSON field's path ("lines[0].sku"), or a form field's name."""
    try:
        sent = json.loads(body)
    except ValueError:
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return next((name for name, value in pairs if "\x00" in name + value), None)
    return _path_to_nul(sent, "")


def _path_to_nul(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        here = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)
        if "\x00" in str(key):
            return here.replace("\x00", "")
        if (inside := _path_to_nul(item, here)) is not None:
            return inside
    return None


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


# A list's cursor: the previous page's next_cursor. Routes read an empty one (``?cursor=``, a client filling its
# template with nothing yet) as the first page: ``cursor or None``.
Cursor = Annotated[
    str | None, Query(max_length=40, description="the previous page's next_cursor (empty or left out: the first page)")
]
