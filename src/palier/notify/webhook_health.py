"""When Palier stops sending to a webhook: a receiver that says it is gone, or one that fails for days.

A receiver that answers **410 Gone** says the address is gone for good: the webhook is disabled at once.
One that gives no 2xx for ``FAILING_FOR`` while events wait for it (every try failing: error statuses, no
answer, refused connections) is disabled too, rather than tried every 6 hours for ever. A disabled webhook
gets no retries and no new deliveries; its events wait in the outbox (``GET /v1/outbox`` still serves them)
and go once the webhook is saved again (``PUT /v1/webhook``, or the console's button), which enables it. Each
disabling is an audit entry (``webhook.disabled``, actor ``engine``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Connection, select, update

from palier.clock import Clock, utc
from palier.notify.tables import webhooks
from palier.programs.service import record_audit

FAILING_FOR = timedelta(days=3)
GONE = 410

DisabledReason = Literal["gone", "failing"]


def record_success(conn: Connection, *, program_id: str, url: str) -> None:
    """A 2xx from ``url``: the webhook is no longer failing (if it is still at ``url``: a 2xx from an address
    replaced since says nothing of the new one)."""
    conn.execute(
        update(webhooks)
        .where(webhooks.c.program_id == program_id, webhooks.c.url == url, webhooks.c.failing_since.is_not(None))
        .values(failing_since=None)
    )


def record_failure(
    conn: Connection,
    *,
    clock: Clock,
    program_id: str,
    url: str,
    status: int | None,
    error: str,
    oldest: datetime,
) -> DisabledReason | None:
    """A failed delivery to ``url``: counts it in the webhook's failing run, and disables the webhook if the
    receiver is gone or has failed for ``FAILING_FOR``; the reason if it disabled it now. ``oldest`` is when
    the batch's oldest event was written: the failing run counts only if that event has waited as long too
    (events that failed and were then acknowledged, so never tried again, do not count against a new one).

    Only the webhook still at ``url`` is touched: an answer from an address the merchant has replaced since
    the batch left says nothing about the new one."""
    now = clock.now()
    at_url = webhooks.c.program_id == program_id, webhooks.c.url == url, webhooks.c.disabled_at.is_(None)
    conn.execute(update(webhooks).where(*at_url, webhooks.c.failing_since.is_(None)).values(failing_since=now))
    since = conn.execute(select(webhooks.c.failing_since).where(*at_url)).scalar()
    if since is None:  # replaced, removed or disabled meanwhile
        return None
    failing = utc(since) <= now - FAILING_FOR and utc(oldest) <= now - FAILING_FOR
    reason: DisabledReason | None = "gone" if status == GONE else "failing" if failing else None
    if reason is None:
        return None
    done = conn.execute(update(webhooks).where(*at_url).values(disabled_at=now, disabled_reason=reason))
    if done.rowcount != 1:  # another sender disabled it first
        return None
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program_id,
        actor="engine",
        action="webhook.disabled",
        subject_id=program_id,
        details={"url": url, "reason": reason, "last_error": error[:200]},
    )
    return reason
