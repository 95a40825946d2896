"""Open, find and end web sessions (see ``tables.py``).

A session is identified by a random token that only the browser's signed cookie holds; the table keys the
session by the token's SHA-256. ``find`` is what every signed-in page asks: is this token a session of this
kind that is neither ended nor expired, and whose is it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Literal

from sqlalchemy import Connection, select, update

from palier.clock import Clock
from palier.sessions.tables import web_sessions

Kind = Literal["member", "staff"]


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(*, conn: Connection, clock: Clock, kind: Kind, subject_id: str, lasts: timedelta) -> str:
    """Start a session for ``subject_id`` and return its token (for the cookie only). Ended and expired
    sessions are deleted a day later by the housekeeping job (``palier.jobs.housekeeping``)."""
    now = clock.now()
    token = secrets.token_urlsafe(32)
    conn.execute(
        web_sessions.insert().values(
            id=_key(token), kind=kind, subject_id=subject_id, created_at=now, expires_at=now + lasts, ended_at=None
        )
    )
    return token


def find(*, conn: Connection, clock: Clock, kind: Kind, token: str) -> str | None:
    """Whose live session of ``kind`` this token opens, or None (unknown, signed out, or expired)."""
    return conn.execute(
        select(web_sessions.c.subject_id).where(
            web_sessions.c.id == _key(token),
            web_sessions.c.kind == kind,
            web_sessions.c.ended_at.is_(None),
            web_sessions.c.expires_at > clock.now(),
        )
    ).scalar_one_or_none()


def end(*, conn: Connection, clock: Clock, token: str) -> None:
    """Sign this session out (nothing happens if it is unknown or already ended)."""
    conn.execute(
        update(web_sessions)
        .where(web_sessions.c.id == _key(token), web_sessions.c.ended_at.is_(None))
        .values(ended_at=clock.now())
    )


def end_all(*, conn: Connection, clock: Clock, kind: Kind, subject_id: str) -> int:
    """Sign ``subject_id`` out everywhere; the number of sessions that were live."""
    now = clock.now()
    result = conn.execute(
        update(web_sessions)
        .where(
            web_sessions.c.kind == kind,
            web_sessions.c.subject_id == subject_id,
            web_sessions.c.ended_at.is_(None),
            web_sessions.c.expires_at > now,
        )
        .values(ended_at=now)
    )
    return result.rowcount
