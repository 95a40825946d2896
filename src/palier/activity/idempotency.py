"""Idempotency keys: the response to a POST, kept so a retry gets the same answer, refusals included."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select

from palier.activity.tables import idempotency_keys
from palier.errors import Conflict

KEEP_FOR = timedelta(hours=48)

# Built once: every POST runs these two, and building a statement costs more than running it here.
_STORED = select(idempotency_keys.c.request_hash, idempotency_keys.c.status_code, idempotency_keys.c.response).where(
    idempotency_keys.c.program_id == bindparam("program_id"), idempotency_keys.c.key == bindparam("key")
)
_KEEP = insert(idempotency_keys)


def request_hash(method: str, path: str, body: Any, *, key: bytes) -> str:
    """Keyed (HMAC): a request may hold a payment card number, which must not be recoverable from this."""
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def stored(conn: Connection, *, program_id: str, key: str, hash_: str) -> tuple[int, Any] | None:
    """The kept (status, body) for this key, or None; 409 if the key came with another request."""
    row = conn.execute(_STORED, {"program_id": program_id, "key": key}).first()
    if row is None:
        return None
    if row.request_hash != hash_:
        raise Conflict(
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different request.",
            field="Idempotency-Key",
        )
    return int(row.status_code), row.response


def keep(conn: Connection, *, program_id: str, key: str, hash_: str, status: int, body: Any, now: datetime) -> None:
    conn.execute(
        _KEEP,
        {
            "program_id": program_id,
            "key": key,
            "request_hash": hash_,
            "status_code": status,
            "response": body,
            "created_at": now,
        },
    )


def forget_older_than(conn: Connection, *, cutoff: datetime) -> int:
    return conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff)).rowcount
