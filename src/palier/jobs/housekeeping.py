"""Housekeeping: rows that served a moment are deleted once it has long passed, so these tables stop growing.

* web sessions signed out or expired more than a day ago (``palier.sessions``);
* portal sign-in links and codes expired more than a day ago (each lives 15 minutes at most, and the
  hourly cap on codes looks back one hour);
* outbox events delivered (pushed to the webhook or acknowledged) more than ``KEEP_DELIVERED`` ago: they
  carry e-mail addresses and sign-in codes, which should not be kept once the merchant has them;
* console sign-in attempts (an e-mail and a client address each) more than ``KEEP_ATTEMPTS`` ago: the
  lockout looks back 15 minutes, and the rest is kept long enough to look into a break-in attempt;
* the one-time tokens of console and till forms sent more than ``KEEP_FORMS`` ago (``palier.sessions.once``):
  a form sent again after that is not a double click, and pages are never cached;
* the answers kept for writes sent with an ``Idempotency-Key`` more than ``idempotency.KEEP_FOR`` (48 hours)
  ago: a retry comes long before, and they hold members' names, e-mails and phone numbers.

Nothing the ledger, the audit trail or a member's history needs is touched. Rows go in batches of
``BATCH``, each its own short transaction, so a first run over a large table does not hold locks for long.
The worker runs it once an hour; it is safe to run twice, or on two workers at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, Table, delete, or_, select, tuple_

from palier.activity import idempotency
from palier.activity.tables import idempotency_keys
from palier.clock import Clock
from palier.db import Database
from palier.notify.tables import outbox_events
from palier.portal.tables import portal_sign_ins
from palier.sessions.tables import form_posts, web_sessions
from palier.staff.tables import staff_sign_ins

KEEP_DELIVERED = timedelta(days=30)
KEEP_EXPIRED = timedelta(days=1)
KEEP_ATTEMPTS = timedelta(days=90)
KEEP_FORMS = timedelta(days=30)
BATCH = 10_000


@dataclass(frozen=True)
class Tidied:
    """How many rows a run deleted, by kind."""

    sessions: int
    sign_ins: int
    events: int
    attempts: int
    forms: int = 0
    answers: int = 0

    @property
    def rows(self) -> int:
        return self.sessions + self.sign_ins + self.events + self.attempts + self.forms + self.answers

    def summary(self) -> str:
        return (
            f"deleted {self.sessions:,} old sessions, {self.sign_ins:,} old portal sign-in codes and links, "
            f"{self.events:,} events delivered over {KEEP_DELIVERED.days} days ago, {self.attempts:,} console "
            f"sign-in attempts over {KEEP_ATTEMPTS.days} days old, {self.forms:,} console forms sent over "
            f"{KEEP_FORMS.days} days ago and {self.answers:,} answers kept for retries over "
            f"{int(idempotency.KEEP_FOR.total_seconds() // 3600)} hours ago"
        )


def _delete(db: Database, table: Table, gone: ColumnElement[bool]) -> int:
    keys = list(table.primary_key.columns)
    key = keys[0] if len(keys) == 1 else tuple_(*keys)  # idempotency_keys: (program_id, key)
    deleted = 0
    while True:
        with db.write() as conn:
            batch = select(*keys).where(gone).limit(BATCH)
            count = int(conn.execute(delete(table).where(key.in_(batch))).rowcount)
        deleted += count
        if count < BATCH:
            return deleted


def tidy(db: Database, clock: Clock, *, program_id: str | None = None) -> Tidied:
    """Delete what has long served its moment (``program_id``: only that program's sign-ins and events;
    sessions and console sign-in attempts belong to no program, and are left to a run for all programs)."""
    now = clock.now()
    expired = now - KEEP_EXPIRED
    sign_ins: ColumnElement[bool] = portal_sign_ins.c.expires_at < expired
    events: ColumnElement[bool] = outbox_events.c.delivered_at < now - KEEP_DELIVERED
    answers: ColumnElement[bool] = idempotency_keys.c.created_at < now - idempotency.KEEP_FOR
    if program_id is not None:
        sign_ins = sign_ins & (portal_sign_ins.c.program_id == program_id)
        events = events & (outbox_events.c.program_id == program_id)
        answers = answers & (idempotency_keys.c.program_id == program_id)
    old_sessions = or_(web_sessions.c.ended_at < expired, web_sessions.c.expires_at < expired)
    everyone = program_id is None
    return Tidied(
        sessions=_delete(db, web_sessions, old_sessions) if everyone else 0,
        sign_ins=_delete(db, portal_sign_ins, sign_ins),
        events=_delete(db, outbox_events, events),
        attempts=_delete(db, staff_sign_ins, staff_sign_ins.c.created_at < now - KEEP_ATTEMPTS) if everyone else 0,
        forms=_delete(db, form_posts, form_posts.c.created_at < now - KEEP_FORMS) if everyone else 0,
        answers=_delete(db, idempotency_keys, answers),
    )
