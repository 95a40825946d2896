"""The web pages: member portal, how-it-works, and (from web-staff) the admin console and till.

``install(app)`` mounts ``/static`` and includes the page routers; pages are not in the OpenAPI schema.
A page router is made with :func:`page_router`: every unsafe request to it must carry the CSRF token.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from palier.api import problems
from palier.api.ratelimit import RateLimited
from palier.api.request_ids import HEADER
from palier.web.once import AlreadySent
from palier.web.render import STATIC_DIR, PageError, SignInRequired, area_home, render
from palier.web.sessions import CsrfRefused, csrf_guard

PAGES = ("/console", "/till", "/p/", "/how-it-works")  # where people, not programs, read the answers


def page_router(**kwargs: object) -> APIRouter:
    """An APIRouter for pages: hidden from the OpenAPI schema, CSRF-checked on every unsafe method."""
    return APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)], **kwargs)  # type: ignore[arg-type]


def install(app: FastAPI) -> None:
    from palier.web import howto, portal, portal_auth

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (howto, portal_auth, portal):
        app.include_router(module.router)
    from palier.web import console

    for router in console.routers():
        app.include_router(router)
    app.include_router(console.missing)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> HTMLResponse:
        return render(
            request,
            "error.html",
            status=exc.status,
            error_code=exc.status,
            message_key=exc.message_key,
            params=exc.params,
        )

    @app.exception_handler(RateLimited)
    async def _rate_limited(request: Request, exc: RateLimited) -> Response:
        if request.url.path.startswith("/v1/"):  # the API's own answer: problem+json
            return problems.refusal(exc)
        page = render(
            request,
            "error.html",
            status=429,
            error_code=429,
            message_key="error.rate_limited",
            params={"seconds": exc.extra["retry_after"]},
        )
        page.headers.update(problems.refusal_headers(exc))
        return page

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _unavailable(request: Request, exc: Exception) -> Response:
        """The database is down: the API's 503 (logged once), as a page for a person on a page's address."""
        answer = problems.unavailable(request, exc)
        if not request.url.path.startswith(PAGES):
            return answer
        page = render(request, "error.html", status=503, error_code=503, message_key="error.unavailable", params={})
        page.headers["Retry-After"] = answer.headers["Retry-After"]
        return page

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        """A page's address or form tampered with (a value longer than its box allows): a page, not JSON."""
        if not request.url.path.startswith(PAGES):
            return problems.invalid_request(exc, request)
        return _error_page(request, 400, "error.bad_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if not request.url.path.startswith(PAGES):
            return problems.http_error(exc, request)
        key = {404: "error.not_found", 413: "error.too_large"}.get(exc.status_code, "error.bad_request")
        page = _error_page(request, exc.status_code, key)
        page.headers.update(exc.headers or {})  # a 405's Allow
        return page

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        answer = problems.crash(request)
        if not request.url.path.startswith(PAGES):
            return answer
        page = _error_page(request, 500, "error.internal")
        page.headers[HEADER] = answer.headers[HEADER]  # sent from outside the middleware that adds it
        return page

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> HTMLResponse:
        return render(request, "error.html", status=403, error_code=403, message_key="error.csrf", params={})

    @app.exception_handler(AlreadySent)
    async def _already_sent(request: Request, exc: AlreadySent) -> Response:
        """A form posted again: the page its first post led to, or a page saying it was done (nothing is
        done twice)."""
        if exc.answer is not None:
            return RedirectResponse(exc.answer, status_code=303)
        return render(request, "already_sent.html", status=409, back=area_home(request.url.path))

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        if request.headers.get("HX-Request") == "true":
            # htmx ("Older" in the history) would follow a redirect and paste the sign-in page into the list:
            # it is told to open that page instead
            return Response(headers={"HX-Redirect": exc.sign_in_url})
        return RedirectResponse(exc.sign_in_url, status_code=303)


def _error_page(request: Request, status: int, message_key: str) -> HTMLResponse:
    return render(request, "error.html", status=status, error_code=status, message_key=message_key, params={})
