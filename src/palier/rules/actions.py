"""Behaviour events: a member did something the program rewards (newsletter, review, follow, app install…).

Each action type has its points and a limit (once ever, N per day/week/month in the program's time zone).
An action may be dated back (``occurred_at``), but not before the member joined nor more than
:data:`BACKDATE_DAYS` days ago.
An action is stored once by its type and reference, so the same review is never paid twice; above the
limit the member gets a clear refusal, never a silent zero.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, func, select

from palier.activity.facts import FUTURE_TOLERANCE, checked_occurred_at
from palier.activity.models import EventResult
from palier.activity.service import payload_hash, replay
from palier.activity.tables import events
from palier.clock import Clock, Moment
from palier.errors import InvalidInput, Unprocessable
from palier.ledger.locks import lock_members
from palier.members import service as members
from palier.programs.models import Program
from palier.rules import bookings, limits
from palier.rules.calendar import period
from palier.rules.engine import EventSnapshot
from palier.rules.models import Channel, Ident
from palier.rules.service import member_context_at, rules_at
from palier.text import Reference

_PER = {"ever": "ever", "day": "per day", "week": "per week", "month": "per month"}
# How far back an action may be dated. Limits count the period an action is dated in, so without a bound
# actions dated on each past day would claim every past day's allowance at once; a week covers a feed of
# reviews or follows that was down over a long weekend, as the gift jobs catch up a week.
BACKDATE_DAYS = 7


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    action: Ident = Field(description="an action type of the program's rules: newsletter, review…")
    reference: Annotated[Reference, Field(min_length=1, max_length=128)] = Field(
        description="unique per action type: the review id, the social account followed… (paid once)"
    )
    occurred_at: Moment | None = Field(
        default=None, description=f"default: now; not before the member joined, at most {BACKDATE_DAYS} days back"
    )
    channel: Channel | None = None


def record_action(
    *, conn: Connection, clock: Clock, program: Program, member_id: str, data: ActionIn, key: bytes = b""
) -> tuple[EventResult, bool]:
    """Pay an action's points (and what rules add); the result and whether it is a replay."""
    external_id = f"{data.action}:{data.reference}"
    body_hash = payload_hash(data, member_id, timezone=program.timezone, key=key)

    def first_result() -> EventResult | None:
        return replay(
            conn=conn,
            program_id=program.id,
            type_="action",
            external_id=external_id,
            body_hash=body_hash,
            field="reference",
        )

    found = first_result()
    if found is not None:
        return found, True
    now = clock.now()
    occurred_at = _checked_date(data, now, program) if data.occurred_at else now
    lock_members(conn, [member_id])
    # again under the lock: the same action sent twice at once (a retry) found nothing above while the first was
    # running; it answers the first result rather than a limit the first one reached
    found = first_result()
    if found is not None:
        return found, True
    members.require_active(conn=conn, program_id=program.id, member_id=member_id)
    _refuse_before_enrolment(conn, member_id, occurred_at)
    rules = rules_at(conn=conn, program=program, when=occurred_at)
    action = rules.actions.get(data.action) if rules is not None else None
    if rules is None or action is None:
        known = ", ".join(sorted(rules.actions)) if rules is not None and rules.actions else "none"
        when = "" if occurred_at >= now - timedelta(minutes=5) else f" on {occurred_at:%Y-%m-%d}, when it occurred"
        raise InvalidInput(
            "unknown_action",
            f"This program had no action {data.action!r}{when} (known then: {known}).",
            field="action",
        )
    if action.limit is not None:
        start, end = period(action.limit.per, occurred_at, rules.timezone)
        query = select(func.count()).where(
            events.c.program_id == program.id,
            events.c.member_id == member_id,
            events.c.type == "action",
            events.c.external_id.startswith(f"{data.action}:", autoescape=True),
        )
        if start is not None and end is not None:
            query = query.where(events.c.occurred_at >= start, events.c.occurred_at < end)
        done = int(conn.execute(query).scalar_one())
        if done >= action.limit.count:
            per = _PER[action.limit.per]
            raise Unprocessable(
                "action_limit_reached",
                f"{action.name.en} is paid {action.limit.count} time{'s' if action.limit.count > 1 else ''} "
                f"{per}; this member has reached it.",
                field="action",
                limit=action.limit.count,
                per=action.limit.per,
                **({"next_period_at": end.isoformat()} if end is not None else {}),
            )
    event = EventSnapshot(type="action", action=data.action, channel=data.channel)
    context = member_context_at(conn=conn, program=program, member_id=member_id, rules=rules, at=occurred_at)
    result = bookings.credit(
        conn=conn,
        clock=clock,
        program=program,
        rules=rules,
        member_id=member_id,
        type_="action",
        external_id=external_id,
        shown_id=data.reference,
        occurred_at=occurred_at,
        awards=limits.evaluate_within(
            conn=conn,
            program=program,
            rules=rules,
            event=event,
            member=context,
            at=occurred_at,
            member_id=member_id,
            lock=True,
        ),
        label=action.name.en,
        body=data.model_dump(mode="json"),
        body_hash=body_hash.value,
        channel=data.channel,
    )
    return result, False


def _checked_date(data: ActionIn, now: datetime, program: Program) -> datetime:
    """``occurred_at`` in UTC: not in the future, and at most :data:`BACKDATE_DAYS` days back."""
    assert data.occurred_at is not None
    occurred_at = checked_occurred_at(data.occurred_at, now, timezone=program.timezone, what="action")
    earliest = now - timedelta(days=BACKDATE_DAYS)
    if occurred_at < earliest:
        raise InvalidInput(
            "action_too_old",
            f"An action is dated at most {BACKDATE_DAYS} days back; send it without occurred_at to date it now.",
            field="occurred_at",
            earliest=earliest.isoformat(),
        )
    return occurred_at


def _refuse_before_enrolment(conn: Connection, member_id: str, occurred_at: datetime) -> None:
    enrolled_at = members.enrolled_at(conn=conn, member_id=member_id)
    if occurred_at < enrolled_at - FUTURE_TOLERANCE:  # a till's clock a little slow at the sign-up is let through
        raise InvalidInput(
            "action_before_enrolment",
            f"This action is dated before the member joined ({enrolled_at:%Y-%m-%d %H:%M} UTC): it is not paid.",
            field="occurred_at",
            enrolled_at=enrolled_at.isoformat(),
        )
