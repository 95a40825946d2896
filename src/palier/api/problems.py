"""Every error as RFC 9457 problem+json with a stable ``code`` and the offending ``field``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from palier.api.request_ids import HEADER, request_id
from palier.errors import PalierError, error_location, title_of, validation_message, value_error_code
from palier.text import contains_card_number

log = logging.getLogger("palier.api")
PROBLEM = "application/problem+json"
RETRY_AFTER = 5  # seconds: a database restart or a fail-over is over in a few
UNAVAILABLE = (
    "The database cannot be used right now: try again in a few seconds. A write sent again with the same "
    "Idempotency-Key is made once, even if this one went through."
)

# pydantic error types -> our stable codes
_CODES = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "string_too_short": "invalid_length",
    "string_too_long": "invalid_length",
    "too_short": "invalid_length",
    "too_long": "invalid_length",
    "string_pattern_mismatch": "invalid_format",
    "literal_error": "invalid_choice",
    "enum": "invalid_choice",
    "json_invalid": "invalid_json",
    "int_from_float": "invalid_type",  # 1000.5 where a whole number goes
}


def problem(status: int, code: str, detail: str, *, field: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://palier.dev/problems/{code}",
        "title": title_of(code),
        "status": status,
        "code": code,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def field_path(loc: tuple[Any, ...]) -> str:
    """("body", "lines", 0, "quantity") -> "lines[0].quantity"."""
    path = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not str(part).startswith("function-"):
            name = "(card number)" if contains_card_number(str(part)) else str(part)  # an unknown key, never echoed
            path += f".{name}" if path else name
    return path or "body"


def validation_code(error: dict[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind == "value_error":
        return value_error_code(str(error.get("msg", "")).removeprefix("Value error, ")) or "invalid_value"
    if kind in _CODES:
        return _CODES[kind]
    if kind.endswith(("_parsing", "_type")):
        return "invalid_type"
    return "invalid_value"


def refusal_headers(exc: PalierError) -> dict[str, str]:
    """The headers a refusal carries: how to authenticate (401), when to try again (429)."""
    headers = {"WWW-Authenticate": 'Bearer realm="palier"'} if exc.status == 401 else {}
    if "retry_after" in exc.extra:
        headers["Retry-After"] = str(exc.extra["retry_after"])
    return headers


def refusal(exc: PalierError) -> JSONResponse:
    return JSONResponse(exc.to_problem(), status_code=exc.status, media_type=PROBLEM, headers=refusal_headers(exc))


def unavailable(request: Request, exc: Exception) -> JSONResponse:
    """``503 database_unavailable`` with ``Retry-After``, and one log line: the database is down, restarting or
    out of connections (or a lock held elsewhere outlived a write's wait). Not a bug to trace on every request
    for as long as it lasts, and a client's retry is what cures it."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    rid = request_id(request)
    log.warning(
        "database unavailable on %s %s (request %s): %s",
        request.method,
        request.url.path,
        rid,
        reason[0] if reason else "no answer",
    )
    response = problem(503, "database_unavailable", UNAVAILABLE, request_id=rid)
    response.headers["Retry-After"] = str(RETRY_AFTER)
    response.headers[HEADER] = rid
    return response


NOT_JSON = (
    "Send the body as JSON, with the header Content-Type: application/json (curl -d alone sends a form: add"
    " -H 'Content-Type: application/json')."
)


def sent_as_other_than_json(request: Request) -> bool:
    """A body declared as something else than JSON (no Content-Type at all is read as JSON)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return bool(media) and media != "application/json" and not media.endswith("+json")


def _sent_as_other_than_json(request: Request, exc: RequestValidationError) -> bool:
    if not sent_as_other_than_json(request):
        return False
    return any(tuple(e.get("loc", ()))[:1] == ("body",) for e in exc.errors())


def invalid_request(exc: RequestValidationError, request: Request | None = None) -> JSONResponse:
    """``422`` naming every field at fault, the first one as the problem's own ``code`` and ``field``; ``415``
    for a body sent as something else than JSON (a form, text), whose fields cannot be read at all."""
    if request is not None and _sent_as_other_than_json(request, exc):
        return problem(415, "unsupported_media_type", NOT_JSON, field="Content-Type")
    errors = [
        {
            "field": "body" if e.get("type") == "json_invalid" else field_path(error_location(e)),
            "code": validation_code(e),
            "message": _not_json(e, exc.body)
            if e.get("type") == "json_invalid"
            else validation_message(e).removeprefix(f"{validation_code(e)}: "),  # the code is its own field
        }
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "code": "invalid_input", "message": "Invalid request."}
    return problem(422, first["code"], first["message"], field=first["field"], errors=errors)


def _not_json(error: dict[str, Any], document: Any) -> str:
    """What the JSON parser found wrong, and where, as a person reading the body counts: line and column."""
    reason = (error.get("ctx") or {}).get("error", "unreadable")
    position = next(iter(error.get("loc", ())[1:]), None)  # ("body", 42)
    where = ""
    if isinstance(document, str) and isinstance(position, int):
        line, column = document.count("\n", 0, position) + 1, position - document.rfind("\n", 0, position)
        where = f" at line {line}, column {column}"
    return f"The body is not valid JSON: {reason}{where}."


def unreadable_body(exc: HTTPException) -> str | None:
    """Why a body could not be read at all, when the framework says only "There was an error parsing the body"
    (a 400 raised from the parser's own error): a till sending Latin-1, JSON nested without end, a number of
    thousands of digits. ``None`` for any other 400."""
    cause = exc.__cause__
    if exc.status_code != 400 or cause is None:
        return None
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"The body is not UTF-8 (byte 0x{cause.object[cause.start]:02X} at position {cause.start}): send JSON "
            "encoded in UTF-8, as RFC 8259 requires."
        )
    if isinstance(cause, RecursionError):
        return "The body's JSON is nested too deeply to be read."
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return f"A number in the body has more than {sys.get_int_max_str_digits():,} digits."
    return None


def allowed_methods(request: Request) -> str:
    """Every method the requested path has. Each method of a path is a route of its own, and Starlette's 405
    names only the first route's (``Allow: GET`` for ``/v1/program``, which has ``PATCH`` too)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        pattern = getattr(route.route, "path_regex", None)
        if pattern is not None and pattern.match(request.url.path):
            methods |= set(route.methods or ())
    return ", ".join(sorted(methods))


def http_error(exc: HTTPException, request: Request | None = None) -> JSONResponse:
    if (unreadable := unreadable_body(exc)) is not None:
        return problem(422, "invalid_json", unreadable, field="body")
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        401: "unauthenticated",
        403: "forbidden",
        413: "body_too_large",
    }
    response = problem(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405 and request is not None and (allowed := allowed_methods(request)):
        response.headers["Allow"] = allowed  # RFC 9110: a 405 says what the resource allows
    return response


def crash(request: Request) -> JSONResponse:
    """``500``, logged with its traceback: a bug of ours, and the transaction was rolled back."""
    rid = request_id(request)
    log.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, rid)
    response = problem(500, "internal_error", "Something went wrong on our side; nothing was written.", request_id=rid)
    response.headers[HEADER] = rid  # sent from outside the middleware that adds it to every other answer
    return response


def install(app: FastAPI) -> None:
    @app.exception_handler(PalierError)
    async def _palier(_: Request, exc: PalierError) -> JSONResponse:
        return refusal(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid_request(exc, request)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return http_error(exc, request)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        return unavailable(request, exc)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        return crash(request)
