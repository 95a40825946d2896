"""What every fact from outside goes through before it is stored: its date checked, its copy redacted.

Shared by the services that record one fact (:mod:`palier.activity.service`) and the bulk import
(:mod:`palier.activity.bulk`), so a fact is accepted, refused and stored alike whichever way it came.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from palier.activity.models import EventResult
from palier.clock import in_zone
from palier.errors import InvalidInput

FUTURE_TOLERANCE = timedelta(minutes=5)  # tills' clocks run a little fast


def checked_occurred_at(
    value: datetime, now: datetime, *, timezone: str, field: str = "occurred_at", what: str = "event"
) -> datetime:
    """``value`` in UTC; refused if it is in the future (beyond the tolerance).

    A time sent without an offset ("2026-11-23T08:12:00", as tills and spreadsheets write it) is read in
    the program's ``timezone``, where the shop is, not in UTC."""
    value = in_zone(value, timezone)
    if value > now + FUTURE_TOLERANCE:
        raise InvalidInput("occurred_in_future", f"This {what} is dated in the future.", field=field)
    return value


def redacted(body: BaseModel) -> dict[str, Any]:
    """The stored copy of a request: a payment card number is replaced by its last four digits."""
    return redact(body.model_dump(mode="json"))


def redact(data: dict[str, Any]) -> dict[str, Any]:
    """:func:`redacted` of a body already dumped (``model_dump(mode="json")``); ``data`` is left as it was."""
    member = data.get("member")
    if isinstance(member, dict) and member.get("kind") == "payment_card" and member.get("value"):
        digits = "".join(ch for ch in member["value"] if ch.isdigit())
        data = {**data, "member": {**member, "value": f"•••• {digits[-4:]}"}}
    return data


def event_row(
    *,
    event_id: str,
    program_id: str,
    type_: str,
    external_id: str,
    member_id: str | None,
    claim: tuple[str, str] | None,
    channel: str | None,
    store_id: str | None,
    occurred_at: datetime,
    now: datetime,
    body_hash: str,
    body: dict[str, Any],
    result: EventResult,
) -> dict[str, Any]:
    """The ``events`` row of a fact; ``body`` is its stored copy (:func:`redacted`), ``claim`` the
    (kind, value) of the payment card it waits for when nobody has linked that card yet."""
    return {
        "id": event_id,
        "program_id": program_id,
        "type": type_,
        "external_id": external_id,
        "member_id": member_id,
        "status": result.status if result.status == "anonymous" else "processed" if claim is None else "unclaimed",
        "claim_kind": claim[0] if claim else None,
        "claim_value": claim[1] if claim else None,
        "channel": channel,
        "store_id": store_id,
        "occurred_at": occurred_at,
        "received_at": now,
        "payload_hash": body_hash,
        "body": body,
        "result": result.model_dump(mode="json"),
    }
