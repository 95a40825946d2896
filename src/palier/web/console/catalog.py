"""Rewards, VIP plans, segments and coupon lookup in the console."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from palier.db import Database
from palier.errors import PalierError
from palier.members import service as members
from palier.memberships import service as memberships
from palier.rewards import service as rewards
from palier.rewards.models import RewardUpdate
from palier.segments import service as segments
from palier.web import i18n, once, present
from palier.web.console import reward_form
from palier.web.console.access import current, own_or_404, requires, staff_router
from palier.web.console.forms import errors_by_field, whole
from palier.web.console.search import display_name
from palier.web.render import render

router = staff_router()


@router.get("/console/rewards")
@requires("rewards.edit")
def rewards_page(request: Request) -> HTMLResponse:
    who = current(request)
    language = i18n.request_language(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        found = rewards.list_rewards(conn=conn, program_id=who.program.id, status=None)
    rows = [
        {
            "reward": r,
            "title": i18n.localized(r.title, language),
            "gives": present.reward_gives(r, who.program, language),
            "min_order": present.money(r.min_order, who.program, language) if r.min_order else None,
        }
        for r in found
    ]
    return render(request, "console/rewards.html", staff=who, section="rewards", rows=rows)


_FORM_NAMES = {"title": {"title_fr", "title_en"}, "cost_points": {"cost_points"}, "stock": {"stock"},
               "starts_at": {"starts_at"}, "ends_at": {"ends_at"}}  # fmt: skip
REWARD_FIELDS = ("title_fr", "title_en", "cost_points", "stock", "status", "starts_at", "ends_at")


def _in_program_zone(typed: str, timezone: str) -> str | None:
    """A ``datetime-local`` field ("2026-12-20T00:00") as the moment it names in the program's time zone; a
    value that is not one is passed on as typed, to be refused at its field."""
    if not typed:
        return None
    try:
        return datetime.fromisoformat(typed).replace(tzinfo=ZoneInfo(timezone)).isoformat()
    except ValueError:
        return typed


def _shown(reward: Any, timezone: str) -> dict[str, str]:
    """The reward's fields as the form shows them; its window in the program's wall-clock time."""
    zone = ZoneInfo(timezone)
    window = {
        name: f"{value.astimezone(zone):%Y-%m-%dT%H:%M}" if (value := getattr(reward, name)) is not None else ""
        for name in ("starts_at", "ends_at")
    }
    stock = "" if reward.stock is None else str(reward.stock)
    return {"title_fr": reward.title.fr, "title_en": reward.title.en, "cost_points": str(reward.cost_points),
            "stock": stock, "status": reward.status} | window  # fmt: skip


def _reward_or_404(request: Request, reward_id: str) -> Any:
    return own_or_404(request, rewards.get_reward, reward_id=reward_id)


@router.get("/console/rewards/{reward_id}")
@requires("rewards.edit")
def reward_page(request: Request, reward_id: str, saved: int | None = None) -> HTMLResponse:
    reward, who = _reward_or_404(request, reward_id), current(request)
    language = i18n.request_language(request)
    shown = _shown(reward, who.program.timezone) | reward_form.shown(reward, who.program, language)
    return _reward_form(request, who, reward, errors={}, saved=saved, typed=shown)


def _reward_form(
    request: Request, who: Any, reward: Any, *, errors: dict[str, str], saved: int | None, typed: dict[str, Any]
) -> HTMLResponse:
    """The reward's form: ``typed`` what it shows (the reward's fields, or what a refused form held)."""
    db: Database = request.app.state.db
    with db.read() as conn:
        choices = reward_form.choices(conn, who.program, i18n.request_language(request), typed)
    return render(
        request, "console/reward.html", status=422 if errors else 200, staff=who, section="rewards", reward=reward,
        errors=errors, saved=saved, typed=typed, choices=choices, channels=reward_form.CHANNELS,
        periods=reward_form.PERIODS,
    )  # fmt: skip


@router.post("/console/rewards/{reward_id}")
@requires("rewards.edit")
async def save_reward(request: Request, reward_id: str) -> Response:
    who = current(request)
    reward = _reward_or_404(request, reward_id)
    form = await request.form()
    stock = str(form.get("stock", "")).strip()
    cost = str(form.get("cost_points", "")).strip()
    sent: dict[str, Any] = {
        "title": {"fr": str(form.get("title_fr", "")).strip(), "en": str(form.get("title_en", "")).strip()},
        "cost_points": whole(cost),
        "status": str(form.get("status", reward.status)),
        "stock": whole(stock) if stock else None,
    }
    shown = _shown(reward, who.program.timezone)
    for bound in ("starts_at", "ends_at"):  # the program's wall-clock time, as the page shows it
        typed = str(form.get(bound, "")).strip()
        if typed != shown[bound]:  # as shown (to the minute): left as set, seconds and all (23:59:59 by the API)
            sent[bound] = _in_program_zone(typed, who.program.timezone)
    # a field the post does not have (a form of the title alone, from a script) is left as it is, not cleared
    sent = {name: value for name, value in sent.items() if name not in _FORM_NAMES or _FORM_NAMES[name] & form.keys()}
    try:
        sent |= reward_form.sent(form, reward, who.program, i18n.request_language(request))
        changes = RewardUpdate.model_validate(sent)
        with once.write(request) as conn:
            rewards.update_reward(
                conn=conn,
                clock=request.app.state.clock,
                program=who.program,
                reward_id=reward.id,
                changes=changes,
                actor=f"staff:{who.user.id}",
            )
            once.led_to(conn, request, f"/console/rewards/{reward.id}?saved=1")
    except ValidationError as error:
        errors = errors_by_field(error, i18n.request_language(request))
    except PalierError as error:
        language = i18n.request_language(request)
        said = i18n.said(language, error, points_name=who.program.points_name_in(language))
        errors = {error.field or "form": said}
    else:
        return RedirectResponse(f"/console/rewards/{reward.id}?saved=1", status_code=303)
    errors = {reward_form.field_of(name): message for name, message in errors.items()}  # title.fr: title_fr
    kept = {name: str(form.get(name, "")) for name in REWARD_FIELDS}
    return _reward_form(
        request, who, reward, errors=errors, saved=None,
        typed=reward_form.shown(reward, who.program, i18n.request_language(request)) | reward_form.typed(form) | kept,
    )  # fmt: skip


@router.get("/console/segments")
@requires("segments.view")
def segments_page(request: Request, created: str | None = None, updated: str | None = None) -> HTMLResponse:
    who = current(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        found = segments.list_segments(conn=conn, program_id=who.program.id)
    codes = {s.code for s in found}
    return render(
        request, "console/segments.html", staff=who, section="segments", segments=found,
        created=created if created in codes else None, updated=updated if updated in codes else None,
    )  # fmt: skip


@router.get("/console/plans")
@requires("plans.edit")
def plans_page(request: Request, created: str | None = None, updated: str | None = None) -> HTMLResponse:
    """The paid VIP plans: price, trial, who may join, how many members each has now."""
    who = current(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        found = memberships.list_plans(conn=conn, program_id=who.program.id)
        counts = memberships.live_counts(conn=conn, program_id=who.program.id)
    codes = {p.code for p in found}
    return render(
        request, "console/plans.html", staff=who, section="plans", plans=found, counts=counts,
        created=created if created in codes else None, updated=updated if updated in codes else None,
    )  # fmt: skip


@router.get("/console/coupons")
@requires("coupons.lookup")
def coupons_page(request: Request, code: str | None = None) -> HTMLResponse:
    who = current(request)
    language = i18n.request_language(request)
    found: dict[str, Any] | None = None
    error: str | None = None
    if code and code.strip():
        db: Database = request.app.state.db
        with db.read() as conn:
            try:
                coupon = rewards.find_coupon(conn=conn, program_id=who.program.id, code=code.strip()[:40])
                reward = rewards.reward_of(conn=conn, program_id=who.program.id, coupon=coupon)  # terms as issued
                holder = members.get_member(conn=conn, program_id=who.program.id, member_id=coupon.member_id)
                found = {
                    "coupon": coupon,
                    "title": i18n.localized(coupon.title, language),
                    "gives": present.coupon_gives(reward, who.program, language),
                    "holder": display_name(holder),
                }
            except PalierError as exc:
                error = i18n.said(language, exc, points_name=who.program.points_name_in(language))
    return render(
        request,
        "console/coupons.html",
        status=404 if error else 200,
        staff=who,
        section="coupons",
        code=code or "",
        found=found,
        error=error,
    )
