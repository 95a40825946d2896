"""Web sessions, kept on the server so that signing out ends a session for good.

A session cookie is signed and carries a random token; the row here is found by the token's SHA-256, so the
table never holds a usable token. A session counts while its row exists, is not ended and has not expired:
signing out ends it, and a copy of the cookie made before (kept by a shared computer's browser, or stolen)
is refused from then on.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table

from palier.db.metadata import Timestamp, metadata

# kind: member (the portal; subject_id is a member id) | staff (the console and the till; a staff user id).
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 (hex) of the cookie's token
    Column("kind", String(8), nullable=False),
    Column("subject_id", String(32), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("ended_at", Timestamp, nullable=True),
    Index(None, "kind", "subject_id"),
)

# A console or till form that acts once: each form a page shows carries a one-time token; the first post
# of it records the token (its SHA-256) in the same transaction as what the form does, with where it led.
# A second post of the same form (a double click, the browser's back then send again, a proxy's retry)
# finds it and is answered with that page instead of acting again.
form_posts = Table(
    "form_posts",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 (hex) of the form's token
    Column("posted_by", String(32), nullable=False),  # the staff user, or the member on the portal
    Column("action", String(300), nullable=False),  # the address the form was posted to
    Column("answer", String(500), nullable=True),  # the console page the first post led to (none: a page of its own)
    Column("created_at", Timestamp, nullable=False),
    Index(None, "created_at"),
)
