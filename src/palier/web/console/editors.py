"""The YAML editors of the console: earning rules and tiers, checked on save, problems shown at their line.

Rules are read by the rules document loader (``palier.rules.document``) and applied as a new version by
``rules.service.apply_rules``, exactly as ``POST /v1/program/rules`` does; tiers by ``TierPolicy`` and
``tiers.service.set_policy``, as the API and ``palier program apply`` do.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from palier.api.problems import field_path, validation_code
from palier.clock import Clock
from palier.db import Database
from palier.errors import PalierError
from palier.rules import document as rules_document
from palier.rules import service as rules
from palier.tiers import service as tiers
from palier.tiers.models import TierPolicy
from palier.web.console.access import Staff, current, requires, staff_router
from palier.web.console.yaml_lines import Problem, line_of, syntax_problem
from palier.web.render import render

router = staff_router()
MAX_TEXT = 200_000


def _problems(text: str, error: PalierError) -> list[Problem]:
    listed = error.extra.get("errors") or [
        {"field": error.field or "document", "code": error.code, "message": error.detail}
    ]
    return [Problem(line_of(text, p["field"]), p["field"], p["code"], p["message"]) for p in listed]


def _validation_problems(text: str, error: ValidationError) -> list[Problem]:
    found = []
    for e in error.errors():
        field = field_path(tuple(e["loc"])) or "document"
        message = str(e["msg"]).removeprefix("Value error, ")
        found.append(Problem(line_of(text, field), field, validation_code(dict(e)), message))
    return found


def _editor(request: Request, who: Staff, *, kind: str, text: str, problems: list[Problem], **ctx: Any) -> HTMLResponse:
    lines = text.split("\n")
    bad = {p.line for p in problems if p.line}
    return render(
        request,
        "console/editor.html",
        status=422 if problems else 200,
        staff=who,
        section=kind,
        kind=kind,
        text=text,
        line_count=max(len(lines), 1),
        bad_lines=sorted(bad),
        problems=problems,
        **ctx,
    )


# --- rules ---


@router.get("/console/rules")
@requires("rules.edit")
def rules_page(request: Request, saved: int | None = None) -> HTMLResponse:
    who = current(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        version, document = rules.current_document(conn=conn, program=who.program)
    return _editor(
        request, who, kind="rules", text=rules_document.dump_yaml(document), problems=[], version=version, saved=saved
    )


@router.post("/console/rules")
@requires("rules.edit")
async def save_rules(request: Request) -> Response:
    who = current(request)
    text = str((await request.form()).get("document", ""))[:MAX_TEXT].replace("\r\n", "\n")
    db: Database = request.app.state.db
    clock: Clock = request.app.state.clock
    with db.read() as conn:
        version, _ = rules.current_document(conn=conn, program=who.program)
    problem = syntax_problem(text)
    if problem is not None:
        return _editor(request, who, kind="rules", text=text, problems=[problem], version=version, saved=None)
    try:
        document = rules_document.parse_text(text)
        with db.write() as conn:
            applied = rules.apply_rules(
                conn=conn, clock=clock, program_id=who.program.id, document=document, actor=f"staff:{who.user.id}"
            )
    except PalierError as error:
        return _editor(
            request, who, kind="rules", text=text, problems=_problems(text, error), version=version, saved=None
        )
    return RedirectResponse(f"/console/rules?saved={applied.version}", status_code=303)


# --- tiers ---


def _policy_yaml(policy: TierPolicy | None) -> str:
    if policy is None:
        return "# No tiers yet. For example:\n" + yaml.safe_dump(
            {
                "metric": "spend",
                "window": "calendar_year",
                "downgrade": "period_end",
                "tiers": [{"code": "silver", "name": {"fr": "Argent", "en": "Silver"}, "threshold": 20000}],
            },
            sort_keys=False,
            allow_unicode=True,
        )
    data = json.loads(policy.model_dump_json(exclude_none=True))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@router.get("/console/tiers")
@requires("tiers.edit")
def tiers_page(request: Request, saved: int | None = None) -> HTMLResponse:
    who = current(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        policy = tiers.get_policy(conn, program_id=who.program.id)
    return _editor(request, who, kind="tiers", text=_policy_yaml(policy), problems=[], policy=policy, saved=saved)


@router.post("/console/tiers")
@requires("tiers.edit")
async def save_tiers(request: Request) -> Response:
    who = current(request)
    text = str((await request.form()).get("document", ""))[:MAX_TEXT].replace("\r\n", "\n")
    db: Database = request.app.state.db
    with db.read() as conn:
        policy = tiers.get_policy(conn, program_id=who.program.id)
    problem = syntax_problem(text)
    if problem is not None:
        return _editor(request, who, kind="tiers", text=text, problems=[problem], policy=policy, saved=None)
    try:
        new_policy = TierPolicy.model_validate(yaml.safe_load(text) or {})
        with db.write() as conn:
            tiers.set_policy(
                conn=conn,
                clock=request.app.state.clock,
                program=who.program,
                policy=new_policy,
                actor=f"staff:{who.user.id}",
            )
    except ValidationError as error:
        return _editor(
            request, who, kind="tiers", text=text, problems=_validation_problems(text, error), policy=policy, saved=None
        )
    except PalierError as error:
        return _editor(
            request, who, kind="tiers", text=text, problems=_problems(text, error), policy=policy, saved=None
        )
    return RedirectResponse("/console/tiers?saved=1", status_code=303)
