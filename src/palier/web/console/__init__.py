"""The staff side of the web: admin console (/console), KPI dashboard and till (/till).

Every page but sign-in goes through one guard (``access.staff_guard``) that checks the staff session
and the page's permission from ``palier.staff.permissions``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from palier.web.console import (
    account,
    auth,
    catalog,
    dashboard,
    editors,
    keys,
    members,
    settings,
    team,
    till,
    till_portal,
    till_rewards,
    till_vip,
)
from palier.web.render import PageError

# Included after every router of routers(), by web.install: it answers only what no page does.
missing = APIRouter(include_in_schema=False)


@missing.get("/console/{rest:path}", response_model=None)
@missing.get("/till/{rest:path}", response_model=None)
def not_found(rest: str, request: Request) -> Response:
    """A mistyped console or till address: a page saying so (not the API's problem+json), for people. An address
    with a trailing slash (``/console/``, a bookmark, a shortcut on the till's tablet) leads to the page without it."""
    if rest == "" or rest.endswith("/"):
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(request.url.path.rstrip("/") + query, status_code=307)
    raise PageError(404, "error.not_found")


def routers() -> list[APIRouter]:
    return [
        auth.router,
        account.router,
        dashboard.router,
        settings.router,
        team.router,
        keys.router,
        editors.router,
        catalog.router,
        members.router,
        till.router,
        till_portal.router,
        till_rewards.router,
        till_vip.router,
    ]
