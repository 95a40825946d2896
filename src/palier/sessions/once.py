"""Forms that act once: the one-time token of a console, till or portal form, claimed by its first post.

:func:`claim` runs first in the transaction of what the form does. It records the token (its SHA-256, so the
table holds no usable token); if the token is there already, the form was posted before and the earlier post
is returned instead, so that nothing is done twice. Two posts at the same moment queue on the row: on
PostgreSQL the second ``INSERT … ON CONFLICT DO NOTHING`` waits for the first transaction and then finds its
row (or takes the token, if the first was rolled back); on SQLite writers are serialised already. A post
refused (nothing written) leaves no row, so the same form can be corrected and sent again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from palier.clock import Clock
from palier.db.bulk import upsert
from palier.sessions.tables import form_posts


@dataclass(frozen=True)
class EarlierPost:
    """The first post of a form: where it led (a console page), or None (it answered with a page of its own)."""

    answer: str | None


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def claim(*, conn: Connection, clock: Clock, token: str, posted_by: str, action: str) -> EarlierPost | None:
    """Take ``token`` for this post: None if it is the form's first post, else the earlier post of it."""
    taken = conn.execute(
        upsert(conn, form_posts)
        .values(id=_key(token), posted_by=posted_by, action=action[:300], answer=None, created_at=clock.now())
        .on_conflict_do_nothing()
        .returning(form_posts.c.id)  # a row only if this post took the token (rowcount is not told on every driver)
    ).scalar_one_or_none()
    if taken is not None:
        return None
    return earlier_post(conn=conn, token=token) or EarlierPost(answer=None)


def earlier_post(*, conn: Connection, token: str) -> EarlierPost | None:
    """The earlier post of the form with ``token``, if it was posted (and acted) already."""
    found = conn.execute(select(form_posts.c.answer).where(form_posts.c.id == _key(token))).first()
    return None if found is None else EarlierPost(answer=found.answer)


def settle(*, conn: Connection, token: str, answer: str) -> None:
    """Record where the first post of the form led (in the transaction that claimed it)."""
    conn.execute(update(form_posts).where(form_posts.c.id == _key(token)).values(answer=answer[:500]))
