"""Running a write command from a route: one transaction, retried on races, idempotent by key.

``Idempotency-Key``: the key, a hash of the request and the response are kept in the command's own
transaction, so a retry after a lost response gets the first answer and never a second effect. A
refusal (4xx) is kept as well and replays as the same refusal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from palier.activity import idempotency
from palier.api.problems import PROBLEM
from palier.clock import Clock
from palier.db import Database
from palier.errors import InvalidInput, PalierError

RETRIES = 8
Outcome = tuple[BaseModel, int]  # the response model and the HTTP status


def _retryable(exc: DBAPIError) -> bool:
    """Unique-key races, deadlocks and serialisation failures: running the command again is safe."""
    if isinstance(exc, IntegrityError):
        return "unique" in str(exc.orig).lower() or "duplicate" in str(exc.orig).lower()
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40P01", "40001", "55P03") or (isinstance(exc, OperationalError) and "locked" in str(exc.orig))


def run(
    *,
    request: Request,
    db: Database,
    clock: Clock,
    program_id: str,
    body: BaseModel | None,
    command: Callable[[Connection], Outcome],
    redact: Callable[[Any], Any] | None = None,
) -> JSONResponse:
    """``redact`` turns the response into what may be kept for replays (a new key's secret is not)."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise InvalidInput(
            "invalid_idempotency_key", "An Idempotency-Key is 1 to 255 characters.", field="Idempotency-Key"
        )
    hash_ = idempotency.request_hash(
        request.method,
        request.url.path,
        body.model_dump(mode="json") if body is not None else None,
        key=request.app.state.settings.card_hash_key,
    )
    for attempt in range(RETRIES):
        try:
            with db.write() as conn:
                if key is not None:
                    kept = idempotency.stored(conn, program_id=program_id, key=key, hash_=hash_)
                    if kept is not None:
                        return _response(kept[0], kept[1], replayed=True)
                model, status = command(conn)
                content = model.model_dump(mode="json")
                if key is not None:
                    idempotency.keep(
                        conn,
                        program_id=program_id,
                        key=key,
                        hash_=hash_,
                        status=status,
                        body=redact(content) if redact else content,
                        now=clock.now(),
                    )
                return _response(status, content, replayed=False)
        except PalierError as refusal:
            if key is not None and refusal.status < 500:
                _keep_refusal(db, clock, program_id, key, hash_, refusal)
            raise
        except DBAPIError as exc:
            if attempt == RETRIES - 1 or not _retryable(exc):
                raise
            time.sleep(0.002 * (attempt + 1))
    raise AssertionError("unreachable")


def _keep_refusal(db: Database, clock: Clock, program_id: str, key: str, hash_: str, refusal: PalierError) -> None:
    try:
        with db.write() as conn:
            if idempotency.stored(conn, program_id=program_id, key=key, hash_=hash_) is None:
                idempotency.keep(
                    conn,
                    program_id=program_id,
                    key=key,
                    hash_=hash_,
                    status=refusal.status,
                    body=refusal.to_problem(),
                    now=clock.now(),
                )
    except (IntegrityError, PalierError):
        pass  # a concurrent retry kept it first; the answer is the same


def _response(status: int, content: Any, *, replayed: bool) -> JSONResponse:
    media = PROBLEM if status >= 400 else "application/json"
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return JSONResponse(content, status_code=status, media_type=media, headers=headers)
