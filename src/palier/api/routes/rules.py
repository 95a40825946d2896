"""Routes: the program's earning rules (apply, export, versions), behaviour actions, cart preview, how to earn."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from palier.activity.models import EventResult
from palier.api import commands
from palier.api.deps import DB, AdminAccess, ClockDep, Cursor, PosAccess, ReadAccess, SettingsDep
from palier.api.problems import NOT_JSON, sent_as_other_than_json
from palier.errors import NotJson
from palier.rules import service
from palier.rules.actions import ActionIn, record_action
from palier.rules.document import parse_data, refuse_duplicate_keys
from palier.rules.models import RuleSetDocument, RuleSetVersion, RuleSetVersionPage
from palier.rules.preview import Preview, PreviewIn, preview

router = APIRouter(prefix="/v1", tags=["rules"])


class CurrentRules(BaseModel):
    version: int = Field(description="0: no rules applied yet; the document is then the base rate as a rule")
    document: RuleSetDocument


class HowToEarn(BaseModel):
    language: Literal["en", "fr"]
    version: int
    lines: list[str]


# The body is read as plain JSON and checked by the rules' own parser, so that every problem names the
# path of its field exactly as in a rules file (``rules[2].effect.factor``); the document shows its schema.
_DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RuleSetDocument"}}},
    }
}


async def _raw_body(request: Request) -> bytes:
    """The request's body as sent (read once and kept by the framework): what its JSON parser does not tell."""
    return await request.body()


@router.post(
    "/program/rules",
    status_code=201,
    response_model=RuleSetVersion,
    summary="Apply new earning rules",
    responses={200: {"model": RuleSetVersion, "description": "The document is the version in force: no new version"}},
    openapi_extra=_DOCUMENT_BODY | commands.IDEMPOTENT,
)
def apply_rules(
    body: Annotated[Any, Body(include_in_schema=False)],
    raw: Annotated[bytes, Depends(_raw_body)],
    access: AdminAccess,
    db: DB,
    clock: ClockDep,
    request: Request,
    based_on: Annotated[
        int | None,
        Query(
            ge=0,
            description="the version the document was read from (`GET /v1/program/rules`): if another was applied "
            "since, 409 `rules_changed` with the `version` now in force, and nothing is applied",
        ),
    ] = None,
) -> JSONResponse:
    """The whole rule set (actions, campaigns, rules) becomes a new version, in force from now (201). The very
    document in force makes no version: 200 with the version in force. An invalid
    document is refused whole, with the path of each problem; nothing is applied. Name the version you edited
    (``based_on``) so that a colleague's save since is not silently replaced."""
    if sent_as_other_than_json(request):  # a form or text: FastAPI reads the body as JSON only when it says so
        raise NotJson("unsupported_media_type", NOT_JSON, field="Content-Type")
    refuse_duplicate_keys(raw.decode("utf-8", errors="replace"))  # JSON keeps the last of two keys without a word
    document = parse_data(body)

    def command(conn: Connection) -> tuple[RuleSetVersion, int]:
        applied = service.apply_rules(
            conn=conn,
            clock=clock,
            program_id=access.program.id,
            document=document,
            actor=access.caller.actor,
            based_on=based_on,
        )
        return applied.rules, 201 if applied.new else 200

    return commands.run(
        request=request, db=db, clock=clock, program_id=access.program.id, body=document, command=command
    )


@router.get("/program/rules", response_model=CurrentRules, summary="The earning rules in force (export)")
def read_rules(access: AdminAccess, db: DB) -> CurrentRules:
    with db.read() as conn:
        version, document = service.current_document(conn=conn, program=access.program)
    return CurrentRules(version=version, document=document)


@router.get(
    "/program/rules/versions", response_model=RuleSetVersionPage, summary="The versions of the rules, newest first"
)
def rule_versions(
    access: AdminAccess, db: DB, cursor: Cursor = None, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> RuleSetVersionPage:
    with db.read() as conn:
        return service.versions(conn=conn, program_id=access.program.id, cursor=cursor or None, limit=limit)


@router.post("/preview", response_model=Preview, summary="What a cart would earn, one line per rule (no writes)")
def preview_cart(data: PreviewIn, access: ReadAccess, db: DB, clock: ClockDep) -> Preview:
    with db.read() as conn:
        return preview(conn=conn, clock=clock, program=access.program, data=data)


@router.get("/how-to-earn", response_model=HowToEarn, summary="How to earn points, from the active rules")
def explain(access: ReadAccess, db: DB, clock: ClockDep, language: Literal["en", "fr"] = Query("en")) -> HowToEarn:
    with db.read() as conn:
        version, lines = service.how_to_earn_lines(
            conn=conn, program=access.program, now=clock.now(), language=language
        )
    return HowToEarn(language=language, version=version, lines=lines)


@router.post(
    "/members/{member_id}/actions",
    status_code=201,
    response_model=EventResult,
    responses={200: {"model": EventResult, "description": "This action was already received: the first result"}},
    summary="A behaviour action (newsletter, review, follow…): pays the action type's points",
    openapi_extra=commands.IDEMPOTENT,
)
def action(
    member_id: str,
    data: ActionIn,
    access: PosAccess,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    request: Request,
) -> JSONResponse:
    def command(conn: Connection) -> tuple[EventResult, int]:
        result, replayed = record_action(
            conn=conn,
            clock=clock,
            program=access.program,
            member_id=member_id,
            data=data,
            key=settings.card_hash_key,
        )
        return result, 200 if replayed else 201

    return commands.run(request=request, db=db, clock=clock, program_id=access.program.id, body=data, command=command)
