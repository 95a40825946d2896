"""Console, till and portal forms act once, however often they are posted (see ``palier.sessions.once``).

Every write form of a staff page, and the portal's Redeem button, carries a hidden one-time token
(``{{ once_field() }}`` in its template, a new token each time the page is shown). The route runs its write
with :func:`write` or :func:`run`, which claim the token first in the same transaction, and records with
:func:`led_to`, before that transaction commits, the page it answers with. A second post of the same form (a
double click without JavaScript, the browser's back then send again, a proxy's retry) raises
:class:`AlreadySent` and acts not at all: ``web.install`` answers it with the page the first post led to, or,
when the first answered with a page of its own (a new API key's secret, shown once), with a page saying the
form was sent and done already. A refused post writes nothing and keeps no token, so the corrected form goes
through. A post without the field (a script of the merchant's) acts as before.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from fastapi import Request
from markupsafe import Markup
from sqlalchemy import Connection

from palier.db import Database
from palier.sessions import once

FIELD = "once"
T = TypeVar("T")


class AlreadySent(Exception):
    """This form was posted before and acted then: ``answer`` is the page its first post led to, if any."""

    def __init__(self, answer: str | None) -> None:
        super().__init__(answer or "already sent")
        self.answer = answer


def field() -> Markup:
    """The hidden input of a write form: a fresh one-time token (a template global)."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(FIELD, secrets.token_urlsafe(18))


async def read_token(request: Request) -> None:
    """A dependency of every staff page: the token of a posted form, kept for :func:`claim`."""
    request.state.once_token = None
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    value = (await request.form()).get(FIELD)  # the form is cached: the route reads it again
    if not isinstance(value, str) or not value.strip():
        return
    request.state.once_token = value.strip()[:64]
    # Sent again after the first post acted: answered before the route checks anything (the till's "the same
    # sale again?" would ask about the first post itself). Two posts at once are told apart by claim().
    db: Database = request.app.state.db
    with db.read_one() as conn:
        earlier = once.earlier_post(conn=conn, token=request.state.once_token)
    if earlier is not None:
        raise AlreadySent(earlier.answer)


def claim(conn: Connection, request: Request, *, posted_by: str | None = None) -> None:
    """Take this post's form token in ``conn``'s transaction, or raise :class:`AlreadySent` if it was taken.

    ``posted_by``: who posts it, the staff user signed in unless a portal page names its member."""
    token: str | None = getattr(request.state, "once_token", None)
    if token is None:
        return
    earlier = once.claim(
        conn=conn,
        clock=request.app.state.clock,
        token=token,
        posted_by=posted_by or request.state.staff.user.id,
        action=request.url.path,
    )
    if earlier is not None:
        raise AlreadySent(earlier.answer)


def led_to(conn: Connection, request: Request, location: str) -> str:
    """``location``, recorded as the page this form's first post answers with (a second post is sent there)."""
    token: str | None = getattr(request.state, "once_token", None)
    if token is not None:
        once.settle(conn=conn, token=token, answer=location)
    return location


@contextmanager
def write(request: Request) -> Iterator[Connection]:
    """``db.write()`` for a form's post: its token claimed first."""
    db: Database = request.app.state.db
    with db.write() as conn:
        claim(conn, request)
        yield conn


def run(request: Request, command: Callable[[Connection], T], *, posted_by: str | None = None) -> T:
    """``db.run(command)`` for a form's post: its token claimed first, in the same transaction."""
    db: Database = request.app.state.db

    def claimed(conn: Connection) -> T:
        claim(conn, request, posted_by=posted_by)
        return command(conn)

    return db.run(claimed)
