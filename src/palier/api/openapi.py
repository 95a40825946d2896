"""The OpenAPI document, with errors described as they are sent: application/problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from palier.api.body_limit import MAX_BODY_BYTES
from palier.api.problems import PROBLEM


class FieldProblem(BaseModel):
    field: str
    code: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details with Palier's stable ``code`` and the offending ``field``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    code: str = Field(description="stable, machine-readable: never renamed")
    detail: str
    field: str | None = Field(default=None, description="the offending field, e.g. lines[0].quantity")
    errors: list[FieldProblem] | None = Field(default=None, description="every invalid field, for 422s")
    request_id: str | None = Field(
        default=None, description="for 500s and 503s: the X-Request-ID the server's log line names, to quote to us"
    )


ERRORS = {
    "401": "No API key, or an unknown or revoked one",
    "403": "The key's scopes do not allow this",
    "404": "Not found in this program",
    "409": "Conflicts with what is already recorded",
    "422": "Invalid input, or refused by the program's rules; nothing was written",
}
NOT_JSON_SENT = "The body was not sent as JSON (`Content-Type: application/json`): `unsupported_media_type`"
TOO_LARGE = f"The body is larger than {MAX_BODY_BYTES:,} bytes: `body_too_large`"
# A write's answer kept under its Idempotency-Key (api/commands.py): its success, or the refusal of the command
# itself (not found, conflict, refused by the rules); a retry gets it again with this header.
KEPT_REFUSALS = ("404", "409", "422")
REPLAYED: dict[str, Any] = {
    "description": "`true` when this is the answer kept for an earlier request with the same Idempotency-Key",
    "schema": {"type": "string", "enum": ["true"]},
}
# Routes under a rate limit (api/ratelimit.py) answer 429 `rate_limited`, with a Retry-After header.
RATE_LIMITED: dict[str, Any] = {
    "responses": {
        "429": {
            "description": "Too many calls: `rate_limited`; nothing was written. Try again after Retry-After seconds",
            "headers": {
                "Retry-After": {
                    "description": "whole seconds to wait (≥ 1)",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    }
}


# Every operation, /health included, answers 503 while the database cannot be used (api/problems.py).
UNAVAILABLE: dict[str, Any] = {
    "description": "The database cannot be used right now: `database_unavailable`. Try again after Retry-After"
    " seconds; a write sent again with the same Idempotency-Key is made once",
    "headers": {
        "Retry-After": {"description": "whole seconds to wait (≥ 1)", "schema": {"type": "integer", "minimum": 1}}
    },
    "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


NOT_READY: dict[str, Any] = UNAVAILABLE | {
    "description": UNAVAILABLE["description"] + ". Or the database is not at this version's schema: "
    "`database_not_ready` (run `palier db upgrade`) or `database_too_new` (a newer Palier migrated it), without"
    " Retry-After. Either way, this node cannot serve: take it out of the load balancer"
}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (FieldProblem, Problem):
            components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        reference = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses["503"] = NOT_READY if path == "/health" else UNAVAILABLE
                if not path.startswith("/v1"):
                    continue
                for status, description in ERRORS.items():
                    responses[status] = {"description": description, "content": reference}
                if "requestBody" in operation:
                    responses["413"] = {"description": TOO_LARGE, "content": reference}
                    responses["415"] = {"description": NOT_JSON_SENT, "content": reference}
                if any(parameter.get("name") == "Idempotency-Key" for parameter in operation.get("parameters", [])):
                    for status, response in responses.items():
                        if status.startswith("2") or status in KEPT_REFUSALS:
                            response.setdefault("headers", {})["Idempotent-Replayed"] = REPLAYED
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
