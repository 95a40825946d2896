"""Running a write command from a route: one transaction, retried on races, idempotent by key.

``Idempotency-Key``: the key, a hash of the request and the response are kept in the command's own
transaction, so a retry after a lost response gets the first answer and never a second effect. A
refusal (4xx) is kept as well and replays as the same refusal.

The first attempt does not look the key up: most keys are new, and a kept one makes the command's
insert of the key fail on its unique index, which rolls the command's effect back; the next attempt
looks the key up and answers what was kept. One statement fewer on every keyed write.

Concurrent requests with one key: on SQLite the write lock runs them one after the other, and each one
after the first finds the kept answer. On PostgreSQL they may run side by side; the first to commit
keeps its answer, and each other one either blocks on the key's unique index and then, its own effect
rolled back, retries and finds the kept answer, or is refused by the first one's effect (the member
was merged, the plan code is taken…): that refusal is not its answer either, the kept one is.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from palier.activity import idempotency
from palier.api.problems import PROBLEM
from palier.clock import Clock
from palier.db import Database
from palier.db.engine import ATTEMPTS, transient
from palier.errors import InvalidInput, PalierError
from palier.text import find_card_numbers

Outcome = tuple[BaseModel, int]  # the response model and the HTTP status

# The header, as the OpenAPI document shows it on every route that runs through ``run``.
IDEMPOTENT: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": (
                "1 to 255 characters, one per intended write, kept 48 h. A retry with the same key and body gets"
                " the first answer (`Idempotent-Replayed: true`), a refusal included; the same key with another"
                " body is refused with 409 `idempotency_key_reused`."
            ),
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ]
}


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
    if key is not None and find_card_numbers(key):  # it is stored, and a card number never is: its HMAC is
        secret = request.app.state.settings.card_hash_key  # (a UUID now and then looks like one, so not refused)
        key = "hmac:" + hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()
    hash_ = idempotency.request_hash(
        request.method,
        # With its query when it has one: rules saved ``?based_on=1`` are another request than ``?based_on=2``.
        f"{request.url.path}?{request.url.query}" if request.url.query else request.url.path,
        # As sent: a PATCH that names a field (to clear it) is another request than one that leaves it out.
        body.model_dump(mode="json", exclude_unset=True) if body is not None else None,
        key=request.app.state.settings.card_hash_key,
    )
    for attempt in range(ATTEMPTS):
        try:
            with db.write() as conn:
                if key is not None and attempt > 0:  # first attempt: the key's unique index answers (see above)
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
            if key is None or refusal.status >= 500:
                raise
            kept = _keep_refusal(db, clock, program_id, key, hash_, refusal)
            if kept is None:
                raise
            return _response(kept[0], kept[1], replayed=True)
        except DBAPIError as exc:
            if attempt == ATTEMPTS - 1 or not transient(exc):
                raise
            time.sleep(0.002 * (attempt + 1))
    raise AssertionError("unreachable")


def _keep_refusal(
    db: Database, clock: Clock, program_id: str, key: str, hash_: str, refusal: PalierError
) -> tuple[int, Any] | None:
    """Keep ``refusal`` as the key's answer; or return the answer a concurrent request with the key kept first.

    That request's effect may be the very reason for this refusal (the member it merged, the plan code it took):
    a client retrying must get the first answer, not a refusal caused by its own earlier attempt. A key
    kept with another request raises ``idempotency_key_reused``, as it would have before the command.
    """
    for _ in range(2):
        try:
            with db.write() as conn:
                kept = idempotency.stored(conn, program_id=program_id, key=key, hash_=hash_)
                if kept is not None:
                    return kept
                idempotency.keep(
                    conn,
                    program_id=program_id,
                    key=key,
                    hash_=hash_,
                    status=refusal.status,
                    body=refusal.to_problem(),
                    now=clock.now(),
                )
                return None
        except IntegrityError:
            continue  # a concurrent request kept its answer between our read and our insert: read it
    return None


def _response(status: int, content: Any, *, replayed: bool) -> JSONResponse:
    media = PROBLEM if status >= 400 else "application/json"
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return JSONResponse(content, status_code=status, media_type=media, headers=headers)
