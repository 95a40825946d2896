"""Webhooks: a program's outbox events pushed to its URL as they happen, signed, retried until delivered.

A program has at most one webhook: an https URL (http only to this machine, for development) and a secret.
``deliver`` (run by ``palier worker`` every few seconds, or ``palier jobs run webhooks``) takes each program's
events not yet delivered, oldest first, up to ``BATCH`` at a time, and POSTs them as one JSON body (programs take
turns, a batch each per round, so one program's backlog or slow receiver does not hold the others back)::

    {"events": [{"id": "obx_…", "type": "points_expiring", "subject_id": "mem_…", "payload": {…},
                 "created_at": "…"}, …]}

with ``Palier-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>``. A 2xx
answer marks them delivered; anything else (an error status, a refused connection, no answer within
``webhook_http.TIMEOUT``) leaves them waiting, and they are tried again after 30 s, 1 min, 2 min… up to 6 h
between tries: an event is dropped only by a delivery or an acknowledgement (``POST /v1/outbox/ack``).
Delivery is at least once: a receiver dedupes by event id. A receiver that answers 410 Gone, or gives no 2xx
for three days, has its webhook disabled until it is saved again (:mod:`palier.notify.webhook_health`).

Before sending, a batch is claimed (its next try set a lease ahead, in a transaction that skips rows another
sender has locked), so two workers do not send the same events; saving the webhook makes a failed batch due at
once, one on its way included, which another worker may then send to the new address too (at least once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import Connection, delete, func, insert, or_, select, update

from palier.clock import Clock, utc
from palier.db import Database
from palier.errors import InvalidInput, NotFound
from palier.ids import new_id
from palier.notify import webhook_health, webhook_http
from palier.notify.models import OutboxEvent
from palier.notify.tables import outbox_events, webhooks
from palier.notify.webhook_health import DisabledReason
from palier.notify.webhook_http import sign
from palier.programs.service import record_audit
from palier.text import find_card_numbers

BATCH = 100  # events per request
LEASE = timedelta(seconds=60)  # a claimed batch is not claimed again before (the request times out first)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=6)
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
UNUSABLE = "no request can be sent to this address: check its host name and port"


UNUSABLE = "no request can be sent to this address: check its host name and port"


def _webhook_url(value: str) -> str:
    if find_card_numbers(value):
        raise ValueError("card_number_in_text: this address holds a payment card number, which is never stored")
    try:
        scheme = urlsplit(value).scheme
    except ValueError:
        scheme = ""
    host = _sendable_host(value)
    if (scheme == "https" and host) or (scheme == "http" and host in LOOPBACK):
        return value
    if scheme == "https":  # as asked, but nowhere to send to: say what to check, not what was given
        raise ValueError(f"invalid_webhook_url: {UNUSABLE}")
    raise ValueError(
        "invalid_webhook_url: an https:// address is expected (http:// only to localhost, for development)"
    )


def _sendable_host(value: str) -> str:
    """The host a request to ``value`` goes to; "" when the HTTP client cannot send one there (no host,
    https://256.1.1.1/, a malformed xn-- name, a port past 65535)."""
    try:
        parts = urlsplit(value)
        _ = parts.port
        httpx.Request("POST", value)
    except (httpx.InvalidURL, UnicodeError, ValueError):
        return ""
    return parts.hostname or ""


WebhookUrl = Annotated[str, AfterValidator(_webhook_url)]


class WebhookSet(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: WebhookUrl = Field(max_length=2000, description="where events are POSTed: https (http only to localhost)")
    new_secret: bool = Field(
        default=False, description="make a new signing secret (the first PUT always makes one); the old one ends"
    )


class Webhook(BaseModel):
    url: str
    secret: str = Field(description="signs every delivery: verify Palier-Signature with it")
    created_at: datetime
    updated_at: datetime
    waiting: int = Field(description="events not yet delivered")
    retrying: int = Field(description="of those, events whose delivery failed and will be tried again")
    last_error: str | None = Field(description="why the oldest failing delivery failed, if one is failing")
    failing_since: datetime | None = Field(description="since when every delivery has failed (null: not failing)")
    disabled_at: datetime | None = Field(
        description="when Palier stopped sending to it (null: it sends); saving the webhook again enables it"
    )
    disabled_reason: DisabledReason | None = Field(
        description="gone: the receiver answered 410 Gone; failing: no 2xx for three days"
    )


def backoff(attempts: int) -> timedelta:
    """How long after its ``attempts``-th failed delivery an event is tried again: 30 s, doubling, at most 6 h."""
    wait: timedelta = FIRST_RETRY * 2 ** min(max(0, attempts - 1), 20)
    return min(wait, LONGEST_WAIT)


def verify(secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: float = 300.0) -> bool:
    """What a receiver checks: the signature is the secret's, over this body, made within ``tolerance``
    seconds of ``now`` (the current time unless given) so a delivery captured on the way cannot be replayed."""
    now = time.time() if now is None else now
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    # as bytes: a header of any characters (an HTTP header may hold Latin-1) is refused, never an error
    expected = sign(secret, timestamp, body).encode()
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(expected, header.encode())


# --- the program's webhook ---


def _status(conn: Connection, program_id: str) -> dict[str, Any]:
    waiting = outbox_events.c.program_id == program_id, outbox_events.c.delivered_at.is_(None)
    counts = conn.execute(select(func.count(), func.count().filter(outbox_events.c.attempts > 0)).where(*waiting)).one()
    last_error = conn.execute(
        select(outbox_events.c.last_error)
        .where(*waiting, outbox_events.c.attempts > 0)
        .order_by(outbox_events.c.id)
        .limit(1)
    ).scalar_one_or_none()
    return {"waiting": counts[0], "retrying": counts[1], "last_error": last_error}


def _moment(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def get_webhook(*, conn: Connection, program_id: str) -> Webhook:
    row = conn.execute(select(webhooks).where(webhooks.c.program_id == program_id)).mappings().first()
    if row is None:
        raise NotFound("webhook_not_set", "This program has no webhook: PUT /v1/webhook sets one.")
    return Webhook(
        url=row["url"],
        secret=row["secret"],
        created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]),
        failing_since=_moment(row["failing_since"]),
        disabled_at=_moment(row["disabled_at"]),
        disabled_reason=row["disabled_reason"],
        **_status(conn, program_id),
    )


def check_public(url: str) -> None:
    """On a server that sends only to the public internet, refuse an address that plainly is not:
    ``localhost`` or a private, loopback, link-local… IP address. A name is judged at each delivery, by the
    address it leads to then (it may change)."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    try:
        private = not webhook_http.is_public(host)
    except ValueError:  # a name, not an address
        private = host == "localhost" or host.endswith(".localhost")
    if private:
        raise InvalidInput(
            "webhook_url_not_public",
            f"{host} is not on the public internet, and this server sends webhooks only there "
            "(PALIER_WEBHOOK_NETWORKS=public).",
            field="url",
        )


def set_webhook(
    *, conn: Connection, clock: Clock, program_id: str, spec: WebhookSet, actor: str, public_only: bool = False
) -> Webhook:
    """Point the program's events at ``spec.url`` (a first webhook gets a secret; ``new_secret`` rotates it);
    a disabled webhook is enabled again, its failing run forgotten. ``public_only``: see :func:`check_public`."""
    if public_only:
        check_public(spec.url)
    now = clock.now()
    found = conn.execute(
        select(webhooks.c.secret, webhooks.c.disabled_at).where(webhooks.c.program_id == program_id)
    ).first()
    current = None if found is None else found.secret
    secret = current if current is not None and not spec.new_secret else f"whsec_{secrets.token_hex(24)}"
    if current is None:
        conn.execute(
            insert(webhooks).values(program_id=program_id, url=spec.url, secret=secret, created_at=now, updated_at=now)
        )
    else:
        conn.execute(
            update(webhooks)
            .where(webhooks.c.program_id == program_id)
            .values(
                url=spec.url, secret=secret, updated_at=now, failing_since=None, disabled_at=None, disabled_reason=None
            )
        )
    # events that failed are tried at the new address at once, not after the backoff the old one earned, and
    # their retries start afresh (a failure now waits 30 s, not 6 h); the old address's error is not shown for
    # them. A batch in flight for the first time keeps its claim (a failure at the old address then makes it due
    # at once, see _settle); a retry in flight cannot be told from a backoff here, and is made due too
    conn.execute(
        update(outbox_events)
        .where(
            outbox_events.c.program_id == program_id,
            outbox_events.c.delivered_at.is_(None),
            outbox_events.c.attempts > 0,
        )
        .values(next_attempt_at=None, last_error=None, attempts=0)
    )
    details: dict[str, Any] = audited(spec.url) | {"new_secret": current is None or spec.new_secret}
    if found is not None and found.disabled_at is not None:
        details["enabled_again"] = True
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program_id,
        actor=actor,
        action="webhook.set",
        subject_id=program_id,
        details=details,
    )
    return get_webhook(conn=conn, program_id=program_id)


def remove_webhook(*, conn: Connection, clock: Clock, program_id: str, actor: str) -> Webhook:
    """Stop pushing events (they stay in the outbox for ``GET /v1/outbox``); the removed webhook."""
    removed = get_webhook(conn=conn, program_id=program_id)
    conn.execute(delete(webhooks).where(webhooks.c.program_id == program_id))
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program_id,
        actor=actor,
        action="webhook.removed",
        subject_id=program_id,
        details=audited(removed.url),
    )
    return removed


def audited(url: str) -> dict[str, str]:
    """What the audit trail keeps of a webhook's address, for years and for every admin to read: the host it
    pointed at, and a fingerprint telling whether two saves were the same address; not what authenticated it (a
    password, a ``?token=``, a secret path), which the receiver may since have changed."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    fingerprint = hashlib.sha256(url.encode()).hexdigest()[:12]
    return {"url": f"{parts.scheme}://{parts.hostname}{port}/…", "address": fingerprint}


# --- delivering ---


@dataclass
class DeliveryRun:
    """What a run of :func:`deliver` did: events delivered, requests sent, those that failed (``errors``:
    "<program id>: <error>"), and the programs whose webhook it disabled."""

    events: int = 0
    requests: int = 0
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)


def _claim(db: Database, program_id: str, now: datetime, batch_size: int) -> list[dict[str, Any]]:
    """The program's next due events, oldest first, leased to this sender."""
    due = or_(outbox_events.c.next_attempt_at.is_(None), outbox_events.c.next_attempt_at <= now)
    waiting = outbox_events.c.program_id == program_id, outbox_events.c.delivered_at.is_(None), due
    # a read first: each round of a run looks at every webhook, and most have nothing due (no write lock for them)
    with db.read_one() as conn:
        if conn.execute(select(outbox_events.c.id).where(*waiting).limit(1)).first() is None:
            return []
    with db.write() as conn:
        rows = (
            conn.execute(
                select(outbox_events)
                .where(*waiting)
                .order_by(outbox_events.c.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
            .mappings()
            .all()
        )
        if rows:
            conn.execute(
                update(outbox_events)
                .where(outbox_events.c.id.in_([r["id"] for r in rows]))
                .values(next_attempt_at=now + LEASE)
            )
    return [dict(r) for r in rows]


def _body(rows: list[dict[str, Any]]) -> bytes:
    events = [
        OutboxEvent(**{k: row[k] for k in ("id", "type", "subject_id", "payload")}, created_at=utc(row["created_at"]))
        for row in rows
    ]
    return json.dumps({"events": [e.model_dump(mode="json") for e in events]}, separators=(",", ":")).encode()


Failure = Literal["unreachable", "timeout", "status", "network", "private"]


def failure(status: int | None, error: str | None) -> Failure | None:
    """What kind of failure ``_post``'s outcome is, for a person: nobody answered at that address, it
    answered too slowly, it answered with an error status, another network or certificate error, or the
    address is on a private network this server does not send to."""
    if error is None:
        return None
    if status is not None:
        return "status"
    if error.startswith("PrivateAddress"):
        return "private"
    if "[SSL" in error:  # something answers there, but the TLS handshake failed (a bad certificate…)
        return "network"
    if error.startswith("ConnectError") or error.startswith("ConnectTimeout"):
        return "unreachable"
    return "timeout" if "Timeout" in error.split(":")[0] else "network"


class WebhookTest(BaseModel):
    delivered: bool = Field(description="the receiver answered 2xx")
    status: int | None = Field(description="the receiver's HTTP status (null: it never answered)")
    error: str | None = Field(description="what went wrong, if it did")
    failure: Failure | None = Field(
        default=None,
        description="unreachable, timeout, status (an error status), network, or private (an address this "
        "server does not send to); null when delivered",
    )


def send_test(hook: Webhook, clock: Clock, *, public_only: bool = False) -> WebhookTest:
    """POST one ``webhook_test`` event to the webhook now, signed like any delivery, and say how it went.
    Nothing is written: the test event is not in the outbox and is not sent again."""
    event = {
        "id": new_id("outbox"),
        "type": "webhook_test",
        "subject_id": None,
        "payload": {"message": "A test from Palier: the signature is made with your webhook's secret."},
        "created_at": clock.now().isoformat().replace("+00:00", "Z"),
    }
    body = json.dumps({"events": [event]}, separators=(",", ":")).encode()
    with webhook_http.client() as client:
        status, error = webhook_http.post(client, hook.url, hook.secret, body, clock, public_only=public_only)
    return WebhookTest(delivered=error is None, status=status, error=error, failure=failure(status, error))


def _settle(
    db: Database,
    clock: Clock,
    target: Any,
    rows: list[dict[str, Any]],
    lease: datetime,
    status: int | None,
    error: str | None,
) -> DisabledReason | None:
    """Mark the batch delivered, or failed and due again later; the reason if the failure disabled the webhook.
    ``lease``: what its claim set ``next_attempt_at`` to."""
    now = clock.now()
    ids = [r["id"] for r in rows]
    waiting = outbox_events.c.id.in_(ids), outbox_events.c.delivered_at.is_(None)
    with db.write() as conn:
        if error is None:
            conn.execute(update(outbox_events).where(*waiting).values(delivered_at=now, last_error=None))
            webhook_health.record_success(conn, program_id=target.program_id, url=target.url)
            return None
        saved = select(webhooks.c.url, webhooks.c.secret).where(webhooks.c.program_id == target.program_id)
        if conn.execute(saved).first() != (target.url, target.secret):
            # the webhook was replaced, its secret rotated (or it was removed) while the batch was on its way: the
            # old address's failure (or a receiver refusing the old signature) says nothing of the new webhook,
            # which gets the events at once. Those the save already made due (a retry's) are left as it left
            # them: another sender may have claimed them since.
            free = update(outbox_events).where(*waiting, outbox_events.c.next_attempt_at == lease)
            conn.execute(free.values(next_attempt_at=None))
            return None
        # counted from what the rows hold now: saving the webhook meanwhile started their retries afresh
        tried = select(outbox_events.c.attempts).where(*waiting).with_for_update()
        attempts = max(conn.execute(tried).scalars(), default=0) + 1
        conn.execute(
            update(outbox_events)
            .where(*waiting)
            .values(
                attempts=outbox_events.c.attempts + 1,
                next_attempt_at=now + backoff(attempts),
                last_error=error[:200],
            )
        )
        return webhook_health.record_failure(
            conn,
            clock=clock,
            program_id=target.program_id,
            url=target.url,
            status=status,
            error=error,
            oldest=min(r["created_at"] for r in rows),
        )


def _targets(db: Database, program_id: str | None, program_ids: Collection[str] | None) -> list[Any]:
    """The enabled webhooks (``program_id``, ``program_ids``: only that program's, or those programs')."""
    query = (
        select(webhooks.c.program_id, webhooks.c.url, webhooks.c.secret)
        .where(webhooks.c.disabled_at.is_(None))
        .order_by(webhooks.c.program_id)
    )
    if program_id is not None:
        query = query.where(webhooks.c.program_id == program_id)
    if program_ids is not None:
        query = query.where(webhooks.c.program_id.in_(list(program_ids)))
    with db.read() as conn:
        return list(conn.execute(query).all())


def deliver(
    db: Database,
    clock: Clock,
    *,
    program_id: str | None = None,
    program_ids: Collection[str] | None = None,
    batch_size: int = BATCH,
    public_only: bool = False,
    stop: threading.Event | None = None,
) -> DeliveryRun:
    """Push every program's due events to its webhook (``program_id``, ``program_ids``: only that program's, or
    those programs'), in rounds: each round sends one batch to every program with events due, in turn, so one
    program's backlog or slow receiver holds another's events back by one request per round at most. A program
    whose receiver fails is left until its next try (or disabled, :mod:`~palier.notify.webhook_health`); the
    others go on. A disabled webhook is skipped. ``public_only``: only to addresses on the public internet.
    ``stop``: once set, the run returns when the request in flight is settled (a stopping worker)."""
    run = DeliveryRun()
    failed: set[str] = set()  # their receiver failed in this run: their events wait for their next try
    with webhook_http.client() as client:
        while True:
            sent = False
            # read again each round: a webhook saved, removed or disabled meanwhile, a program's first event
            for target in _targets(db, program_id, program_ids):
                if stop is not None and stop.is_set():
                    return run
                if target.program_id in failed:
                    continue
                claimed_at = clock.now()
                if not (rows := _claim(db, target.program_id, claimed_at, batch_size)):
                    continue
                sent = True
                run.requests += 1
                status, error = webhook_http.post(
                    client, target.url, target.secret, _body(rows), clock, public_only=public_only
                )
                disabled = _settle(db, clock, target, rows, claimed_at + LEASE, status, error)
                if error is None:
                    run.events += len(rows)
                    continue
                failed.add(target.program_id)
                run.failures += 1
                run.errors.append(f"{target.program_id}: {error}")
                if disabled is not None:
                    run.disabled.append(target.program_id)
            if not sent:
                return run
