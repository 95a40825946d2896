"""The KPI dashboard: members, points flows per week (issued, redeemed, expired, debited), liability, members vs
non-members, by period and channel."""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from palier.analytics.kpis import CHANNELS, Kpis, Period
from palier.analytics.kpis import dashboard as dashboard_figures
from palier.clock import Clock
from palier.db import Database
from palier.web import i18n
from palier.web.console import fmt
from palier.web.console.access import current, requires, staff_router
from palier.web.console.auth import home_of
from palier.web.console.forms import whole
from palier.web.render import render

router = staff_router()
PRESETS = (4, 12, 26, 52)
EARLIEST, LATEST = date(1900, 1, 1), date(9998, 12, 31)


@router.get("/console")
@requires("members.lookup")
def console_home(request: Request) -> RedirectResponse:
    return RedirectResponse(home_of(current(request).user.role), status_code=303)


def _period(
    today: date, weeks: str | None, first: str | None, last: str | None
) -> tuple[Period, int | None, str | None]:
    """The period asked for: custom dates when both are valid, else a preset number of weeks (12); and
    why the custom dates were not used, when they were sent but make no period (a message key)."""
    refused = None
    if first or last:
        try:
            start, end = date.fromisoformat(first or ""), date.fromisoformat(last or "")
        except ValueError:
            refused = "console.dashboard.bad_dates"
        else:
            if not EARLIEST <= min(start, end) <= max(start, end) <= LATEST:  # no UTC instant at the calendar's ends
                refused = "console.dashboard.bad_dates"
            elif start > end:
                refused = "console.dashboard.reversed"
            elif (end - start).days > 3 * 366:
                refused = "console.dashboard.too_long"
            else:
                return Period(start, end), None, None
    count = number if isinstance(number := whole(weeks or ""), int) and number in PRESETS else 12
    return Period.last_weeks(today, count), count, refused


def _chart_data(found: Kpis, language: str, exponent: int) -> dict[str, Any]:
    weeks = [fmt.short_day(w.week, language) for w in found.weeks]
    unit = 10**exponent
    return {
        "weeks": weeks,
        "issued": [w.issued for w in found.weeks],
        "redeemed": [w.redeemed for w in found.weeks],
        "expired": [w.expired for w in found.weeks],
        # points debited have no channel: no series for them with one chosen
        "debited": [w.debited for w in found.weeks] if found.channel is None else None,
        "basket": [(found.member_orders.basket or 0) / unit, (found.non_member_orders.basket or 0) / unit],
        "currency": "",
    }


@router.get("/console/dashboard")
@requires("dashboard.view")
def dashboard(
    request: Request,
    weeks: str | None = None,
    channel: str | None = None,
    first: str | None = None,
    last: str | None = None,
) -> HTMLResponse:
    who = current(request)
    program = who.program
    clock: Clock = request.app.state.clock
    now = clock.now()
    today = now.astimezone(ZoneInfo(program.timezone)).date()
    period, preset, refused = _period(today, weeks, first, last)
    chosen = channel if channel in CHANNELS else None
    language = i18n.request_language(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        shown = dashboard_figures(conn=conn, program=program, period=period, now=now, channel=chosen)
    found, mix = shown.kpis, shown.mix
    return render(
        request,
        "console/dashboard.html",
        staff=who,
        section="dashboard",
        k=found,
        preset=preset,
        presets=PRESETS,
        channel=chosen,
        channels=CHANNELS,
        mix=mix,
        chart=_chart_data(found, language, program.currency_exponent) | {"currency": program.currency},
        on_day=lambda d: fmt.day_of(d, language),
        percent=lambda v: fmt.percent(v, language),
        refused=refused,
        typed={"first": (first or "")[:10], "last": (last or "")[:10]} if refused else None,
    )
