"""Program settings in the console: the same checks and audit trail as ``PATCH /v1/program``; and the
program's webhook, as ``PUT`` / ``DELETE /v1/webhook``."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from palier.db import Database
from palier.errors import NotFound, PalierError
from palier.notify import webhook_health, webhooks
from palier.programs import service as programs
from palier.programs.models import ProgramUpdate
from palier.text import mask_card_numbers
from palier.web import i18n, once
from palier.web.console.access import Staff, current, requires, staff_router
from palier.web.console.forms import errors_by_field, whole
from palier.web.render import render

router = staff_router()

NUMBERS = (
    "earn_points",
    "earn_per_amount",
    "return_window_days",
    "expiry_warning_days",
    "welcome_points",
    "redeem_points",
    "redeem_amount",
    "pay_with_points_max_percent",
)
TEXTS = ("name", "points_name", "timezone", "default_country", "rounding", "return_shortfall", "enrolment")
FLAGS = ("earn_on_shipping", "earn_on_tax", "earn_on_gift_cards")
NAMES = {"points_name_fr": "fr", "points_name_en": "en"}  # the points' name in a language, where it differs


def _shown(program_values: dict[str, Any]) -> dict[str, Any]:
    """The settings as the form shows them: the names by language in their own fields."""
    by_language = program_values.get("points_name_by_language") or {}
    return program_values | {field: by_language.get(language, "") for field, language in NAMES.items()}


def _changes(form: Any) -> dict[str, Any]:
    changes: dict[str, Any] = {name: str(form.get(name, "")).strip() for name in TEXTS}
    for name in NUMBERS:
        if name not in form:  # the base rate, shown but not sent once the earning rules set the rate
            continue
        raw = str(form.get(name, "")).strip()
        changes[name] = whole(raw)
    for name in FLAGS:
        changes[name] = form.get(name) == "on"
    names = {language: str(form.get(field, "")).strip() for field, language in NAMES.items()}
    changes["points_name_by_language"] = {language: name for language, name in names.items() if name}
    lifetime = str(form.get("points_lifetime_months", "")).strip()
    if lifetime:
        changes["points_lifetime_months"] = whole(lifetime)
    else:
        changes["never_expire"] = True
    return changes


def _webhook(request: Request, program_id: str) -> webhooks.Webhook | None:
    db: Database = request.app.state.db
    with db.read() as conn:
        try:
            return webhooks.get_webhook(conn=conn, program_id=program_id)
        except NotFound:
            return None


def _page(request: Request, who: Staff, *, status: int = 200, **shown: Any) -> HTMLResponse:
    """The settings page: the program's settings (``values``, ``errors``), then its webhook (``hook``, and
    ``hook_url`` / ``hook_error`` for a refused address, ``hook_test`` for a test's outcome)."""
    page: dict[str, Any] = {
        "values": _shown(who.program.model_dump()),
        "errors": {},
        "saved": None,
        "hook_url": None,
        "hook_error": None,
        "hook_test": None,
        "failing_days": webhook_health.FAILING_FOR.days,
    }
    page |= shown
    if "hook" not in page:
        page["hook"] = _webhook(request, who.program.id)
    return render(request, "console/settings.html", status=status, staff=who, section="settings", **page)


@router.get("/console/settings")
@requires("settings.edit")
def settings_page(request: Request, saved: str | None = None) -> HTMLResponse:
    return _page(request, current(request), saved=saved)


@router.post("/console/settings/webhook")
@requires("settings.edit")
async def save_webhook(request: Request) -> Response:
    who = current(request)
    form = await request.form()
    url = str(form.get("url", ""))
    try:
        spec = webhooks.WebhookSet.model_validate({"url": url, "new_secret": form.get("new_secret") == "on"})
    except ValidationError as refused:
        said = " ".join(str(e.get("msg", "")) for e in refused.errors())
        error = (
            "refusal.card_number_in_text"
            if "card_number_in_text" in said
            else "console.webhook.url_unusable"
            if webhooks.UNUSABLE in said
            else "console.webhook.url_invalid"
        )
        return _page(request, who, status=422, hook_url=mask_card_numbers(url), hook_error=error)  # never shown back
    try:
        if request.app.state.settings.public_webhooks_only:
            webhooks.check_public(spec.url)
    except PalierError:
        return _page(request, who, status=422, hook_url=url, hook_error="console.webhook.url_not_public")
    with once.write(request) as conn:
        webhooks.set_webhook(
            conn=conn, clock=request.app.state.clock, program_id=who.program.id, spec=spec, actor=f"staff:{who.user.id}"
        )
        location = once.led_to(conn, request, "/console/settings?saved=webhook#webhook")
    return RedirectResponse(location, status_code=303)


@router.post("/console/settings/webhook/test")
@requires("settings.edit")
def test_webhook(request: Request) -> Response:
    who = current(request)
    hook = _webhook(request, who.program.id)
    if hook is None:  # removed meanwhile (another tab)
        return RedirectResponse("/console/settings#webhook", status_code=303)
    public_only = request.app.state.settings.public_webhooks_only
    sent = webhooks.send_test(hook, request.app.state.clock, public_only=public_only)
    return _page(request, who, hook=hook, hook_test=sent)


@router.post("/console/settings/webhook/remove")
@requires("settings.edit")
def remove_webhook(request: Request) -> Response:
    who = current(request)
    location = "/console/settings?saved=webhook-removed#webhook"
    with once.write(request) as conn, suppress(NotFound):  # NotFound: removed already (another tab); none shown
        once.led_to(conn, request, location)  # first: a webhook removed already skips what follows
        webhooks.remove_webhook(
            conn=conn, clock=request.app.state.clock, program_id=who.program.id, actor=f"staff:{who.user.id}"
        )
    return RedirectResponse(location, status_code=303)


@router.post("/console/settings")
@requires("settings.edit")
async def save_settings(request: Request) -> Response:
    who = current(request)
    form = await request.form()
    sent = _changes(form)
    try:
        changes = ProgramUpdate.model_validate(sent)
        with once.write(request) as conn:
            programs.update_program(
                conn=conn,
                clock=request.app.state.clock,
                program_id=who.program.id,
                changes=changes,
                actor=f"staff:{who.user.id}",
            )
            once.led_to(conn, request, "/console/settings?saved=1")
    except ValidationError as error:
        errors = errors_by_field(error, i18n.request_language(request))
        for field, language in NAMES.items():  # points_name_by_language.en: the field of the English name
            if (said := errors.pop(f"points_name_by_language.{language}", None)) is not None:
                errors[field] = said
    except PalierError as error:
        errors = {error.field or "form": i18n.said(i18n.request_language(request), error)}
    else:
        return RedirectResponse("/console/settings?saved=1", status_code=303)
    values = _shown(who.program.model_dump() | {k: v for k, v in sent.items() if k != "never_expire"})
    if sent.get("never_expire"):
        values["points_lifetime_months"] = None
    return _page(request, who, status=422, values=values, errors=errors)
