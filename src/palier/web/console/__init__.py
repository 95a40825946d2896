"""The staff side of the web: admin console (/console), KPI dashboard and till (/till).

Every page but sign-in goes through one guard (``access.staff_guard``) that checks the staff session
and the page's permission from ``palier.staff.permissions``.
"""

from __future__ import annotations

from fastapi import APIRouter

from palier.web.console import account, auth, catalog, dashboard, editors, members, settings, team, till


def routers() -> list[APIRouter]:
    return [
        auth.router,
        account.router,
        dashboard.router,
        settings.router,
        team.router,
        editors.router,
        catalog.router,
        members.router,
        till.router,
    ]
