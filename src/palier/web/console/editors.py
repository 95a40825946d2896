"""The YAML editors of the console: earning rules, tiers, a new reward and a new segment, checked on save,
problems shown at their line.

Rules are read by the rules document loader (``palier.rules.document``) and applied as a new version by
``rules.service.apply_rules``, exactly as ``POST /v1/program/rules`` does; tiers by ``TierPolicy`` and
``tiers.service.set_policy``, as the API and ``palier program apply`` do; a new reward by ``RewardIn`` and
``rewards.service.create_reward`` (``POST /v1/rewards``), a new or changed segment by ``SegmentIn`` and
``segments.service.create_segment`` / ``update_segment`` (``POST /v1/segments``, ``PUT /v1/segments/{code}``),
a new or changed VIP plan by ``PlanIn`` / ``PlanUpdate`` and ``memberships.service.create_plan`` /
``update_plan`` (``POST /v1/plans``, ``PATCH /v1/plans/{code}``).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import yaml
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from palier.api.problems import field_path, validation_code
from palier.clock import Clock
from palier.db import Database
from palier.errors import InvalidInput, PalierError, error_location, validation_message
from palier.memberships import service as memberships
from palier.memberships.models import PlanIn, PlanUpdate
from palier.rewards import service as rewards
from palier.rewards.models import RewardIn
from palier.rules import document as rules_document
from palier.rules import service as rules
from palier.segments import service as segments
from palier.segments.models import STORED, SegmentIn
from palier.tiers import service as tiers
from palier.tiers.models import TierPolicy
from palier.web import i18n, once
from palier.web.console.access import Staff, current, own_or_404, requires, staff_router
from palier.web.render import render
from palier.yaml_lines import Problem, line_of, syntax_problem

router = staff_router()
MAX_TEXT = 200_000


def _problems(text: str, error: PalierError) -> list[Problem]:
    listed = error.extra.get("errors") or [
        {"field": error.field or "document", "code": error.code, "message": error.detail}
    ]
    return [Problem(line_of(text, p["field"]), p["field"], p["code"], p["message"]) for p in listed]


def _document_problem(request: Request, text: str) -> Problem | None:
    """A document longer than the editor takes, a YAML syntax error, a blank document (saving one would remove
    every rule or tier at a stroke, which is never what a cleared editor means: an explicit ``rules: []`` or
    ``tiers: []`` still does it), or one that is not a set of fields."""
    if len(text) > MAX_TEXT:  # refused whole: a document cut at the limit could still read, and be saved cut
        language = i18n.request_language(request)
        message = i18n.translate(language, "console.editor.too_long", limit=i18n.grouped(MAX_TEXT, language))
        return Problem(line=None, field="document", code="document_too_long", message=message)
    problem = syntax_problem(text)
    if problem is not None:
        return problem
    document = yaml.safe_load(text)
    if document is None:
        message = i18n.translate(i18n.request_language(request), "console.editor.empty")
        return Problem(line=None, field="document", code="empty_document", message=message)
    if not isinstance(document, dict):  # a word, a number or a list: not "a whole number expected" nor English
        message = i18n.translate(i18n.request_language(request), "console.editor.not_fields")
        return Problem(line=1, field="document", code="document_not_fields", message=message)
    return None


def _validation_problems(text: str, error: ValidationError) -> list[Problem]:
    found = []
    for e in error.errors():
        where = error_location(e)
        field = field_path(where) if where else "document"  # a check of the whole document: no line of its own
        code = validation_code(dict(e))  # a model check's message starts with its code ("amount_required: …")
        message = validation_message(dict(e)).removeprefix(f"{code}: ")
        found.append(Problem(line_of(text, field) if where else None, field, code, message))
    return found


# The codes a document check gives in pydantic's or the YAML parser's words ("Field required", "Input should
# be …", "expected the node content, but found '-'"): English only, and not written for a merchant; the
# engine's own refusals have sentences of their own, kept in English.
_CHECKER_CODES = {"unknown_field", "missing_field", "out_of_range", "invalid_length", "invalid_format",
                  "invalid_choice", "invalid_type", "invalid_json", "invalid_yaml"}  # fmt: skip
_BOUND = re.compile(r"\b(greater|less) than( or equal to)? (-?[\d.]+)")


def _in_words(language: str, problem: Problem) -> str:
    """A problem as the page's language says it: a check's code in the catalogue's words in either language,
    with the choices or the bound the check named ("Choose one of: gift, store_credit."; "Give at least 1.")."""
    if problem.code == "effect_not_applicable" and (allowed := problem.message.partition("can be: ")[2]):
        return i18n.translate(language, "refusal.effect_not_applicable.figures", choices=allowed)
    if problem.code not in _CHECKER_CODES:
        return i18n.refusal(language, problem.code, problem.message)  # French by its code, English as written
    # a mistyped effect type: "Input tag 'fixed_points' found using 'type' does not match any of the expected
    # tags: 'points_per_amount', …": the choices are the expected tags, never what was typed nor the key's name
    offered = problem.message.rpartition("expected tags:")[2]
    if problem.code == "invalid_choice" and (choices := re.findall(r"'([^']+)'", offered)):
        return i18n.translate(language, "refusal.invalid_choice.figures", choices=", ".join(choices))
    if problem.code == "out_of_range" and (bound := _BOUND.search(problem.message)):
        kind = f"{bound[1]}_than{'_equal' if bound[2] else ''}"
        limit = int(float(bound[3])) if float(bound[3]).is_integer() else float(bound[3])
        return i18n.translate(language, f"refusal.bound.{kind}", limit=i18n.grouped(limit, language))
    return i18n.translate(language, f"refusal.{problem.code}")


def _editor(
    request: Request,
    who: Staff,
    *,
    kind: str,
    text: str,
    problems: list[Problem],
    section: str | None = None,
    action: str | None = None,
    back: str | None = None,
    **ctx: Any,
) -> HTMLResponse:
    """The editor page for ``kind`` (its texts are ``console.<kind>.*``), posting to ``action``."""
    lines = text.split("\n")
    bad = {p.line for p in problems if p.line}
    language = i18n.request_language(request)
    problems = [replace(p, message=_in_words(language, p)) for p in problems]
    return render(
        request,
        "console/editor.html",
        status=422 if problems else 200,
        staff=who,
        section=section or kind,
        action=action or f"/console/{kind}",
        back=back,
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
def rules_page(request: Request, saved: int | None = None, unchanged: int | None = None) -> HTMLResponse:
    who = current(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        version, document = rules.current_document(conn=conn, program=who.program)
    text = rules_document.dump_yaml(document)
    page: dict[str, Any] = {"version": version, "based_on": version, "saved": saved, "unchanged": unchanged}
    return _editor(request, who, kind="rules", text=text, problems=[], **page)


def _based_on(value: object) -> int | None:
    """The version the editor was opened on (a hidden field of the form); None when the form has none."""
    text = str(value or "").strip()
    return int(text) if text.isdigit() and len(text) < 10 else None


@router.post("/console/rules")
@requires("rules.edit")
async def save_rules(request: Request) -> Response:
    who = current(request)
    form = await request.form()
    text = str(form.get("document", "")).replace("\r\n", "\n")
    based_on = _based_on(form.get("based_on"))
    db: Database = request.app.state.db
    clock: Clock = request.app.state.clock
    with db.read() as conn:
        version, _ = rules.current_document(conn=conn, program=who.program)
    # a refused text stays based on the version it was opened on: saving it again must not pass for a fresh edit
    shown: dict[str, Any] = {"version": version, "based_on": version if based_on is None else based_on, "saved": None}
    problem = _document_problem(request, text)
    if problem is not None:
        return _editor(request, who, kind="rules", text=text, problems=[problem], **shown)
    try:
        document = rules_document.parse_text(text)
        with once.write(request) as conn:
            applied = rules.apply_rules(
                conn=conn,
                clock=clock,
                program_id=who.program.id,
                document=document,
                actor=f"staff:{who.user.id}",
                based_on=based_on,
            )
            saved = f"saved={applied.rules.version}" if applied.new else f"unchanged={applied.rules.version}"
            location = once.led_to(conn, request, f"/console/rules?{saved}")
    except PalierError as error:
        return _editor(request, who, kind="rules", text=text, problems=_problems(text, error), **shown)
    return RedirectResponse(location, status_code=303)


# --- tiers ---


_NO_TIERS = {"fr": "# Pas encore de niveaux. Par exemple :\n", "en": "# No tiers yet. For example:\n"}


def _policy_yaml(policy: TierPolicy | None, language: str) -> str:
    if policy is None:
        example = {
            "metric": "spend",
            "window": "calendar_year",
            "downgrade": "period_end",
            "tiers": [{"code": "silver", "name": {"fr": "Argent", "en": "Silver"}, "threshold": 20000}],
        }
        return _NO_TIERS[language] + yaml.safe_dump(example, sort_keys=False, allow_unicode=True)
    data = json.loads(policy.model_dump_json(exclude_none=True))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@router.get("/console/tiers")
@requires("tiers.edit")
def tiers_page(request: Request, saved: int | None = None) -> HTMLResponse:
    who = current(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        policy = tiers.get_policy(conn, program_id=who.program.id)
    return _editor(
        request,
        who,
        kind="tiers",
        text=_policy_yaml(policy, i18n.request_language(request)),
        problems=[],
        policy=policy,
        saved=saved,
    )


@router.post("/console/tiers")
@requires("tiers.edit")
async def save_tiers(request: Request) -> Response:
    who = current(request)
    text = str((await request.form()).get("document", "")).replace("\r\n", "\n")
    db: Database = request.app.state.db
    with db.read() as conn:
        policy = tiers.get_policy(conn, program_id=who.program.id)
    problem = _document_problem(request, text)
    if problem is not None:
        return _editor(request, who, kind="tiers", text=text, problems=[problem], policy=policy, saved=None)
    try:
        new_policy = TierPolicy.model_validate(yaml.safe_load(text) or {})
        with once.write(request) as conn:
            tiers.set_policy(
                conn=conn,
                clock=request.app.state.clock,
                program=who.program,
                policy=new_policy,
                actor=f"staff:{who.user.id}",
            )
            once.led_to(conn, request, "/console/tiers?saved=1")
    except ValidationError as error:
        return _editor(
            request, who, kind="tiers", text=text, problems=_validation_problems(text, error), policy=policy, saved=None
        )
    except PalierError as error:
        return _editor(
            request, who, kind="tiers", text=text, problems=_problems(text, error), policy=policy, saved=None
        )
    return RedirectResponse("/console/tiers?saved=1", status_code=303)


# --- a new reward, a new segment ---

# The examples a new document starts from, with comments in the page's language (the keys are the API's).
NEW_REWARD = {
    "fr": """# Une récompense du catalogue. Types (kind) : amount_off, percent_off, free_product, store_credit, gift.
kind: amount_off
cost_points: 500
title: {fr: "Bon de 5 €", en: "€5 voucher"}
amount: 500          # en centimes : 5,00 €
valid_days: 30       # combien de jours le bon peut servir
# stock: 100         # à omettre pour un stock illimité
# description: {fr: "Sur tout le magasin", en: "On the whole shop"}
# image_url: https://boutique.example/bon.png
# min_order: 2500    # commande minimum, en centimes : 25,00 €
# limit_per_member: {count: 1, period: month}   # day, week, month, year ou ever
# channels: [store, web]                        # à omettre : tous les canaux
# eligibility: {tiers: [gold], segments: [], plans: []}   # les codes du programme ; à omettre : tous
""",
    "en": """# A reward of the catalog. Kinds: amount_off, percent_off, free_product, store_credit, gift.
kind: amount_off
cost_points: 500
title: {fr: "Bon de 5 €", en: "€5 voucher"}
amount: 500          # minor units: 5.00
valid_days: 30       # how long the coupon can be used
# stock: 100         # leave out for unlimited
# description: {fr: "Sur tout le magasin", en: "On the whole shop"}
# image_url: https://shop.example/voucher.png
# min_order: 2500    # minimum order, minor units: 25.00
# limit_per_member: {count: 1, period: month}   # day, week, month, year or ever
# channels: [store, web]                        # leave out for every channel
# eligibility: {tiers: [gold], segments: [], plans: []}   # the program's codes; leave out for everyone
""",
}

NEW_SEGMENT = {
    "fr": """# Une audience, recalculée par `palier jobs run segments`. Type : rules (toutes vraies) ou top_revenue.
code: big-spenders
name: {fr: "Gros paniers", en: "Big spenders"}
conditions:
  - {field: total_spend, op: ">=", value: 50000}   # en centimes : 500,00 €
""",
    "en": """# An audience, recomputed by `palier jobs run segments`. Kind: rules (all hold) or top_revenue.
code: big-spenders
name: {fr: "Gros paniers", en: "Big spenders"}
conditions:
  - {field: total_spend, op: ">=", value: 50000}   # minor units: 500.00
""",
}


async def _create(
    request: Request, *, kind: str, section: str, parse: Any, create: Any, done: str, action: str | None = None
) -> Response:
    """Check the posted YAML with ``parse`` and save it with ``create``; problems at their line."""
    who = current(request)
    text = str((await request.form()).get("document", "")).replace("\r\n", "\n")
    page = {"kind": kind, "section": section, "action": action or f"/console/{kind}", "back": f"/console/{section}"}
    problem = _document_problem(request, text)
    if problem is not None:
        return _editor(request, who, text=text, problems=[problem], saved=None, **page)
    try:
        data = parse(yaml.safe_load(text) or {})
        with once.write(request) as conn:
            made = create(conn=conn, clock=request.app.state.clock, program=who.program, data=data,
                          actor=f"staff:{who.user.id}")  # fmt: skip
            location = once.led_to(conn, request, done.format(made=made))
    except ValidationError as error:
        return _editor(request, who, text=text, problems=_validation_problems(text, error), saved=None, **page)
    except PalierError as error:
        return _editor(request, who, text=text, problems=_problems(text, error), saved=None, **page)
    return RedirectResponse(location, status_code=303)


def _new_page(request: Request, *, kind: str, section: str, examples: dict[str, str]) -> HTMLResponse:
    """The editor for a new ``kind`` of the ``section`` page, starting from its example in the page's language."""
    page = {"kind": kind, "section": section, "action": f"/console/{kind}", "back": f"/console/{section}"}
    text = examples[i18n.request_language(request)]
    return _editor(request, current(request), text=text, problems=[], saved=None, **page)


@router.get("/console/new-reward")
@requires("rewards.edit")
def new_reward_page(request: Request) -> HTMLResponse:
    return _new_page(request, kind="new-reward", section="rewards", examples=NEW_REWARD)


@router.post("/console/new-reward")
@requires("rewards.edit")
async def create_reward(request: Request) -> Response:
    return await _create(
        request, kind="new-reward", section="rewards", parse=RewardIn.model_validate, create=rewards.create_reward,
        done="/console/rewards/{made.id}?saved=1",
    )  # fmt: skip


@router.get("/console/new-segment")
@requires("segments.edit")
def new_segment_page(request: Request) -> HTMLResponse:
    return _new_page(request, kind="new-segment", section="segments", examples=NEW_SEGMENT)


@router.post("/console/new-segment")
@requires("segments.edit")
async def create_segment(request: Request) -> Response:
    return await _create(
        request, kind="new-segment", section="segments", parse=SegmentIn.model_validate,
        create=segments.create_segment, done="/console/segments?created={made.code}",
    )  # fmt: skip


def _segment_text(segment: SegmentIn, language: str) -> str:
    """A segment's definition as the editor shows it: the YAML a marketer would have written."""
    fields = SegmentIn.model_validate(segment.model_dump(include=set(SegmentIn.model_fields)), context={STORED: True})
    document = fields.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
    if document.get("kind") == "top_revenue":
        document.pop("conditions", None)
    head = {
        "fr": "# Enregistré comme nouvelle définition sous le même code ; les membres suivent au prochain calcul.\n",
        "en": "# Saved as a new definition under the same code; members move at the next refresh.\n",
    }[language]
    return head + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110)


def _segment_or_404(request: Request, code: str) -> Any:
    return own_or_404(request, segments.get_segment, code=code)


@router.get("/console/segments/{code}")
@requires("segments.edit")
def segment_page(request: Request, code: str) -> HTMLResponse:
    segment = _segment_or_404(request, code)
    page = {"kind": "edit-segment", "section": "segments", "action": f"/console/segments/{segment.code}",
            "back": "/console/segments"}  # fmt: skip
    return _editor(
        request,
        current(request),
        text=_segment_text(segment, i18n.request_language(request)),
        problems=[],
        saved=None,
        **page,
    )


@router.post("/console/segments/{code}")
@requires("segments.edit")
async def save_segment(request: Request, code: str) -> Response:
    segment = _segment_or_404(request, code)

    def update(**kwargs: Any) -> Any:
        return segments.update_segment(code=segment.code, **kwargs)

    return await _create(
        request, kind="edit-segment", section="segments", parse=SegmentIn.model_validate, create=update,
        done="/console/segments?updated={made.code}", action=f"/console/segments/{segment.code}",
    )  # fmt: skip


# --- VIP plans ---

NEW_PLAN = {
    "fr": """# Une formule payante : votre caisse ou votre site encaisse le prix, Palier tient l'adhésion.
code: club
name: {fr: "Club Gourmet", en: "Gourmet Club"}
price: 499            # en centimes, par période : 4,99 € ; fixé une fois créé
period: monthly       # ou yearly ; fixé une fois créé
trial_days: 14        # essai gratuit (0 : aucun)
benefits:
  multiplier_percent: 200   # points ×2
  period_rewards: []        # des identifiants de récompenses offertes à chaque période (rwd_…)
  perks:
    - {fr: "Livraison offerte", en: "Free delivery"}
access: open          # open, segment (avec segment: son code) ou invitation
""",
    "en": """# A paid plan: your till or web shop takes the price, Palier keeps the membership.
code: club
name: {fr: "Club Gourmet", en: "Gourmet Club"}
price: 499            # minor units per period: 4.99; fixed once created
period: monthly       # or yearly; fixed once created
trial_days: 14        # free trial (0: none)
benefits:
  multiplier_percent: 200   # points x2
  period_rewards: []        # ids of rewards given every period (rwd_…)
  perks:
    - {fr: "Livraison offerte", en: "Free delivery"}
access: open          # open, segment (with segment: its code) or invitation
""",
}


@router.get("/console/new-plan")
@requires("plans.edit")
def new_plan_page(request: Request) -> HTMLResponse:
    return _new_page(request, kind="new-plan", section="plans", examples=NEW_PLAN)


@router.post("/console/new-plan")
@requires("plans.edit")
async def create_plan(request: Request) -> Response:
    return await _create(
        request, kind="new-plan", section="plans", parse=PlanIn.model_validate, create=memberships.create_plan,
        done="/console/plans?created={made.code}",
    )  # fmt: skip


def _plan_or_404(request: Request, code: str) -> Any:
    return own_or_404(request, memberships.get_plan, code=code)


def _plan_text(plan: Any, language: str) -> str:
    """A plan as the editor shows it: what ``PATCH /v1/plans/{code}`` takes, its code and price as they are."""
    document = plan.model_dump(mode="json", exclude={"id", "created_at"}, exclude_none=True)
    head = {
        "fr": "# Le code, le prix et la période sont fixés ; le reste vaut tout de suite pour les adhésions en cours.\n"
        "# status: archived ne la propose plus (plus d'essai), les adhésions en cours se renouvellent.\n",
        "en": "# The code, price and period are fixed; the rest applies at once to the running memberships.\n"
        "# status: archived stops offering it (no more trials); running memberships keep renewing.\n",
    }[language]
    return head + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110)


@router.get("/console/plans/{code}")
@requires("plans.edit")
def plan_page(request: Request, code: str) -> HTMLResponse:
    plan = _plan_or_404(request, code)
    page = {"kind": "edit-plan", "section": "plans", "action": f"/console/plans/{plan.code}", "back": "/console/plans"}
    text = _plan_text(plan, i18n.request_language(request))
    return _editor(request, current(request), text=text, problems=[], saved=None, **page)


@router.post("/console/plans/{code}")
@requires("plans.edit")
async def save_plan(request: Request, code: str) -> Response:
    plan = _plan_or_404(request, code)

    def changes(document: Any) -> PlanUpdate:
        if not isinstance(document, dict):  # a word, a number or a list: refused as a new plan's would be
            return PlanUpdate.model_validate(document)
        if document.get("code", plan.code) != plan.code:
            raise InvalidInput("plan_code_fixed", "A plan's code cannot change: add a new plan.", field="code")
        return PlanUpdate.model_validate({k: v for k, v in document.items() if k != "code"})

    def update(*, data: PlanUpdate, **kwargs: Any) -> Any:
        return memberships.update_plan(code=plan.code, changes=data, **kwargs)

    return await _create(
        request, kind="edit-plan", section="plans", parse=changes, create=update,
        done="/console/plans?updated={made.code}", action=f"/console/plans/{plan.code}",
    )  # fmt: skip
